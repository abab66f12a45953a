"""End to end: `./pants run` of flyte_reference targets and `./pants run <flyte_workflow> -- --remote` against the
stand-in FlyteAdmin over real gRPC (real Pants in a throwaway copy of the repo, real flytekit)."""
import json
import urllib.error
import urllib.request

import pytest

from tests.run.conftest import D, P

# `registry`: a real registry holding the examples' base image; `run --remote` pushes the workflow's images there.
from tests.support.base_registry import DEFAULT_REPOSITORY, registry  # noqa: F401 - fixture


def images_at(registry, tmp_path):
    """Options pointing flyte_image targets that set no registry/base (examples/typed's) at `registry`."""
    return (f"--flyte-registry={registry.host}", f"--flyte-default-base={registry.host}/{DEFAULT_REPOSITORY}",
            f"--flyte-image-cache-dir={tmp_path / 'image-cache'}")


def manifest_exists(registry, repository: str, digest: str) -> bool:
    req = urllib.request.Request(f"http://{registry.host}/v2/{repository}/manifests/{digest}", method="HEAD", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as rsp:
            return rsp.status == 200
    except urllib.error.HTTPError:
        return False


def pants_run(repo, cluster, *args, options=()):
    return repo.pants(f"--flyte-endpoint={cluster.endpoint}", "--flyte-insecure", "--flyte-admin-timeout=5", *options,
                      "run", *args)


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


def test_run_remote_deploys_once_then_launches(pants_repo, cluster, registry, tmp_path):
    options = images_at(registry, tmp_path)
    before = names(cluster)
    mark = cluster.mark()
    first = pants_run(pants_repo, cluster, "examples/typed:wf", "--", "--remote", "--cfg", '{"scale": 2}',
                      "--format=json", options=options)
    assert first.returncode == 0, first.stderr[-3000:]
    created = cluster.since(mark)["counters"]
    assert created["task"]["created"] == 3 and created["workflow"]["created"] == 1
    ex = only_new_execution(cluster, before)
    plan = json.loads(pants_repo.pants(*options, "flyte-plan", "--format=json", "examples/typed:wf",
                                       check=True).stdout)
    version = plan["workflows"][0]["version"]
    # every registered task names its image by the content tag (as --no-push-images would), and the registry has it
    for task in plan["workflows"][0]["tasks"]:
        image = cluster.store.get("task", P, D, task["name"], task["version"])["closure"]["compiled_task"][
            "template"]["container"]["image"]
        assert "@" not in image, f"{task['name']} is registered pinned, unlike --no-push-images: {image}"
        ref, tag = image.rsplit(":", 1)
        assert ref == f"{registry.host}/flytebuild/typed", image
        assert manifest_exists(registry, "flytebuild/typed", tag), f"{image} was never pushed"
    assert ex["entity"] == {"project": P, "domain": D, "name": "typed.workflows.wf", "version": version,
                            "resource_type": "LAUNCH_PLAN"}
    # the dataclass, sent as its registered type says (msgpack): only the given field, defaults filled by the task
    assert ex["inputs"]["literals"]["cfg"]["scalar"]["binary"]["tag"] == "msgpack"
    assert json.loads(first.stdout)["inputs"]["cfg"] == {
        "value": {"scale": 2.0, "offset": 0.0, "tags": "<its default>"}, "from": "command line"}

    # unchanged workflow: nothing registered again, a new execution
    mark = cluster.mark()
    again = pants_run(pants_repo, cluster, "examples/typed:wf", "--", "--remote", "--cfg", '{"scale": 3}',
                      options=options)
    assert again.returncode == 0, again.stderr[-3000:]
    delta = cluster.since(mark)["counters"]
    assert all(delta.get(k, {}).get("created", 0) == 0 for k in ("task", "workflow", "launch_plan"))
    assert delta["execution"]["created"] == 1
    assert "unchanged" in again.stderr


REFS_IN_CODE = '''
"""References declared in code: `pyflyte run` crashes on the launch plan (`_saved_inputs`) and refuses the
workflow's `...` body at import."""
from flytekit import reference_launch_plan, reference_workflow


@reference_launch_plan(project="flytesnacks", domain="production", name="remote.lp", version="v3")
def nightly(n: int, factor: float) -> int:
    ...


@reference_workflow(project="flytesnacks", domain="development", name="remote.workflows.pipeline", version="v2")
def pipeline(n: int, factor: float) -> int:
    ...
'''


@pytest.fixture
def refs_in_code(pants_repo):
    pants_repo.write("examples/refcode/refcode.py", REFS_IN_CODE)
    pants_repo.write("examples/refcode/BUILD", 'python_sources()\n'
                     'flyte_workflow(name="nightly", entrypoint="refcode.py:nightly")\n'
                     'flyte_workflow(name="pipeline", entrypoint="refcode.py:pipeline")\n')
    yield
    for name in ("refcode.py", "BUILD"):
        (pants_repo.root / "examples/refcode" / name).unlink()


def test_references_in_code_plan_and_launch(pants_repo, cluster, refs_in_code):
    plan = json.loads(pants_repo.pants("flyte-plan", "--format=json", "examples/refcode:", check=True).stdout)
    refs = {r["name"]: r for wf in plan["workflows"] for r in wf["references"]}
    assert refs["remote.lp"]["kind"] == "launch_plan" and refs["remote.workflows.pipeline"]["kind"] == "workflow"

    before = names(cluster)
    lp = pants_run(pants_repo, cluster, "examples/refcode:nightly", "--", "--remote", "--n", "5")
    assert lp.returncode == 0, lp.stderr[-3000:]
    ex = only_new_execution(cluster, before)
    assert (ex["entity"]["name"], ex["entity"]["version"], ex["entity"]["domain"]) == ("remote.lp", "v3", "production")
    assert {k: v["scalar"]["primitive"] for k, v in ex["inputs"]["literals"].items()} == {
        "n": {"integer": "5"}, "factor": {"float_value": 3.0}}
    assert "Register" not in lp.stderr  # a reference is launched as registered: nothing deployed

    before = names(cluster)
    wf = pants_run(pants_repo, cluster, "examples/refcode:pipeline", "--", "--remote", "--n", "2", "--factor", "4")
    assert wf.returncode == 0, wf.stderr[-3000:]
    ex = only_new_execution(cluster, before)
    assert ex["entity"]["resource_type"] == "LAUNCH_PLAN" and ex["entity"]["name"] == "remote.workflows.pipeline"

    local = pants_run(pants_repo, cluster, "examples/refcode:pipeline", "--", "--n", "2")
    assert local.returncode == 2 and "Traceback" not in local.stderr
    assert "exist only on the cluster and cannot run locally" in local.stderr and "--remote" in local.stderr
