"""End to end: flyte_pod_template targets through the real ./pants (flyte-render, flyte-plan), and the
plan's templates in the registration archive of `pants package`, decoded from the protobufs.

examples/mixed:wf attaches examples/mixed:pod (pod.yaml + pod-dev.yaml / pod-prod.yaml overlays), and its
workflow code puts `with_overrides(pod_template=...)` on the `total` node.
"""
import contextlib
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DECODE = REPO / "tests/runtime/fixtures/serialize_decode.py"
WF = "examples/mixed:wf"
TOTAL = "mixed.plain_tasks.total"


@contextlib.contextmanager
def edited(repo, path, old, new):
    text = repo.read(path)
    assert old in text, (path, old)
    repo.write(path, text.replace(old, new, 1))
    try:
        yield
    finally:
        repo.write(path, text)


def render(repo, *args):
    proc = repo.pants("flyte-render", *args, WF)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def docs_by_heading(text):
    """{'task NAME' | 'node WF/ID': (heading comment lines, document)} of flyte-render's YAML stream."""
    out = {}
    for chunk in text.split("---\n"):
        lines = chunk.splitlines()
        first = lines[0]
        assert first.startswith(f"# {WF}  "), first
        key = first.split("  ", 1)[1].split(" (task")[0]
        out[key] = ([l for l in lines if l.startswith("#")], yaml.safe_load(chunk))
    return out


def primary(doc):
    return next(c for c in doc["pod_spec"]["containers"] if c["name"] == doc["primary_container_name"])


def env(container):
    return {e["name"]: e["value"] for e in container.get("env", [])}


def test_render_prod_shows_the_final_pod_per_task(pants_repo):
    docs = docs_by_heading(render(pants_repo, "--env=prod"))
    headings, doc = docs[f"task {TOTAL}"]
    assert (
        headings[1] == "# from examples/mixed:pod (workflow)  [examples/mixed/pod.yaml, examples/mixed/pod-prod.yaml]"
    )
    assert headings[2] == "# environment: prod"
    assert doc["labels"] == {"team": "ml", "flyte-env": "prod"}
    assert doc["annotations"]["flytebuild/task"] == TOTAL
    c = primary(doc)
    assert c["resources"] == {"limits": {"memory": "2Gi"}}  # prod overlay wins over values' 1Gi
    assert env(c) == {"LOG_LEVEL": "info", "FLYTE_ENV": "prod"}
    assert c["image"].startswith("localhost:5000/flytebuild/mixed-runtime:")
    assert doc["annotations"]["flytebuild/image"] == c["image"]  # ${image} is the task's image ref
    assert doc["pod_spec"]["nodeSelector"] == {"pool": "highmem"}
    assert doc["pod_spec"]["volumes"] == [] and c["volumeMounts"] == []  # $patch: delete
    # every task of the workflow has one, and the with_overrides node its own merged pod
    assert {k for k in docs if k.startswith("task ")} == {
        "task mixed.fast_tasks.weights",
        "task mixed.plain_tasks.make_range",
        f"task {TOTAL}",
        "task mixed.spec_tasks.label",
        *(k for k in docs if "map_square" in k),
    }
    (node_key,) = [k for k in docs if k.startswith("node ")]
    node_headings, node = docs[node_key]
    assert node_key == "node mixed.workflows.wf/n2"
    assert "with_overrides" in node_headings[1]
    assert env(primary(node)) == {"LOG_LEVEL": "info", "FLYTE_ENV": "prod", "TOTAL_MODE": "strict"}
    assert node["pod_spec"]["nodeSelector"] == {"pool": "highmem", "disk": "ssd"}
    assert primary(node)["resources"] == {"limits": {"memory": "2Gi"}}


