"""runtime/introspect.py against the examples and small fixture modules, in the user's own environment.

Introspections are subprocesses (cwd = repo root) in the user's Python (fixture `user_python`), all started at once
in a module-scoped fixture: flytekit takes ~1 s of CPU to import. Most entrypoints share one `--batch` process per
PYTHONPATH, as Pants and the CLI run them; a few run alone (`introspect <entrypoint>`, exit code 2 on an error): two
runs of one workflow in separate interpreters with random hash seeds (determinism), an import that raises, and a
module that prints.
"""
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict

import pytest

from tests.support.runtime import runtime

REPO = Path(__file__).resolve().parents[2]
INTROSPECT = runtime("introspect")
EXAMPLES = "examples"
FIXTURES = "tests/runtime/fixtures"

# key -> (entrypoint, PYTHONPATH)
RUNS = {
    "baked_wf": ("baked.workflows:wf", EXAMPLES),
    "baked_wf_again": ("baked.workflows:wf", EXAMPLES),
    "baked_wf_file": ("examples/baked/workflows.py:wf", EXAMPLES),
    "baked_wf_srcroot_file": ("baked/workflows.py:wf", EXAMPLES),
    "baked_lp": ("baked.workflows:lp", EXAMPLES),
    "mixed_wf": ("mixed.workflows:wf", EXAMPLES),
    "mixed_container_wf": ("examples/mixed/workflows.py:container_wf", EXAMPLES),
    "zoo_lp": ("fx_zoo:lp", FIXTURES),
    "zoo_train": ("fx_zoo:train", FIXTURES),
    "refs": ("fx_refs:wf", FIXTURES),
    "ref_task_root": ("fx_refs:scale", FIXTURES),
    "noisy": ("fx_noisy:wf", FIXTURES),
    "broken": ("fx_broken:t", FIXTURES),
    "missing_dep": ("fx_missing_dep:anything", FIXTURES),
    "ref_ellipsis": ("fx_ref_ellipsis:remote_wf", FIXTURES),
    "no_module": ("no_such_pkg.mod:wf", FIXTURES),
    "no_file": ("examples/baked/nope.py:wf", EXAMPLES),
    "no_attr": ("fx_noisy:nope", FIXTURES),
    "not_entity": ("fx_noisy:NOT_AN_ENTITY", FIXTURES),
    "bad_syntax": ("fx_bad_syntax:wf", FIXTURES),
}


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)

    @property
    def error(self) -> dict:
        assert self.rc == 2, (self.rc, self.stdout, self.stderr)
        return self.json["error"]

    def ok(self) -> dict:
        assert self.rc == 0, (self.stdout, self.stderr[-3000:])
        return self.json


def _env(pythonpath: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "FLYTE"))}
    env["PYTHONPATH"] = pythonpath
    env["PYTHONHASHSEED"] = "random"
    return env


def _start(python: str, pythonpath: str, *args: str, cwd: Path = REPO) -> subprocess.Popen:
    """`introspect <args>` (one entrypoint, or `--batch` and several) with `pythonpath`."""
    return subprocess.Popen(
        [python, *INTROSPECT, *args],
        cwd=str(cwd),
        env=_env(pythonpath),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=True,
    )


def _finish(p: subprocess.Popen) -> Result:
    out, err = p.communicate(timeout=300)
    return Result(p.returncode, out, err)


def introspect(python: str, entrypoint: str, pythonpath: str, cwd: Path = REPO) -> Result:
    return _finish(_start(python, pythonpath, entrypoint, cwd=cwd))


# Each in its own interpreter; every other entry of RUNS shares its PYTHONPATH's batch.
ALONE = ("baked_wf", "baked_wf_again", "broken", "noisy")


def _from_batch(entry: dict, stderr: str) -> Result:
    """One entrypoint's answer in a batch, as `introspect <entrypoint>` alone would give it."""
    return Result(2 if "error" in entry else 0, json.dumps(entry), stderr)


