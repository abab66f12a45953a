"""Deploys of the examples against the stand-in FlyteAdmin (real gRPC) under faults and real signals.

The registration request is prepared once, exactly as `flytebuild deploy` prepares it (plan, serialize, code
bundle, service.deploy.deploy_request); runtime/deploy.py then runs as the deploy's registration process.

- a project (or domain) FlyteAdmin lacks fails before anything is uploaded or registered;
- an unreachable FlyteAdmin is a clear error;
- the randomized interruption test: the deploy is killed (SIGKILL, SIGTERM or SIGINT, seeded) at a random
  point N >= 20 times, then run to completion: FlyteAdmin holds exactly the expected entities, none
  duplicated, none dangling (every workflow's tasks and every launch plan's workflow are registered).
"""
from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.flyteadmin.fixture import flyteadmin

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "flytebuild.toml"
WORKFLOWS = ["baked-wf", "baked-lp", "mixed-wf", "mixed-container-wf"]
SEED = 20261130
INTERRUPTIONS = 20
TRACEBACK = "Traceback (most recent call last)"


@pytest.fixture(scope="module")
def request_dir(tmp_path_factory, user_python):
    """`flytebuild deploy`'s request directory for the examples (serialized entities + code bundle)."""
    os.environ.setdefault("FLYTEBUILD_PYTHON", user_python)
    from flytebuild.cli.config import load_project
    from flytebuild.cli.planning import plan_project
    from flytebuild.cli.registration import code_bundle, serialize
    from flytebuild.core.settings import AdminSettings
    from flytebuild.service.deploy import bundle_path, deploy_request, entities_of

    project = load_project(str(EXAMPLES))
    result = plan_project(project, WORKFLOWS)
    root = tmp_path_factory.mktemp("deploy-request")
    entities = []
    for i, plan in enumerate(result.workflows):
        serialized = serialize(project, plan)
        (root / f"wf{i}").mkdir()
        for name, data in serialized.files:
            (root / f"wf{i}" / name).write_bytes(data)
        entities += entities_of(i, serialized.summary)
    bundle, _ = code_bundle(project, result)
    if bundle is not None:
        (root / "bundle").mkdir()
        (root / bundle_path(bundle)).write_bytes(bundle.data)
    template = deploy_request(AdminSettings(endpoint="ENDPOINT", insecure=True, timeout=10), False, entities, bundle)
    (root / "template.json").write_text(json.dumps(template))
    return root


def _write_request(root: Path, endpoint: str) -> Path:
    req = json.loads((root / "template.json").read_text())
    req["admin"]["endpoint"] = endpoint
    (root / "request.json").write_text(json.dumps(req))
    return root / "request.json"


def _deploy_argv(user_python: str):
    from flytebuild.cli.userenv import runtime_command

    return [user_python, *runtime_command("deploy"), "request.json"]


def _run(root: Path, endpoint: str, user_python: str, timeout: float = 300):
    _write_request(root, endpoint)
    return subprocess.run(_deploy_argv(user_python), cwd=root, capture_output=True, text=True, timeout=timeout)


def _entities(admin) -> dict:
    return {k: admin.store.ids(k) for k in ("task", "workflow", "launch_plan")}


def test_missing_project_fails_before_anything_is_uploaded(request_dir, user_python):
    with flyteadmin(user_python, projects=("someone-else",)) as admin:
        proc = _run(request_dir, admin.endpoint, user_python)
        out = json.loads(proc.stdout)
        assert proc.returncode != 0 and out["error"]["kind"] == "project_not_found", proc.stdout
        assert "flytesnacks" in out["error"]["message"] and "nothing was uploaded" in out["error"]["message"]
        assert "flytectl create project" in out["error"]["fix"]
        assert admin.uploads.count == 0
        assert all(not ids for ids in _entities(admin).values())
        assert TRACEBACK not in proc.stderr


def test_unreachable_admin_is_a_clear_error(request_dir, user_python):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    req = json.loads((request_dir / "template.json").read_text())
    req["admin"].update(endpoint=f"127.0.0.1:{port}", timeout=2)
    (request_dir / "request.json").write_text(json.dumps(req))
    proc = subprocess.run(_deploy_argv(user_python), cwd=request_dir, capture_output=True, text=True, timeout=120)
    out = json.loads(proc.stdout)
    assert proc.returncode != 0 and out["error"]["kind"] == "unreachable"
    assert f"127.0.0.1:{port}" in out["error"]["message"] and out["error"]["fix"]
    assert TRACEBACK not in proc.stderr


