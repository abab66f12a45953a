"""End to end: the real ./pants flyte-deploy / package over the examples, registering over real gRPC with a
stand-in FlyteAdmin (FlyteAdmin's semantics: immutable versions, ALREADY_EXISTS, signed uploads)."""
import json
import re
import shutil
import subprocess
import tarfile

import pytest

from tests.deploy.conftest import DOMAIN, PROJECT, bundle_members, by_status, stored_task, task_container
from tests.support.flyteadmin.fixture import flyteadmin
from tests.support.runtime import runtime

HELPER = "examples/shared/helpers.py"
BAKED_TASKS = {"baked.data.log_summary", "baked.data.make_values", "baked.stats.normalize_values",
               "baked.stats.summarize"}
FAST_TASKS = {"mixed.fast_tasks.weights", "mixed.plain_tasks.make_range", "mixed.plain_tasks.total"}
FAST_FILES = {"mixed/__init__.py", "mixed/fast_tasks.py", "mixed/plain_tasks.py", "shared/__init__.py",
              "shared/helpers.py"}


def package(repo, address):
    """`./pants package <address>` into the copy's dist/ (emptied first); `.dir` is the target's output dir."""
    shutil.rmtree(repo.root / "dist", ignore_errors=True)
    proc = repo.pants("package", address, check=True)
    path, name = address.split(":")
    proc.dir = repo.root / "dist" / path.replace("/", ".") / name
    return proc


def override_args(admin, name: str, version: str) -> list:
    """The args of the primary containers of a stored workflow's node-level pod templates (with_overrides)."""
    template = admin.store.get("workflow", PROJECT, DOMAIN, name, version)["closure"]["compiled_workflow"]["primary"][
        "template"]
    out = []
    for node in template["nodes"]:
        pod = node.get("task_node", {}).get("overrides", {}).get("pod_template")
        if pod:
            primary = pod.get("primary_container_name") or "primary"
            out += [c.get("args", []) for c in pod["pod_spec"]["containers"] if c["name"] == primary]
    return out


def created(admin, mark) -> dict:
    delta = admin.since(mark)
    return {k: delta["counters"].get(k, {}).get("created", 0) for k in ("task", "workflow", "launch_plan")}


@pytest.fixture(scope="module")
def admin(user_python):
    with flyteadmin(user_python) as handle:
        yield handle


@pytest.fixture(scope="module")
def first(deploy_repo, admin):
    """The first deploy of every example, and what the plan says about it."""
    proc, summary = deploy_repo.deploy(admin)
    return {"proc": proc, "summary": summary, "plan": deploy_repo.plan()}


def test_first_deploy_registers_every_entity_once(first, admin):
    summary = first["summary"]
    assert summary["counts"]["registered"] == len(summary["entities"]) == 19
    assert summary["counts"]["failed"] == 0
    counters = admin.store.counters()
    assert {k: counters[k]["created"] for k in ("task", "workflow", "launch_plan")} == {
        "task": 10, "workflow": 4, "launch_plan": 5}
    assert all(counters[k]["conflicts"] == counters[k]["errors"] == 0 for k in ("task", "workflow", "launch_plan"))
    # every entity under the version the plan gave it
    planned = {t["name"]: t["version"] for wf in first["plan"]["workflows"] for t in wf["tasks"]}
    registered = {e["name"]: e["version"] for e in summary["entities"] if e["kind"] == "task"}
    assert registered == planned
    assert {i["name"]: i["version"] for i in admin.store.ids("task")} == planned
    # one bundle, uploaded once, whose size is what was uploaded
    assert admin.uploads.count == 1
    assert summary["bytes_uploaded"] == admin.uploads.total_bytes == summary["bundle"]["size"] > 0


def test_table_output_is_readable(deploy_repo, admin, first):
    proc = deploy_repo.pants(f"--flyte-endpoint={admin.endpoint}", "--flyte-insecure", "flyte-deploy", "--dry-run",
                             "examples/mixed:wf", check=True)
    out = proc.stdout
    assert "0 would register, 7 unchanged, 0 failed" in out
    assert "mixed.fast_tasks.weights" in out and "unchanged" in out
    assert "bytes uploaded: 0" in out


