"""The client of the warm user-environment worker (runtime/worker.py, docs/worker.md), for every front end.

`run()` and `popen()` run one runtime command (`introspect`, `serialize`, `session`, `deploy`, `run`, ...) as
`subprocess.run` / `subprocess.Popen` of `python <runtime>/__main__.py <argv>` would, but in a process forked from
a warm worker of that environment (flytekit already imported), started detached on first use. On any problem
with the worker (it cannot start, it refuses the request, it dies mid-request) they run the plain subprocess
instead, and say so at debug level (logger `flytebuild.worker`) -- except when the worker died after it started a
command with side effects (`run`, `remote`, `deploy`, ...): running it again could launch or register twice, so
that is a WorkerLost error. Only PURE commands are replayed. Ctrl-C (KeyboardInterrupt in the client) gives the
command SIGINT, as a terminal gives a plain subprocess, and waits for it to exit. Standard library and core/errors
only, Python >= 3.9 (pantsd imports this).

A request names either a directory (`cwd`, the source roots on `environ["PYTHONPATH"]`: the CLI) or the files
themselves (`files`: relative path → bytes, materialized in a fresh directory: Pants, which has contents, not
paths); `outputs` names directories (relative to cwd) whose files come back as bytes.
"""
from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import hashlib
import io
import json
import logging
import os
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from typing import IO, Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from flytebuild.core.errors import FlytebuildError

log = logging.getLogger("flytebuild.worker")

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
MAGIC = b"FBW1"
STARTED = b"S"  # runtime/worker.py sends it once the command may have started
GRACE = 5.0  # runtime/worker.py's: an interrupted command gets this long before SIGKILL
# Commands without side effects outside their own output: replayed as a subprocess when the worker dies under them.
# Where a request's source roots are (PEX_EXTRA_SYS_PATH: a pex venv appends them after site-packages, as in a
# Pants sandbox); the worker itself starts without them, so it never imports a user module.
_SOURCE_ROOT_VARIABLES = ("PYTHONPATH", "PEX_EXTRA_SYS_PATH", "__PEX_EXTRA_SYS_PATH__")
PURE = frozenset({"introspect", "serialize", "session", "validate_pod", "check_references"})
_HEADER = struct.Struct(">Q")
_START_TIMEOUT = 120.0  # a cold flytekit import on a loaded machine takes 5-8 s; past this we stop waiting
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes


@dataclasses.dataclass(frozen=True)
class UserEnv:
    """One user environment, served by one worker process.

    `identity`: everything an answer depends on besides the request (the interpreter's installed distributions,
    the runtime package's fingerprint): a different identity is another worker. `socket_dir`: where its socket
    lives (the CLI's cache directory, Pants' workdir)."""

    python: str
    runtime_dir: str
    identity: str
    socket_dir: str
    idle_timeout: float = 600.0

    @property
    def main(self) -> str:
        return os.path.join(self.runtime_dir, "__main__.py")


class WorkerUnavailable(Exception):
    """No worker could run the command (it cannot start, refused the request, died mid-request): not an answer of
    the command. Raised by `run(..., fallback=False)`, for a front end with a fallback of its own (Pants)."""


class WorkerLost(FlytebuildError):
    """The worker died after it started a command with side effects: it may have partly run, so it is not run
    again (a second execution, a second registration)."""

    def __init__(self, command: str) -> None:
        super().__init__(f"the warm worker died while running `{command}`; it may have partly run",
                         fix="check what it did, then re-run, or set FLYTEBUILD_WORKER=0 to run without the worker")


class Cancelled(Exception):
    """`run(..., cancelled=event)`: the event was set (a Pants rule cancelled on Ctrl-C); the command was stopped
    (SIGINT, then SIGKILL after GRACE seconds) and not run elsewhere."""


def replayable(argv: Sequence[str]) -> bool:
    return bool(argv) and argv[0] in PURE


@dataclasses.dataclass(frozen=True)
class Result:
    """What `subprocess.run` returns, plus the requested output files and whether the worker ran it."""

    args: List[str]
    returncode: int
    stdout: Any
    stderr: Any
    outputs: Mapping[str, bytes]
    warm: bool


def import_env(environ: Mapping[str, str]) -> Dict[str, str]:
    """The variables that can change what importing flytekit sets up (runtime/worker.py checks the same)."""
    return {k: v for k, v in environ.items() if k != "PYTHONPATH" and (
        k.startswith(("FLYTE", "_F_", "PYTHON", "LC_")) or k in ("HOME", "TMPDIR", "LANG"))}


