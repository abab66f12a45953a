"""A throwaway copy of the repo driven by the real ./pants (tests/e2e's PantsRepo), a stand-in FlyteAdmin over
real gRPC (tests/support/flyteadmin), and helpers to deploy and read back what FlyteAdmin stored."""
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.support.flyteadmin.fixture import flyteadmin

REPO = Path(__file__).resolve().parents[2]
PROJECT, DOMAIN = "flytesnacks", "development"
# The scenario's two projects: one all baked, one mixed (fast, baked, raw container tasks).
EXAMPLES = ("examples/baked::", "examples/mixed::")


class Repo:
    """tests/e2e/conftest.py's PantsRepo, plus the [flyte] endpoint of a stand-in FlyteAdmin."""

    def __init__(self, root: Path):
        self.root = root

    def pants(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        env = {**os.environ, "PANTS_DYNAMIC_UI": "false", "NO_COLOR": "1"}
        proc = subprocess.run([str(self.root / "pants"), *args], cwd=self.root, env=env, capture_output=True,
                              text=True, timeout=900)
        if check and proc.returncode != 0:
            raise AssertionError(f"pants {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def deploy(self, admin, *specs: str, dry_run: bool = False, check: bool = True, options=(), push=False):
        """`flyte-deploy --format=json` against `admin`; returns (process, summary or None).

        Images are pushed only with `push=True` (test_deploy_images.py runs a registry for that); elsewhere tasks
        name their images' content tags, which is what registration is about."""
        args = [f"--flyte-endpoint={admin.endpoint}", "--flyte-insecure", *options, "flyte-deploy", "--format=json"]
        if not push:
            args.append("--no-push-images")
        if dry_run:
            args.append("--dry-run")
        proc = self.pants(*args, *(specs or EXAMPLES), check=check)
        try:
            summary = json.loads(proc.stdout)
        except ValueError:
            summary = None
        return proc, summary

    def plan(self, *specs: str) -> dict:
        return json.loads(self.pants("flyte-plan", "--format=json", *(specs or EXAMPLES), check=True).stdout)

    def write(self, relpath: str, text: str) -> None:
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def read(self, relpath: str) -> str:
        return (self.root / relpath).read_text()

    def kill_pantsd(self) -> None:
        for pid_file in (self.root / ".pids").glob("*/pantsd/pid"):
            try:
                os.kill(int(pid_file.read_text().strip()), 15)
            except (ValueError, ProcessLookupError):
                pass


@pytest.fixture(scope="session")
def deploy_repo(tmp_path_factory) -> Repo:
    subprocess.run([str(REPO / "pants"), "--version"], cwd=REPO, check=True, capture_output=True)
    root = tmp_path_factory.mktemp("deploy-repo")
    for name in ("pants", "pants.toml", "BUILD"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, root / name)
    for name in ("examples", "src"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".bootstrap").mkdir()
    for name in ("venv", "pex.pex", "cache"):
        os.symlink(REPO / ".bootstrap" / name, root / ".bootstrap" / name)
    repo = Repo(root)
    yield repo
    repo.kill_pantsd()


@pytest.fixture
def fresh_admin(user_python):
    with flyteadmin(user_python) as handle:
        yield handle


def by_status(summary: dict, status: str, kind=None) -> set:
    return {e["name"] for e in summary["entities"] if e["status"] == status and (kind is None or e["kind"] == kind)}


def stored_task(admin, name: str, version: str) -> dict:
    return admin.store.get("task", PROJECT, DOMAIN, name, version)["closure"]["compiled_task"]["template"]


def task_container(template: dict) -> dict:
    """The container a stored task runs: its `container`, or its pod's primary container (a task with a pod
    template, e.g. examples/mixed:wf's, is registered as a k8s_pod)."""
    if "container" in template:
        return template["container"]
    name = (template.get("config") or {}).get("primary_container_name", "primary")
    return next(c for c in template["k8s_pod"]["pod_spec"]["containers"] if c["name"] == name)


def bundle_members(path) -> dict:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