@pytest.fixture(scope="module")
def results(user_python) -> Dict[str, Result]:
    alone = {k: _start(user_python, RUNS[k][1], RUNS[k][0]) for k in ALONE}
    batched: Dict[str, list] = {}
    for key, (entrypoint, pythonpath) in RUNS.items():
        if key not in ALONE:
            batched.setdefault(pythonpath, []).append((key, entrypoint))
    batches = {pp: _start(user_python, pp, "--batch", *(e for _, e in keys)) for pp, keys in batched.items()}
    out = {k: _finish(p) for k, p in alone.items()}
    for pythonpath, keys in batched.items():
        done = _finish(batches[pythonpath])
        answers = json.loads(done.stdout)["results"] if done.rc == 0 else {}
        assert len(answers) == len(keys), (done.rc, done.stdout[-3000:], done.stderr[-3000:])
        out.update({k: _from_batch(answers[e], done.stderr) for k, e in keys})
    return out


def by_name(items):
    return {i["name"]: i for i in items}


# ---------------------------------------------------------------------------------------------------- baked


def test_baked_wf_tasks_and_modules(results):
    d = results["baked_wf"].ok()
    assert d["entrypoint"] == "baked.workflows:wf"
    assert d["root"] == {"kind": "workflow", "name": "baked.workflows.wf"}
    tasks = by_name(d["tasks"])
    assert list(tasks) == sorted(tasks)
    assert {n: (t["kind"], t["module"], t["source_file"]) for n, t in tasks.items()} == {
        "baked.data.log_summary": ("python", "baked.data", "examples/baked/data.py"),
        "baked.data.make_values": ("python", "baked.data", "examples/baked/data.py"),
        "baked.stats.normalize_values": ("python", "baked.stats", "examples/baked/stats.py"),
        "baked.stats.summarize": ("python", "baked.stats", "examples/baked/stats.py"),
    }
    for t in tasks.values():
        assert t["task_type"] == "python-task"
        assert t["image"] == {"kind": "none", "value": None, "name": None, "spec": None}
    assert [w["name"] for w in d["workflows"]] == ["baked.workflows.prepare", "baked.workflows.wf"]
    assert d["launch_plans"] == [] and d["references"] == []


def test_baked_dataclass_schema_is_structural_and_ordered(results):
    tasks = by_name(results["baked_wf"].ok()["tasks"])
    summary = tasks["baked.stats.summarize"]["interface"]["outputs"]["o0"]
    assert summary["type"] == "dataclass" and summary["name"] == "baked.models.Summary"
    assert list(summary["fields"]) == ["count", "mean", "spread", "label", "values"]  # source order kept
    assert summary["fields"]["count"] == {"type": "int"}
    assert summary["fields"]["label"] == {"type": "optional", "of": {"type": "str"}}
    assert summary["fields"]["values"] == {"type": "list", "item": {"type": "float"}}
    assert summary["fields"]["spread"] == {
        "type": "dataclass",
        "name": "baked.models.Range",
        "fields": {"low": {"type": "float"}, "high": {"type": "float"}},
    }
    assert tasks["baked.data.log_summary"]["interface"]["inputs"]["s"] == summary


def test_baked_cache_flags_and_no_outputs(results):
    tasks = by_name(results["baked_wf"].ok()["tasks"])
    log = tasks["baked.data.log_summary"]
    assert log["cache"] == {"enabled": True, "version": "1", "serialize": False, "ignored_inputs": []}
    assert log["interface"]["outputs"] == {}
    assert tasks["baked.data.make_values"]["cache"]["enabled"] is False


def test_baked_workflow_structure(results):
    wfs = by_name(results["baked_wf"].ok()["workflows"])
    wf = wfs["baked.workflows.wf"]
    assert wf["module"] == "baked.workflows" and wf["source_file"] == "examples/baked/workflows.py"
    assert wf["nodes"] == [
        {"id": "n0", "entity_kind": "workflow", "entity": "baked.workflows.prepare", "upstream": []},
        {"id": "n1", "entity_kind": "task", "entity": "baked.stats.summarize", "upstream": ["n0"]},
        {"id": "n2", "entity_kind": "task", "entity": "baked.data.log_summary", "upstream": ["n1"]},
    ]
    s = wf["structure"]
    assert s["failure_policy"] == "FAIL_IMMEDIATELY" and s["on_failure"] is None
    assert s["nodes"][1]["inputs"] == [{"var": "xs", "binding": {"promise": {"node_id": "n0", "var": "o0"}}}]
    assert s["outputs"] == [{"var": "o0", "binding": {"promise": {"node_id": "n1", "var": "o0"}}}]
    assert wf["interface"]["inputs"] == {"x": {"type": "int"}}