def test_stored_container_args_fast_only_where_the_code_is_not_in_the_image(first, admin):
    native = admin.uploads.items()[0]["native_url"]
    assert first["summary"]["bundle"]["native_url"] == native
    for e in first["summary"]["entities"]:
        if e["kind"] != "task":
            continue
        template = stored_task(admin, e["name"], e["version"])
        args = task_container(template).get("args", [])
        if e["name"] in FAST_TASKS:
            assert args[:3] == ["pyflyte-fast-execute", "--additional-distribution", native], e["name"]
            assert "{{ .remote_package_path }}" not in args
        else:
            assert "pyflyte-fast-execute" not in args, e["name"]
            assert not any("--additional-distribution" in a for a in args)
    # the node whose with_overrides pod template holds the fast task `total`'s container finds the bundle too
    wf = next(e for e in first["summary"]["entities"] if e["kind"] == "workflow" and e["name"] == "mixed.workflows.wf")
    overrides = override_args(admin, wf["name"], wf["version"])
    assert len(overrides) == 1
    assert overrides[0][:3] == ["pyflyte-fast-execute", "--additional-distribution", native]
    # baked tasks run from their content-tagged image
    baked = next(e for e in first["summary"]["entities"] if e["name"] == "baked.stats.summarize")
    image = stored_task(admin, baked["name"], baked["version"])["container"]["image"]
    plan_images = {i["address"]: i["ref"] for i in first["plan"]["images"]}
    assert image == plan_images["examples/baked:image"]


def test_bundle_holds_exactly_the_fast_tasks_files(first, admin, deploy_repo):
    members = bundle_members(admin.uploads.items()[0]["path"])
    assert set(members) == FAST_FILES
    for path, data in members.items():
        assert data == (deploy_repo.root / "examples" / path).read_bytes()
    name = first["summary"]["bundle"]["name"]
    assert re.fullmatch(r"fast[0-9a-f]{64}\.tar\.gz", name)


def test_deploy_again_registers_and_uploads_nothing(deploy_repo, admin, first):
    mark = admin.mark()
    _, summary = deploy_repo.deploy(admin)
    assert summary["counts"]["registered"] == 0 and summary["counts"]["unchanged"] == 19
    assert summary["bytes_uploaded"] == 0
    delta = admin.since(mark)
    assert created(admin, mark) == {"task": 0, "workflow": 0, "launch_plan": 0}
    assert delta["uploads"] == 0 and delta["bytes"] == 0
    # the deploy ledger (in the repo's .pants.d) vouches for every entity: FlyteAdmin is not asked at all
    assert delta["rpcs"] == 0 and summary["ledger"]["hits"] == 19


def local_processes(proc) -> int:
    """Pants' own count of the processes a run executed locally (`--stats-log`: every sandboxed process, and the
    waiter a warm-worker request runs under): 0 means no deploy ran, neither a process nor a worker fork."""
    counters = dict(re.findall(r"^\s*(\w+): (\d+)\s*$", proc.stderr, re.M))
    assert "local_cache_requests" in counters, proc.stderr[-3000:]  # the counters were printed
    return int(counters.get("local_execution_requests", 0))


