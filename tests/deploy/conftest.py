"""A throwaway copy of the repo driven by the real ./pants (tests/support/repo_copy.py), a stand-in FlyteAdmin over
real gRPC (tests/support/flyteadmin), and helpers to deploy and read back what FlyteAdmin stored."""
import json
import tarfile

import pytest

from tests.support.flyteadmin.fixture import flyteadmin
from tests.support.repo_copy import PantsRepo

PROJECT, DOMAIN = "flytesnacks", "development"
# The scenario's two projects: one all baked, one mixed (fast, baked, raw container tasks).
EXAMPLES = ("examples/baked::", "examples/mixed::")


class Repo(PantsRepo):
    """tests/support/repo_copy.py's PantsRepo, plus the [flyte] endpoint of a stand-in FlyteAdmin."""

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


@pytest.fixture(scope="session")
def deploy_repo(pants_repo) -> Repo:
    """The session's repo copy and pantsd (`pants_repo`, tests/support/fixtures.py), with deploy helpers."""
    return Repo(pants_repo.root)


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
