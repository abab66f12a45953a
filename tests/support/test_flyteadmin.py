"""The stand-in FlyteAdmin, driven by flytekit's real clients (run in the user's environment)."""
import base64
import hashlib
import json
import os
import socket
import subprocess
import tarfile
import tempfile
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.flyteadmin.fixture import flyteadmin

REPO = Path(__file__).resolve().parents[2]
PROJECT, DOMAIN = "flytesnacks", "development"

# Shared by the driver scripts: a real task/workflow/launch plan serialized by flytekit, the
# friendly client, and a raw gRPC stub to observe status codes exactly.
PRELUDE = textwrap.dedent(
    """
    import json, sys
    import grpc
    from flytekit import task, workflow, LaunchPlan
    from flytekit.clients.friendly import SynchronousFlyteClient
    from flytekit.configuration import Config, PlatformConfig, SerializationSettings, ImageConfig
    from flytekit.exceptions import user as user_exc
    from flytekit.models.core.identifier import Identifier, ResourceType
    from flytekit.remote import FlyteRemote
    from flytekit.tools.translator import get_serializable
    from flyteidl.service import admin_pb2_grpc
    from flyteidl.admin import task_pb2, workflow_pb2, launch_plan_pb2, common_pb2

    ENDPOINT = sys.argv[1]
    PROJECT, DOMAIN = "flytesnacks", "development"
    platform = PlatformConfig(endpoint=ENDPOINT, insecure=True)
    client = SynchronousFlyteClient(platform)
    remote = FlyteRemote(Config(platform=platform), default_project=PROJECT, default_domain=DOMAIN)
    stub = admin_pb2_grpc.AdminServiceStub(grpc.insecure_channel(ENDPOINT))

    def settings(image="example.com/img:1"):
        return SerializationSettings(project=PROJECT, domain=DOMAIN, version="v1",
                                     image_config=ImageConfig.auto(img_name=image))

    def serialize(entity, image="example.com/img:1"):
        from collections import OrderedDict
        return get_serializable(OrderedDict(), settings(image), entity)

    def code(fn):
        try:
            fn()
            return "OK"
        except grpc.RpcError as e:
            return e.code().name + ": " + e.details()

    @task
    def double(x: int) -> int:
        return 2 * x

    @task
    def inc(x: int) -> int:
        return x + 1

    @workflow
    def wf(x: int = 3) -> int:
        return inc(x=double(x=x))

    out = {}
    """
)


