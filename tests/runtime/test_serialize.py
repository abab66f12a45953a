"""runtime/serialize.py against the examples, in the user's own environment.

Each serialization is a subprocess (`python serialize.py <request.json> <out_dir>`, cwd = repo root,
PYTHONPATH=examples) in the user's Python (fixture `user_python`); the written .pb files are decoded there too
(tests/runtime/fixtures/serialize_decode.py, one process for all). All runs start at once in a module-scoped
fixture, most of them in one `--batch` process (`ALONE` says which run alone): flytekit takes ~1 s of CPU to import.
"""
import hashlib
import json
import os
import re
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import pytest

from tests.support.runtime import runtime

REPO = Path(__file__).resolve().parents[2]
SERIALIZE = runtime("serialize")
DECODE = REPO / "tests/runtime/fixtures/serialize_decode.py"

PROJECT, DOMAIN = "flytesnacks", "development"
BUNDLE = "s3://my-bucket/flytebuild/fast0123456789abcdef.tar.gz"
DEFAULT_IMAGE = "localhost:30000/flyte-default:0123456789ab"
BAKED_IMAGE = "localhost:30000/baked@sha256:" + "ab" * 32
SPEC_IMAGE = "localhost:30000/mixed-spec:feedface"
MIXED_IMAGE = "localhost:30000/mixed-default:c0ffee"
MAP_TASK = "mixed.spec_tasks.map_square_43e2299725b86f6735550fdcb2663de8-arraynode"

BAKED_TASKS = ["baked.data.log_summary", "baked.data.make_values", "baked.stats.normalize_values",
               "baked.stats.summarize"]


def v(name: str) -> str:
    """A plausible per-entity version (32 hex), different for every entity."""
    return hashlib.md5(name.encode()).hexdigest()


def task(mode: str, image: str, name: str, cache_version=None, pod_template=None) -> dict:
    return {"mode": mode, "image": image, "version": v(name), "cache_version": cache_version,
            "pod_template": pod_template}


def request(entrypoint: str, tasks: Dict[str, dict], workflows, launch_plans=(), bundle=None) -> dict:
    return {
        "entrypoint": entrypoint,
        "project": PROJECT,
        "domain": DOMAIN,
        "python_interpreter": "/usr/bin/python3",
        "tasks": tasks,
        "workflows": {w: {"version": v(w)} for w in workflows},
        "launch_plans": {lp: {"version": v("lp:" + lp)} for lp in launch_plans},
        "bundle": {"uri": BUNDLE, "dest_dir": "."} if bundle else None,
        "default_image": DEFAULT_IMAGE,
    }


BAKED_LP = request(
    "baked.workflows:lp",
    {t: task("baked", BAKED_IMAGE, t) for t in BAKED_TASKS},
    ["baked.workflows.prepare", "baked.workflows.wf"],
    # the default launch plan of `prepare` is not listed: it takes its workflow's version
    ["baked.workflows.lp", "baked.workflows.wf"],
)
BAKED_WF = request(
    "baked.workflows:wf",
    {t: task("baked", BAKED_IMAGE, t, cache_version="cache-" + t[-4:]) for t in BAKED_TASKS},
    ["baked.workflows.prepare", "baked.workflows.wf"],
)
POD_TEMPLATE = {
    "pod_spec": {"containers": [{"name": "primary"}, {"name": "sidecar", "image": "busybox:1.36"}],
                 "tolerations": [{"key": "pool", "value": "cpu", "effect": "NoSchedule"}]},
    "primary_container_name": "primary",
    "labels": {"team": "data"},
    "annotations": None,
}
MIXED_FAST = ["mixed.fast_tasks.weights", "mixed.plain_tasks.make_range", "mixed.plain_tasks.total"]
MIXED_BAKED = ["mixed.spec_tasks.label", MAP_TASK]
MIXED_WF = request(
    "mixed.workflows:wf",
    {
        "mixed.fast_tasks.weights": task("fast", MIXED_IMAGE, "mixed.fast_tasks.weights"),
        "mixed.plain_tasks.make_range": task("fast", MIXED_IMAGE, "mixed.plain_tasks.make_range", "7"),
        "mixed.plain_tasks.total": task("fast", MIXED_IMAGE, "mixed.plain_tasks.total", pod_template=POD_TEMPLATE),
        "mixed.spec_tasks.label": task("baked", SPEC_IMAGE, "mixed.spec_tasks.label"),
        MAP_TASK: task("baked", SPEC_IMAGE, MAP_TASK),
    },
    ["mixed.workflows.wf"],
    bundle=True,
)
CONTAINER_FAST = request(
    "examples/mixed/workflows.py:container_wf",
    {"mixed.containers.echo": {"mode": "fast", "version": v("echo")}},  # no image: the default image
    ["mixed.workflows.container_wf"],
    bundle=True,
)
CONTAINER_MODE = request(
    "mixed.workflows:container_wf",
    {"mixed.containers.echo": task("container", "docker.io/library/alpine:3.19", "mixed.containers.echo")},
    ["mixed.workflows.container_wf"],
)
MISSING_VERSION = request(
    "baked.workflows:wf",
    {t: task("baked", BAKED_IMAGE, t) for t in BAKED_TASKS[1:]},
    ["baked.workflows.wf"],
)
FAST_NO_BUNDLE = dict(MIXED_WF, bundle=None)

