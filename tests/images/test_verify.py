"""`./pants flyte-verify`: baked tasks checked inside their real image (Docker) or from its labels."""
from __future__ import annotations

import json

from tests.support.layer_cache import layers  # noqa: F401 - fixture (one layer cache per test process)

DYN_TASKS = '''import importlib

from flytekit import task, workflow

# A string import: the build graph cannot see it, so the image (built from the graph) lacks it.
helpers = importlib.import_module("shared.helpers")


@task
def double(x: int) -> int:
    return 2 * x


@workflow
def wf(x: int = 1) -> int:
    return double(x=x)
'''

DYN_BUILD = '''python_sources()

flyte_image(
    name="image",
    image_name="dyn",
    base="{registry}/flytebuild/python:3.11",
    registry="{registry}",
    repository="flytebuild/dyn",
    dependencies=[":dyn", "examples/3rdparty:reqs#flytekit"],
)

# The workflow depends on shared/ explicitly (so it imports locally), the image does not.
flyte_workflow(
    name="wf",
    entrypoint="dyn.tasks:wf",
    image=":image",
    dependencies=["examples/shared:shared"],
)
'''


def verify(repo, layers, *args):
    return repo.pants(f"--flyte-image-cache-dir={layers}", "flyte-verify", "--format=json", *args)


def test_baked_tasks_import_in_their_image(repo, docker, layers):
    proc = repo.pants(f"--flyte-image-cache-dir={layers}", "flyte-verify", "examples/baked:wf",
                      env={"DOCKER_HOST": docker.host})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["TASK", "IMAGE", "CHECK", "RESULT"]
    rows = [l.split() for l in lines[1:]]
    assert {r[0] for r in rows} >= {"baked.data.make_values", "baked.stats.summarize"}
    assert all(r[2] == "docker" and r[3] == "ok" for r in rows)


def test_static_check_reads_the_labels(repo, layers):
    proc = verify(repo, layers, "--flyte-verify-engine=static", "examples/baked:wf")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] and {t["method"] for t in report["tasks"]} == {"static"}


def test_missing_module_is_reported_per_task(repo, registry, docker, layers):
    repo.write("examples/dyn/__init__.py", "")
    repo.write("examples/dyn/tasks.py", DYN_TASKS)
    repo.write("examples/dyn/BUILD", DYN_BUILD.format(registry=registry.host))
    proc = repo.pants(f"--flyte-image-cache-dir={layers}", "flyte-verify", "--format=json",
                      "examples/dyn:wf", env={"DOCKER_HOST": docker.host})
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    task = next(t for t in report["tasks"] if t["task"] == "dyn.tasks.double")
    assert task["method"] == "docker"
    assert any("import dyn.tasks: ModuleNotFoundError: No module named 'shared'" in p for p in task["problems"])
    assert "cannot run from their image" in proc.stderr