def test_launch_plan(results):
    d = results["baked_lp"].ok()
    assert d["root"] == {"kind": "launch_plan", "name": "baked.workflows.lp"}
    (lp,) = d["launch_plans"]
    assert lp["workflow"] == "baked.workflows.wf"
    assert lp["default_inputs"] == {"x": 3} and lp["fixed_inputs"] == {}
    assert [w["name"] for w in d["workflows"]] == ["baked.workflows.prepare", "baked.workflows.wf"]
    assert len(d["tasks"]) == 4


@pytest.mark.parametrize("key", ["baked_wf_file", "baked_wf_srcroot_file"])
def test_file_entrypoint_equals_module_entrypoint(results, key):
    # a file path is relative to cwd (the repo root) or, failing that, to a source root on PYTHONPATH
    a, b = results["baked_wf"].ok(), results[key].ok()
    assert b["entrypoint"] == RUNS[key][0]
    a.pop("entrypoint"), b.pop("entrypoint")
    assert a == b


def test_deterministic_byte_identical(results):
    assert results["baked_wf"].ok() and results["baked_wf"].stdout == results["baked_wf_again"].stdout
    for r in results.values():
        assert str(REPO) not in r.stdout
        assert " at 0x" not in r.stdout


def test_adding_a_dataclass_field_changes_the_schema(user_python, tmp_path):
    src = (REPO / FIXTURES / "fx_dc.py").read_text()
    (tmp_path / "fx_dc.py").write_text(src)
    before = introspect(user_python, "fx_dc:wf", ".", cwd=tmp_path).ok()
    (tmp_path / "fx_dc.py").write_text(src.replace("    b: str\n", "    b: str\n    c: int = 0\n"))
    after = introspect(user_python, "fx_dc:wf", ".", cwd=tmp_path).ok()
    fields = lambda d: by_name(d["tasks"])["fx_dc.t"]["interface"]["outputs"]["o0"]["fields"]  # noqa: E731
    assert list(fields(before)) == ["a", "b"]
    assert list(fields(after)) == ["a", "b", "c"] and fields(after)["c"] == {"type": "int"}
    assert by_name(before["tasks"])["fx_dc.t"]["source_file"] == "fx_dc.py"


# ---------------------------------------------------------------------------------------------------- mixed


def test_mixed_images_and_kinds(results):
    tasks = by_name(results["mixed_wf"].ok()["tasks"])
    kinds = {n: (t["kind"], t["image"]["kind"], t["image"]["name"]) for n, t in tasks.items()}
    (map_name,) = [n for n in tasks if tasks[n]["kind"] == "map"]
    assert map_name.startswith("mixed.spec_tasks.map_square_")
    assert kinds == {
        "mixed.fast_tasks.weights": ("python", "none", None),
        "mixed.plain_tasks.make_range": ("python", "none", None),
        "mixed.plain_tasks.total": ("python", "none", None),
        "mixed.spec_tasks.label": ("python", "image_spec", "mixed-spec"),  # only reachable through the branch
        map_name: ("map", "image_spec", "mixed-spec"),
    }
    spec = tasks["mixed.spec_tasks.label"]["image"]["spec"]
    assert spec["name"] == "mixed-spec" and spec["registry"] == "localhost:30000"
    assert spec["packages"] == ["flytekit==1.16.31"]
    assert "platform" not in spec and "builder" not in spec  # machine-dependent, left out
    m = tasks[map_name]
    assert m["module"] == "mixed.spec_tasks" and m["source_file"] == "examples/mixed/spec_tasks.py"
    assert m["config"]["concurrency"] == 2 and m["config"]["mapped_task"]["name"] == "mixed.spec_tasks.square"
    assert m["interface"]["inputs"]["n"] == {"type": "list", "item": {"type": "int"}}


