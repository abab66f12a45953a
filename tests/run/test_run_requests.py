"""What the run goal hands the runtime: per task the plan's cache version and image (ref and why), and which
registered entity `--remote` launches. Plans come from real introspections of the examples / fixtures."""
import json
import os
import subprocess
from pathlib import Path

import pytest

from flytebuild.core.introspection import parse_introspection
from flytebuild.core.model import ImageTarget, WorkflowTarget
from flytebuild.core.plan import plan_image, plan_workflow
from flytebuild.core.run_request import remote_request_json, run_request_json
from flytebuild.core.settings import AdminSettings, Settings
from tests.support.runtime import runtime

REPO = Path(__file__).resolve().parents[2]
INTROSPECT = runtime("introspect")
IMAGE = ImageTarget(address="examples/typed:image", image_name="typed", base="localhost:5000/flytebuild/python:3.11",
                    registry="localhost:5000", repository="flytebuild/typed", requirements=("flytekit",))
FLYTE = AdminSettings(endpoint="127.0.0.1:1", insecure=True, config=None, timeout=7)


def introspect(user_python, entrypoint, pythonpath):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "FLYTE"))}
    env["PYTHONPATH"] = pythonpath
    proc = subprocess.run([user_python, *INTROSPECT, entrypoint], cwd=str(REPO), env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return parse_introspection(json.loads(proc.stdout))


def plan(intro, address="examples/typed:wf", image=IMAGE.address):
    target = WorkflowTarget(address=address, entrypoint=intro.entrypoint, project="flytesnacks",
                            domain="development", image=image)
    return plan_workflow(target, intro, {}, {IMAGE.address: IMAGE}, Settings())


@pytest.fixture(scope="module")
def typed(user_python):
    return introspect(user_python, "typed.workflows:wf", "examples")


def test_local_request_carries_cache_versions_and_image_refs(typed):
    p = plan(typed)
    req = run_request_json(p)
    assert req["entrypoint"] == "typed.workflows:wf" and req["target"] == "examples/typed:wf"
    ref = plan_image(IMAGE).ref
    assert set(req["tasks"]) == {"typed.workflows.read_values", "typed.workflows.scale", "typed.workflows.report"}
    for name, entry in req["tasks"].items():
        assert entry["image"] == ref and entry["image_source"] == "workflow: examples/typed:image"
        assert entry["cache_version"] == p.task(name).cache_version
    assert req["tasks"]["typed.workflows.scale"]["cache_version"].startswith("1-")  # cache=True, version "1"
    assert req["tasks"]["typed.workflows.report"]["cache_version"] is None


def test_external_images_are_passed_as_references(typed):
    req = run_request_json(plan(typed, image=None))
    entry = req["tasks"]["typed.workflows.report"]
    assert entry["image"].startswith("cr.flyte.org/flyteorg/flytekit:py3.11-")
    assert entry["image_source"] == "flytekit_default"


def test_remote_request_launches_the_deployed_root(typed, user_python):
    p = plan(typed)
    req = remote_request_json(p, FLYTE)
    assert req["entity"] == {"kind": "workflow", "project": "flytesnacks", "domain": "development",
                             "name": "typed.workflows.wf", "version": p.version}
    assert req["admin"] == {"endpoint": "127.0.0.1:1", "insecure": True, "config": None, "timeout": 7}
    lp = plan(introspect(user_python, "typed.workflows:lp", "examples"), address="examples/typed:lp")
    assert remote_request_json(lp, FLYTE)["entity"]["kind"] == "launch_plan"
    assert remote_request_json(lp, FLYTE)["entity"]["name"] == "typed.workflows.lp"
    task = plan(introspect(user_python, "typed.workflows:scale", "examples"), address="examples/typed:scale")
    assert remote_request_json(task, FLYTE)["entity"]["version"] == task.task("typed.workflows.scale").version


def test_remote_request_of_a_reference_root_launches_it_as_registered(user_python):
    intro = introspect(user_python, "fx_refs:remote_lp", "tests/runtime/fixtures")
    req = remote_request_json(plan(intro, address="tests:refs", image=None), FLYTE)
    assert req["entity"] == {"kind": "launch_plan", "project": "flytesnacks", "domain": "production",
                             "name": "remote.lp", "version": "v3"}
    assert req["entrypoint"] == "fx_refs:remote_lp"  # its declared interface is checked against the cluster
