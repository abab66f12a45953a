"""End to end: `./pants run` of flyte_reference targets and `./pants run <flyte_workflow> -- --remote` against the
stand-in FlyteAdmin over real gRPC (real Pants in a throwaway copy of the repo, real flytekit)."""
import json

import pytest

from tests.run.conftest import D, P


def pants_run(repo, cluster, *args):
    return repo.pants(f"--flyte-endpoint={cluster.endpoint}", "--flyte-insecure", "--flyte-admin-timeout=5", "run",
                      *args)


def only_new_execution(cluster, before):
    new = [e for e in cluster.store.executions() if e["name"] not in before]
    assert len(new) == 1, new
    return new[0]


def names(cluster):
    return {e["name"] for e in cluster.store.executions()}


def test_run_reference_workflow_target(pants_repo, cluster):
    before = names(cluster)
    proc = pants_run(pants_repo, cluster, "examples/refs:pipeline", "--", "--factor", "1.5", "--wait", "--format=json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    ex = only_new_execution(cluster, before)
    assert out["execution"]["name"] == ex["name"] and out["phase"] == "SUCCEEDED"
    assert ex["entity"] == {"project": P, "domain": D, "name": "remote.workflows.pipeline", "version": "v2",
                            "resource_type": "LAUNCH_PLAN"}
    lits = ex["inputs"]["literals"]
    # n from the target's default_inputs (the launch plan has no default for it), factor from the command line
    assert lits["n"]["scalar"]["primitive"] == {"integer": "3"}
    assert lits["factor"]["scalar"]["primitive"] == {"float_value": 1.5}
    assert "[input] n = 3  (reference default)" in proc.stderr


def test_run_reference_launch_plan_latest_version(pants_repo, cluster):
    before = names(cluster)
    proc = pants_run(pants_repo, cluster, "examples/refs:nightly")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ex = only_new_execution(cluster, before)
    assert ex["entity"]["name"] == "remote.lp" and ex["entity"]["version"] == "v3"
    assert ex["entity"]["domain"] == "production"
    assert {k: v["scalar"]["primitive"] for k, v in ex["inputs"]["literals"].items()} == {
        "n": {"integer": "7"}, "factor": {"float_value": 3.0}}
    assert f"url        http://{cluster.endpoint}/console/projects/{P}/domains/production/executions/{ex['name']}" \
        in proc.stdout


def test_run_reference_bad_input_and_missing_entity(pants_repo, cluster):
    bad = pants_run(pants_repo, cluster, "examples/refs:scale", "--", "--xs", "[1]", "--factor", "x")
    assert bad.returncode == 2
    assert "error: input --factor: expected float, got 'x' (target examples/refs:scale)" in bad.stderr
    build = pants_repo.read("examples/refs/BUILD")
    pants_repo.write("examples/refs/BUILD", build + '\nflyte_reference(name="gone", kind="task", '
                                                    'entity_name="remote.tasks.gone", version="v1")\n')
    try:
        gone = pants_run(pants_repo, cluster, "examples/refs:gone")
    finally:
        pants_repo.write("examples/refs/BUILD", build)
    assert gone.returncode == 2 and "Traceback" not in gone.stderr
    assert "task remote.tasks.gone (flytesnacks/development, version v1) is not registered" in gone.stderr


def test_run_remote_deploys_once_then_launches(pants_repo, cluster):
    before = names(cluster)
    mark = cluster.mark()
    first = pants_run(pants_repo, cluster, "examples/typed:wf", "--", "--remote", "--cfg", '{"scale": 2}',
                      "--format=json")
    assert first.returncode == 0, first.stderr[-3000:]
    created = cluster.since(mark)["counters"]
    assert created["task"]["created"] == 3 and created["workflow"]["created"] == 1
    ex = only_new_execution(cluster, before)
    plan = json.loads(pants_repo.pants("flyte-plan", "--format=json", "examples/typed:wf", check=True).stdout)
    version = plan["workflows"][0]["version"]
    assert ex["entity"] == {"project": P, "domain": D, "name": "typed.workflows.wf", "version": version,
                            "resource_type": "LAUNCH_PLAN"}
    # the dataclass, sent as its registered type says (msgpack): only the given field, defaults filled by the task
    assert ex["inputs"]["literals"]["cfg"]["scalar"]["binary"]["tag"] == "msgpack"
    assert json.loads(first.stdout)["inputs"]["cfg"] == {
        "value": {"scale": 2.0, "offset": 0.0, "tags": "<its default>"}, "from": "command line"}

    # unchanged workflow: nothing registered again, a new execution
    mark = cluster.mark()
    again = pants_run(pants_repo, cluster, "examples/typed:wf", "--", "--remote", "--cfg", '{"scale": 3}')
    assert again.returncode == 0, again.stderr[-3000:]
    delta = cluster.since(mark)["counters"]
    assert all(delta.get(k, {}).get("created", 0) == 0 for k in ("task", "workflow", "launch_plan"))
    assert delta["execution"]["created"] == 1
    assert "unchanged" in again.stderr
