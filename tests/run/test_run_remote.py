"""runtime/remote.py against the stand-in FlyteAdmin over real gRPC: each reference kind creates an execution of
the right entity with the right merged inputs; missing entities and unreachable clusters are clear errors.

The entities are registered first by flytekit itself (FlyteRemote.register_*), from tests/run/fixtures/remote: the
registered side of the references declared in tests/runtime/fixtures/fx_refs.py.
"""
import json
import socket
import subprocess
from pathlib import Path

import pytest

from tests.run.conftest import FIXTURES, D, P  # noqa: F401 - `cluster` comes from conftest
from tests.run.conftest import user_env as _env
from tests.support.runtime import runtime

REPO = Path(__file__).resolve().parents[2]
REMOTE = runtime("remote")

def launch(user_python, tmp_path, endpoint, entity, *args, defaults=None, timeout=5, entrypoint=None):
    req = tmp_path / "remote-request.json"
    req.write_text(json.dumps({
        "admin": {"endpoint": endpoint, "insecure": True, "timeout": timeout},
        "target": "examples/refs:ref",
        "entity": entity,
        "default_inputs": defaults or {},
        "entrypoint": entrypoint,
    }))
    return subprocess.run([user_python, *REMOTE, str(req), *args], env=_env(), cwd=str(REPO),
                          capture_output=True, text=True, timeout=300)


def execution(admin, name):
    found = [e for e in admin.store.executions() if e["name"] == name]
    assert len(found) == 1, admin.store.executions()
    return found[0]


def ints(literals):
    return {k: v["scalar"]["primitive"] for k, v in literals["literals"].items()}


