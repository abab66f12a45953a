"""Start the stand-in FlyteAdmin from a test (CPython >= 3.9, standard library only).

    from tests.support.flyteadmin.fixture import flyteadmin

    with flyteadmin(user_python) as admin:
        admin.endpoint             # "127.0.0.1:PORT" (gRPC, insecure)
        admin.write_config(path)   # a flytekit config.yaml pointing at it
        admin.store.counters()     # {"task": {"calls", "created", "already_exists", "conflicts", "errors"}, ...}
        admin.store.ids("task")    # [{"project", "domain", "name", "version", "seq"}, ...]
        admin.store.get("task", project, domain, name, version)  # the admin.Task as JSON (proto field names)
        admin.store.pb_path("task", project, domain, name, version)  # the stored admin.Task, serialized
        admin.store.executions()   # [{"name", "entity", "inputs", "user_inputs", "phase", ...}]
        admin.uploads.items()      # [{"native_url", "size", "md5", "path"}]
        admin.uploads.count, admin.uploads.total_bytes, admin.uploads.read(native_url)
        admin.store.rpcs()         # {"GetTask": n, "CreateTask": n, ...}: every gRPC call the server received
        admin.mark()               # counters/uploads/rpcs since a mark: admin.since(mark)
        admin.wipe()               # forget every entity and upload (a reset database and bucket)
        admin.set_latency(0)       # the per-call delay from now on (ms)

    flyteadmin(..., latency_ms=20) delays every gRPC answer by 20 ms (benches).

The server runs as a subprocess in the user's environment (flyteidl + grpcio), bound to
127.0.0.1 only; `stop()` (also on leaving the block) terminates it and closes its stdin, which
the server watches, so it never outlives the test run.
"""
import contextlib
import copy
import glob
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
STARTUP_TIMEOUT = 60.0


def default_user_python() -> str:
    override = os.environ.get("FLYTEBUILD_USER_PYTHON")
    if override:
        return override
    found = sorted(glob.glob(str(REPO / "dist/export/python/virtualenvs/flyte/*/bin/python")))
    if not found:
        raise RuntimeError("no user environment: run `./pants export --resolve=flyte` (or set FLYTEBUILD_USER_PYTHON)")
    return found[-1]


class _Http:
    def __init__(self, base: str):
        self.base = base

    def get(self, path: str, **params):
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=30) as rsp:
                return json.loads(rsp.read().decode())
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise


class StoreView:
    """Read-only view of what the server stored (each call asks the server)."""

    def __init__(self, http: _Http, state_dir: Path):
        self._http = http
        self._state_dir = state_dir

    def state(self) -> dict:
        return self._http.get("/_state")

    def counters(self) -> Dict[str, Dict[str, int]]:
        return self.state()["counters"]

    def counter(self, kind: str, what: str = "created") -> int:
        return self.counters().get(kind, {}).get(what, 0)

    def rpcs(self) -> Dict[str, int]:
        return self.state()["rpcs"]

    def ids(self, kind: str) -> List[dict]:
        return self.state()["entities"][kind]

    def get(self, kind: str, project: str, domain: str, name: str, version: str) -> Optional[dict]:
        return self._http.get("/_entity", kind=kind, project=project, domain=domain, name=name, version=version)

    def pb_path(self, kind: str, project: str, domain: str, name: str, version: str) -> Path:
        return self._state_dir / "entities" / kind / project / domain / name / f"{version}.pb"

    def executions(self) -> List[dict]:
        return self.state()["executions"]


class UploadsView:
    def __init__(self, store: StoreView):
        self._store = store

    def items(self) -> List[dict]:
        return self._store.state()["uploads"]

    @property
    def count(self) -> int:
        return len(self.items())

    @property
    def total_bytes(self) -> int:
        return self._store.state()["uploaded_bytes"]

    def read(self, native_url: str) -> bytes:
        for u in self.items():
            if u["native_url"] == native_url:
                return Path(u["path"]).read_bytes()
        raise KeyError(native_url)


