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


def test_run_remote_deploys_then_launches_and_references_launch_as_registered(cli, user_python, tmp_path):
    from tests.support.flyteadmin.fixture import flyteadmin

    with flyteadmin(user_python) as admin:
        flags = ["--endpoint", admin.endpoint, "--insecure"]
        proc = cli("-c", "examples/flytebuild.toml", "run", "--remote", *flags, "baked-wf", "--x", "3", "--format=json")
        assert proc.returncode == 0, proc.stderr
        assert "registered" in proc.stderr  # the deploy report comes first (stdout stays JSON)
        launched = json.loads(proc.stdout)
        assert launched["entity"]["name"] == "baked.workflows.wf" and "/executions/" in launched["url"]
        plan = json.loads(cli("-c", "examples/flytebuild.toml", "plan", "--format=json", "baked-wf", check=True).stdout)
        (execution,) = admin.store.executions()
        assert execution["entity"]["name"] == "baked.workflows.wf"
        assert execution["entity"]["version"] == plan["workflows"][0]["version"]

        # A reference: launched as registered (the latest version), nothing deployed.
        (tmp_path / "flytebuild.toml").write_text(
            '[references.wf-ref]\nkind = "workflow"\nentity_name = "baked.workflows.wf"\ndefault_inputs = { x = "5" }\n'
        )
        mark = admin.mark()
        proc = cli("run", *flags, "wf-ref", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert admin.since(mark)["counters"].get("task", {}).get("created", 0) == 0
        assert len(admin.store.executions()) == 2
