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


# --- the ledger ---------------------------------------------------------------------------------------------------


def ledger_request(admin, pbs, ledger_dir, dry_run=False) -> dict:
    """A deploy request with a ledger: the entities carry their ids, as the front ends send them."""
    entities = []
    for p in pbs:
        name = p.stem.split("_", 1)[1].rsplit("_", 1)[0]
        entities.append({"file": str(p), "kind": KINDS[p.stem[-1]], "fast": False, "project": PROJECT,
                         "domain": DOMAIN, "name": name, "version": v(name)})
    return {"admin": {"endpoint": admin.endpoint, "insecure": True}, "dry_run": dry_run, "bundle": None,
            "entities": entities, "ledger": {"dir": str(ledger_dir)}}


def ledger_deploy(user_python, admin, tmp_path, pbs, ledger_dir, dry_run=False):
    """deploy.py with a ledger (`ledger_request`)."""
    request = ledger_request(admin, pbs, ledger_dir, dry_run)
    path = tmp_path / f"request{len(list(tmp_path.glob('request*')))}.json"
    path.write_text(json.dumps(request))
    proc = subprocess.run([user_python, *DEPLOY, str(path)], capture_output=True, text=True, timeout=300)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def created_since(admin, mark):
    delta = admin.since(mark)["counters"]
    return sum(delta.get(k, {}).get("created", 0) for k in ("task", "workflow", "launch_plan"))


def test_a_warm_ledger_makes_no_call_at_all(fresh_admin, user_python, tmp_path, baked_pbs):
    admin, ledger = fresh_admin, tmp_path / "ledger"
    rc, first, _ = ledger_deploy(user_python, admin, tmp_path, baked_pbs, ledger)
    assert rc == 0 and first["counts"] == {"registered": 8} and first["ledger"] == {"hits": 0}
    mark = admin.mark()
    rc, again, log = ledger_deploy(user_python, admin, tmp_path, baked_pbs, ledger)
    assert rc == 0 and again["counts"] == {"unchanged": 8} and again["ledger"]["hits"] == 8
    assert admin.since(mark)["rpcs"] == 0
    assert "(ledger)" in log
    # the same statuses without the ledger, from FlyteAdmin's answers
    rc, checked, _ = deploy(user_python, admin, tmp_path, baked_pbs)
    assert [(e["name"], e["status"]) for e in checked["entities"]] == [
        (e["name"], e["status"]) for e in again["entities"]]


def test_a_stale_ledger_entry_falls_back_to_get_and_is_repaired(fresh_admin, user_python, tmp_path, baked_pbs):
    admin, ledger = fresh_admin, tmp_path / "ledger"
    assert ledger_deploy(user_python, admin, tmp_path, baked_pbs, ledger)[0] == 0
    # The ledger's digest for one task disagrees with what we are deploying (an older build of flytebuild, a
    # hand edit): that entity is checked with Get, found unchanged, and the entry repaired.
    (part,) = ledger.glob("*.json")
    data = json.loads(part.read_text())
    key = next(k for k in data["entities"] if k.startswith("task/"))
    data["entities"][key] = "0" * 64
    part.write_text(json.dumps(data))
    mark = admin.mark()
    rc, again, _ = ledger_deploy(user_python, admin, tmp_path, baked_pbs, ledger)
    assert rc == 0 and again["counts"] == {"unchanged": 8} and again["ledger"]["hits"] == 7
    # the project check (before anything could be uploaded), the probe of one vouched-for entity, the stale one's Get
    assert admin.since(mark)["rpcs"] == 3
    assert created_since(admin, mark) == 0
    mark = admin.mark()
    assert ledger_deploy(user_python, admin, tmp_path, baked_pbs, ledger)[1]["ledger"]["hits"] == 8
    assert admin.since(mark)["rpcs"] == 0
    # an unreadable ledger is an empty one
    part.write_text("{not json")
    rc, again, _ = ledger_deploy(user_python, admin, tmp_path, baked_pbs, ledger)
    assert rc == 0 and again["counts"] == {"unchanged": 8} and again["ledger"]["hits"] == 0