def test_mixed_overrides_and_branch(results):
    wf = by_name(results["mixed_wf"].ok()["workflows"])["mixed.workflows.wf"]
    nodes = {n["id"]: n for n in wf["structure"]["nodes"]}
    total = nodes["n2"]
    assert total["entity"] == "mixed.plain_tasks.total"
    assert total["metadata"]["retries"] == {"retries": 2}
    assert total["overrides"]["resources"] == {
        "requests": [{"name": "CPU", "value": "1"}, {"name": "MEMORY", "value": "200Mi"}]
    }
    branch = [n for n in wf["nodes"] if n["entity_kind"] == "branch"]
    assert branch == [{"id": "n4", "entity_kind": "branch", "entity": "size", "upstream": ["n2"]}]
    b = nodes["n4"]["branch"]
    assert b["cases"][0]["then"]["entity"] == "mixed.spec_tasks.label"
    assert b["else"]["entity"] == "mixed.spec_tasks.label"


def test_mixed_container_task(results):
    d = results["mixed_container_wf"].ok()
    (t,) = d["tasks"]
    assert t["name"] == "mixed.containers.echo" and t["kind"] == "container" and t["task_type"] == "raw-container"
    assert t["image"]["kind"] == "none"
    assert t["config"]["command"] == ["sh", "-c", "echo {{.inputs.n}} > /var/outputs/out"]
    assert t["config"]["output_data_dir"] == "/var/outputs"
    assert t["source_file"] == "examples/mixed/containers.py"
    assert t["interface"]["outputs"] == {"out": {"type": "str"}}


# ---------------------------------------------------------------------------------------------------- fixtures


def test_zoo_images_cache_and_config(results):
    d = results["zoo_lp"].ok()
    tasks = by_name(d["tasks"])
    podded = tasks["fx_zoo.podded"]["image"]
    assert podded["kind"] == "template" and podded["name"] == "default"
    assert tasks["fx_zoo.scored"]["image"] == {
        "kind": "string",
        "value": "ghcr.io/org/img:1.0",
        "name": None,
        "spec": None,
    }
    assert tasks["fx_zoo.raw"]["kind"] == "container" and tasks["fx_zoo.raw"]["image"]["value"] == "alpine:3.19"
    assert tasks["fx_zoo.scored"]["cache"] == {
        "enabled": True,
        "version": "7",
        "serialize": True,
        "ignored_inputs": ["noise"],
    }
    assert tasks["fx_zoo.scored"]["input_defaults"] == {"x": None, "noise": 3, "color": "green", "ts": 1.0}
    assert tasks["fx_zoo.scored"]["interface"]["inputs"]["x"] == {
        "type": "union",
        "variants": [{"type": "int"}, {"type": "str"}],
    }
    pt = tasks["fx_zoo.podded"]["config"]["pod_template"]
    assert pt["primary_container_name"] == "main" and pt["pod_spec"] == {"nodeSelector": {"pool": "gpu"}}
    (m,) = [t for t in tasks.values() if t["kind"] == "map"]
    assert m["image"]["kind"] == "image_spec" and m["image"]["spec"]["base_image"]["name"] == "zoo-base"
    assert m["config"]["min_success_ratio"] == 0.5 and m["config"]["concurrency"] == 3
    # optional outputs when min_success_ratio < 1
    assert m["interface"]["outputs"]["o0"] == {"type": "list", "item": {"type": "optional", "of": {"type": "int"}}}
    assert "fx_zoo.dyn" in tasks and "fx_zoo.cleanup" in tasks  # dynamic + failure handler
    (lp,) = d["launch_plans"]
    assert lp["fixed_inputs"] == {"x": 7} and lp["default_inputs"] == {}


def test_zoo_workflow_overrides_and_failure_handler(results):
    wfs = by_name(results["zoo_lp"].ok()["workflows"])
    (node,) = wfs["fx_zoo.sub"]["structure"]["nodes"]
    assert node["id"] == "custom-node"
    assert node["metadata"]["name"] == "renamed"
    assert node["metadata"]["cacheable"] is True and node["metadata"]["cache_version"] == "9"
    assert node["metadata"]["timeout"] == "60s"
    assert node["overrides"]["resources"] == {"limits": [{"name": "MEMORY", "value": "3Gi"}]}
    s = wfs["fx_zoo.wf"]["structure"]
    assert s["failure_policy"] == "FAIL_AFTER_EXECUTABLE_NODES_COMPLETE"
    assert s["on_failure"]["entity"] == "fx_zoo.cleanup" and s["on_failure"]["entity_kind"] == "task"


