"""`flytebuild verify`: the same checks and report as `pants flyte-verify` (real registry, real
Docker engine, real Pants), from flytebuild.toml instead of BUILD files."""
import json
from pathlib import Path

import pytest

from tests.support.layer_cache import layers, layers_xdg  # noqa: F401 - fixtures (one layer cache per process)

REPO = Path(__file__).resolve().parents[2]
PEX_ROOT = {"PEX_ROOT": str(REPO / ".bootstrap/cache/named_caches/pex_root")}

# A module imported by a computed name: import analysis (which does follow literal
# `import_module("a.b")`) cannot see it, so the image built from the closure lacks it, while the
# workflow still imports locally (shared/ is on the source root).
DYN_TASKS = '''import importlib

from flytekit import task, workflow

helpers = importlib.import_module(".".join(["shared", "helpers"]))


@task
def double(x: int) -> int:
    return 2 * x


@workflow
def wf(x: int = 1) -> int:
    return double(x=x)
'''

DYN_TOML = '''
[images.dyn-image]
image_name = "dyn"
base = "{registry}/flytebuild/python:3.11"
registry = "{registry}"
repository = "flytebuild/dyn"
dependencies = ["dyn"]
requirements = ["flytekit"]

[workflows.dyn-wf]
entrypoint = "dyn/tasks.py:wf"
image = "dyn-image"
'''


@pytest.fixture(scope="module")
def repo(registry_repo):
    """The session's copy whose BUILD files and flytebuild.toml name the test registry (tests/support/fixtures.py)."""
    return registry_repo


def _verify(cli, repo, xdg, *args, env=None):
    return cli("-c", "examples/flytebuild.toml", "verify", *args, cwd=repo.root,
               env={**PEX_ROOT, "XDG_CACHE_HOME": str(xdg), **(env or {})})


def test_static_check_same_report_as_pants(cli, repo, layers, layers_xdg, tmp_path):
    proc = _verify(cli, repo, layers_xdg, "--engine=static", "--format=json", "baked-wf")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] and {t["method"] for t in report["tasks"]} == {"static"}
    assert {t["task"] for t in report["tasks"]} >= {"baked.data.make_values", "baked.stats.summarize"}
    # Same content tag, same checks, same document as the Pants goal on the equivalent BUILD target.
    pants = repo.pants(f"--flyte-image-cache-dir={layers}", "flyte-verify", "--format=json",
                       "--flyte-verify-engine=static", "examples/baked:wf")
    assert pants.returncode == 0, pants.stderr
    assert json.loads(pants.stdout) == report

    # Bad input: an image where a workflow is expected; Docker demanded where none answers.
    proc = _verify(cli, repo, layers_xdg, "baked-image")
    assert proc.returncode == 1 and "`verify` takes workflows" in proc.stderr and "Traceback" not in proc.stderr
    proc = _verify(cli, repo, layers_xdg, "--engine=docker", "baked-wf",
                   env={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"})
    assert proc.returncode == 1 and "no Docker engine answers" in proc.stderr and "--engine=static" in proc.stderr
    assert proc.stdout == ""


def test_docker_check_imports_every_task_module_in_its_image(cli, repo, registry, docker, layers_xdg):
    (repo.root / "examples/dyn").mkdir(exist_ok=True)
    (repo.root / "examples/dyn/__init__.py").write_text("")
    (repo.root / "examples/dyn/tasks.py").write_text(DYN_TASKS)
    toml = repo.root / "examples/flytebuild.toml"
    original = toml.read_text()
    toml.write_text(original + DYN_TOML.format(registry=registry.host))
    try:
        proc = _verify(cli, repo, layers_xdg, "baked-wf", "dyn-wf", env={"DOCKER_HOST": docker.host})
    finally:
        toml.write_text(original)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["TASK", "IMAGE", "CHECK", "RESULT"]
    rows = {line.split()[0]: line for line in lines[1:]}
    for task in ("baked.data.make_values", "baked.stats.summarize"):
        assert rows[task].split()[2:] == ["docker", "ok"]
    assert "ModuleNotFoundError: No module named 'shared'" in rows["dyn.tasks.double"]
    assert rows["dyn.tasks.double"].split()[1].startswith(f"{registry.host}/flytebuild/dyn:")
    assert "flytebuild verify: 1 baked task(s) cannot run from their image" in proc.stderr
