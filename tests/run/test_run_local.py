"""runtime/run.py: real local runs in the user's environment (flytekit from the examples' lockfile).

Each run is `python run.py <request.json> --<input> <value> ...` with cwd = repo root, the way the Pants rule
starts it; the request carries what the plan decides (cache versions, images). HOME is a temp dir per test so
flytekit's local cache (~/.flyte/local-cache) starts empty and is shared only by the runs of one test.
"""
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests/run/fixtures"

sys.path.insert(0, str(REPO / "src/python"))
from flytebuild.core import fingerprint as fp  # noqa: E402
from flytebuild.core.introspection import parse_introspection  # noqa: E402
from tests.support.runtime import runtime  # noqa: E402


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        assert self.rc == 0, self.stderr[-3000:]
        return json.loads(self.stdout)["outputs"]


def run(user_python, home: Path, entrypoint: str, *args: str, tasks: Optional[Dict[str, dict]] = None,
        pythonpath: str = "examples", cwd: Path = REPO, target: str = "examples:test") -> Run:
    req = home / "request.json"
    req.write_text(json.dumps({"entrypoint": entrypoint, "target": target, "tasks": tasks or {}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "FLYTE"))}
    env.update(PYTHONPATH=pythonpath, HOME=str(home))
    proc = subprocess.run([user_python, *runtime("run"), str(req), *args], cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=300)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def planned_cache_versions(user_python, entrypoint: str, pythonpath: str, cwd: Path) -> Dict[str, dict]:
    """What the plan gives each cached task: introspect in the user env, then core's cache_version."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "FLYTE"))}
    env["PYTHONPATH"] = pythonpath
    proc = subprocess.run([user_python, *runtime("introspect"), entrypoint], cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    intro = parse_introspection(json.loads(proc.stdout))
    return {t.name: {"cache_version": fp.cache_version(t)} for t in intro.tasks if t.cache.enabled}


@pytest.fixture
def home(tmp_path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


# --- typed inputs and outputs ---------------------------------------------------------------------------------


def test_dataclass_input_and_output_with_every_input_kind(user_python, home, tmp_path):
    values = tmp_path / "values.txt"
    values.write_text("1\n2\n5\n")
    r = run(user_python, home, "typed.workflows:wf", "--cfg", '{"scale": 2, "offset": 1, "tags": ["x"]}',
            "--weights", '{"b": 2}', "--label=hello", "--loud", "--src", str(values), "--format=json")
    out = r.json()
    assert out == {"o0": {"count": 3, "total": 19.0, "scaled": [3.0, 5.0, 11.0], "weights": {"b": 2}, "note": "HELLO"}}
    assert '[input] cfg = {"scale": 2.0, "offset": 1.0, "tags": ["x"]}  (command line)' in r.stderr
    assert "[input] n = 3  (signature default)" in r.stderr
    # progress: one line per task as it starts and ends, nested under the workflow
    for task in ("typed.workflows.read_values", "typed.workflows.scale", "typed.workflows.report"):
        assert f"[run]   task {task} ..." in r.stderr and f"[run]   task {task} done in " in r.stderr
    assert "succeeded" in r.stderr and "(3 task runs)" in r.stderr


def test_table_output_is_readable(user_python, home):
    r = run(user_python, home, "baked.workflows:wf", "--x", "4")
    assert r.rc == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["OUTPUT", "TYPE", "VALUE"]
    name, typ, value = lines[1].split(None, 2)
    assert (name, typ) == ("o0", "Summary")
    assert json.loads(value)["count"] == 4 and json.loads(value)["spread"] == {"low": 0.1, "high": 0.4}
    assert "summary: count=4" in r.stderr  # user prints go to stderr, stdout holds only the outputs


def test_launch_plan_fixed_and_default_inputs(user_python, home):
    r = run(user_python, home, "typed.workflows:lp", "--cfg", '{"scale": 1}', "--format", "json")
    assert r.json()["o0"]["count"] == 5 and r.json()["o0"]["note"] == "nightly"
    assert "[input] n = 5  (default of launch plan typed.workflows.lp)" in r.stderr
    assert '[input] label = "nightly"  (fixed by launch plan typed.workflows.lp)' in r.stderr
    over = run(user_python, home, "typed.workflows:lp", "--cfg", '{"scale": 1}', "--n", "2", "--format", "json")
    assert over.json()["o0"]["count"] == 2 and "[input] n = 2  (command line)" in over.stderr
    fixed = run(user_python, home, "typed.workflows:lp", "--cfg", '{"scale": 1}', "--label", "x")
    assert fixed.rc == 2
    assert 'input --label is fixed by launch plan `typed.workflows.lp` to "nightly"' in fixed.stderr


def test_a_task_runs_on_its_own(user_python, home):
    r = run(user_python, home, "baked.stats:summarize", "--xs", "[1, 2, 3]", "--format=json")
    assert r.json()["o0"]["mean"] == 2.0


@pytest.mark.parametrize(
    "args, message",
    [
        (("--x", "abc"), "error: input --x: expected int, got 'abc' (target examples:test). Fix: pass --x as int."),
        ((), "error: missing input --x (int) for `baked.workflows:wf` (target examples:test). Fix: pass --x <value>."),
        (("--x", "1", "--y", "2"), "error: unknown input --y for `baked.workflows:wf` (target examples:test). "
                                   "Fix: its inputs are: --x (int)."),
        (("--x", "1", "--x", "2"), "error: input --x is given twice"),
        (("4",), "error: unexpected argument '4': inputs are given as `--name value`"),
        (("--x", "1", "--format", "yaml"), "error: --format must be `table` or `json` (got 'yaml')"),
    ],
)
def test_bad_inputs_are_clear_errors(user_python, home, args, message):
    r = run(user_python, home, "baked.workflows:wf", *args)
    assert r.rc == 2 and r.stdout == ""
    assert message in r.stderr
    assert "Traceback" not in r.stderr and "[run]" not in r.stderr  # nothing ran


@pytest.mark.parametrize(
    "args, message",
    [
        (("--cfg", '{"scale": "x"}'), "input --cfg.scale: expected float, got 'x'"),
        (("--cfg", '{"scale": 1, "bogus": 1}'), "input --cfg.bogus is not a field of Config (scale, offset, tags)"),
        (("--cfg", "{}"), "input --cfg.scale (float) is missing"),
        (("--cfg", "not json"), "input --cfg: expected Config (a dataclass, as JSON) as JSON, got 'not json'"),
        (("--cfg", '{"scale": 1}', "--weights", '{"a": "one"}'), "input --weights['a']: expected int, got 'one'"),
        (("--cfg", '{"scale": 1}', "--src", "no/such/file.txt"), "input --src: expected an existing file"),
        (("--cfg", '{"scale": 1}', "--loud", "maybe"), "input --loud: expected bool (true/false), got 'maybe'"),
    ],
)
def test_ill_typed_structured_inputs_name_the_field(user_python, home, args, message):
    r = run(user_python, home, "typed.workflows:wf", *args)
    assert r.rc == 2 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_failing_user_code_reports_its_own_traceback(user_python, home):
    r = run(user_python, home, "fx_fail:wf", pythonpath="tests/run/fixtures")
    assert r.rc == 1 and r.stdout == ""
    assert "[run]   task fx_fail.ok done in" in r.stderr and "[run]   task fx_fail.ratio FAILED after" in r.stderr
    report = r.stderr.split("error: workflow fx_fail.wf failed")[1]
    assert "tests/run/fixtures/fx_fail.py" in report and "ZeroDivisionError" in report and "division by zero" in report
    assert "flytebuild/runtime" not in report and "site-packages" not in report


# --- references --------------------------------------------------------------------------------------------------


def test_workflow_with_reference_entities_is_a_clear_refusal(user_python, home):
    r = run(user_python, home, "fx_refs:wf", pythonpath="tests/runtime/fixtures")
    assert r.rc == 2 and "Traceback" not in r.stderr
    assert "uses reference entities, which exist only on the cluster and cannot run locally" in r.stderr
    for ref in ("task remote.tasks.scale (flytesnacks/development, version v1)",
                "workflow remote.workflows.pipeline (flytesnacks/development, version v2)",
                "launch plan remote.lp (flytesnacks/production, version v3)"):
        assert ref in r.stderr
    assert "Fix: run it on the cluster" in r.stderr and "[run]" not in r.stderr


def test_references_run_with_user_configured_mocks(user_python, home):
    mocks = ["--mock", "remote.tasks.scale=fx_mocks:scale", "--mock", "remote.workflows.pipeline=fx_mocks:pipeline",
             "--mock", "remote.lp=fx_mocks:remote_lp"]
    path = "tests/runtime/fixtures:tests/run/fixtures"
    r = run(user_python, home, "fx_refs:wf", "--n", "3", *mocks, "--format=json", pythonpath=path)
    assert r.json() == {"o0": "lp(103)"}
    assert "[mock] remote.lp: runs fx_mocks:remote_lp locally" in r.stderr
    assert "[run]   mocked reference remote.workflows.pipeline done in" in r.stderr
    partial = run(user_python, home, "fx_refs:wf", *mocks[:2], pythonpath=path)
    assert partial.rc == 2
    assert "launch plan remote.lp (flytesnacks/production, version v3)" in partial.stderr
    assert "remote.tasks.scale" not in partial.stderr.split("error:")[1]  # mocked: not listed
    typo = run(user_python, home, "fx_refs:wf", "--mock", "remote.nope=fx_mocks:scale", pythonpath=path)
    assert typo.rc == 2 and "--mock names remote.nope, which is not a reference entity of this workflow" in typo.stderr


# --- cache keys: local follows the interface, as the backend ------------------------------------------------------


def _cache_project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copy(FIXTURES / "fx_cache.py", proj / "fx_cache.py")
    return proj


def _add_field(proj: Path) -> None:
    src = (proj / "fx_cache.py").read_text()
    src = src.replace("    y: int\n", "    y: int\n    z: int = 0\n").replace(
        "Point(x=n, y=2 * n)", "Point(x=n, y=2 * n, z=10 * n)")
    (proj / "fx_cache.py").write_text(src)


def test_adding_a_dataclass_field_is_a_cache_miss(user_python, home, tmp_path):
    proj = _cache_project(tmp_path)

    def go():
        tasks = planned_cache_versions(user_python, "fx_cache:wf", ".", proj)
        return tasks, run(user_python, home, "fx_cache:wf", "--n", "3", "--format=json", tasks=tasks,
                          pythonpath=".", cwd=proj)

    tasks1, first = go()
    assert first.json() == {"o0": {"x": 3, "y": 6}} and "COMPUTING make(3)" in first.stderr
    assert f"[cache] fx_cache.make: cache version {tasks1['fx_cache.make']['cache_version']}" in first.stderr
    _, again = go()
    assert again.json() == first.json() and "COMPUTING" not in again.stderr
    assert "task fx_cache.make done in" in again.stderr and "(cache hit)" in again.stderr

    _add_field(proj)
    tasks2, changed = go()
    assert tasks2["fx_cache.make"]["cache_version"] != tasks1["fx_cache.make"]["cache_version"]
    assert tasks2["fx_cache.make"]["cache_version"].startswith("1-")  # the user's version stays in front
    assert "COMPUTING make(3)" in changed.stderr  # re-executed: a miss, as on the backend
    assert changed.json() == {"o0": {"x": 3, "y": 6, "z": 30}}


def test_a_task_without_a_plan_keeps_its_code_cache_version_and_says_so(user_python, home, tmp_path):
    """A request that plans no cache version for a task (a task the plan does not know) leaves the code's
    `cache_version` as it is, says so, and flytekit's local cache still serves the second run."""
    proj = _cache_project(tmp_path)
    first = run(user_python, home, "fx_cache:wf", "--n", "3", "--format=json", pythonpath=".", cwd=proj)
    assert first.json() == {"o0": {"x": 3, "y": 6}} and "COMPUTING make(3)" in first.stderr
    assert "[cache] fx_cache.make: cache version '1' from code (no plan for this task)" in first.stderr
    again = run(user_python, home, "fx_cache:wf", "--n", "3", "--format=json", pythonpath=".", cwd=proj)
    assert again.json() == first.json() and "COMPUTING" not in again.stderr
    assert "task fx_cache.make done in" in again.stderr and "(cache hit)" in again.stderr


