"""runtime/validate_pod.py in the user's environment (subprocess, fixture `user_python`).

The exported `flyte` resolve carries the `kubernetes` client (examples/3rdparty/requirements.txt pins
kubernetes==37.0.1, locked in flyte.lock), exactly what a user's resolve needs for pod templates.
"""
import json
import subprocess
from pathlib import Path

from tests.support.runtime import runtime

REPO = Path(__file__).resolve().parents[2]
VALIDATE = runtime("validate_pod")
# Runs the script as __main__ with `kubernetes` made unimportable (a user env without the client).
WITHOUT_K8S = (
    "import runpy, sys; sys.modules['kubernetes'] = None; sys.argv = {0!r}; "
    "runpy.run_path({0!r}[0], run_name='__main__')"
)


def validate(user_python, spec, *args):
    proc = subprocess.run(
        [user_python, *VALIDATE, *args], input=json.dumps(spec), capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


GOOD = {
    "containers": [
        {
            "name": "primary",
            "image": "localhost:5000/baked:abc",
            "env": [{"name": "LOG_LEVEL", "value": "info"}],
            "resources": {"limits": {"cpu": 2, "memory": "4Gi"}, "requests": {"cpu": "500m"}},
            "ports": [{"containerPort": 8080}],
            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
        }
    ],
    "nodeSelector": {"pool": "gpu"},
    "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}],
}


def test_good_spec_is_accepted(user_python):
    code, out = validate(user_python, GOOD)
    assert code == 0, out
    assert out["ok"] is True and out["kubernetes"]


def test_rendered_template_shape_checks_its_pod_spec(user_python):
    code, out = validate(
        user_python, {"labels": {}, "annotations": {}, "primary_container_name": "primary", "pod_spec": GOOD}
    )
    assert code == 0, out


def test_limits_as_a_list_and_unknown_field_are_reported_with_paths(user_python):
    bad = json.loads(json.dumps(GOOD))
    bad["containers"][0]["resources"]["limits"] = ["cpu", "2"]
    bad["containers"][0]["imagePullPolicyy"] = "Always"
    bad["nodeSelectr"] = {"pool": "gpu"}
    code, out = validate(user_python, bad, "--file", "pods/base.yaml")
    assert code == 2
    error = out["error"]
    assert error["kind"] == "invalid_pod_spec"
    by_path = {e["path"]: e["message"] for e in error["errors"]}
    assert set(by_path) == {"containers[0].resources.limits", "containers[0].imagePullPolicyy", "nodeSelectr"}
    assert "expected a map" in by_path["containers[0].resources.limits"]
    assert "got a list" in by_path["containers[0].resources.limits"]
    assert "unknown field `imagePullPolicyy`" in by_path["containers[0].imagePullPolicyy"]
    assert "did you mean `imagePullPolicy`" in by_path["containers[0].imagePullPolicyy"]
    assert "did you mean `nodeSelector`" in by_path["nodeSelectr"]
    assert error["message"].startswith("pods/base.yaml is not a valid V1PodSpec")


def test_wrong_scalar_types_and_snake_case_names(user_python):
    bad = {
        "containers": [{"name": "primary", "ports": [{"containerPort": "8080"}], "env": [{"name": "N", "value": 3}]}],
        "host_network": True,
        "hostPID": "yes",
    }
    code, out = validate(user_python, bad)
    assert code == 2
    by_path = {e["path"]: e["message"] for e in out["error"]["errors"]}
    assert "expected an integer" in by_path["containers[0].ports[0].containerPort"]
    assert "expected a string" in by_path["containers[0].env[0].value"]
    assert "use the Kubernetes name `hostNetwork`" in by_path["host_network"]
    assert "expected true or false" in by_path["hostPID"]


def test_missing_required_field_is_caught_by_the_client_model(user_python):
    code, out = validate(user_python, {"nodeSelector": {"pool": "gpu"}})
    assert code == 2
    errors = out["error"]["errors"]
    assert any("containers" in (e["path"] + e["message"]) for e in errors), errors


def test_not_json_is_bad_input(user_python):
    proc = subprocess.run(
        [user_python, *VALIDATE],
        input="containers: []",
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"]["kind"] == "bad_input"


def test_without_kubernetes_the_error_says_so(user_python):
    proc = subprocess.run(
        [user_python, "-c", WITHOUT_K8S.format(VALIDATE)],
        input=json.dumps(GOOD),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2
    error = json.loads(proc.stdout)["error"]
    assert error["kind"] == "kubernetes_missing"
    assert "`kubernetes` client package is not installed" in error["message"]


def test_batch_mode_reports_each_template(user_python, tmp_path):
    request = tmp_path / "pods.json"
    request.write_text(
        json.dumps(
            {
                "task:a": {"file": "pods/a.yaml", "spec": {"pod_spec": GOOD}},
                "task:b": {
                    "file": "pods/b.yaml + pods/dev.yaml",
                    "spec": {"containers": [{"name": "p", "imagee": "x"}]},
                },
            }
        )
    )
    proc = subprocess.run(
        [user_python, *VALIDATE, "--batch", str(request)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["kubernetes"] == "37.0.1"  # the lockfile's pin
    assert out["results"]["task:a"] == {"ok": True}
    error = out["results"]["task:b"]["error"]
    assert error["errors"] == [
        {"path": "containers[0].imagee", "message": "unknown field `imagee` in V1Container; did you mean `image`?"}
    ]
    assert error["message"].startswith("pods/b.yaml + pods/dev.yaml is not a valid V1PodSpec")


def test_batch_mode_bad_request(user_python, tmp_path):
    request = tmp_path / "pods.json"
    request.write_text("[1, 2]")
    proc = subprocess.run(
        [user_python, *VALIDATE, "--batch", str(request)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"]["kind"] == "bad_input"
