"""A fault-injecting HTTP proxy on 127.0.0.1 in front of a real registry.

Rules match a request by method and a path regex and fire a number of times (or always):

- "reset":  close the client's connection before anything is forwarded (the request never arrives);
- "drop":   forward the request, let the registry act on it, then close the client's connection without
            an answer (the answer is lost: the registry did the work, the client cannot know);
- "delay":  wait `seconds` before forwarding (past the client's timeout, the client gives up);
- "status": answer `code` without forwarding (a 5xx, 429, ...);
- "truncate": forward, then send the headers and half of the body, and close.

Every request is logged as (method, path, action or None), so tests can assert what the client did.
"""
from __future__ import annotations

import http.client
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import List, Optional, Tuple


@dataclass
class Rule:
    method: str
    path: str  # regex, searched
    action: str
    times: int = 1  # -1: always
    seconds: float = 0.0
    code: int = 503

    def matches(self, method: str, path: str) -> bool:
        return self.times != 0 and (self.method in ("*", method)) and re.search(self.path, path) is not None


class FaultProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream
        self.rules: List[Rule] = []
        self.log: List[Tuple[str, str, Optional[str]]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                rule = proxy._take(self.command, self.path)
                action = rule.action if rule else None
                with proxy._lock:
                    proxy.log.append((self.command, self.path, action))
                if action == "reset":
                    self.close_connection = True
                    return
                if action == "status":
                    return self._reply(rule.code, {"Retry-After": "0"} if rule.code == 429 else {}, b"")
                if action == "delay":
                    time.sleep(rule.seconds)
                status, headers, data = self._forward(body)
                if action == "drop":
                    self.close_connection = True
                    return
                if action == "truncate":
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.close_connection = True
                    return
                self._reply(status, headers, data)

            def _forward(self, body):
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                hdrs = {k: v for k, v in resp.getheaders()
                        if k.lower() not in ("connection", "transfer-encoding", "content-length")}
                if self.command == "HEAD":
                    hdrs["Content-Length"] = resp.getheader("Content-Length") or "0"
                # Locations point at the registry: rewrite them to come back through the proxy.
                if "Location" in hdrs:
                    hdrs["Location"] = hdrs["Location"].replace(proxy.upstream, proxy.host)
                conn.close()
                return resp.status, hdrs, data

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

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that gave up (timeout) closes its end: expected here, not news

        self.server = Server(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def add(self, method: str, path: str, action: str, *, times: int = 1, seconds: float = 0.0,
            code: int = 503) -> Rule:
        rule = Rule(method, path, action, times, seconds, code)
        with self._lock:
            self.rules.append(rule)
        return rule

    def _take(self, method: str, path: str) -> Optional[Rule]:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    if rule.times > 0:
                        rule.times -= 1
                    return rule
        return None

    def fired(self, action: str) -> int:
        with self._lock:
            return sum(1 for _, _, a in self.log if a == action)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