def test_zoo_task_types_and_config(results):
    d = results["zoo_train"].ok()
    assert d["root"] == {"kind": "task", "name": "fx_zoo.train"}
    (t,) = d["tasks"]
    assert t["image"] == {
        "kind": "template",
        "name": "trainer",
        "spec": None,
        "value": "{{.image.trainer.fqn}}:{{.image.trainer.version}}",
    }
    inputs = t["interface"]["inputs"]
    assert inputs["f"] == {"type": "file"} and inputs["d"] == {"type": "directory"}
    assert inputs["sd"] == {"type": "structured_dataset"}
    p = inputs["p"]["fields"]
    assert p["color"] == {"type": "enum", "name": "fx_zoo.Color", "values": ["red", "green"]}
    assert p["tags"] == {"type": "dict", "key": {"type": "str"}, "value": {"type": "int"}}
    assert p["when"] == {"type": "optional", "of": {"type": "datetime"}}
    tree = inputs["tree"]
    assert tree["fields"]["children"] == {"type": "list", "item": {"type": "ref", "name": "fx_zoo.Node"}}
    assert t["interface"]["outputs"]["o0"] == {"type": "int", "annotations": ["score"]}
    c = t["config"]
    assert c["retries"] == 3 and c["timeout"] == 300.0 and c["interruptible"] is True
    assert c["resources"] == {"requests": {"cpu": "1", "mem": "1Gi"}, "limits": {"cpu": "2", "mem": "2Gi"}}
    assert c["environment"] == {"MODE": "train"}
    assert c["secret_requests"][0]["group"] == "g" and c["secret_requests"][0]["key"] == "k"


def test_references(results):
    d = results["refs"].ok()
    refs = {r["name"]: r for r in d["references"]}
    assert {n: (r["kind"], r["project"], r["domain"], r["version"]) for n, r in refs.items()} == {
        "remote.lp": ("launch_plan", "flytesnacks", "production", "v3"),
        "remote.tasks.scale": ("task", "flytesnacks", "development", "v1"),
        "remote.workflows.pipeline": ("workflow", "flytesnacks", "development", "v2"),
    }
    assert refs["remote.tasks.scale"]["interface"]["inputs"]["factor"] == {"type": "float"}
    assert [t["name"] for t in d["tasks"]] == ["fx_refs.make"]
    kinds = [(n["entity_kind"], n["entity"]) for n in d["workflows"][0]["nodes"]]
    assert ("reference", "remote.lp") in kinds and ("reference", "remote.tasks.scale") in kinds
    root = results["ref_task_root"].ok()
    assert root["root"] == {"kind": "reference", "name": "remote.tasks.scale"} and root["tasks"] == []


def test_user_prints_do_not_corrupt_stdout(results):
    r = results["noisy"]
    d = r.ok()
    assert d["root"]["name"] == "fx_noisy.wf"
    assert "hello from fx_noisy import" in r.stderr and "raw stdout write" in r.stderr
    assert "workflow body runs at compile time" in r.stderr


# ---------------------------------------------------------------------------------------------------- errors


def test_import_error_traceback_names_user_file_and_line(results):
    e = results["broken"].error
    assert e["kind"] == "import_error"
    assert e["file"] == "tests/runtime/fixtures/fx_broken_helper.py"
    assert "ZeroDivisionError" in e["message"]
    tb = e["traceback"]
    assert 'File "tests/runtime/fixtures/fx_broken.py", line 4' in tb
    assert 'File "tests/runtime/fixtures/fx_broken_helper.py", line 7, in compute' in tb
    assert "importlib" not in tb and "flytekit" not in tb and "introspect.py" not in tb
    assert tb.rstrip().endswith("ZeroDivisionError: division by zero")


def test_missing_dependency_is_import_error_not_module_not_found(results):
    e = results["missing_dep"].error
    assert e["kind"] == "import_error"
    assert "not_a_real_package_xyz" in e["message"]
    assert 'File "tests/runtime/fixtures/fx_missing_dep.py", line 2' in e["traceback"]