RUNS = {
    "baked_lp": BAKED_LP,
    "baked_lp_again": BAKED_LP,
    "baked_wf": BAKED_WF,
    "mixed_wf": MIXED_WF,
    "mixed_wf_again": MIXED_WF,
    "container_fast": CONTAINER_FAST,
    "container_mode": CONTAINER_MODE,
    "missing_version": MISSING_VERSION,
    "fast_no_bundle": FAST_NO_BUNDLE,
    "bad_entrypoint": dict(BAKED_WF, entrypoint="baked.workflows:nope"),
    "noisy": request("fx_noisy:wf", {"fx_noisy.t": task("fast", DEFAULT_IMAGE, "fx_noisy.t")}, ["fx_noisy.wf"],
                     bundle=True),
}
PYTHONPATHS = {"noisy": "tests/runtime/fixtures"}
# Each in its own interpreter: the runs compared across hash seeds, one error (exit code 2), another PYTHONPATH, and
# those the batch test compares with. The others share one `--batch` process, as Pants and the CLI run them.
ALONE = ("baked_lp", "baked_lp_again", "mixed_wf", "mixed_wf_again", "bad_entrypoint", "noisy")


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str
    out_dir: Path
    decoded: Optional[dict] = None

    @property
    def json(self) -> dict:
        assert self.rc == 0, (self.rc, self.stdout, self.stderr)
        return json.loads(self.stdout)

    @property
    def error(self) -> dict:
        assert self.rc == 2, (self.rc, self.stdout, self.stderr)
        return json.loads(self.stdout)["error"]

    def file(self, kind: str, name: str) -> dict:
        entry = next(e for e in self.json["entities"] if e["kind"] == kind and e["name"] == name)
        return self.decoded[entry["file"]]

    def task_template(self, name: str) -> dict:
        return self.file("task", name)["template"]


def _env(hash_seed: str = "random", pythonpath: str = "examples") -> dict:
    # the "again" runs use another hash seed: byte-identical output must not depend on set/dict ordering
    env = dict(os.environ, PYTHONPATH=pythonpath, PYTHONHASHSEED=hash_seed)
    env.pop("PYTHONSAFEPATH", None)
    return env


