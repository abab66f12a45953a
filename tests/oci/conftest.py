"""A real OCI registry (Debian's docker-registry) on loopback, and a tiny base image pushed to it."""
from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import pytest

from flytebuild.oci import BaseImage, RegistryClient, build_image, build_layer, publish

REPO = Path(__file__).resolve().parents[2]
INSTALLER = REPO / "tests" / "support" / "install_registry.sh"
REGISTRY_BIN = Path("/usr/bin/docker-registry")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Registry:
    host: str  # "127.0.0.1:PORT"
    proc: subprocess.Popen
    root: Path
    htpasswd: Optional[Path] = None

    def ref(self, name: str) -> str:
        return f"{self.host}/{name}"


def _ensure_installed() -> None:
    if not REGISTRY_BIN.exists():
        subprocess.run(["bash", str(INSTALLER)], check=True)


def start_registry(root: Path, htpasswd: Optional[Path] = None) -> Registry:
    _ensure_installed()
    storage = root / "storage"
    storage.mkdir(parents=True)
    # free_port() closes its socket before the registry binds: under pytest-xdist another worker can take the port
    # in between, so a registry that could not bind gets a new port.
    for _ in range(4):
        try:
            return _start_registry(root, storage, free_port(), htpasswd)
        except _PortTaken:
            continue
    return _start_registry(root, storage, free_port(), htpasswd)


class _PortTaken(RuntimeError):
    pass


def _start_registry(root: Path, storage: Path, port: int, htpasswd: Optional[Path]) -> Registry:
    # Each registry answers with its own header: a probe that reaches another worker's registry on a reused
    # port is not taken for this one.
    token = uuid.uuid4().hex
    auth = ""
    if htpasswd is not None:
        auth = f"auth:\n  htpasswd:\n    realm: flytebuild-test\n    path: {htpasswd}\n"
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  headers:\n    X-Flytebuild-Registry: [{token}]\n"
        + auth
    )
    log = open(root / "registry.log", "wb")
    proc = subprocess.Popen([str(REGISTRY_BIN), "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1) as resp:
                if resp.headers.get("X-Flytebuild-Registry") == token:
                    break
        except urllib.error.HTTPError as e:
            # an auth-protected registry answers /v2/ with a challenge: it is up
            if e.code == 401 and e.headers.get("X-Flytebuild-Registry") == token:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            log_text = (root / "registry.log").read_text()[-2000:]
            if "address already in use" in log_text:
                raise _PortTaken(log_text)
            raise RuntimeError(f"docker-registry did not start: {log_text}")
        time.sleep(0.05)
    return Registry(f"127.0.0.1:{port}", proc, root, htpasswd)


def stop_registry(reg: Registry) -> None:
    reg.proc.terminate()
    try:
        reg.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        reg.proc.kill()
        reg.proc.wait()


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    stop_registry(reg)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("oci-cache")


BASE_FILES = [
    ("etc/os-release", b'NAME="flytebuild-test"\n', None),
    ("usr/bin/hello", b"#!/bin/sh\necho hello\n", 0o755),
    ("usr/lib/python3/dist-packages/base_mod.py", b"BASE = 1\n", None),
]


@pytest.fixture(scope="session")
def base_image(registry, cache_dir) -> BaseImage:
    """A one-layer base image (a few files + config with Env/Cmd/Labels), pushed with our own client."""
    layer = build_layer(BASE_FILES, name="base-files")
    img = build_image([layer], None, env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
                      cmd=["/usr/bin/hello"], labels={"org.example.base": "yes"})
    ref = registry.ref("base/tiny:1")
    publish(img, ref, cache_dir=cache_dir)
    return RegistryClient(registry.host, cache_dir=cache_dir).pull(ref)


@pytest.fixture
def make_registry(tmp_path):
    """Start extra registries (e.g. with htpasswd auth) for one test; all are stopped after it."""
    started = []

    def make(name: str = "reg", htpasswd: Optional[Path] = None) -> Registry:
        reg = start_registry(tmp_path / name, htpasswd=htpasswd)
        started.append(reg)
        return reg

    yield make
    for reg in started:
        stop_registry(reg)


@pytest.fixture
def closed_port() -> int:
    return free_port()


class _Proxy:
    """An HTTP front for the real registry that can inject transient failures and demand bearer tokens.

    Failures ("503", "429", "reset": connection closed without an answer) are consumed one per request.
    With `bearer` set, /v2/ requests need `Authorization: Bearer <token>`, got from /token with basic
    credentials `bearer`=(user, password), as Docker Hub-style registries do.
    """

    def __init__(self, upstream: str):
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.upstream = upstream
        self.failures: list = []
        self.bearer: Optional[tuple] = None
        self.token_scopes: list = []
        self.seen: list = []
        lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                import base64
                import json

                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with lock:
                    failure = proxy.failures.pop(0) if proxy.failures else None
                    proxy.seen.append((self.command, self.path, failure))
                if failure == "reset":
                    self.close_connection = True
                    return
                if failure in ("503", "429"):
                    return self._reply(int(failure), {"Retry-After": "0"} if failure == "429" else {}, b"")
                if self.path.startswith("/token"):
                    want = "Basic " + base64.b64encode(":".join(proxy.bearer).encode()).decode()
                    if self.headers.get("Authorization") != want:
                        return self._reply(401, {}, b"")
                    proxy.token_scopes.append(self.path)
                    return self._reply(200, {"Content-Type": "application/json"}, json.dumps({"token": "tok"}).encode())
                if proxy.bearer and self.headers.get("Authorization") != "Bearer tok":
                    realm = f"http://{self.headers['Host']}/token"
                    return self._reply(401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="test"'}, b"")
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("authorization", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                hop = ("connection", "transfer-encoding", "content-length")
                hdrs = {k: v for k, v in resp.getheaders() if k.lower() not in hop}
                if self.command == "HEAD":
                    hdrs["Content-Length"] = resp.getheader("Content-Length") or "0"
                conn.close()
                self._reply(resp.status, hdrs, data)

            def _reply(self, status, headers, data):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def ref(self, name: str) -> str:
        return f"{self.host}/{name}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(registry):
    p = _Proxy(registry.host)
    yield p
    p.close()