def test_the_front_ends_ledger_answer_is_deploy_pys_own(fresh_admin, user_python, tmp_path, baked_pbs):
    """service/deploy.py answer_from_ledger (what the Pants rule asks before starting any deploy) runs deploy.py's
    own ledger code in this interpreter: the same summary and lines when the ledger vouches for everything, and
    no answer as soon as deploy.py would have to ask FlyteAdmin."""
    from flytebuild.service.deploy import answer_from_ledger, inline_entities

    admin, ledger = fresh_admin, tmp_path / "ledger"
    files = {str(p): p.read_bytes() for p in baked_pbs}
    request = ledger_request(admin, baked_pbs, ledger)
    assert answer_from_ledger(request, files) is None  # an empty ledger vouches for nothing
    assert ledger_deploy(user_python, admin, tmp_path, baked_pbs, ledger)[0] == 0
    for dry_run in (False, True):
        rc, summary, log = ledger_deploy(user_python, admin, tmp_path, baked_pbs, ledger, dry_run=dry_run)
        answer = answer_from_ledger(ledger_request(admin, baked_pbs, ledger, dry_run), files)
        assert rc == 0 and answer is not None and answer.summary == summary
        assert answer.log.splitlines() == [line for line in log.splitlines() if line.endswith("(ledger)")]
    # the entities' bytes inline (as Pants sends them): the same answer, no file read
    inline = inline_entities(request, files)
    inline["entities"] = [dict(e, file="gone.pb") for e in inline["entities"]]
    assert answer_from_ledger(inline, {}).summary == answer_from_ledger(request, files).summary
    # one entity's bytes differ from what the ledger recorded: deploy.py would ask, so no answer
    changed = dict(files)
    changed[str(baked_pbs[0])] += b"\n"
    assert answer_from_ledger(request, changed) is None
    # no ledger in the request, or another server: no answer either
    assert answer_from_ledger({**request, "ledger": None}, files) is None
    assert answer_from_ledger({**request, "admin": {"endpoint": "127.0.0.1:1", "insecure": True}}, files) is None


def test_a_wiped_server_is_registered_again_fully(fresh_admin, user_python, tmp_path, baked_pbs):
    admin, ledger = fresh_admin, tmp_path / "ledger"
    assert ledger_deploy(user_python, admin, tmp_path, baked_pbs, ledger)[0] == 0
    admin.wipe()
    assert admin.store.ids("task") == []
    # With nothing to deploy that the ledger does not vouch for, nothing is asked (the ledger's trade: 0 calls).
    mark = admin.mark()
    assert ledger_deploy(user_python, admin, tmp_path, baked_pbs, ledger)[1]["counts"] == {"unchanged": 8}
    assert admin.since(mark)["rpcs"] == 0
    # As soon as the deploy talks to FlyteAdmin (here: one workflow changed), the probe finds the server wiped and
    # every entity of the partition is checked and registered again, not only the changed one.
    changed = []
    for p in baked_pbs:
        data = p.read_bytes()
        if p.name.endswith("baked.workflows.wf_2.pb"):
            data = data.replace(b"n0", b"x0")
        out = tmp_path / p.name
        out.write_bytes(data)
        changed.append(out)
    mark = admin.mark()
    rc, again, log = ledger_deploy(user_python, admin, tmp_path, changed, ledger)
    assert rc == 0, again
    assert again["counts"] == {"registered": 8} and created_since(admin, mark) == 8
    assert "no longer holds" in log
    assert [len(admin.store.ids(k)) for k in ("task", "workflow", "launch_plan")] == [4, 2, 2]
    # and the ledger vouches for the new state
    mark = admin.mark()
    assert ledger_deploy(user_python, admin, tmp_path, changed, ledger)[1]["ledger"]["hits"] == 8
    assert admin.since(mark)["rpcs"] == 0


def test_two_checkouts_deploying_to_one_server(fresh_admin, user_python, tmp_path, baked_pbs):
    admin = fresh_admin
    one, two = tmp_path / "one-ledger", tmp_path / "two-ledger"
    assert ledger_deploy(user_python, admin, tmp_path, baked_pbs, one)[1]["counts"] == {"registered": 8}
    # The second checkout's ledger knows nothing: it asks, finds everything there, creates nothing.
    mark = admin.mark()
    rc, second, _ = ledger_deploy(user_python, admin, tmp_path, baked_pbs, two)
    assert rc == 0 and second["counts"] == {"unchanged": 8} and created_since(admin, mark) == 0
    # Both are warm now, each on its own.
    mark = admin.mark()
    for ledger in (one, two):
        assert ledger_deploy(user_python, admin, tmp_path, baked_pbs, ledger)[1]["ledger"]["hits"] == 8
    assert admin.since(mark)["rpcs"] == 0
    # Two deploys at once into one shared ledger directory (one user cache, two repos): both succeed, the entries
    # merge, FlyteAdmin keeps one copy of each entity.
    shared = tmp_path / "shared-ledger"
    admin.wipe()
    procs = []
    for i in range(2):
        entities = [{"file": str(p), "kind": KINDS[p.stem[-1]], "fast": False, "project": PROJECT, "domain": DOMAIN,
                     "name": p.stem.split("_", 1)[1].rsplit("_", 1)[0],
                     "version": v(p.stem.split("_", 1)[1].rsplit("_", 1)[0])} for p in baked_pbs]
        path = tmp_path / f"concurrent{i}.json"
        path.write_text(json.dumps({"admin": {"endpoint": admin.endpoint, "insecure": True}, "bundle": None,
                                    "entities": entities, "ledger": {"dir": str(shared)}}))
        procs.append(subprocess.Popen([user_python, *DEPLOY, str(path)], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [len(admin.store.ids(k)) for k in ("task", "workflow", "launch_plan")] == [4, 2, 2]
    mark = admin.mark()
    assert ledger_deploy(user_python, admin, tmp_path, baked_pbs, shared)[1]["ledger"]["hits"] == 8
    assert admin.since(mark)["rpcs"] == 0
