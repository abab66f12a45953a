"""The CLI's `[pod_templates.*]`, `pod_template` / `cache_key` on workflows and `environment`: the same plan
as Pants' flyte_pod_template (tests/e2e/test_pod_templates.py), validated as V1PodSpec in the user's env."""
import json

CONFIG = "examples/flytebuild.toml"


def _plan(cli, *args, env=None):
    proc = cli("-c", CONFIG, "plan", "--format=json", *args, env=env, check=True)
    (wf,) = json.loads(proc.stdout)["workflows"]
    return wf


def test_cli_renders_the_environment_overlay_and_node_overrides(cli):
    wf = _plan(cli, "mixed-wf", env={"FLYTEBUILD_ENVIRONMENT": "prod"})
    assert wf["environment"] == "prod"
    total = next(t for t in wf["tasks"] if t["name"] == "mixed.plain_tasks.total")
    assert total["pod_template_source"] == "mixed-pod (workflow)"
    primary = total["pod_template"]["pod_spec"]["containers"][0]
    assert primary["resources"] == {"limits": {"memory": "2Gi"}}
    assert total["pod_template"]["pod_spec"]["nodeSelector"] == {"pool": "highmem"}
    (node,) = wf["node_pod_templates"]
    assert node["node"] == "n2" and node["pod_template"]["pod_spec"]["nodeSelector"] == {
        "pool": "highmem",
        "disk": "ssd",
    }


def test_cli_config_errors_for_templates_and_cache_key(cli, tmp_path):
    # an unknown template name is caught while reading the configuration
    cfg = tmp_path / "unknown.toml"
    cfg.write_text('[workflows.w]\nentrypoint = "m:wf"\npod_template = "nope"\n')
    proc = cli("-c", str(cfg), "plan")
    assert proc.returncode != 0
    assert "[workflows.w] names pod template `nope`, which is not configured" in proc.stderr
    cfg.write_text('[workflows.w]\nentrypoint = "m:wf"\ncache_key = "always"\n')
    proc = cli("-c", str(cfg), "plan")
    assert proc.returncode != 0 and "`cache_key` in [workflows.w] is 'always'" in proc.stderr