def test_render_dev_and_json_format(pants_repo):
    data = json.loads(render(pants_repo, "--env=dev", "--format=json"))
    pods = {(p["task"], p["node"]): p for p in data["pods"]}
    total = pods[(TOTAL, None)]
    assert total["environment"] == "dev"
    assert env(primary(total["pod"]))["LOG_LEVEL"] == "debug"
    assert [t["key"] for t in total["pod"]["pod_spec"]["tolerations"]] == ["dedicated", "preemptible"]
    assert total["files"] == ["examples/mixed/pod.yaml", "examples/mixed/pod-dev.yaml"]
    # the [flyte] environment option picks the same overlay
    same = json.loads(
        pants_repo.pants("--flyte-environment=dev", "flyte-render", "--format=json", WF, check=True).stdout
    )
    assert same == data


def test_invalid_field_is_reported_with_file_and_path(pants_repo):
    with edited(
        pants_repo,
        "examples/mixed/pod-dev.yaml",
        "          value: debug\n",
        "          value: debug\n      imagePullPolicyy: Always\n",
    ):
        proc = pants_repo.pants("flyte-render", "--env=dev", WF)
    assert proc.returncode == 1
    err = proc.stderr
    assert "not a valid Kubernetes V1PodSpec" in err
    assert (
        "`containers[0].imagePullPolicyy`: unknown field `imagePullPolicyy` in V1Container; "
        "did you mean `imagePullPolicy`?"
        in err
    )
    assert "examples/mixed/pod.yaml, examples/mixed/pod-dev.yaml" in err
    assert "Traceback" not in err


def test_wrong_type_and_unknown_variable_are_errors_through_the_goal(pants_repo):
    with edited(
        pants_repo,
        "examples/mixed/pod.yaml",
        "        sizeLimit: 1Gi",
        "        sizeLimit: 1Gi\n        medium: [Memory]",
    ):
        proc = pants_repo.pants("flyte-plan", WF)
    assert proc.returncode == 1
    assert "`volumes[0].emptyDir.medium`: expected a string, got a list" in proc.stderr
    assert "(and 5 more using it)" in proc.stderr  # one message for the template, not one per task
    with edited(pants_repo, "examples/mixed/pod.yaml", "team: ${team}", "team: ${teem}"):
        proc = pants_repo.pants("flyte-render", WF)
    assert proc.returncode == 1
    assert "unknown variable `${teem}` at `labels.team`" in proc.stderr
    assert "file examples/mixed/pod.yaml" in proc.stderr and "target examples/mixed:pod" in proc.stderr


def _versions(repo, *options):
    data = json.loads(repo.pants(*options, "flyte-plan", "--format=json", WF, check=True).stdout)
    (wf,) = data["workflows"]
    return {t["name"]: t["version"] for t in wf["tasks"]}, wf["version"]


def test_overlay_edit_moves_versions_only_in_its_environment(pants_repo):
    prod_before, wf_before = _versions(pants_repo, "--flyte-environment=prod")
    dev_before, _ = _versions(pants_repo, "--flyte-environment=dev")
    with edited(pants_repo, "examples/mixed/pod-prod.yaml", "memory: 2Gi", "memory: 3Gi"):
        prod_after, wf_after = _versions(pants_repo, "--flyte-environment=prod")
        dev_after, _ = _versions(pants_repo, "--flyte-environment=dev")
    assert all(prod_after[t] != prod_before[t] for t in prod_before)
    assert wf_after != wf_before
    assert dev_after == dev_before


def test_cache_key_code_follows_a_code_edit(pants_repo):
    def cache_version():
        data = json.loads(pants_repo.pants("flyte-plan", "--format=json", "examples/baked:wf", check=True).stdout)
        t = next(t for wf in data["workflows"] for t in wf["tasks"] if t["name"] == "baked.data.log_summary")
        return t["cache_version"], t["cache_key"], t["warnings"]

    code_edit = ('    print(f"summary', '    print("edited")\n    print(f"summary')
    interface, policy, warnings = cache_version()
    assert policy == "interface"
    assert any("backend never caches a task without outputs" in w for w in warnings)
    with edited(pants_repo, "examples/baked/data.py", *code_edit):
        assert cache_version()[0] == interface  # interface policy: a code edit keeps the cache
    with edited(pants_repo, "examples/baked/BUILD", 'name="wf",', 'name="wf",\n    cache_key="code",'):
        code, policy, _ = cache_version()
        assert policy == "code" and code != interface
        with edited(pants_repo, "examples/baked/data.py", *code_edit):
            assert cache_version()[0] != code  # code policy: a code edit is a cache miss


