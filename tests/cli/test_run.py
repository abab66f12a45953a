"""`flytebuild run`: the workflow runs locally in the user's environment, with the plan's images and cache
versions (runtime/run.py, as `pants run` runs it)."""
import json


def test_run_locally_with_planned_images(cli):
    proc = cli("-c", "examples/flytebuild.toml", "run", "baked-wf", "--x", "3", "--format=json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    summary = out["outputs"]["o0"]
    assert summary["count"] == 3 and summary["label"] == "normalized"
    plan = json.loads(cli("-c", "examples/flytebuild.toml", "plan", "--format=json", "baked-wf", check=True).stdout)
    ref = plan["images"][0]["ref"]
    assert f"[image] baked.stats.summarize: {ref} (workflow: baked-image)" in proc.stderr


def test_run_bad_input_is_a_clear_error(cli):
    proc = cli("-c", "examples/flytebuild.toml", "run", "baked-wf", "--x", "three")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "x" in proc.stderr
    proc = cli("-c", "examples/flytebuild.toml", "run", "baked-image")
    assert proc.returncode == 1 and "baked-image is an image" in proc.stderr