def socket_path(env: UserEnv, environ: Mapping[str, str]) -> str:
    key = hashlib.sha256(json.dumps(
        [os.path.abspath(env.python), os.path.realpath(env.python), env.runtime_dir, env.identity,
         sorted(import_env(environ).items())]).encode()).hexdigest()[:24]
    return os.path.join(env.socket_dir, f"w-{key}.sock")


def _private_dir(path: str) -> bool:
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.stat(path)
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _connect(path: str) -> Optional[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dir_fd = None
    try:
        if len(path) > _MAX_SOCKET_PATH:  # through the directory's descriptor: a short path, and thread-safe
            dir_fd = os.open(os.path.dirname(path), os.O_PATH)
            sock.connect(f"/proc/self/fd/{dir_fd}/{os.path.basename(path)}")
        else:
            sock.connect(path)
        return sock
    except OSError:
        sock.close()
        return None
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def connect(env: UserEnv, environ: Mapping[str, str]) -> Optional[socket.socket]:
    """A connection to the environment's worker, started (detached) when there is none; None if that fails."""
    path = socket_path(env, environ)
    sock = _connect(path)
    if sock is not None:
        return sock
    if os.path.exists(path + ".refused"):  # this environment cannot have a worker (Python < 3.9): don't ask again
        return None
    if not _private_dir(os.path.dirname(path)) or not os.path.isfile(env.main):
        log.debug("worker: cannot use %s", os.path.dirname(path))
        return None
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one client starts it; the others wait here and connect
        sock = _connect(path)
        if sock is not None:
            return sock
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a worker that died without cleaning up
        parent_env = {k: v for k, v in environ.items() if k not in _SOURCE_ROOT_VARIABLES}
        try:
            started = subprocess.run(
                [env.python, env.main, "worker", "--socket", path, "--idle-timeout", str(env.idle_timeout),
                 "--log", path + ".log", "--detach"],
                cwd=os.path.dirname(path), env=parent_env, stdin=DEVNULL, capture_output=True, text=True,
                timeout=60)
            if started.returncode == 2 and "needs Python >= 3.9" in started.stderr:
                # The socket's name covers the interpreter and its identity: another environment is asked anew.
                with open(path + ".refused", "w") as f:
                    f.write(started.stderr)
            pid = int(started.stdout.split()[0])
        except (OSError, subprocess.SubprocessError, ValueError, IndexError) as e:
            log.debug("worker: cannot start one for %s: %s", env.python, e)
            return None
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            sock = _connect(path)
            if sock is not None:
                return sock
            if not _alive(pid):
                break
            time.sleep(0.02)
        log.debug("worker: %s did not start (see %s.log)", env.python, path)
        return None


def stop(socket_dir: str) -> int:
    """Stops the workers whose sockets are in `socket_dir` (a worker exits when its socket file goes, and removes
    its .pid/.log/.lock files); leftovers of workers that died are removed."""
    stopped = 0
    for name in sorted(os.listdir(socket_dir)) if os.path.isdir(socket_dir) else ():
        if name.startswith("w-") and name.endswith(".sock"):
            os.unlink(os.path.join(socket_dir, name))
            stopped += 1
        elif name.startswith("w-") and name.endswith((".lock", ".log", ".refused")) and not os.path.exists(
                os.path.join(socket_dir, name.rsplit(".", 1)[0])):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(socket_dir, name))  # a worker that died without cleaning up
    return stopped


# ----------------------------------------------------------------------------------------------------------------
# one request


def _send(sock: socket.socket, request: dict, fds: Sequence[int]) -> None:
    data = json.dumps(request).encode()
    socket.send_fds(sock, [MAGIC + _HEADER.pack(len(data))], list(fds))
    sock.sendall(data)


def _read_reply(sock: socket.socket) -> Optional[dict]:
    """The worker's answer; None if the connection ended without one."""
    buf = b""
    try:
        while len(buf) < _HEADER.size:
            chunk = sock.recv(_HEADER.size - len(buf))
            if not chunk:
                return None
            buf += chunk
        (size,) = _HEADER.unpack(buf)
        data = b""
        while len(data) < size:
            chunk = sock.recv(min(size - len(data), 1 << 20))
            if not chunk:
                return None
            data += chunk
        return json.loads(data)
    except (OSError, ValueError):
        return None