def test_nothing_changed_runs_no_deploy_at_all_until_the_ledger_is_gone(deploy_repo, admin, first):
    """The rule answers from the ledger before any deploy starts: no process, no fork, no gRPC call. Without the
    ledger the deploy runs again (it asks FlyteAdmin: only a deploy does) and warms the ledger. (A warm-worker
    deploy that answers within the rule's 0.5 s grace starts no Pants process, so the process counter shows only
    that no sandboxed deploy ran.)"""
    options = ("--stats-log",)
    deploy_repo.deploy(admin, options=options)  # whatever earlier tests left: the ledger is warm now
    mark = admin.mark()
    proc, summary = deploy_repo.deploy(admin, options=options)
    assert summary["counts"]["unchanged"] == 19 and summary["counts"]["registered"] == 0
    assert summary["ledger"] == {"hits": 19, "calls": 0}
    assert local_processes(proc) == 0 and admin.since(mark)["rpcs"] == 0
    shutil.rmtree(deploy_repo.root / ".bootstrap/pants.d/flytebuild/ledger")
    proc, summary = deploy_repo.deploy(admin, options=options)
    assert summary["counts"]["unchanged"] == 19 and summary["ledger"]["hits"] == 0
    assert admin.since(mark)["rpcs"] > 0
    mark = admin.mark()
    proc, summary = deploy_repo.deploy(admin, options=options)
    assert summary["ledger"]["hits"] == 19 and local_processes(proc) == 0 and admin.since(mark)["rpcs"] == 0


def test_a_wiped_server_is_registered_again_at_the_next_change(deploy_repo, fresh_admin):
    """The ledger's trade, through the rule: with nothing changed the wiped server is not asked (the rule answers,
    as deploy.py would); the next deploy that has something to register finds it wiped and registers everything."""
    _, summary = deploy_repo.deploy(fresh_admin, "examples/mixed:wf")
    assert summary["counts"]["failed"] == 0
    everything = len(summary["entities"])
    fresh_admin.wipe()
    mark = fresh_admin.mark()
    _, summary = deploy_repo.deploy(fresh_admin, "examples/mixed:wf")
    assert summary["counts"]["unchanged"] == everything and fresh_admin.since(mark)["rpcs"] == 0
    # Without the ledger ([flyte].ledger = false) the deploy asks about every entity: all registered again.
    _, summary = deploy_repo.deploy(fresh_admin, "examples/mixed:wf", options=("--no-flyte-ledger",))
    assert summary["counts"]["registered"] == everything and "ledger" not in summary
    fresh_admin.wipe()  # the ledger was left as it was: it vouches again, until the next change finds the wipe
    module = "examples/mixed/fast_tasks.py"
    original = deploy_repo.read(module)
    deploy_repo.write(module, original + "\n# an edit\n")
    try:
        _, summary = deploy_repo.deploy(fresh_admin, "examples/mixed:wf")
    finally:
        deploy_repo.write(module, original)
    assert summary["counts"]["registered"] == everything and summary["counts"]["failed"] == 0
    assert [len(fresh_admin.store.ids(k)) for k in ("task", "workflow", "launch_plan")] == [
        sum(e["kind"] == k for e in summary["entities"]) for k in ("task", "workflow", "launch_plan")]


def test_editing_the_shared_helper_registers_exactly_its_dependents(deploy_repo, admin, first):
    original = deploy_repo.read(HELPER)
    deploy_repo.write(HELPER, original + "\n\ndef extra():\n    return 42\n")
    try:
        mark = admin.mark()
        _, dry = deploy_repo.deploy(admin, dry_run=True)
        assert created(admin, mark) == {"task": 0, "workflow": 0, "launch_plan": 0}
        assert admin.since(mark)["uploads"] == 0
        _, summary = deploy_repo.deploy(admin)
        # the baked image bakes the helper (a new image for every baked task); weights imports it
        assert by_status(summary, "registered", "task") == BAKED_TASKS | {"mixed.fast_tasks.weights"}
        assert by_status(summary, "registered", "workflow") == {
            "baked.workflows.prepare", "baked.workflows.wf", "mixed.workflows.wf"}
        assert by_status(summary, "registered", "launch_plan") == {
            "baked.workflows.lp", "baked.workflows.prepare", "baked.workflows.wf", "mixed.workflows.wf"}
        assert by_status(summary, "unchanged") == {
            "mixed.plain_tasks.make_range", "mixed.plain_tasks.total", "mixed.spec_tasks.label",
            "mixed.containers.echo", "mixed.workflows.container_wf",
        } | {e["name"] for e in summary["entities"] if "map_square" in e["name"]}
        assert [(e["name"], e["status"]) for e in dry["entities"]] == [
            (e["name"], e["status"]) for e in summary["entities"]]
        assert created(admin, mark) == {"task": 5, "workflow": 3, "launch_plan": 4}
        # a new bundle (the helper changed), and only that
        delta = admin.since(mark)
        assert delta["uploads"] == 1 and delta["bytes"] == summary["bytes_uploaded"] > 0
        new_bundle = admin.uploads.items()[-1]
        assert bundle_members(new_bundle["path"])["shared/helpers.py"] == deploy_repo.read(HELPER).encode()
        # the unchanged fast tasks keep their registration (and the bundle it names, which holds their code)
        total = next(e for e in summary["entities"] if e["name"] == "mixed.plain_tasks.total")
        stored = stored_task(admin, total["name"], total["version"])
        assert new_bundle["native_url"] not in task_container(stored)["args"]
    finally:
        deploy_repo.write(HELPER, original)
    # back to the original: every version exists already
    mark = admin.mark()
    _, summary = deploy_repo.deploy(admin)
    assert summary["counts"]["registered"] == 0 and summary["bytes_uploaded"] == 0
    assert created(admin, mark) == {"task": 0, "workflow": 0, "launch_plan": 0}