def test_void_task_with_cache_runs_every_time_as_on_the_backend(user_python, home, tmp_path):
    proj = _cache_project(tmp_path)
    tasks = planned_cache_versions(user_python, "fx_cache:wf", ".", proj)
    assert "fx_cache.record" in tasks  # cache=True in code
    runs = [run(user_python, home, "fx_cache:wf", "--n", "2", tasks=tasks, pythonpath=".", cwd=proj) for _ in range(2)]
    for r in runs:
        assert r.rc == 0, r.stderr
        assert "RECORDING 2" in r.stderr  # executed both times
        assert ("[cache] fx_cache.record: cache=True but no outputs: runs every time, as on a Flyte cluster"
                in r.stderr)
    assert "COMPUTING" not in runs[1].stderr  # the task with outputs is still a hit


# --- images at run time ------------------------------------------------------------------------------------------


def test_connector_task_gets_the_planned_image(user_python, home):
    image = "localhost:5000/flytebuild/echo:0123abcd"
    tasks = {"fx_connector.shout": {"image": image, "image_source": "workflow"}}
    r = run(user_python, home, "fx_connector:wf", "--x", "hey", "--format=json", tasks=tasks,
            pythonpath="tests/run/fixtures")
    assert r.json() == {"o0": f"hey (image {image})"}  # the connector saw the serialized task with that image
    assert f"[image] fx_connector.shout: {image} (workflow)" in r.stderr