def test_reference_task_creates_a_task_execution_with_the_inputs(cluster, user_python, tmp_path):
    entity = {"kind": "task", "project": P, "domain": D, "name": "remote.tasks.scale", "version": "v1"}
    proc = launch(user_python, tmp_path, cluster.endpoint, entity, "--xs", "[1, 2.5]", "--factor", "2",
                  "--format=json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["launched"] == {"resource_type": "TASK", "name": "remote.tasks.scale", "version": "v1"}
    assert out["url"] == f"http://{cluster.endpoint}/console/projects/{P}/domains/{D}/executions/{out['execution']['name']}"
    ex = execution(cluster, out["execution"]["name"])
    assert ex["entity"] == {"project": P, "domain": D, "name": "remote.tasks.scale", "version": "v1",
                            "resource_type": "TASK"}
    lits = ex["inputs"]["literals"]
    assert lits["factor"]["scalar"]["primitive"] == {"float_value": 2.0}
    assert [l["scalar"]["primitive"]["float_value"] for l in lits["xs"]["collection"]["literals"]] == [1.0, 2.5]


def test_reference_workflow_runs_through_its_default_launch_plan(cluster, user_python, tmp_path):
    entity = {"kind": "workflow", "project": P, "domain": D, "name": "remote.workflows.pipeline", "version": "v2"}
    proc = launch(user_python, tmp_path, cluster.endpoint, entity, "--n", "4", "--wait")
    assert proc.returncode == 0, proc.stderr
    assert "phase      SUCCEEDED" in proc.stdout
    name = proc.stdout.split("execution  ")[1].split()[0].rsplit("/", 1)[1]
    ex = execution(cluster, name)
    assert ex["entity"]["resource_type"] == "LAUNCH_PLAN" and ex["entity"]["name"] == "remote.workflows.pipeline"
    assert ex["entity"]["version"] == "v2"
    # command line for n, the signature default (kept in the default launch plan) for factor
    assert ints(ex["inputs"]) == {"n": {"integer": "4"}, "factor": {"float_value": 2.0}}
    assert ints(ex["user_inputs"]) == {"n": {"integer": "4"}}
    assert "[input] n = 4  (command line)" in proc.stderr
    assert "[input] factor = 2.0  (default of launch plan remote.workflows.pipeline)" in proc.stderr


def test_reference_launch_plan_merges_fixed_and_default_inputs(cluster, user_python, tmp_path):
    entity = {"kind": "launch_plan", "project": P, "domain": "production", "name": "remote.lp", "version": "v3"}
    proc = launch(user_python, tmp_path, cluster.endpoint, entity, "--format=json", defaults={"n": "9"})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    ex = execution(cluster, out["execution"]["name"])
    assert ex["entity"] == {"project": P, "domain": "production", "name": "remote.lp", "version": "v3",
                            "resource_type": "LAUNCH_PLAN"}
    # the launch plan's default (7) wins over the reference's own default (9); its fixed input applies
    assert ints(ex["inputs"]) == {"n": {"integer": "7"}, "factor": {"float_value": 3.0}}
    assert out["inputs"] == {"n": {"value": 7, "from": "default of launch plan remote.lp"},
                             "factor": {"value": 3.0, "from": "fixed by launch plan remote.lp"}}
    given = launch(user_python, tmp_path, cluster.endpoint, entity, "--n", "11", "--format=json")
    ex = execution(cluster, json.loads(given.stdout)["execution"]["name"])
    assert ints(ex["inputs"])["n"] == {"integer": "11"}  # command line wins
    fixed = launch(user_python, tmp_path, cluster.endpoint, entity, "--factor", "1")
    assert fixed.returncode == 2
    assert "input --factor is fixed by launch plan remote.lp to 3.0; it cannot be overridden" in fixed.stderr


def test_latest_version_dataclass_input_and_reference_defaults(cluster, user_python, tmp_path):
    entity = {"kind": "task", "project": P, "domain": D, "name": "remote.tasks.configure", "version": None}
    proc = launch(user_python, tmp_path, cluster.endpoint, entity, "--opts", '{"factor": 1.5}', "--format=json",
                  defaults={"n": "3"})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["entity"]["version"] == "v2" and "[remote] latest version of remote.tasks.configure: v2" in proc.stderr
    assert out["inputs"]["n"] == {"value": 3, "from": "reference default"}
    assert out["inputs"]["opts"]["value"] == {"factor": 1.5, "label": "x"}  # the registered schema's default
    ex = execution(cluster, out["execution"]["name"])
    assert ex["entity"]["version"] == "v2" and set(ex["inputs"]["literals"]) == {"opts", "n"}


def test_bad_inputs_are_checked_against_the_registered_interface(cluster, user_python, tmp_path):
    entity = {"kind": "task", "project": P, "domain": D, "name": "remote.tasks.scale", "version": "v1"}
    before = len(cluster.store.executions())
    for args, message in [
        (("--xs", '[1, "a"]', "--factor", "1"), "input --xs[1]: expected float, got 'a'"),
        (("--xs", "[1]",), "missing input --factor (float) for task remote.tasks.scale (flytesnacks/development, "
                           "version v1)"),
        (("--xs", "[1]", "--factor", "1", "--bogus", "2"), "unknown input --bogus for task remote.tasks.scale"),
    ]:
        proc = launch(user_python, tmp_path, cluster.endpoint, entity, *args)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert len(cluster.store.executions()) == before  # nothing was launched


@pytest.mark.parametrize("kind, name", [("task", "remote.tasks.nope"), ("workflow", "remote.workflows.nope"),
                                        ("launch_plan", "remote.nope")])
def test_missing_entity_is_a_clear_error(cluster, user_python, tmp_path, kind, name):
    entity = {"kind": kind, "project": P, "domain": D, "name": name, "version": "v1"}
    proc = launch(user_python, tmp_path, cluster.endpoint, entity)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{kind.replace('_', ' ')} {name} (flytesnacks/development, version v1) is not registered on" in proc.stderr
    assert "(target examples/refs:ref)" in proc.stderr
    assert "Fix: check the project, domain, name and version" in proc.stderr
    latest = launch(user_python, tmp_path, cluster.endpoint, dict(entity, version=None))
    assert latest.returncode == 2
    assert f"no version of {kind.replace('_', ' ')} {name} is registered in flytesnacks/development" in latest.stderr


def test_unreachable_cluster_is_a_clear_error(user_python, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    entity = {"kind": "task", "project": P, "domain": D, "name": "remote.tasks.scale", "version": "v1"}
    proc = launch(user_python, tmp_path, f"127.0.0.1:{port}", entity, timeout=2)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        f"error: cannot reach FlyteAdmin at 127.0.0.1:{port} (insecure) within 2s (target examples/refs:ref)"
        in proc.stderr
    )


def test_declared_reference_interface_is_checked_against_the_registered_one(cluster, user_python, tmp_path):
    # fx_refs.py declares remote.tasks.scale(xs, factor) -> List[float]: as registered, no warning
    entity = {"kind": "task", "project": P, "domain": D, "name": "remote.tasks.scale", "version": "v1"}
    ok = launch(
        user_python, tmp_path, cluster.endpoint, entity, "--xs", "[1]", "--factor", "1", entrypoint="fx_refs:scale"
    )
    assert ok.returncode == 0, ok.stderr
    assert "warning" not in ok.stderr
    # it declares remote.lp(n: int) -> str; registered: n, factor (fixed) -> int
    entity = {"kind": "launch_plan", "project": P, "domain": "production", "name": "remote.lp", "version": "v3"}
    off = launch(user_python, tmp_path, cluster.endpoint, entity, entrypoint="fx_refs:remote_lp")
    assert off.returncode == 0, off.stderr
    assert (
        "[remote] warning: the registered entity has input `factor`, which fx_refs:remote_lp does not declare"
        in off.stderr
    )
    assert "[remote] warning: output `o0`: fx_refs:remote_lp declares str, registered int" in off.stderr