def test_editing_a_file_no_task_uses_registers_nothing(deploy_repo, admin, first):
    deploy_repo.write("examples/mixed/unused.py", '"""Not imported by any task."""\nVALUE = 1\n')
    try:
        mark = admin.mark()
        _, summary = deploy_repo.deploy(admin)
        assert summary["counts"]["registered"] == 0 and summary["bytes_uploaded"] == 0
        assert created(admin, mark) == {"task": 0, "workflow": 0, "launch_plan": 0}
        assert admin.since(mark)["uploads"] == 0
    finally:
        (deploy_repo.root / "examples/mixed/unused.py").unlink()


def test_all_baked_example_builds_and_uploads_no_bundle(deploy_repo, fresh_admin, tmp_path):
    _, summary = deploy_repo.deploy(fresh_admin, "examples/baked::")
    assert summary["bundle"] is None and summary["bytes_uploaded"] == 0
    assert by_status(summary, "registered", "task") == BAKED_TASKS
    state = fresh_admin.store.state()
    assert state["uploads"] == [] and "upload_location" not in state["counters"]  # not even asked for a location
    out = package(deploy_repo, "examples/baked:wf")
    assert "no code bundle" in out.stderr
    assert sorted(p.name for p in out.dir.iterdir()) == ["flyte-package.tgz"]


def test_package_writes_only_the_registration_archive(deploy_repo):
    """`package` on a flyte_workflow is ours alone: no `.pex` from Pants' pex_binary packager beside it."""
    out = package(deploy_repo, "examples/mixed:wf")
    dist = deploy_repo.root / "dist"
    written = sorted(str(p.relative_to(dist)) for p in dist.rglob("*") if p.is_file())
    assert written and all(w.startswith("examples.mixed/wf/") for w in written), written
    assert ".pex" not in out.stderr


def test_mixed_example_one_bundle_with_exactly_the_fast_files(deploy_repo, fresh_admin):
    _, summary = deploy_repo.deploy(fresh_admin, "examples/mixed::")
    uploads = fresh_admin.uploads.items()
    assert len(uploads) == 1 and uploads[0]["native_url"].endswith(summary["bundle"]["name"])
    assert set(bundle_members(uploads[0]["path"])) == FAST_FILES
    assert by_status(summary, "registered", "task") >= FAST_TASKS