@pytest.fixture(scope="module")
def runs(user_python, tmp_path_factory) -> Dict[str, Result]:
    base = tmp_path_factory.mktemp("serialize")
    procs = {}
    for key, req in RUNS.items():
        (base / f"{key}.json").write_text(json.dumps(req))
    for key in ALONE:
        procs[key] = subprocess.Popen(
            [user_python, *SERIALIZE, str(base / f"{key}.json"), str(base / key)],
            cwd=REPO,
            env=_env("1" if key.endswith("_again") else "2", PYTHONPATHS.get(key, "examples")),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    batched = [key for key in RUNS if key not in ALONE]
    procs["batch"] = subprocess.Popen(
        [user_python, *SERIALIZE, "--batch", *(str(base / name) for key in batched for name in (f"{key}.json", key))],
        cwd=REPO,
        env=_env("2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # `pyflyte package` of the same project, for its file naming and its (baked) task templates.
    pyflyte = str(Path(user_python).parent / "pyflyte")
    procs["pyflyte"] = subprocess.Popen(
        [
            pyflyte,
            "--pkgs",
            "baked",
            "package",
            "--image",
            BAKED_IMAGE,
            "--source",
            "examples",
            "-o",
            str(base / "pyflyte.tgz"),
        ],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    results = {}
    for key, p in procs.items():
        out, err = p.communicate(timeout=300)
        results[key] = Result(p.returncode, out, err, base / key)
    batch = results.pop("batch")
    answers = json.loads(batch.stdout)["results"] if batch.rc in (0, 2) else {}
    assert len(answers) == len(batched), (batch.rc, batch.stdout[-3000:], batch.stderr[-3000:])
    for key in batched:
        # One request's answer in the batch, as a run of its own would give it.
        answer = answers[str(base / key)]
        results[key] = Result(2 if "error" in answer else 0, json.dumps(answer), batch.stderr, base / key)
    assert results["pyflyte"].rc == 0, results["pyflyte"].stderr
    with tarfile.open(base / "pyflyte.tgz") as tar:
        tar.extractall(base / "pyflyte")
    ok = [key for key, r in results.items() if r.rc == 0]
    dirs = [str(results[key].out_dir) for key in ok]
    decode = subprocess.run([user_python, str(DECODE), "--each", *dirs], cwd=REPO, env=_env(), capture_output=True,
                            text=True, timeout=120)
    assert decode.returncode == 0, decode.stderr
    by_dir = json.loads(decode.stdout)
    for key, d in zip(ok, dirs):
        results[key].decoded = by_dir[d]
    return results


def _args(template: dict) -> list:
    if "container" in template:
        return template["container"].get("args", [])
    pod = template["k8s_pod"]["pod_spec"]
    primary = template["config"]["primary_container_name"]
    return next(c for c in pod["containers"] if c["name"] == primary).get("args", [])


def _image(template: dict) -> str:
    if "container" in template:
        return template["container"]["image"]
    pod = template["k8s_pod"]["pod_spec"]
    primary = template["config"]["primary_container_name"]
    return next(c for c in pod["containers"] if c["name"] == primary)["image"]


def _node_refs(node: dict, out: list) -> None:
    if "task_node" in node:
        out.append(node["task_node"]["reference_id"])
    wn = node.get("workflow_node", {})
    for key in ("sub_workflow_ref", "launchplan_ref"):
        if key in wn:
            out.append(wn[key])
    if "branch_node" in node:
        ie = node["branch_node"]["if_else"]
        for n in (
            [ie["case"]["then_node"]]
            + [c["then_node"] for c in ie.get("other", [])]
            + ([ie["else_node"]] if "else_node" in ie else [])
        ):
            _node_refs(n, out)
    if "array_node" in node:
        _node_refs(node["array_node"]["node"], out)


def workflow_refs(spec: dict) -> list:
    out = []
    for tmpl in [spec["template"]] + spec.get("sub_workflows", []):
        for n in tmpl.get("nodes", []):
            _node_refs(n, out)
    return out


# ----------------------------------------------------------------------------------------------------------------


def test_baked_tasks_run_from_their_image(runs):
    for key in ("baked_lp", "baked_wf"):
        r = runs[key]
        tasks = [e for e in r.json["entities"] if e["kind"] == "task"]
        assert sorted(e["name"] for e in tasks) == BAKED_TASKS
        for e in tasks:
            t = r.task_template(e["name"])
            args = _args(t)
            assert args[0] == "pyflyte-execute", args
            assert "pyflyte-fast-execute" not in args and "--additional-distribution" not in args
            assert _image(t) == BAKED_IMAGE
            assert t["id"] == {
                "resource_type": "TASK",
                "project": PROJECT,
                "domain": DOMAIN,
                "name": e["name"],
                "version": v(e["name"]),
            }
            assert e["version"] == v(e["name"]) and e["fast"] is False
        assert r.json["warnings"] == []


def test_mixed_fast_and_baked_tasks(runs):
    r = runs["mixed_wf"]
    summary = r.json
    assert {e["name"]: e["fast"] for e in summary["entities"] if e["kind"] == "task"} == {
        **{n: True for n in MIXED_FAST},
        **{n: False for n in MIXED_BAKED},
    }
    assert summary["bundle"] == {"uri": BUNDLE, "used": True}
    assert summary["warnings"] == []
    for name in MIXED_FAST:
        t = r.task_template(name)
        args = _args(t)
        assert args[:6] == ["pyflyte-fast-execute", "--additional-distribution", BUNDLE, "--dest-dir", ".", "--"]
        assert args[6] == "pyflyte-execute"
        assert _image(t) == MIXED_IMAGE
        assert t["id"]["version"] == v(name)
    for name in MIXED_BAKED:
        t = r.task_template(name)
        args = _args(t)
        assert "pyflyte-fast-execute" not in args and BUNDLE not in args
        assert args[0] == ("pyflyte-map-execute" if name == MAP_TASK else "pyflyte-execute")
        # the ImageSpec in code is neither built nor looked up: the requested ref is the image
        assert _image(t) == SPEC_IMAGE
        assert t["id"]["version"] == v(name)


def test_cache_version_replaces_discovery_version(runs):
    baked = runs["baked_wf"]
    for name in BAKED_TASKS:
        assert baked.task_template(name)["metadata"]["discovery_version"] == "cache-" + name[-4:]
    mixed = runs["mixed_wf"]
    assert mixed.task_template("mixed.plain_tasks.make_range")["metadata"]["discovery_version"] == "7"
    assert "discovery_version" not in mixed.task_template("mixed.fast_tasks.weights")["metadata"]


def test_pod_template_applied_to_task(runs):
    t = runs["mixed_wf"].task_template("mixed.plain_tasks.total")
    assert "container" not in t
    assert t["config"] == {"primary_container_name": "primary"}
    assert t["k8s_pod"]["metadata"] == {"labels": {"team": "data"}}
    pod = t["k8s_pod"]["pod_spec"]
    assert pod["tolerations"] == POD_TEMPLATE["pod_spec"]["tolerations"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert containers["sidecar"] == {"name": "sidecar", "image": "busybox:1.36"}
    assert containers["primary"]["image"] == MIXED_IMAGE
    assert containers["primary"]["args"][:3] == ["pyflyte-fast-execute", "--additional-distribution", BUNDLE]


def test_workflow_references_carry_child_versions(runs):
    r = runs["baked_lp"]
    wf = r.file("workflow", "baked.workflows.wf")
    assert wf["template"]["id"]["version"] == v("baked.workflows.wf")
    refs = workflow_refs(wf)
    by_name = {ref["name"]: ref for ref in refs}
    assert by_name["baked.workflows.prepare"]["resource_type"] == "WORKFLOW"
    assert by_name["baked.workflows.prepare"]["version"] == v("baked.workflows.prepare")
    # the embedded sub-workflow template is the one registered under its own version
    assert [s["id"]["version"] for s in wf["sub_workflows"]] == [v("baked.workflows.prepare")]
    assert {ref["name"] for ref in refs} == set(BAKED_TASKS) | {"baked.workflows.prepare"}
    for ref in refs:
        if ref["resource_type"] == "TASK":
            assert ref["version"] == v(ref["name"])
        assert (ref["project"], ref["domain"]) == (PROJECT, DOMAIN)
    mixed = runs["mixed_wf"].file("workflow", "mixed.workflows.wf")
    refs = workflow_refs(mixed)
    # task nodes, the map task inside the array node and both branches of the conditional
    assert sorted({ref["name"] for ref in refs}) == sorted(MIXED_FAST + MIXED_BAKED)
    assert all(ref["version"] == v(ref["name"]) for ref in refs)


def test_launch_plans_reference_their_workflow_version(runs):
    r = runs["baked_lp"]
    lps = {e["name"]: e for e in r.json["entities"] if e["kind"] == "launch_plan"}
    assert sorted(lps) == ["baked.workflows.lp", "baked.workflows.prepare", "baked.workflows.wf"]
    assert lps["baked.workflows.lp"]["version"] == v("lp:baked.workflows.lp")
    assert lps["baked.workflows.wf"]["version"] == v("lp:baked.workflows.wf")
    assert lps["baked.workflows.prepare"]["version"] == v("baked.workflows.prepare")  # default: workflow's
    for name, e in lps.items():
        lp = r.decoded[e["file"]]
        assert lp["id"]["version"] == e["version"]
        wf_name = "baked.workflows.wf" if name == "baked.workflows.lp" else name
        assert lp["spec"]["workflow_id"] == {
            "resource_type": "WORKFLOW",
            "project": PROJECT,
            "domain": DOMAIN,
            "name": wf_name,
            "version": v(wf_name),
        }
    assert r.decoded[lps["baked.workflows.lp"]["file"]]["spec"]["default_inputs"]["parameters"]["x"]["default"] == {
        "scalar": {"primitive": {"integer": "3"}}
    }


def test_file_layout_matches_pyflyte_package(runs):
    r = runs["baked_lp"]
    files = [e["file"] for e in r.json["entities"]]
    assert sorted(os.listdir(r.out_dir)) == sorted(files)
    pyflyte_dir = r.out_dir.parent / "pyflyte"
    pyflyte_files = sorted(f for f in os.listdir(pyflyte_dir) if f.endswith(".pb"))

    def strip(f):
        return re.sub(r"^\d+_", "", f)

    # the same entities, named the same way (`<index>_<name>_<1|2|3>.pb`, same index width)
    assert sorted(map(strip, files)) == sorted(map(strip, pyflyte_files))
    assert {len(f.split("_")[0]) for f in files} == {len(f.split("_")[0]) for f in pyflyte_files}
    # numbered in order, dependency order: tasks, then workflows, then launch plans
    assert [int(f.split("_")[0]) for f in files] == list(range(len(files)))
    kinds = [e["kind"] for e in r.json["entities"]]
    assert kinds == sorted(kinds, key=["task", "workflow", "launch_plan"].index)


def test_baked_tasks_equal_pyflyte_package_output(runs, user_python):
    """Baked task templates are exactly what `pyflyte package` (no fast) produces, apart from the version."""
    pyflyte_dir = runs["baked_lp"].out_dir.parent / "pyflyte"
    out = subprocess.run(
        [user_python, str(DECODE), str(pyflyte_dir)], cwd=REPO, env=_env(), capture_output=True, text=True, check=True
    ).stdout
    theirs = {re.sub(r"^\d+_", "", f): m for f, m in json.loads(out).items()}
    r = runs["baked_lp"]
    for name in BAKED_TASKS:
        ours = r.task_template(name)
        ref = theirs[f"{name}_1.pb"]["template"]
        # pyflyte package leaves project and domain empty (filled in at registration) and has one version
        assert ref["id"]["name"] == ours["id"]["name"]
        ref["id"] = ours["id"]
        assert ours == ref


def test_byte_identical_across_runs(runs):
    for a, b in (("baked_lp", "baked_lp_again"), ("mixed_wf", "mixed_wf_again")):
        ra, rb = runs[a], runs[b]
        assert ra.stdout == rb.stdout
        files = sorted(os.listdir(ra.out_dir))
        assert files == sorted(os.listdir(rb.out_dir)) and files
        for f in files:
            assert (ra.out_dir / f).read_bytes() == (rb.out_dir / f).read_bytes(), f


def test_fast_raw_container_task_warns(runs):
    r = runs["container_fast"]
    summary = r.json
    assert summary["warnings"] == [
        {
            "task": "mixed.containers.echo",
            "kind": "raw_container",
            "message": summary["warnings"][0]["message"],
        }
    ]
    assert "bundle cannot help" in summary["warnings"][0]["message"]
    echo = next(e for e in summary["entities"] if e["name"] == "mixed.containers.echo")
    assert echo["fast"] is False and summary["bundle"] == {"uri": BUNDLE, "used": False}
    t = r.task_template("mixed.containers.echo")
    assert t["container"]["image"] == DEFAULT_IMAGE  # no image in code nor in the request: the default
    assert t["container"]["command"] == ["sh", "-c", "echo {{.inputs.n}} > /var/outputs/out"]
    assert "pyflyte-fast-execute" not in t["container"].get("args", [])
    assert runs["container_mode"].json["warnings"] == []
    assert runs["container_mode"].task_template("mixed.containers.echo")["container"]["image"] == (
        "docker.io/library/alpine:3.19"
    )


def test_bad_requests_are_clear_errors(runs):
    err = runs["missing_version"].error
    assert err["kind"] == "bad_request"
    assert "task baked.data.log_summary" in err["message"] and "workflow baked.workflows.prepare" in err["message"]
    assert not runs["missing_version"].out_dir.exists()
    err = runs["fast_no_bundle"].error
    assert err["kind"] == "bad_request" and "'fast' but the request has no 'bundle'" in err["message"]
    err = runs["bad_entrypoint"].error
    assert err["kind"] == "attr_not_found" and err["file"] == "examples/baked/workflows.py"
    for key in ("missing_version", "fast_no_bundle", "bad_entrypoint"):
        assert "Traceback" not in runs[key].stdout


def test_user_output_kept_off_stdout(runs):
    r = runs["noisy"]
    summary = r.json  # stdout is exactly our JSON
    assert "hello from fx_noisy import" in r.stderr and "workflow body runs at compile time" in r.stderr
    assert [(e["kind"], e["name"], e["fast"]) for e in summary["entities"]] == [
        ("task", "fx_noisy.t", True),
        ("workflow", "fx_noisy.wf", False),
        ("launch_plan", "fx_noisy.wf", False),
    ]
    assert [e["file"] for e in summary["entities"]] == ["0_fx_noisy.t_1.pb", "1_fx_noisy.wf_2.pb", "2_fx_noisy.wf_3.pb"]


def test_output_dir_must_be_empty(runs, user_python):
    r = runs["baked_wf"]
    p = subprocess.run(
        [user_python, *SERIALIZE, str(r.out_dir.parent / "baked_wf.json"), str(r.out_dir)],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2, p.stderr
    assert json.loads(p.stdout)["error"]["kind"] == "bad_request" and "not empty" in p.stdout


def test_batch_mode_writes_what_single_runs_write_and_reports_errors_per_request(runs, user_python, tmp_path):
    """`--batch` (one process for all workflows of a resolve, as the Pants rule runs it) changes nothing in the
    output, and one bad request fails alone."""
    base = runs["baked_lp"].out_dir.parent
    keys = ["baked_lp", "mixed_wf", "bad_entrypoint"]
    argv = [user_python, *SERIALIZE, "--batch"]
    for key in keys:
        argv += [str(base / f"{key}.json"), str(tmp_path / key)]
    proc = subprocess.run(argv, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    results = json.loads(proc.stdout)["results"]
    assert results[str(tmp_path / "bad_entrypoint")]["error"] == runs["bad_entrypoint"].error
    for key in ("baked_lp", "mixed_wf"):
        assert results[str(tmp_path / key)] == runs[key].json
        single = sorted(p.name for p in runs[key].out_dir.iterdir())
        assert sorted(p.name for p in (tmp_path / key).iterdir()) == single
        for name in single:
            assert (tmp_path / key / name).read_bytes() == (runs[key].out_dir / name).read_bytes(), name