def test_reference_workflow_with_ellipsis_body_loads(results):
    # flytekit 1.16 alone rejects `...` as the body of a reference_workflow (see DESIGN.md); introspection does not
    data = results["ref_ellipsis"].ok()
    assert data["root"] == {"kind": "reference", "name": "remote.wf"}
    (ref,) = data["references"]
    assert (ref["kind"], ref["project"], ref["domain"], ref["version"]) == ("workflow", "p", "d", "v1")
    assert ref["interface"]["inputs"] == {"n": {"type": "int"}} and ref["interface"]["outputs"] == {
        "o0": {"type": "int"}
    }


def test_syntax_error_is_import_error(results):
    e = results["bad_syntax"].error
    assert e["kind"] == "import_error" and e["file"] == "tests/runtime/fixtures/fx_bad_syntax.py"
    assert "SyntaxError" in e["message"] and "line 4" in e["traceback"]


def test_module_not_found(results):
    e = results["no_module"].error
    assert e["kind"] == "module_not_found" and "no_such_pkg.mod" in e["message"]
    e = results["no_file"].error
    assert e["kind"] == "module_not_found" and e["file"] == "examples/baked/nope.py"


def test_attr_not_found_and_not_an_entity(results):
    e = results["no_attr"].error
    assert e["kind"] == "attr_not_found" and e["file"] == "tests/runtime/fixtures/fx_noisy.py"
    e = results["not_entity"].error
    assert e["kind"] == "not_a_flyte_entity" and "NOT_AN_ENTITY" in e["message"]


# ---------------------------------------------------------------------------------------------------- pyflyte run


PYFLYTE_RUNS = [
    (["baked/workflows.py", "wf", "--x", "3"], "Summary(count=3, mean=0.3333333333333333"),
    (["baked/workflows.py", "prepare", "--x", "3"], "[0.16666666666666666, 0.3333333333333333, 0.5]"),
    (["baked/workflows.py", "lp", "--x", "4"], "Summary(count=4, mean=0.25"),
    (["mixed/workflows.py", "wf", "--n", "4"], "TOTAL 30!"),
    (["mixed/workflows.py", "wf", "--n", "2"], "TOTAL 0!"),
]


@pytest.fixture(scope="module")
def pyflyte_results(user_python, tmp_path_factory):
    pyflyte = str(Path(user_python).parent / "pyflyte")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "FLYTE"))}
    # flytekit's local cache lives under $HOME: one fresh home per run (no stale hits, no lock contention)
    envs = [dict(base, HOME=str(tmp_path_factory.mktemp("home"))) for _ in PYFLYTE_RUNS]
    procs = [
        subprocess.Popen(
            [pyflyte, "run", *args],
            cwd=str(REPO / "examples"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            universal_newlines=True,
        )
        for (args, _), env in zip(PYFLYTE_RUNS, envs)
    ]
    return [p.communicate(timeout=300) + (p.returncode,) for p in procs]


@pytest.mark.parametrize("i", range(len(PYFLYTE_RUNS)), ids=[" ".join(a) for a, _ in PYFLYTE_RUNS])
def test_examples_run_with_plain_pyflyte(pyflyte_results, i):
    out, _, rc = pyflyte_results[i]
    assert rc == 0, out
    assert PYFLYTE_RUNS[i][1] in out, out


def test_batch_reports_each_entrypoint_on_its_own(user_python, results):
    # One process for many entrypoints: what Pants runs. A broken one does not hide the others.
    proc = subprocess.run(
        [user_python, *INTROSPECT, "--batch", "baked.workflows:wf", "baked.workflows:nothere", "mixed.workflows:wf"],
        cwd=str(REPO),
        env=_env(EXAMPLES),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    batch = json.loads(proc.stdout)["results"]
    assert batch["baked.workflows:wf"] == results["baked_wf"].ok()
    assert batch["baked.workflows:nothere"]["error"]["kind"] == "attr_not_found"
    assert {t["name"] for t in batch["mixed.workflows:wf"]["tasks"]} >= {"mixed.fast_tasks.weights"}
