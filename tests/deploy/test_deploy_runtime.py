"""runtime/deploy.py on its own (no Pants): serialize.py's output registered over real gRPC with the stand-in
FlyteAdmin, to pin down the per-entity decisions."""
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.deploy.conftest import DOMAIN, PROJECT
from tests.support.runtime import runtime

REPO = Path(__file__).resolve().parents[2]
SERIALIZE = runtime("serialize")
DEPLOY = runtime("deploy")
BAKED_TASKS = ["baked.data.log_summary", "baked.data.make_values", "baked.stats.normalize_values",
               "baked.stats.summarize"]
KINDS = {"1": "task", "2": "workflow", "3": "launch_plan"}


def v(name):
    return hashlib.md5(name.encode()).hexdigest()


@pytest.fixture(scope="module")
def baked_pbs(user_python, tmp_path_factory):
    """baked.workflows:wf serialized (all tasks baked: no bundle)."""
    base = tmp_path_factory.mktemp("baked")
    request = {
        "entrypoint": "baked.workflows:wf", "project": PROJECT, "domain": DOMAIN,
        "tasks": {t: {"mode": "baked", "image": "localhost:5000/flytebuild/baked:1", "version": v(t)}
                  for t in BAKED_TASKS},
        "workflows": {w: {"version": v(w)} for w in ("baked.workflows.prepare", "baked.workflows.wf")},
        "bundle": None,
    }
    (base / "request.json").write_text(json.dumps(request))
    proc = subprocess.run([user_python, *SERIALIZE, str(base / "request.json"), str(base / "out")], cwd=REPO,
                          env=dict(os.environ, PYTHONPATH="examples"), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return sorted((base / "out").glob("*.pb"))


def deploy(user_python, admin, tmp_path, pbs, dry_run=False):
    request = {"admin": {"endpoint": admin.endpoint, "insecure": True}, "dry_run": dry_run, "bundle": None,
               "entities": [{"file": str(p), "kind": KINDS[p.stem[-1]], "fast": False} for p in pbs]}
    path = tmp_path / f"request{len(list(tmp_path.glob('request*')))}.json"
    path.write_text(json.dumps(request))
    proc = subprocess.run([user_python, *DEPLOY, str(path)], capture_output=True, text=True, timeout=300)
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def statuses(summary):
    return {(e["kind"], e["name"]): e for e in summary["entities"]}


def test_unchanged_entities_are_found_by_get_and_nothing_is_sent(fresh_admin, user_python, tmp_path, baked_pbs):
    admin = fresh_admin
    rc, first, _ = deploy(user_python, admin, tmp_path, baked_pbs)
    assert rc == 0 and first["counts"] == {"registered": 8}
    mark = admin.mark()
    rc, again, log = deploy(user_python, admin, tmp_path, baked_pbs)
    assert rc == 0 and again["counts"] == {"unchanged": 8}
    # not one Create call: every entity was recognised from FlyteAdmin's stored copy
    delta = admin.since(mark)["counters"]
    assert all(delta.get(k, {}).get("calls", 0) == 0 for k in ("task", "workflow", "launch_plan"))
    assert "unchanged" in log


def test_a_workflow_registered_with_other_content_fails_and_blocks_its_launch_plan(fresh_admin, user_python,
                                                                                   tmp_path, baked_pbs):
    admin = fresh_admin
    assert deploy(user_python, admin, tmp_path, baked_pbs)[0] == 0
    # The same ids, a workflow with other node ids (same length: the protobuf stays valid).
    changed = []
    for p in baked_pbs:
        data = p.read_bytes()
        if p.name.endswith("baked.workflows.wf_2.pb"):
            assert b"n0" in data
            data = data.replace(b"n0", b"x0")
        out = tmp_path / p.name
        out.write_bytes(data)
        changed.append(out)
    mark = admin.mark()
    rc, dry, _ = deploy(user_python, admin, tmp_path, changed, dry_run=True)
    assert rc == 1
    wf = statuses(dry)[("workflow", "baked.workflows.wf")]
    assert wf["status"] == "failed" and "node" in wf["message"]
    assert statuses(dry)[("launch_plan", "baked.workflows.wf")]["status"] == "blocked"
    assert statuses(dry)[("workflow", "baked.workflows.prepare")]["status"] == "unchanged"
    rc, real, _ = deploy(user_python, admin, tmp_path, changed)
    assert rc == 1
    wf = statuses(real)[("workflow", "baked.workflows.wf")]
    # FlyteAdmin itself judged (its stored workflow is compiled): its own words are reported
    assert wf["status"] == "failed" and "with different structure already exists" in wf["message"]
    assert statuses(real)[("launch_plan", "baked.workflows.wf")]["status"] == "blocked"
    delta = admin.since(mark)["counters"]
    assert all(delta.get(k, {}).get("created", 0) == 0 for k in ("task", "workflow", "launch_plan"))
