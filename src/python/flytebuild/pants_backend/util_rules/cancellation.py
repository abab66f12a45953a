"""Cooperative cancellation of blocking work (registry pushes) inside a rule, on Ctrl-C.

Pants 2.17 cancels a run by dropping its rule coroutines and killing the processes they wait on; Python code a rule
is executing at that moment runs on, so a push done in the rule's body finished long after Ctrl-C (the tag appeared
~45 s later). Here the work runs on a thread while the rule awaits a tiny *waiter* `Process` connected back to it over
loopback. Either sign of cancellation sets `cancelled`, which the registry client checks before every request and
every block of a body it sends:

- Pants kills the waiter (its connection closes before the work is done), or
- the coroutine is closed (`close()` runs in the rule's `finally`).

The waiter is told when the work is done and exits 0; then the rule takes the work's result.

Work may first be waited for briefly in the rule's body (`finished`): a waiter is a Pants process, ~0.07 s even
when it has nothing to wait for, while a warm worker's answer often comes sooner. Ctrl-C during that wait takes
effect when it ends, so it stays short (user_env.py `_GRACE`, for the worker's requests, the deploy included: one
that finishes within it is as if Ctrl-C came just after; image pushes never wait so).
"""
from __future__ import annotations

import secrets
import select
import socket
import sys
import threading
from typing import Callable, Generic, Optional, TypeVar

from pants.engine.process import Process, ProcessCacheScope
from pants.engine.streaming_workunit_handler import (
    thread_locals_get_for_current_thread,
    thread_locals_set_for_current_thread,
)
from pants.util.logging import LogLevel

T = TypeVar("T")

# Runs in the process sandbox on pantsd's own interpreter (-S -I: nothing of the site is imported): connect, say the
# token, wait for "done". Killed by Pants on Ctrl-C, which closes the connection.
_WAITER = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.argv[2].encode() + b"\\n")
got = b""
while True:
    chunk = s.recv(16)
    if not chunk:
        break
    got += chunk
sys.exit(0 if got == b"done" else 1)
"""


class CancellableWork(Generic[T]):
    """`start(fn)` runs `fn()` on a thread (logging to this run, as the rule would); `waiter()` is the Process the rule
    awaits meanwhile; `result()` after it; `close()` in a `finally` (cancels work still running)."""

    def __init__(self, description: str):
        self.description = description
        self.cancelled = threading.Event()
        self._done = threading.Event()
        self._closed = threading.Event()
        self._token = secrets.token_hex(16)
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(4)
        self._server.settimeout(0.2)
        self._value: Optional[T] = None
        self._error: Optional[BaseException] = None

    def start(self, fn: Callable[[], T]) -> None:
        locals_ = thread_locals_get_for_current_thread()

        def work() -> None:
            thread_locals_set_for_current_thread(locals_)  # log lines reach this run's console
            try:
                self._value = fn()
            except BaseException as e:  # noqa: BLE001 - handed to the rule by result()
                self._error = e
            finally:
                self._done.set()

        threading.Thread(target=work, name="flytebuild-work", daemon=True).start()
        threading.Thread(target=self._watch, name="flytebuild-cancel-watch", daemon=True).start()

    def waiter(self, scope: ProcessCacheScope = ProcessCacheScope.PER_SESSION) -> Process:
        """`scope`: PER_SESSION re-runs the rule awaiting it in every session that checks it (a push, which must
        see the registry as it is now); a pure rule passes PER_RESTART_SUCCESSFUL, so that when pantsd re-checks
        it after an edit, the waiter of the previous run (done, its port closed) is not started again for nothing."""
        port = self._server.getsockname()[1]
        return Process(
            argv=(sys.executable, "-S", "-I", "-c", _WAITER, str(port), self._token),
            description=self.description,
            level=LogLevel.DEBUG,
            # The port and token make every waiter unique: a memoized one never answers another request.
            cache_scope=scope,
        )

    def _watch(self) -> None:
        conn = self._accept()
        if conn is None:
            return
        with conn:
            while not self._done.wait(0.1):
                readable, _, _ = select.select([conn], [], [], 0)
                if readable and not conn.recv(1):
                    self.cancelled.set()  # the waiter is gone before the work is done: Pants cancelled the run
                    return
                if self._closed.is_set():
                    return
            try:
                conn.sendall(b"done")
            except OSError:
                pass

    def _accept(self) -> Optional[socket.socket]:
        while not self._closed.is_set():
            try:
                conn, _ = self._server.accept()
            except socket.timeout:
                continue
            except OSError:
                return None
            conn.settimeout(5)
            try:
                if conn.recv(64).strip() == self._token.encode():
                    conn.settimeout(None)
                    return conn
            except OSError:
                pass
            conn.close()  # not our waiter
        return None

    def finished(self, timeout: float) -> bool:
        """Whether the work is done within `timeout` seconds, waited for in the rule's body (not cancellable)."""
        return self._done.wait(timeout)

    def result(self) -> T:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def close(self) -> None:
        if not self._done.is_set():
            self.cancelled.set()  # the rule is gone (its coroutine closed) while the work runs
        self._closed.set()
        self._server.close()
