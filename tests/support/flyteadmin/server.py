"""Run the stand-in FlyteAdmin: `python -m flyteadmin.server --port 0 --state-dir DIR [--latency-ms N]`.

--latency-ms adds N ms to every gRPC call before it is answered (a real FlyteAdmin writes each entity to a
database; benches compare tools at 0 and 20 ms); POST /_latency {"ms": N} changes it while the server runs. Every
call is counted by method name (/_state "rpcs").

Binds 127.0.0.1 only (gRPC and the HTTP object store / state endpoint), then prints one JSON line
to stdout: {"grpc_port": ..., "http_port": ..., "pid": ...}. Exits on SIGTERM/SIGINT or when its
stdin reaches EOF (so it never outlives the test process that started it).
"""
import argparse
import json
import os
import signal
import sys
import threading
import time
from concurrent import futures

import grpc
from flyteidl.admin import project_pb2
from flyteidl.core import execution_pb2 as core_execution_pb2
from flyteidl.service import admin_pb2_grpc, dataproxy_pb2_grpc

from .blobs import BlobStore, start_http
from .service import AdminService, DataProxyService
from .store import Store

LOOPBACK = "127.0.0.1"


class CallInterceptor(grpc.ServerInterceptor):
    """Counts every call on arrival (whatever its answer) and, with a latency (the store's), delays its answer."""

    def __init__(self, store: Store):
        self.store = store

    def intercept_service(self, continuation, handler_call_details):
        self.store.count_rpc(handler_call_details.method.rsplit("/", 1)[-1])
        latency_s = self.store.latency_s
        if latency_s:
            time.sleep(latency_s)
        return continuation(handler_call_details)


def serve(port: int, http_port: int, state_dir: str, projects, execution_phase: str, latency_ms: float = 0):
    os.makedirs(state_dir, exist_ok=True)
    store = Store(state_dir=state_dir,
                  execution_phase=core_execution_pb2.WorkflowExecution.Phase.Value(execution_phase),
                  latency_s=latency_ms / 1000.0)
    for p in projects:
        store.register_project(project_pb2.Project(id=p, name=p))
    blobs = BlobStore(state_dir, store)
    httpd = start_http(blobs, http_port)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=[("grpc.so_reuseport", 0)],
                         interceptors=[CallInterceptor(store)])
    admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminService(store), server)
    dataproxy_pb2_grpc.add_DataProxyServiceServicer_to_server(DataProxyService(store, blobs), server)
    bound = server.add_insecure_port(f"{LOOPBACK}:{port}")
    if not bound:
        raise SystemExit(f"could not bind {LOOPBACK}:{port}")
    server.start()
    return server, httpd, bound, blobs.port


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=0, help="gRPC port on 127.0.0.1 (0: a free one)")
    ap.add_argument("--http-port", type=int, default=0, help="object store / state port (0: a free one)")
    ap.add_argument("--state-dir", required=True, help="uploads and registered entities (.pb) go here")
    ap.add_argument("--project", action="append", default=None,
                    help="project registered at start (repeatable; default: flytesnacks)")
    ap.add_argument("--latency-ms", type=float, default=0, help="delay added to every gRPC call (default 0)")
    ap.add_argument("--execution-phase", default="SUCCEEDED", help="phase executions report (default SUCCEEDED)")
    args = ap.parse_args(argv)

    server, httpd, grpc_port, http_port = serve(
        args.port, args.http_port, args.state_dir, args.project or ["flytesnacks"], args.execution_phase,
        args.latency_ms)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())

    def watch_stdin():
        try:
            while sys.stdin.buffer.read(1024):
                pass
        except (OSError, ValueError):
            pass
        done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    print(json.dumps({"grpc_port": grpc_port, "http_port": http_port, "pid": os.getpid()}), flush=True)
    done.wait()
    server.stop(grace=0.2).wait()
    httpd.shutdown()
    httpd.server_close()


if __name__ == "__main__":
    main()
