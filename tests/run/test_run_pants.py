"""End to end: `./pants run <flyte_workflow> -- inputs` in a throwaway copy of the repo (real Pants, real flytekit)."""
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.support.background import Background
from tests.support.repo_copy import PANTS_ENV


def test_pants_run_a_workflow_with_typed_inputs(pants_repo):
    proc = pants_repo.pants("run", "examples/typed:wf", "--", "--cfg", '{"scale": 2, "offset": 1}', "--n", "2",
                            "--format=json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout) == {
        "outputs": {"o0": {"count": 2, "total": 8.0, "scaled": [3.0, 5.0], "weights": {"a": 1}, "note": "run"}}}
    # the plan's decisions, said at run time
    assert "[cache] typed.workflows.scale: cache version 1-" in proc.stderr
    assert "[image] typed.workflows.report: localhost:5000/flytebuild/typed:" in proc.stderr
    assert "(workflow: examples/typed:image)" in proc.stderr
    assert "[run]   task typed.workflows.scale done in" in proc.stderr


def test_pants_run_a_launch_plan_applies_its_inputs(pants_repo):
    proc = pants_repo.pants("run", "examples/typed:lp", "--", "--cfg", '{"scale": 1}', "--format=json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)["outputs"]["o0"]
    assert out["count"] == 5 and out["note"] == "nightly"


def test_pants_run_bad_input_is_a_clear_error(pants_repo):
    proc = pants_repo.pants("run", "examples/typed:wf", "--", "--cfg", '{"scale": "x"}')
    assert proc.returncode == 2
    assert ("error: input --cfg.scale: expected float, got 'x' (target examples/typed:wf). "
            "Fix: pass --cfg as Config (a dataclass, as JSON).") in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_pants_run_bad_entrypoint_is_a_clear_error(pants_repo):
    build = pants_repo.read("examples/typed/BUILD")
    pants_repo.write(
        "examples/typed/BUILD", build + '\nflyte_workflow(name="broken", entrypoint="typed.workflows:nope")\n'
    )
    try:
        proc = pants_repo.pants("run", "examples/typed:broken")
    finally:
        pants_repo.write("examples/typed/BUILD", build)
    assert proc.returncode != 0
    assert "module 'typed.workflows' has no attribute 'nope'" in proc.stderr
    assert "(target examples/typed:broken, file examples/typed/workflows.py)" in proc.stderr
    assert "Engine traceback" not in proc.stderr


def test_pants_run_images_for_map_and_container_tasks(pants_repo):
    proc = pants_repo.pants("run", "examples/mixed:wf", "--", "--n", "3", "--format=json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout) == {"outputs": {"o0": "TOTAL 14!"}}
    plan = json.loads(pants_repo.pants("flyte-plan", "--format=json", "examples/mixed:wf", check=True).stdout)
    refs = {i["address"]: i["ref"] for i in plan["images"]}
    map_task = next(t["name"] for t in plan["workflows"][0]["tasks"] if "map_square" in t["name"])
    assert f"[image] {map_task}: {refs['examples/mixed:spec_image']} (code: examples/mixed:spec_image)" in proc.stderr
    assert (
        f"[image] mixed.plain_tasks.total: {refs['examples/mixed:runtime']} (workflow: examples/mixed:runtime)"
        in proc.stderr
    )

    container = pants_repo.pants("run", "examples/mixed:container_wf")
    # the raw container task has no image in code: the workflow's image, said at run time
    assert (
        f"[image] mixed.containers.echo: {refs['examples/mixed:runtime']} (workflow: examples/mixed:runtime)"
        in container.stderr
    )
    if container.returncode != 0:  # no Docker engine here: said plainly, nothing ran
        assert container.returncode == 2 and "run in Docker when local" in container.stderr
        assert "Traceback" not in container.stderr


RUN = ("run", "examples/typed:wf", "--", "--cfg", '{"scale": 2, "offset": 1}', "--n", "2", "--format=json")


def _same_run(pants_repo):
    """`./pants run` through the warm worker (the default) says what the cold path (`--no-flyte-worker`) says."""
    warm = pants_repo.pants(*RUN)
    cold = pants_repo.pants("--no-flyte-worker", *RUN)
    assert warm.returncode == cold.returncode == 0, warm.stderr[-3000:] + cold.stderr[-3000:]
    assert warm.stdout == cold.stdout

    def said(proc):  # timings aside
        return [line for line in proc.stderr.splitlines() if line.startswith("[") and " in " not in line]

    assert said(warm) == said(cold)
    return json.loads(warm.stdout)


def _run_workers(pants_repo):
    """The copy's workers started by runtime/attach.py: with the run's environment, PEX_ROOT included (pantsd starts
    its own with none of it)."""
    script = str(pants_repo.root / "src/python/flytebuild/runtime/__main__.py")
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if script.encode() in argv and b"worker" in argv and any(e.startswith(b"PEX_ROOT=") for e in environ):
            found.append(int(entry))
    return found


@pytest.mark.slow
def test_pants_run_through_the_warm_worker_answers_as_the_cold_path(pants_repo):
    pants_repo.pants(*RUN)  # creates the run's venv (cold) and, on the next run, its worker
    assert _same_run(pants_repo)["outputs"]["o0"]["note"] == "run"
    assert _run_workers(pants_repo)  # the run forked from a worker of its own environment

    source = pants_repo.read("examples/typed/workflows.py")
    pants_repo.write("examples/typed/workflows.py", source.replace('label: str = "run"', 'label: str = "edited"'))
    try:
        assert _same_run(pants_repo)["outputs"]["o0"]["note"] == "edited"  # the edit is seen, warm and cold
    finally:
        pants_repo.write("examples/typed/workflows.py", source)

    for pid in _run_workers(pants_repo):  # killed: the next run starts another, same answer
        os.kill(pid, signal.SIGKILL)
    assert _same_run(pants_repo)["outputs"]["o0"]["note"] == "run"
    assert _run_workers(pants_repo)


SLEEPY = '''
import time

from flytekit import task, workflow


@task
def nap() -> int:
    try:
        print("napping", flush=True)
        time.sleep(120)
    except KeyboardInterrupt:
        print("nap: KeyboardInterrupt", flush=True)
        raise
    return 1


@workflow
def sleepy() -> int:
    return nap()
'''


def _interrupted(pants_repo, *flags):
    """What `./pants [flags] run examples/typed:sleepy` says when Ctrl-C comes during its task (timings aside)."""
    run = Background([pants_repo.root / "pants", *flags, "run", "examples/typed:sleepy"], pants_repo.root,
                     {**os.environ, **PANTS_ENV})
    try:
        run.until("napping", timeout=300)
        warm = bool(_run_workers(pants_repo))
        time.sleep(0.5)
        code = run.interrupt()
        said = run.seen + run.drain(1.0)
    finally:
        run.kill()
    said = [re.sub(r" after [0-9.]+s", "", line) for line in said if line.startswith(("[run]", "nap:", "Interr"))]
    return code, said, warm


@pytest.mark.slow
def test_pants_run_ctrl_c_through_the_worker_is_as_without_it(pants_repo):
    build = pants_repo.read("examples/typed/BUILD")
    pants_repo.write("examples/typed/sleepy.py", SLEEPY)
    target = 'flyte_workflow(name="sleepy", entrypoint="typed.sleepy:sleepy", image=":image")'
    pants_repo.write("examples/typed/BUILD", f"{build}\n{target}\n")
    try:
        pants_repo.pants(*RUN)  # the run's venv and worker exist: the next run is a fork of it
        warm = _interrupted(pants_repo)
        cold = _interrupted(pants_repo, "--no-flyte-worker")
    finally:
        pants_repo.write("examples/typed/BUILD", build)
        (pants_repo.root / "examples/typed/sleepy.py").unlink()
    assert warm[2], "the run did not fork from the worker"
    # the user's program is interrupted as a plain process is (flytekit's SIGINT handler, the task reported failed)
    assert warm[:2] == cold[:2]
    assert warm[0] != 0 and "[run]   task typed.sleepy.nap FAILED" in warm[1]