def _dangling(admin) -> list:
    """References a stored entity makes to entities the server does not hold."""
    held = {(i["name"], i["version"]) for k in ("task", "workflow") for i in admin.store.ids(k)}
    missing = []
    for wf in admin.store.ids("workflow"):
        stored = admin.store.get("workflow", wf["project"], wf["domain"], wf["name"], wf["version"])
        for task in stored["closure"]["compiled_workflow"].get("tasks", []):
            ident = task["template"]["id"]
            if (ident["name"], ident["version"]) not in held:
                missing.append(("workflow", wf["name"], ident["name"]))
    for lp in admin.store.ids("launch_plan"):
        stored = admin.store.get("launch_plan", lp["project"], lp["domain"], lp["name"], lp["version"])
        ident = stored["spec"]["workflow_id"]
        if (ident["name"], ident["version"]) not in held:
            missing.append(("launch_plan", lp["name"], ident["name"]))
    return missing


def test_deploy_killed_at_random_points_converges(request_dir, user_python):
    rng = random.Random(SEED)
    with flyteadmin(user_python) as reference:  # the same deploy, never interrupted
        assert _run(request_dir, reference.endpoint, user_python).returncode == 0
        expected = {(k, i["project"], i["domain"], i["name"], i["version"])
                    for k, items in _entities(reference).items() for i in items}
    total = len(expected)
    signals = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
    deadline = time.monotonic() + 240  # bounded: the test never hangs
    with flyteadmin(user_python) as admin:
        _write_request(request_dir, admin.endpoint)
        kills = []
        for n in range(INTERRUPTIONS):
            assert time.monotonic() < deadline, f"interruptions took too long ({n} done)"
            # Kill after a random number of progress lines (0: while starting up), a random moment later.
            after_lines, extra = rng.randint(0, total), rng.uniform(0, 0.05)
            sig = rng.choice(signals)
            proc = subprocess.Popen(_deploy_argv(user_python), cwd=request_dir, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            seen, buf = 0, b""
            while seen < after_lines and proc.poll() is None:
                ready, _, _ = select.select([proc.stderr], [], [], 1.0)
                if ready:
                    chunk = os.read(proc.stderr.fileno(), 4096)
                    buf += chunk
                    seen = sum(1 for line in buf.decode(errors="replace").splitlines()
                               if line.strip().startswith(("registered", "unchanged", "uploading")))
            time.sleep(extra)
            finished = proc.poll() is not None
            if not finished:
                proc.send_signal(sig)
            _, err = proc.communicate(timeout=60)
            kills.append((after_lines, sig.name, finished))
            if sig != signal.SIGKILL or finished:  # a process that can answer a signal answers it in words
                assert TRACEBACK.encode() not in buf + err, (kills[-1], (buf + err).decode()[-2000:])
            # never a duplicate, never a dangling reference, whatever the moment of death
            ids = _entities(admin)
            for kind, items in ids.items():
                keys = [(i["project"], i["domain"], i["name"], i["version"]) for i in items]
                assert len(keys) == len(set(keys)), f"duplicated {kind} after kill {n}: {keys}"
            assert _dangling(admin) == [], f"dangling after kill {n} ({kills[-1]})"
        assert sum(1 for _, _, finished in kills if not finished) >= INTERRUPTIONS // 2, kills
        final = subprocess.run(_deploy_argv(user_python), cwd=request_dir, capture_output=True, text=True,
                               timeout=300)
        assert final.returncode == 0, final.stdout + final.stderr
        summary = json.loads(final.stdout)
        held = [(k, i["project"], i["domain"], i["name"], i["version"]) for k, items in _entities(admin).items()
                for i in items]
        assert len(held) == len(set(held)) and set(held) == expected, (sorted(set(held) ^ expected))
        assert {(e["kind"], e["name"], e["version"]) for e in summary["entities"]} == {(k, n, v) for k, _, _, n, v
                                                                                      in expected}
        assert _dangling(admin) == []
        counters = admin.store.counters()
        assert all(c.get("conflicts", 0) == 0 for c in counters.values()), counters
        # a second complete run changes nothing
        again = json.loads(subprocess.run(_deploy_argv(user_python), cwd=request_dir, capture_output=True, text=True,
                                          timeout=300).stdout)
        assert again["counts"] == {"unchanged": total}, again["counts"]


def test_sigint_during_cli_deploy_exits_130_without_traceback(tmp_path, user_python):
    """A real SIGINT to `flytebuild deploy` while it registers (each FlyteAdmin answer slowed to 150 ms, the signal
    sent once the first entity was created): exit 130, one line, no traceback, nothing dangling."""
    import sys

    with flyteadmin(user_python, latency_ms=150) as admin:
        env = {**os.environ, "PYTHONPATH": str(REPO / "src/python"), "FLYTEBUILD_PYTHON": user_python}
        proc = subprocess.Popen([sys.executable, "-m", "flytebuild.cli", "-c", str(EXAMPLES), "deploy",
                                 "--endpoint", admin.endpoint, "--insecure", "--no-push-images", *WORKFLOWS],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 180
        while not any(n for rpc, n in admin.store.rpcs().items() if rpc.startswith("Create")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the deploy never reached FlyteAdmin"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, (proc.returncode, out, err)
        assert "interrupted" in err and TRACEBACK not in err, err
        assert _dangling(admin) == []