class WorkerProcess:
    """The part of `subprocess.Popen` the front ends use, for a command a worker runs.

    `lost` is true when the worker went away without an exit status (then `returncode` is -9): the caller runs the
    command again as a subprocess, `fallback()` (set by `popen`) starts it -- or raises WorkerLost when `started`
    is true and the command is not PURE. `interrupt()` is Ctrl-C: SIGINT to the command, then its exit status."""

    def __init__(self, sock: socket.socket, args: List[str], stdin: Optional[IO], stdout: Optional[IO],
                 stderr: Optional[IO]) -> None:
        self._sock = sock
        self.args = args
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.returncode: Optional[int] = None
        self.lost = False
        self.started = False
        self.timed_out = False
        self.outputs: Dict[str, bytes] = {}
        self._read: Dict[str, Any] = {}
        self._readers: List[threading.Thread] = []
        self.fallback: Any = None

    def _finish(self, reply: Optional[dict]) -> int:
        if reply is None or "exit" not in reply:
            self.lost = True
            if reply:
                log.debug("worker: %s", reply.get("fallback"))
            self.returncode = -9
        else:
            self.returncode = int(reply["exit"])
            self.timed_out = bool(reply.get("timed_out"))
            self.outputs = {k: base64.b64decode(v) for k, v in (reply.get("outputs") or {}).items()}
        self._sock.close()
        return self.returncode

    def _ready(self, timeout: Optional[float]) -> bool:
        """Whether the reply (or the end of the connection) is there within `timeout` (0: now; None: wait); the
        STARTED byte in front of it is taken on the way."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                self._sock.settimeout(left)
                head = self._sock.recv(1, socket.MSG_PEEK)
            except (BlockingIOError, socket.timeout):
                return False
            except OSError:
                return True
            if head != STARTED or self.started:
                return True
            self._sock.recv(1)
            self.started = True

    def _reply(self) -> int:
        with contextlib.suppress(OSError):
            self._sock.settimeout(None)
        return self._finish(_read_reply(self._sock))

    def poll(self) -> Optional[int]:
        if self.returncode is None and self._ready(0):
            self._reply()
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        if self.returncode is None:
            if not self._ready(timeout):
                raise subprocess.TimeoutExpired(self.args, timeout)
            self._reply()
        return self.returncode

    def interrupt(self, grace: float = GRACE + 5) -> Optional[int]:
        """Ctrl-C: the command gets SIGINT (its process group), GRACE seconds to exit, then SIGKILL; returns its
        exit status (None if the worker did not answer within `grace`)."""
        if self.returncode is None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)  # the worker sees the hang-up, and can still answer
            if self._ready(grace):
                self._reply()
                return self.returncode
            self.kill()
            return None
        return self.returncode

    def kill(self) -> None:
        """Hanging up stops the command (and everything it started): SIGINT, then SIGKILL after GRACE seconds."""
        if self.returncode is None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self.returncode = -9

    terminate = kill

    def communicate(self, input: Any = None, timeout: Optional[float] = None) -> Tuple[Any, Any]:
        if not self._readers:
            if self.stdin is not None:
                with contextlib.suppress(BrokenPipeError):
                    if input:
                        self.stdin.write(input)
                    self.stdin.close()
            for name in ("stdout", "stderr"):
                stream = getattr(self, name)
                if stream is not None:
                    thread = threading.Thread(target=lambda n=name, s=stream: self._read.setdefault(n, s.read()),
                                              daemon=True)
                    thread.start()
                    self._readers.append(thread)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._readers:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout)
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        for name in ("stdout", "stderr"):
            stream = getattr(self, name)
            if stream is not None:
                stream.close()
        return self._read.get("stdout"), self._read.get("stderr")


_Stream = Union[None, int, IO]


def _child_end(spec: _Stream, default_fd: int, child_reads: bool, text: bool,
               opened: List[int]) -> Tuple[int, Optional[IO]]:
    """(descriptor the command gets, our end of a PIPE)."""
    if spec is None:
        return default_fd, None
    if spec == PIPE:
        read, write = os.pipe()
        opened.append(read if child_reads else write)
        ours = write if child_reads else read
        mode = ("w" if child_reads else "r") + ("" if text else "b")
        return (read if child_reads else write), io.open(ours, mode, **({"encoding": "utf-8"} if text else {}))
    if spec == DEVNULL:
        fd = os.open(os.devnull, os.O_RDWR)
        opened.append(fd)
        return fd, None
    return (spec if isinstance(spec, int) else spec.fileno()), None


def popen(env: UserEnv, argv: Sequence[str], *, environ: Mapping[str, str], cwd: Optional[str] = None,
          stdin: _Stream = None, stdout: _Stream = None, stderr: _Stream = None, text: bool = False,
          warm: bool = True) -> Union[WorkerProcess, subprocess.Popen]:
    """`subprocess.Popen([python, <runtime>/__main__.py, *argv], ...)`, in a warm worker when one can be reached
    (`warm`), a real subprocess otherwise. A WorkerProcess that comes back `lost` must be run again."""
    def cold() -> subprocess.Popen:
        return subprocess.Popen([env.python, env.main, *argv], cwd=cwd, env=dict(environ), stdin=stdin,
                                stdout=stdout, stderr=stderr, text=text)

    sock = connect(env, environ) if warm else None
    proc = _worker_popen(sock, env, argv, environ, cwd, stdin, stdout, stderr, text) if sock else None
    if proc is None:
        return cold()

    def fallback() -> subprocess.Popen:
        if proc.started and not replayable(argv):
            raise WorkerLost(argv[0])
        return cold()

    proc.fallback = fallback
    return proc


def start(env: UserEnv, argv: Sequence[str], *, environ: Mapping[str, str], files: Mapping[str, bytes],
          outputs: Sequence[str] = (), stderr: IO) -> WorkerProcess:
    """A command that converses (a runtime `session`) in a fresh fork of the worker, given `files`: its stdin and
    stdout are pipes to us (binary), its stderr goes to `stderr` (a file: a chatty command never blocks on it), and
    the files under `outputs` come back when it exits. Raises WorkerUnavailable when no worker takes it (a front end
    with its own fallback: Pants); a WorkerProcess that comes back `lost` did not answer."""
    sock = connect(env, environ)
    proc = _worker_popen(sock, env, argv, environ, None, PIPE, PIPE, stderr, False, files, outputs) if sock else None
    if proc is None:
        raise WorkerUnavailable(f"no worker could run {' '.join(argv[:1])} for {env.python}")
    return proc


def read_line(proc: WorkerProcess, deadline: Optional[float], cancelled: Optional[threading.Event] = None) -> bytes:
    """The next line `proc` writes on stdout (b"" when it ended first). Raises subprocess.TimeoutExpired past
    `deadline` (time.monotonic()) and Cancelled when `cancelled` is set meanwhile; the caller then kills `proc`."""
    fd = proc.stdout.fileno()
    line = bytearray()
    while not line.endswith(b"\n"):
        if cancelled is not None and cancelled.is_set():
            raise Cancelled(f"{' '.join(proc.args[2:3])} was cancelled")
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise subprocess.TimeoutExpired(proc.args, 0)
        ready, _, _ = select.select([fd], [], [], 0.1 if left is None else min(0.1, left))
        if ready:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            line += chunk
    return bytes(line)


def _worker_popen(sock, env, argv, environ, cwd, stdin, stdout, stderr, text, files=None, outputs=(),
                  timeout=None) -> Optional[WorkerProcess]:
    opened: List[int] = []
    try:
        fd_in, our_in = _child_end(stdin, 0, True, text, opened)
        fd_out, our_out = _child_end(stdout, 1, False, text, opened)
        fd_err, our_err = _child_end(stderr, 2, False, text, opened)
        request = {
            "argv": list(argv), "env": dict(environ), "cwd": cwd, "timeout": timeout, "outputs": list(outputs),
            "files": None if files is None else {k: base64.b64encode(v).decode() for k, v in files.items()},
        }
        _send(sock, request, [fd_in, fd_out, fd_err])
    except OSError as e:
        sock.close()
        log.debug("worker: request not sent (%s); running a subprocess", e)
        return None
    finally:
        for fd in opened:
            os.close(fd)  # the command holds them now: our ends see EOF when it exits
    return WorkerProcess(sock, [env.python, env.main, *argv], our_in, our_out, our_err)


def run(env: UserEnv, argv: Sequence[str], *, environ: Mapping[str, str], cwd: Optional[str] = None,
        input: Optional[bytes] = None, timeout: Optional[float] = None, text: bool = False,
        files: Optional[Mapping[str, bytes]] = None, outputs: Sequence[str] = (), warm: bool = True,
        fallback: bool = True, cancelled: Optional[threading.Event] = None) -> Result:
    """`subprocess.run([python, <runtime>/__main__.py, *argv], capture_output=True, ...)` in a warm worker (or
    a subprocess: `warm=False`, or any worker problem). Past `timeout` the command (and everything it started) is
    killed and subprocess.TimeoutExpired raised, as subprocess.run does. With `fallback=False` a worker problem
    raises WorkerUnavailable instead of running the subprocess. When `cancelled` is set meanwhile (a rule running
    this on a thread, cancelled by Ctrl-C) the command is stopped as on Ctrl-C and Cancelled raised."""
    sock = connect(env, environ) if warm else None
    if sock is not None:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as given:
            if input:
                given.write(input.encode() if isinstance(input, str) else input)
                given.seek(0)
            proc = _worker_popen(sock, env, argv, environ, cwd, given, out, err, False, files, outputs, timeout)
            if proc is not None:
                try:
                    _wait_unless_cancelled(proc, None if timeout is None else timeout + 30, cancelled)
                except KeyboardInterrupt:
                    proc.interrupt()  # the command says it was interrupted (stderr) before we go on
                    raise
                except Cancelled:
                    proc.kill()  # the worker gives it SIGINT, then SIGKILL after GRACE seconds
                    raise
                except BaseException:
                    proc.kill()
                    raise
                if proc.timed_out:
                    raise subprocess.TimeoutExpired(proc.args, timeout)
                if not proc.lost:
                    out.seek(0)
                    err.seek(0)
                    decode = (lambda b: b.decode("utf-8", "replace")) if text else (lambda b: b)
                    return Result(proc.args, proc.returncode, decode(out.read()), decode(err.read()),
                                  proc.outputs, True)
                if proc.started and not replayable(argv):
                    raise WorkerLost(argv[0])
                log.debug("worker: lost during %s%s", " ".join(argv[:1]), "; running a subprocess" if fallback else "")
    if cancelled is not None and cancelled.is_set():
        raise Cancelled(f"{' '.join(argv[:1])} was cancelled")
    if not fallback:
        raise WorkerUnavailable(f"no worker could run {' '.join(argv[:1])} for {env.python}")
    return _subprocess_run(env, argv, environ, cwd, input, timeout, text, files, outputs)


def _wait_unless_cancelled(proc: WorkerProcess, timeout: Optional[float],
                           cancelled: Optional[threading.Event]) -> None:
    if cancelled is None:
        proc.wait(timeout)
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if cancelled.is_set():
            raise Cancelled(f"{' '.join(proc.args[2:3])} was cancelled")
        left = None if deadline is None else deadline - time.monotonic()
        try:
            proc.wait(0.1 if left is None else max(0.0, min(0.1, left)))
            return
        except subprocess.TimeoutExpired:
            if left is not None and left <= 0.1:
                raise subprocess.TimeoutExpired(proc.args, timeout) from None


def _inside(top: str, rel: str) -> str:
    """`rel` under `top`; a path that leaves it (absolute, `..`) is refused, as runtime/worker.py refuses it."""
    top = os.path.abspath(top)
    path = os.path.normpath(os.path.join(top, rel))
    if os.path.isabs(rel) or (path != top and not path.startswith(top.rstrip(os.sep) + os.sep)):
        raise ValueError(f"path outside the request's directory: {rel}")
    return path


def _read_outputs(base: str, wanted: Sequence[str]) -> Dict[str, bytes]:
    """What runtime/worker.py's `_outputs` sends back: every file under each wanted directory, or the file itself."""
    found: Dict[str, bytes] = {}
    for rel in wanted:
        top = _inside(base, rel)
        paths = [top] if os.path.isfile(top) else [
            os.path.join(d, f) for d, _, names in os.walk(top) for f in names]
        for p in sorted(paths):
            with open(p, "rb") as f:
                found[os.path.relpath(p, base)] = f.read()
    return found


def _subprocess_run(env, argv, environ, cwd, input, timeout, text, files, outputs) -> Result:
    top = tempfile.mkdtemp(prefix="flytebuild-run-") if files is not None else None
    try:
        if top is not None:
            for rel, data in files.items():
                path = _inside(top, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(data)
            cwd = os.path.join(top, cwd or ".")
        args = [env.python, env.main, *argv]
        proc = subprocess.run(args, cwd=cwd, env=dict(environ), input=input, capture_output=True, text=text,
                              timeout=timeout)
        found = _read_outputs(os.path.abspath(cwd or os.getcwd()), outputs)
        return Result(args, proc.returncode, proc.stdout, proc.stderr, found, False)
    finally:
        if top is not None:
            shutil.rmtree(top, ignore_errors=True)