def test_package_is_the_pyflyte_layout_and_reproducible(deploy_repo, tmp_path):
    outs = []
    for i in range(2):
        out = package(deploy_repo, "examples/mixed:wf")
        outs.append(tmp_path / f"out{i}")
        shutil.copytree(out.dir, outs[-1])
    files = sorted(p.name for p in outs[0].iterdir())
    assert files[0].startswith("fast") and files[1] == "flyte-package.tgz"
    for name in files:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()
    with tarfile.open(outs[0] / "flyte-package.tgz", "r:gz") as tar:
        names = tar.getnames()
    pbs = [n for n in names if n.endswith(".pb")]
    assert len(pbs) == 7 and all(re.fullmatch(r"\d+_[\w.-]+_[123]\.pb", n) for n in pbs)
    assert [n[-4:] for n in pbs] == sorted(n[-4:] for n in pbs)  # tasks, then workflows, then launch plans
    assert files[0] in names  # the bundle rides along, as in pyflyte's archive


def _register_files(user_python, admin, tmp_path, files, fast_names=(), bundle=None):
    """runtime/deploy.py run directly over some of `package`'s .pb files (what a deploy cut short leaves)."""
    request = {
        "admin": {"endpoint": admin.endpoint, "insecure": True},
        "dry_run": False,
        "bundle": bundle,
        "dest_dir": ".",
        "entities": [
            {
                "file": str(f),
                "kind": {"1": "task", "2": "workflow", "3": "launch_plan"}[f.stem[-1]],
                "fast": any(n in f.name for n in fast_names),
            }
            for f in files
        ],
    }
    req = tmp_path / "request.json"
    req.write_text(json.dumps(request))
    return subprocess.run([user_python, *runtime("deploy"), str(req)], capture_output=True, text=True, timeout=300)


def _packaged(deploy_repo, tmp_path):
    built = package(deploy_repo, "examples/mixed:wf")
    out = tmp_path / "pb"
    with tarfile.open(built.dir / "flyte-package.tgz", "r:gz") as tar:
        tar.extractall(out)
    pbs = sorted(out.glob("*.pb"))
    bundle = next(out.glob("fast*.tar.gz"))
    return pbs, {"path": str(bundle), "name": bundle.name}


def test_interrupted_deploy_is_completed_by_a_rerun_without_duplicates(deploy_repo, fresh_admin, user_python, tmp_path):
    pbs, bundle = _packaged(deploy_repo, tmp_path)
    # A deploy registers in this order; cut it after three tasks.
    proc = _register_files(user_python, fresh_admin, tmp_path, pbs[:3], FAST_TASKS, bundle)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert fresh_admin.store.counter("task") == 3
    _, summary = deploy_repo.deploy(fresh_admin, "examples/mixed:wf")
    assert summary["counts"] == {"registered": 4, "unchanged": 3, "failed": 0, "blocked": 0}
    counters = fresh_admin.store.counters()
    assert {k: counters[k]["created"] for k in ("task", "workflow", "launch_plan")} == {
        "task": 5,
        "workflow": 1,
        "launch_plan": 1,
    }
    assert all(
        counters[k]["already_exists"] == counters[k]["conflicts"] == 0 for k in ("task", "workflow", "launch_plan")
    )
    assert [len(fresh_admin.store.ids(k)) for k in ("task", "workflow", "launch_plan")] == [5, 1, 1]


def test_a_workflow_registered_after_its_fast_tasks_still_finds_the_bundle(
    deploy_repo, fresh_admin, user_python, tmp_path
):
    pbs, bundle = _packaged(deploy_repo, tmp_path)
    tasks = [p for p in pbs if p.stem.endswith("_1")]
    proc = _register_files(user_python, fresh_admin, tmp_path, tasks, FAST_TASKS, bundle)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    native = json.loads(proc.stdout)["bundle"]["native_url"]
    # The tasks are there: this deploy registers only the workflow (whose `total` node overrides run a fast task).
    proc = _register_files(user_python, fresh_admin, tmp_path, pbs, FAST_TASKS, bundle)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["counts"] == {"unchanged": 5, "registered": 2}
    assert summary["bundle"]["present"] is True and summary["bytes_uploaded"] == 0 and fresh_admin.uploads.count == 1
    wf = fresh_admin.store.ids("workflow")[0]
    args = override_args(fresh_admin, wf["name"], wf["version"])
    assert args and args[0][:3] == ["pyflyte-fast-execute", "--additional-distribution", native]
    assert not any("{{ .remote_package_path }}" in a for a in args[0])
    # and comparing with the stored copy (filled) keeps it unchanged
    proc = _register_files(user_python, fresh_admin, tmp_path, pbs, FAST_TASKS, bundle)
    assert json.loads(proc.stdout)["counts"] == {"unchanged": 7}, proc.stdout + proc.stderr