def run_user(user_python: str, body: str, *args: str, cwd=None) -> dict:
    """Run PRELUDE + body in the user's environment; the script sets `out`, returned as JSON."""
    script = PRELUDE + textwrap.dedent(body) + "\nprint('RESULT ' + json.dumps(out))\n"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    with tempfile.TemporaryDirectory(prefix="flyteadmin-driver-") as tmp:
        path = Path(tmp) / "driver.py"  # flytekit reads task source, so not `python -c`
        path.write_text(script)
        proc = subprocess.run([user_python, str(path), *args], capture_output=True, text=True, env=env,
                              cwd=cwd or tmp, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_register_task_identical_is_already_exists_different_is_rejected(admin, user_python):
    out = run_user(user_python, """
        t = serialize(double)
        req = lambda spec: task_pb2.TaskCreateRequest(id=spec.template.id.to_flyte_idl(), spec=spec.to_flyte_idl())
        out["first"] = code(lambda: stub.CreateTask(req(t)))
        out["second"] = code(lambda: stub.CreateTask(req(t)))
        try:
            client.create_task(t.template.id, t)
            out["friendly"] = "no error"
        except user_exc.FlyteEntityAlreadyExistsException:
            out["friendly"] = "FlyteEntityAlreadyExistsException"
        # FlyteRemote treats AlreadyExists as success
        remote.register_task(double, settings(), version="v1")
        out["remote"] = "ok"
        changed = serialize(double, image="example.com/img:2")  # same id, different container image
        out["different"] = code(lambda: stub.CreateTask(req(changed)))
        try:
            remote.register_task(double, settings(image="example.com/img:2"), version="v1")
            out["remote_different"] = "no error"
        except Exception as e:
            out["remote_different"] = type(e).__name__
        got = client.get_task(t.template.id)
        out["got_image"] = got.closure.compiled_task.template.container.image
    """, admin.endpoint)
    assert out["first"] == "OK"
    assert out["second"] == "ALREADY_EXISTS: task with identical structure already exists"
    assert out["friendly"] == "FlyteEntityAlreadyExistsException"
    assert out["remote"] == "ok"
    assert out["different"].startswith("INVALID_ARGUMENT: ")
    assert (
        "task with different structure already exists. (Please register a new version of the task)" in out["different"]
    )
    assert "example.com/img:2" in out["different"]  # the changed path is listed
    assert out["remote_different"] != "no error"
    assert out["got_image"] == "example.com/img:1"  # versions are immutable
    # flytekit's client retries every failed call 3 times (RetryExceptionWrapperInterceptor): the friendly
    # client and FlyteRemote each reach the server 4 times per refused create; the raw stub once.
    c = admin.store.counter
    assert (c("task", "calls"), c("task", "created"), c("task", "already_exists"), c("task", "conflicts")) == (
        1 + 1 + 4 + 4 + 1 + 4,
        1,
        1 + 4 + 4,
        1 + 4,
    )
    stored = admin.store.get("task", PROJECT, DOMAIN, admin.store.ids("task")[0]["name"], "v1")
    assert stored["closure"]["compiled_task"]["template"]["container"]["image"] == "example.com/img:1"
    assert admin.store.pb_path("task", PROJECT, DOMAIN, stored["id"]["name"], "v1").is_file()


def test_workflow_needs_registered_tasks_and_launch_plan_needs_workflow(admin, user_python):
    out = run_user(
        user_python,
        """
        wf_ser = serialize(wf)
        wreq = workflow_pb2.WorkflowCreateRequest(id=wf_ser.template.id.to_flyte_idl(), spec=wf_ser.to_flyte_idl())
        lp = serialize(LaunchPlan.get_or_create(wf))
        lreq = launch_plan_pb2.LaunchPlanCreateRequest(id=lp.id.to_flyte_idl(), spec=lp.spec.to_flyte_idl())
        out["lp_without_wf"] = code(lambda: stub.CreateLaunchPlan(lreq))
        out["wf_without_tasks"] = code(lambda: stub.CreateWorkflow(wreq))
        t1 = serialize(double)
        stub.CreateTask(task_pb2.TaskCreateRequest(id=t1.template.id.to_flyte_idl(), spec=t1.to_flyte_idl()))
        out["wf_one_task_missing"] = code(lambda: stub.CreateWorkflow(wreq))
        t2 = serialize(inc)
        stub.CreateTask(task_pb2.TaskCreateRequest(id=t2.template.id.to_flyte_idl(), spec=t2.to_flyte_idl()))
        out["wf"] = code(lambda: stub.CreateWorkflow(wreq))
        out["wf_again"] = code(lambda: stub.CreateWorkflow(wreq))
        out["lp"] = code(lambda: stub.CreateLaunchPlan(lreq))
        out["lp_again"] = code(lambda: stub.CreateLaunchPlan(lreq))
        # same ids, different structure
        wreq.spec.template.metadata_defaults.interruptible = True
        out["wf_different"] = code(lambda: stub.CreateWorkflow(wreq))
        lreq.spec.default_inputs.parameters["x"].default.scalar.primitive.integer = 4
        out["lp_different"] = code(lambda: stub.CreateLaunchPlan(lreq))
        lreq.spec.default_inputs.parameters["y"].CopyFrom(lreq.spec.default_inputs.parameters["x"])
        lreq.id.version = "v2"
        out["lp_unknown_input"] = code(lambda: stub.CreateLaunchPlan(lreq))
        # fetched back through FlyteRemote: the compiled closure carries the tasks
        out["wf_name"] = wf_ser.template.id.name
        fetched = remote.fetch_workflow(name=wf_ser.template.id.name, version="v1")
        out["fetched_nodes"] = sorted(n.id for n in fetched.nodes)
        fetched_lp = remote.fetch_launch_plan(name=lp.id.name, version="v1")
        out["lp_default_x"] = fetched_lp.default_inputs.parameters["x"].default.scalar.primitive.integer
        out["unknown_project"] = code(lambda: stub.CreateTask(task_pb2.TaskCreateRequest(
            id=t1.template.id.to_flyte_idl().__class__(resource_type=1, project="nope", domain="development",
                                                       name="t", version="v1"),
            spec=t1.to_flyte_idl())))
    """,
        admin.endpoint,
    )
    assert out["lp_without_wf"].startswith("NOT_FOUND: missing entity of type workflow with identifier")
    assert out["wf_without_tasks"].startswith("INVALID_ARGUMENT: failed to compile workflow for [")
    assert "missing entity of type task" in out["wf_without_tasks"]
    assert "missing entity of type task" in out["wf_one_task_missing"] and "inc" in out["wf_one_task_missing"]
    assert out["wf"] == "OK" and out["lp"] == "OK"
    assert out["wf_again"] == "ALREADY_EXISTS: workflow with identical structure already exists"
    assert out["lp_again"] == "ALREADY_EXISTS: launch plan with identical structure already exists"
    assert out["wf_different"].startswith(
        f"INVALID_ARGUMENT: {out['wf_name']} workflow with different structure already exists. "
        "(Please register a new version of the workflow):"
    )
    assert "interruptible" in out["wf_different"]
    assert out["lp_different"].startswith(
        f"INVALID_ARGUMENT: {out['wf_name']} launch plan with different structure already exists."
    )
    assert out["lp_unknown_input"] == "INVALID_ARGUMENT: unexpected default_input y"
    assert out["fetched_nodes"] == ["n0", "n1"]
    assert out["lp_default_x"] == 3
    assert out["unknown_project"].startswith(
        "INVALID_ARGUMENT: failed to validate that project [nope] and domain [development] are registered"
    )
    counters = admin.store.counters()
    assert counters["workflow"] == {"calls": 5, "created": 1, "already_exists": 1, "conflicts": 1, "errors": 2}
    assert counters["launch_plan"] == {"calls": 5, "created": 1, "already_exists": 1, "conflicts": 1, "errors": 2}


def _register_examples(user_python: str, config: Path, *extra: str) -> subprocess.CompletedProcess:
    pyflyte = str(Path(user_python).parent / "pyflyte")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(
        [pyflyte, "--config", str(config), "register", "--project", PROJECT, "--domain", DOMAIN, *extra, "baked"],
        cwd=REPO / "examples",
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_pyflyte_register_fast_end_to_end_and_again(admin, user_python, tmp_path):
    config = admin.write_config(tmp_path / "config.yaml")
    first = _register_examples(user_python, config)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Successfully registered 9 entities" in first.stdout
    counters = admin.store.counters()
    assert counters["task"]["created"] == 4
    assert counters["workflow"]["created"] == 2
    assert counters["launch_plan"]["created"] == 3
    uploads = admin.uploads.items()
    assert len(uploads) == 1 and admin.uploads.total_bytes == uploads[0]["size"] > 0
    native = uploads[0]["native_url"]
    assert native.startswith(f"s3://my-s3-bucket/{PROJECT}/{DOMAIN}/") and native.endswith(".tar.gz")
    data = admin.uploads.read(native)
    assert hashlib.md5(data).hexdigest() == uploads[0]["md5"]
    with tarfile.open(uploads[0]["path"]) as tar:
        names = tar.getnames()
    assert any(n.endswith("baked/workflows.py") for n in names)
    # the registered tasks run with the fast-execute prefix pointing at the uploaded bundle
    task = admin.store.ids("task")[0]
    stored = admin.store.get("task", PROJECT, DOMAIN, task["name"], task["version"])
    args = stored["closure"]["compiled_task"]["template"]["container"]["args"]
    assert args[0] == "pyflyte-fast-execute" and native in args

    mark = admin.mark()
    second = _register_examples(user_python, config)
    assert second.returncode == 0, second.stdout + second.stderr
    delta = admin.since(mark)["counters"]
    assert delta["task"]["created"] == delta["workflow"]["created"] == delta["launch_plan"]["created"] == 0
    # every entity refused as identical (flytekit retries each refusal, hence the multiples)
    assert delta["task"]["already_exists"] >= 4 and delta["task"]["errors"] == delta["task"]["conflicts"] == 0
    assert delta["workflow"]["already_exists"] >= 2 and delta["workflow"]["errors"] == 0
    assert delta["launch_plan"]["already_exists"] >= 3 and delta["launch_plan"]["errors"] == 0
    entities = admin.store.state()["entities"]
    assert [len(entities[k]) for k in ("task", "workflow", "launch_plan")] == [4, 2, 3]


def test_executions_of_launch_plans_and_tasks(admin, user_python):
    out = run_user(
        user_python,
        """
        remote.register_workflow(wf, settings(), version="v1")  # registers the tasks too
        lp = LaunchPlan.get_or_create(wf, name="wf_lp", fixed_inputs={}, default_inputs={"x": 4})
        remote.register_launch_plan(lp, version="v1", project=PROJECT, domain=DOMAIN)
        flp = remote.fetch_launch_plan(name="wf_lp", version="v1")
        ex = remote.execute(flp, inputs={"x": 5}, execution_name="exec-one")
        out["id"] = [ex.id.project, ex.id.domain, ex.id.name]
        out["phase"] = client.get_execution(ex.id).closure.phase
        from flyteidl.admin import execution_pb2 as ex_pb2
        raw = stub.GetExecution(ex_pb2.WorkflowExecutionGetRequest(id=ex.id.to_flyte_idl()))
        out["workflow_id"] = raw.closure.workflow_id.name
        out["synced_phase"] = remote.sync_execution(ex).closure.phase
        ex2 = remote.execute(flp, inputs={})  # default input applies, generated name
        out["generated"] = ex2.id.name
        ftask = remote.fetch_task(name=serialize(double).template.id.name, version="v1")
        ex3 = remote.execute(ftask, inputs={"x": 7})
        out["task_exec"] = ex3.id.name
        from flyteidl.admin import execution_pb2
        from flyteidl.core import identifier_pb2
        def create(name, version="v1", inputs=None, rtype=identifier_pb2.LAUNCH_PLAN):
            from flyteidl.core import literals_pb2
            lm = literals_pb2.LiteralMap()
            for k, v in (inputs or {}).items():
                lm.literals[k].scalar.primitive.integer = v
            return stub.CreateExecution(execution_pb2.ExecutionCreateRequest(
                project=PROJECT, domain=DOMAIN, inputs=lm,
                spec=execution_pb2.ExecutionSpec(launch_plan=identifier_pb2.Identifier(
                    resource_type=rtype, project=PROJECT, domain=DOMAIN, name=name, version=version))))
        out["missing_lp"] = code(lambda: create("nope"))
        out["missing_task"] = code(lambda: create("nope", rtype=identifier_pb2.TASK))
        out["unknown_input"] = code(lambda: create("wf_lp", inputs={"y": 1}))
        out["missing_required"] = code(lambda: create(serialize(double).template.id.name, rtype=identifier_pb2.TASK))
        out["duplicate_name"] = code(lambda: stub.CreateExecution(execution_pb2.ExecutionCreateRequest(
            project=PROJECT, domain=DOMAIN, name="exec-one",
            spec=execution_pb2.ExecutionSpec(launch_plan=flp.id.to_flyte_idl()))))
        out["get_missing"] = code(lambda: stub.GetExecution(execution_pb2.WorkflowExecutionGetRequest(
            id=identifier_pb2.WorkflowExecutionIdentifier(project=PROJECT, domain=DOMAIN, name="nope"))))
        # latest version by created_at
        remote.register_task(double, settings(), version="v2")
        out["latest"] = remote.fetch_task(name=serialize(double).template.id.name).id.version
    """,
        admin.endpoint,
    )
    assert out["id"] == [PROJECT, DOMAIN, "exec-one"]
    assert out["phase"] == out["synced_phase"] == 4  # SUCCEEDED
    assert out["workflow_id"].endswith(".wf")
    assert out["generated"] and out["task_exec"]
    assert out["missing_lp"].startswith("NOT_FOUND: missing entity of type launch plan")
    assert out["missing_task"].startswith("NOT_FOUND: missing entity of type task")
    assert out["unknown_input"] == "INVALID_ARGUMENT: invalid input y"
    assert out["missing_required"] == "INVALID_ARGUMENT: expected_inputs x missing"
    assert out["duplicate_name"].startswith("ALREADY_EXISTS")
    assert out["get_missing"].startswith("NOT_FOUND")
    assert out["latest"] == "v2"
    execs = {e["name"]: e for e in admin.store.executions()}
    assert execs["exec-one"]["inputs"]["literals"]["x"]["scalar"]["primitive"]["integer"] == "5"
    assert execs[out["generated"]]["inputs"]["literals"]["x"]["scalar"]["primitive"]["integer"] == "4"
    assert execs[out["task_exec"]]["entity"]["resource_type"] == "TASK"
    assert len(execs) == 3


def test_upload_location_signed_url_semantics(admin, user_python, tmp_path):
    payload = tmp_path / "bundle.tar.gz"
    payload.write_bytes(b"x" * 1000)
    out = run_user(
        user_python,
        """
        import pathlib, datetime
        md5, native = remote.upload_file(pathlib.Path(sys.argv[2]))
        out["native"] = native
        loc = client.get_upload_signed_url(PROJECT, DOMAIN, content_md5=b"0123456789abcdef", filename="f.bin",
                                           expires_in=datetime.timedelta(minutes=5))
        out["signed"] = loc.signed_url
        out["signed_native"] = loc.native_url
        from flyteidl.service import dataproxy_pb2, dataproxy_pb2_grpc
        from google.protobuf.duration_pb2 import Duration
        proxy = dataproxy_pb2_grpc.DataProxyServiceStub(grpc.insecure_channel(ENDPOINT))
        out["too_long"] = code(lambda: proxy.CreateUploadLocation(dataproxy_pb2.CreateUploadLocationRequest(
            project=PROJECT, domain=DOMAIN, content_md5=b"0123456789abcdef", expires_in=Duration(seconds=7200))))
        out["no_md5"] = code(lambda: proxy.CreateUploadLocation(dataproxy_pb2.CreateUploadLocationRequest(
            project=PROJECT, domain=DOMAIN, filename="x")))
        # filename_root + filename is a deterministic path: an existing object with another hash is refused
        import hashlib
        root = dict(filename_root="fixed", filename="bundle.tar.gz")
        data = pathlib.Path(sys.argv[2]).read_bytes()
        remote.upload_file(pathlib.Path(sys.argv[2]), filename_root="fixed")
        req = lambda md5: dataproxy_pb2.CreateUploadLocationRequest(project=PROJECT, domain=DOMAIN, content_md5=md5,
                                                                   **root)
        out["overwrite_other"] = code(lambda: proxy.CreateUploadLocation(req(hashlib.md5(b"other").digest())))
        out["overwrite_none"] = code(lambda: proxy.CreateUploadLocation(req(b"")))
        out["overwrite_same"] = code(lambda: proxy.CreateUploadLocation(req(hashlib.md5(data).digest())))
    """,
        admin.endpoint,
        str(payload),
    )
    assert out["native"].startswith(f"s3://my-s3-bucket/{PROJECT}/{DOMAIN}/")
    assert out["native"].endswith("/bundle.tar.gz")
    assert admin.uploads.read(out["native"]) == payload.read_bytes()
    assert admin.uploads.count == 2 and admin.uploads.total_bytes == 2000
    assert out["too_long"].startswith("INVALID_ARGUMENT: expiresIn [2h0m0s] cannot exceed max allowed expiration")
    assert out["no_md5"] == "INVALID_ARGUMENT: content_md5 or filename_root is a required parameter"
    exists = (
        f"ALREADY_EXISTS: file already exists at location [s3://my-s3-bucket/{PROJECT}/{DOMAIN}/fixed/"
        "bundle.tar.gz], specify a matching hash if you wish to rewrite"
    )
    assert out["overwrite_other"] == out["overwrite_none"] == exists
    assert out["overwrite_same"] == "OK"
    signed = out["signed"]
    assert signed.startswith(f"http://127.0.0.1:{admin.http_port}/")

    def put(url, body, md5=None):
        md5 = md5 if md5 is not None else base64.b64encode(hashlib.md5(body).digest()).decode()
        req = urllib.request.Request(url, data=body, method="PUT", headers={"Content-MD5": md5})
        try:
            with urllib.request.urlopen(req, timeout=30) as rsp:
                return rsp.status
        except urllib.error.HTTPError as e:
            return e.code

    signed_md5 = base64.b64encode(b"0123456789abcdef").decode()
    assert put(signed, b"whatever") == 403  # Content-MD5 differs from the one the URL was signed for
    assert put(signed, b"whatever", md5=signed_md5) == 400  # body does not hash to it (BadDigest)
    assert put(signed.replace("X-Signature=", "X-Signature=0"), b"whatever", md5=signed_md5) == 403
    assert admin.uploads.count == 2  # nothing stored by the refused PUTs


def _listening_sockets(pid: int):
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            next(f)
            for line in f:
                cols = line.split()
                local, state, inode = cols[1], cols[3], cols[9]
                if inode in inodes and (state == "0A" or table.startswith("udp")):
                    found.append((table, local))
    return found


def test_binds_loopback_only_and_teardown_stops_everything(user_python):
    with flyteadmin(user_python) as admin:
        pid = admin.pid
        sockets = _listening_sockets(pid)
        ports = {int(local.split(":")[1], 16) for _, local in sockets}
        assert ports == {admin.grpc_port, admin.http_port}
        # 127.0.0.1, or 127.0.0.1 as an IPv4-mapped IPv6 address (how gRPC binds "127.0.0.1:0")
        loopback = {"0100007F", "0000000000000000FFFF00000100007F"}
        for table, local in sockets:
            assert table in ("tcp", "tcp6") and local.split(":")[0] in loopback, (table, local)
        assert admin.endpoint == f"127.0.0.1:{admin.grpc_port}"
        state_dir = admin.state_dir
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert not state_dir.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", admin.grpc_port), timeout=1).close()


def test_every_call_is_counted_latency_delays_each_and_wipe_forgets_everything(user_python):
    """What benches and the deploy ledger tests rely on: the call count, the per-call latency (set at start or
    changed while the server runs), a reset server."""
    body = """
        import time
        t = serialize(double)
        req = task_pb2.TaskCreateRequest(id=t.template.id.to_flyte_idl(), spec=t.to_flyte_idl())
        get = common_pb2.ObjectGetRequest(id=t.template.id.to_flyte_idl())
        out["create"] = code(lambda: stub.CreateTask(req))
        start = time.monotonic()
        for _ in range(5):
            out["get"] = code(lambda: stub.GetTask(get))
        out["five_gets_s"] = time.monotonic() - start
        if len(sys.argv) > 2:
            import urllib.request
            urllib.request.urlopen(urllib.request.Request(sys.argv[2] + "/_wipe", data=b"", method="POST")).read()
            out["after_wipe"] = code(lambda: stub.GetTask(get))
    """
    with flyteadmin(user_python) as fast:
        out = run_user(user_python, body, fast.endpoint)
        assert out["create"] == out["get"] == "OK"
        assert fast.store.rpcs() == {"CreateTask": 1, "GetTask": 5}
        mark = fast.mark()
        fast.set_latency(100)  # from now on, as if started with latency_ms=100
        out = run_user(user_python, body, fast.endpoint, fast.http_endpoint)
        assert out["five_gets_s"] >= 0.5
        assert out["create"].startswith("ALREADY_EXISTS")
        assert out["after_wipe"].startswith("NOT_FOUND")
        assert fast.since(mark)["rpcs"] == 7
        assert fast.store.ids("task") == []
    with flyteadmin(user_python, latency_ms=20) as slow:
        out = run_user(user_python, body, slow.endpoint)
        assert out["get"] == "OK"
        # five sequential calls answer at least 5 x 20 ms later
        assert out["five_gets_s"] >= 0.1
