"""runtime/introspect.py reports code-level pod templates (kubernetes client models) as the structured pod
spec with Kubernetes' camelCase names, for `@task(pod_template=...)` and `with_overrides(pod_template=...)`."""
import json
import os
import subprocess
from pathlib import Path

from tests.support.runtime import runtime

REPO = Path(__file__).resolve().parents[2]
INTROSPECT = runtime("introspect")


def test_code_pod_templates_are_reported_as_pod_specs(user_python):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "FLYTE"))}
    env["PYTHONPATH"] = "tests/runtime/fixtures"
    proc = subprocess.run(
        [user_python, *INTROSPECT, "fx_pods:wf"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    tasks = {t["name"]: t for t in data["tasks"]}
    assert tasks["fx_pods.podded"]["config"]["pod_template"] == {
        "primary_container_name": "main",
        "labels": {"team": "ml"},
        "annotations": None,
        "pod_spec": {
            "containers": [{"name": "main", "env": [{"name": "A", "value": "1"}]}],
            "nodeSelector": {"pool": "gpu"},
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }
    assert tasks["fx_pods.plain"]["config"]["pod_template"] is None
    (wf,) = data["workflows"]
    node = next(n for n in wf["structure"]["nodes"] if n["entity"] == "fx_pods.plain")
    assert node["overrides"]["pod_template"] == {
        "primary_container_name": "primary",
        "labels": None,
        "annotations": {"why": "node"},
        "pod_spec": {
            "containers": [
                {"name": "primary", "imagePullPolicy": "Always", "resources": {"limits": {"memory": "2Gi"}}}
            ],
            "serviceAccountName": "runner",
        },
    }