def test_a_conflicting_task_fails_and_its_workflow_is_never_registered(deploy_repo, fresh_admin, user_python, tmp_path):
    pbs, _ = _packaged(deploy_repo, tmp_path)
    label_pb = next(p for p in pbs if "mixed.spec_tasks.label" in p.name)
    # Someone registered this task's id with other content (another image).
    data = label_pb.read_bytes()
    image = re.search(rb"localhost:5000/flytebuild/mixed-spec:[0-9a-f]{32}", data).group(0)
    label_pb.write_bytes(data.replace(image, image[:-6] + b"ffffff"))
    assert _register_files(user_python, fresh_admin, tmp_path, [label_pb]).returncode == 0
    proc, summary = deploy_repo.deploy(fresh_admin, "examples/mixed:wf", check=False)
    assert proc.returncode != 0
    statuses = {(e["kind"], e["name"]): e for e in summary["entities"]}
    label = statuses[("task", "mixed.spec_tasks.label")]
    assert label["status"] == "failed" and "already registered with different content" in label["message"]
    assert "ffffff" in label["message"]  # names what differs
    workflow = statuses[("workflow", "mixed.workflows.wf")]
    assert workflow["status"] == "blocked" and "mixed.spec_tasks.label" in workflow["message"]
    assert statuses[("launch_plan", "mixed.workflows.wf")]["status"] == "blocked"
    assert {n for (k, n), e in statuses.items() if k == "task" and e["status"] == "registered"} == FAST_TASKS | {
        e["name"] for e in summary["entities"] if "map_square" in e["name"]
    }
    assert fresh_admin.store.ids("workflow") == [] and fresh_admin.store.ids("launch_plan") == []
    assert "not registered" in proc.stderr and "Traceback" not in proc.stderr


def test_unreachable_endpoint_is_a_clear_error(deploy_repo):
    proc = deploy_repo.pants(
        "--flyte-endpoint=127.0.0.1:1",
        "--flyte-insecure",
        "--flyte-admin-timeout=2",
        "flyte-deploy",
        "--no-push-images",
        "examples/baked:wf",
    )
    assert proc.returncode != 0
    assert "cannot reach FlyteAdmin at 127.0.0.1:1" in proc.stderr
    assert "Fix:" in proc.stderr and "[flyte].endpoint" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout.strip() == ""


def test_a_flytekit_config_file_is_enough(deploy_repo, fresh_admin, tmp_path):
    config = fresh_admin.write_config(tmp_path / "config.yaml")
    proc = deploy_repo.pants(
        f"--flyte-config={config}", "flyte-deploy", "--dry-run", "--format=json", "examples/baked:wf", check=True
    )
    summary = json.loads(proc.stdout)
    assert summary["endpoint"].endswith(fresh_admin.endpoint) and summary["dry_run"] is True
    assert summary["counts"]["registered"] == len(summary["entities"]) == 8
    assert fresh_admin.store.ids("task") == []  # a dry run changes nothing


def test_no_endpoint_is_a_clear_error_before_any_work(deploy_repo):
    proc = deploy_repo.pants("flyte-deploy", "examples/baked:wf")
    assert proc.returncode != 0
    assert "No FlyteAdmin to deploy to" in proc.stderr and "[flyte].endpoint" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = deploy_repo.pants("--flyte-config=nope/config.yaml", "flyte-deploy", "examples/baked:wf")
    assert proc.returncode != 0 and "nope/config.yaml" in proc.stderr and "does not exist" in proc.stderr