def test_connector_task_without_an_image_crashes_in_plain_flytekit(user_python, home):
    """What pyflyte run does today; the test above is the fix."""
    r = run(user_python, home, "fx_connector:wf", pythonpath="tests/run/fixtures")
    assert r.rc == 1 and "An image is required for PythonAutoContainer tasks" in r.stderr


def test_container_task_gets_the_planned_image_and_a_clear_docker_message(user_python, home):
    image = "localhost:5000/flytebuild/mixed-runtime:feedbeef"
    tasks = {"mixed.containers.echo": {"image": image, "image_source": "workflow"}}
    r = run(user_python, home, "mixed.workflows:container_wf", tasks=tasks)
    assert f"[image] mixed.containers.echo: {image} (workflow)" in r.stderr
    if r.rc != 0:  # no Docker engine on this machine: said plainly, before anything runs
        assert r.rc == 2 and "Traceback" not in r.stderr
        assert "mixed.containers.echo run in Docker when local" in r.stderr
        assert "[run]" not in r.stderr


def test_map_task_and_branches_run_with_images(user_python, home):
    tasks = {"mixed.spec_tasks.label": {"image": "localhost:5000/flytebuild/mixed-spec:1", "image_source": "code"}}
    r = run(user_python, home, "mixed.workflows:wf", "--n", "3", "--format=json", tasks=tasks)
    assert r.json() == {"o0": "TOTAL 14!"}
    assert "[run]   map mixed.spec_tasks.map_square_" in r.stderr
    assert "[image] mixed.spec_tasks.label: localhost:5000/flytebuild/mixed-spec:1 (code)" in r.stderr


def test_json_format_renders_any_output_as_json_values(user_python, home):
    """`--format=json`: an np.ndarray is a list (it was its repr string)."""
    r = run(user_python, home, "fx_arrays:wf", "--n", "4", "--format=json", pythonpath="tests/run/fixtures")
    assert r.json() == {"o0": [0, 2, 4, 6], "o1": 3.0}
    table = run(user_python, home, "fx_arrays:wf", "--n", "3", pythonpath="tests/run/fixtures")
    assert table.rc == 0 and "[0, 2, 4]" in table.stdout