class AdminHandle:
    def __init__(self, proc: subprocess.Popen, grpc_port: int, http_port: int, state_dir: Path, log_path: Path):
        self.proc = proc
        self.pid = proc.pid
        self.grpc_port = grpc_port
        self.http_port = http_port
        self.endpoint = f"127.0.0.1:{grpc_port}"
        self.http_endpoint = f"http://127.0.0.1:{http_port}"
        self.state_dir = state_dir
        self.log_path = log_path
        self.store = StoreView(_Http(self.http_endpoint), state_dir)
        self.uploads = UploadsView(self.store)

    def write_config(self, path) -> Path:
        """A flytekit/flytectl config file for this server (insecure gRPC)."""
        path = Path(path)
        path.write_text(f"admin:\n  endpoint: dns:///{self.endpoint}\n  insecure: true\n")
        return path

    def mark(self) -> dict:
        state = self.store.state()
        return {"counters": state["counters"], "uploads": len(state["uploads"]), "bytes": state["uploaded_bytes"],
                "rpcs": sum(state["rpcs"].values())}

    def since(self, mark: dict) -> dict:
        """Counter deltas and uploads after `mark()`: {"counters": {...}, "uploads": n, "bytes": n, "rpcs": n}."""
        now = self.mark()
        delta = copy.deepcopy(now["counters"])
        for kind, values in delta.items():
            for key in values:
                values[key] -= mark["counters"].get(kind, {}).get(key, 0)
        return {"counters": delta, "uploads": now["uploads"] - mark["uploads"], "bytes": now["bytes"] - mark["bytes"],
                "rpcs": now["rpcs"] - mark["rpcs"]}

    def wipe(self) -> None:
        self._post("/_wipe", b"")

    def set_latency(self, ms: float) -> None:
        """Delay every gRPC call answered from now on by `ms` (a test that needed a slow server for one step)."""
        self._post("/_latency", json.dumps({"ms": ms}).encode())

    def _post(self, path: str, data: bytes) -> None:
        req = urllib.request.Request(self.http_endpoint + path, data=data, method="POST")
        with urllib.request.urlopen(req, timeout=30) as rsp:
            rsp.read()

    def log(self) -> str:
        try:
            return self.log_path.read_text()
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None and not stream.closed:
                stream.close()


@contextlib.contextmanager
def flyteadmin(python: Optional[str] = None, projects: Sequence[str] = ("flytesnacks",),
               state_dir=None, execution_phase: str = "SUCCEEDED", latency_ms: float = 0) -> Iterator[AdminHandle]:
    """Start the stand-in FlyteAdmin (gRPC + HTTP object store on 127.0.0.1, free ports)."""
    own_dir = state_dir is None
    state = Path(tempfile.mkdtemp(prefix="flyteadmin-")) if own_dir else Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    log_path = state / "server.log"
    cmd = [python or default_user_python(), "-m", "flyteadmin.server", "--port", "0", "--http-port", "0",
           "--state-dir", str(state), "--execution-phase", execution_phase, "--latency-ms", str(latency_ms)]
    for p in projects:
        cmd += ["--project", p]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = str(HERE.parent)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
                                cwd=str(state))
    handle = None
    try:
        line = _read_line(proc, STARTUP_TIMEOUT)
        if not line:
            raise RuntimeError(f"stand-in FlyteAdmin did not start:\n{log_path.read_text()}")
        ports = json.loads(line)
        handle = AdminHandle(proc, ports["grpc_port"], ports["http_port"], state, log_path)
        yield handle
    finally:
        if handle is not None:
            handle.stop()
        elif proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if own_dir:
            shutil.rmtree(state, ignore_errors=True)


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None and not select.select([fd], [], [], 0)[0]:
            return ""
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                return buf.decode()
            buf += chunk
    return buf.split(b"\n", 1)[0].decode()