def test_bad_cache_key_value_is_a_field_error(pants_repo):
    with edited(pants_repo, "examples/baked/BUILD", 'name="wf",', 'name="wf",\n    cache_key="always",'):
        proc = pants_repo.pants("flyte-plan", "examples/baked:wf")
    assert proc.returncode != 0
    assert "The `cache_key` field of examples/baked:wf is `always`; use one of interface, code" in proc.stderr


# ---------------------------------------------------------------------------------------------
# the plan's templates in the serialized protobufs


@pytest.fixture(scope="module")
def serialized(pants_repo, user_python, tmp_path_factory):
    """The plan, and the .pb files of `pants package` (the registration archive: the serialize request built by
    core.registration from the plan, run by the Pants rule), decoded."""
    plan = json.loads(pants_repo.pants("--flyte-environment=dev", "flyte-plan", "--format=json", WF, check=True).stdout)
    shutil.rmtree(pants_repo.root / "dist", ignore_errors=True)
    pants_repo.pants("--flyte-environment=dev", "package", WF, check=True)
    path, name = WF.split(":")
    tmp = tmp_path_factory.mktemp("serialized")
    with tarfile.open(pants_repo.root / "dist" / path.replace("/", ".") / name / "flyte-package.tgz", "r:gz") as tar:
        tar.extractall(tmp)
    decoded = subprocess.run(
        [user_python, str(DECODE), str(tmp)], capture_output=True, text=True, check=True, timeout=120
    )
    return plan, json.loads(decoded.stdout)


def test_serialized_task_carries_the_rendered_template(serialized):
    plan, files = serialized
    spec = next(v for k, v in files.items() if k.endswith(f"_{TOTAL}_1.pb"))
    t = spec["template"]
    assert "container" not in t and t["config"] == {"primary_container_name": "primary"}
    pod = t["k8s_pod"]
    assert pod["metadata"]["labels"] == {"team": "ml", "flyte-env": "dev"}
    c = next(c for c in pod["pod_spec"]["containers"] if c["name"] == "primary")
    assert env(c)["LOG_LEVEL"] == "debug" and env(c)["FLYTE_ENV"] == "dev"
    assert c["args"][0] == "pyflyte-fast-execute"  # flytekit's command in our primary container
    assert [x["key"] for x in pod["pod_spec"]["tolerations"]] == ["dedicated", "preemptible"]
    assert c["volumeMounts"] == [{"name": "scratch", "mountPath": "/scratch"}]
    planned = next(x for x in plan["workflows"][0]["tasks"] if x["name"] == TOTAL)
    assert c["image"] == pod["metadata"]["annotations"]["flytebuild/image"]
    assert t["id"]["version"] == planned["version"]


def test_serialized_node_override_is_merged_not_replacing(serialized):
    _, files = serialized
    wf = next(v for k, v in files.items() if k.endswith("_mixed.workflows.wf_2.pb"))
    node = next(n for n in wf["template"]["nodes"] if n["id"] == "n2")
    override = node["task_node"]["overrides"]["pod_template"]
    c = next(c for c in override["pod_spec"]["containers"] if c["name"] == "primary")
    # the workflow's template (dev overlay) AND the code's with_overrides, in one pod
    assert env(c) == {"LOG_LEVEL": "debug", "FLYTE_ENV": "dev", "TOTAL_MODE": "strict"}
    assert override["pod_spec"]["nodeSelector"] == {"pool": "cpu", "disk": "ssd"}
    assert [x["key"] for x in override["pod_spec"]["tolerations"]] == ["dedicated", "preemptible"]
    assert override["metadata"]["labels"] == {"team": "ml", "flyte-env": "dev"}
    assert c["args"][0] == "pyflyte-fast-execute"
    # the node's resource override (requests cpu=1, mem=200Mi) stays where flytekit put it
    assert node["task_node"]["overrides"]["resources"]["requests"]
