"""`worker --socket PATH [--idle-timeout S] [--detach]`: a warm fork server for every other runtime command.

The parent imports flytekit (and this package's modules) once, never a user module, and listens on a Unix socket.
Per connection it forks a *supervisor* that reads one request, forks a *runner* and waits for it; the runner
becomes, as far as user code can tell, a fresh `python <package>/__main__.py <command> ...` process: the
request's working directory (or a fresh one holding the files the request carries), its environment, its
PYTHONPATH as sys.path, its stdin/stdout/stderr (file descriptors passed over the socket), its argv. It runs
exactly that runtime command and exits; the supervisor answers the exit status (and, when asked, the files the
command wrote). docs/worker.md describes the protocol.

Wire format: the client sends `b"FBW1"` + an 8-byte big-endian length, with SCM_RIGHTS carrying its three stdio
descriptors, then that many bytes of JSON:
    {"argv": ["introspect", "--batch", ...],        # the runtime command and its arguments
     "env": {...},                                  # the whole environment (PYTHONPATH: the source roots)
     "cwd": "/abs/dir" | "rel/dir" | null,          # relative to the files' fresh directory when files are sent
     "files": {"rel/path": "<base64>"} | null,      # materialized into a fresh directory (Pants sends contents)
     "outputs": ["rel/dir", ...],                   # files under these (relative to cwd) are sent back
     "timeout": seconds | null}                     # the runner (its whole process group) is killed after it
and reads, just before the runner is forked, the one byte `STARTED` (b"S": from then on the command may have had
effects, and a client that loses the worker must not run it again unless it is pure), then an 8-byte length and
JSON: {"exit": n (negative: killed by signal n), "timed_out": bool, "outputs": {"rel/path": "<base64>"}}, or
{"fallback": "<why>"} without STARTED (the client then runs a plain subprocess).
When the client hangs up (or shuts down its writing side: Ctrl-C) the runner's process group gets SIGINT, as a
terminal's Ctrl-C gives a plain subprocess, then SIGKILL after `GRACE` seconds; the exit status is still sent to a
client that only shut down its writing side.

Why a fork is a fresh process for user code (and what must not be shared):
- No user module is ever imported by the parent: it starts with PYTHONPATH (and PEX_EXTRA_SYS_PATH) unset, cwd = the
  socket's directory and its own directory dropped from sys.path. The runner imports every user module fresh from the
  request's source roots (an edit is seen; a module-level global mutated by one request dies with that runner). If a
  source root holds a top-level name the parent already imported (a user `yaml.py` shadowing a dependency flytekit
  loaded), a fresh process would have imported the user's, so the worker answers `fallback` instead of a different
  answer. Only PYTHONPATH roots matter there: PEX_EXTRA_SYS_PATH roots (a Pants sandbox's) come after site-packages,
  where the installed module wins in a fresh process too.
- flytekit reads configuration from the environment at import (its logging level and handlers, the local
  sandbox/raw-output directories of its default FileAccessProvider, config file locations): the parent records
  the variables that can matter (FLYTE*, _F_*, PYTHON* but PYTHONPATH, HOME, TMPDIR, LANG, LC_*) and a request whose
  environment differs in any of them gets `fallback` (clients also key the socket by them, so this is rare).
- FlyteContextManager's stack holds only the default context pushed at import; everything a command pushes happens
  in the runner and dies with it. The default context's temporary directories are shared by runners (flytekit
  names everything inside them with uuid4, from os.urandom: no collision), and removed by nobody, as a fresh
  process leaves them.
- atexit handlers registered at import belong to the parent (certifi's, flytekit's): a runner clears them, runs only
  the ones registered during its request, then exits with os._exit (the parent's handlers must not run twice or
  delete what the parent still uses).
- Random state: `random` reseeds itself in a forked child (os.register_at_fork); the runner also reseeds `random`
  and, when something imported it, numpy's global generator. The str hash seed is the worker's: a fresh process
  draws its own, and this one is one it could have drawn (PYTHONHASHSEED, when set, is part of the identity).
- Logging handlers created at import hold sys.stderr, whose descriptor 2 the runner points at the request's stderr
  (dup2), after the parent flushed every stream before forking; sys.stdin/stdout/stderr are recreated as a fresh
  interpreter would (line-buffered on a terminal).
- Network: the parent opens no gRPC channel and no socket but its listener (grpc is imported, its core is
  initialized by the first channel, which a runner creates); the runner closes the listener and the connection.
- Signals: runners reset SIGINT/SIGTERM/SIGCHLD/SIGHUP to a fresh interpreter's handlers (SIGINT: the one the
  parent had after importing flytekit, which installs its own, as it does in a fresh process) and start a session of
  their own (setsid), so the supervisor can kill the runner and everything it started, on timeout or when the
  client hangs up (Ctrl-C in the CLI).
- The runtime's own modules are imported by the parent; the one piece of process state they capture at import
  (entrypoint's working directory) is reset by the runner.
The parent exits after --idle-timeout seconds without a request, when its socket file is removed or replaced, when
its runtime package is deleted (a throwaway checkout), and on SIGTERM. Its identity (interpreter, installed
distributions, runtime package) is part of the socket's name, chosen by the client: a changed environment or
runtime gets a new worker, the old one idles out.
"""
from __future__ import annotations

import atexit
import base64
import importlib
import io
import json
import linecache
import os
import random
import select
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import typing

MAGIC = b"FBW1"
STARTED = b"S"  # cannot be a reply's first byte: the length's high byte is 0
GRACE = 5.0  # seconds an interrupted runner gets to say so and exit before SIGKILL
_HEADER = struct.Struct(">Q")
_PACKAGE = __name__.rpartition(".")[0] or "_flytebuild_runtime"
_HERE = os.path.dirname(os.path.abspath(__file__))
_COMMANDS = ("introspect", "serialize", "session", "deploy", "run", "remote", "check_references", "validate_pod")
# Imported once by the parent; a missing one is skipped. Not `kubernetes.client`: only pod templates need it, and
# preloaded it held 16 MB in every warm worker (pantsd's budget, docs/performance.md) to save 0.15 s per fork that
# imports it.
_PRELOAD = (
    "flytekit", "flytekit.remote", "flytekit.tools.translator", "flytekit.tools.serialize_helpers",
    "flytekit.tools.repo", "flytekit.clients.friendly",
)


def import_env(env: typing.Mapping[str, str]) -> typing.Dict[str, str]:
    """The variables that can change what an import of flytekit (or of Python itself) sets up."""
    def matters(k: str) -> bool:
        if k == "PYTHONPATH":
            return False
        return k.startswith(("FLYTE", "_F_", "PYTHON", "LC_")) or k in ("HOME", "TMPDIR", "LANG")

    return {k: v for k, v in env.items() if matters(k)}


def as_started(env: typing.Mapping[str, str], coerced: typing.Optional[str]) -> typing.Dict[str, str]:
    """`env` as a fresh interpreter's os.environ would hold it: with the C locale, CPython sets LC_CTYPE to a UTF-8
    locale at startup (PEP 538), as it did in the worker (`coerced`: the worker's LC_CTYPE then, if it did)."""
    env = dict(env)
    ctype = env.get("LC_ALL") or env.get("LC_CTYPE") or env.get("LANG") or "C"
    if coerced and ctype in ("C", "POSIX") and not env.get("LC_ALL") and env.get("PYTHONCOERCECLOCALE") != "0":
        env["LC_CTYPE"] = coerced
    return env


# ----------------------------------------------------------------------------------------------------------------
# framing


def _read_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise EOFError("connection closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _send_json(sock: socket.socket, obj: dict) -> None:
    data = json.dumps(obj).encode()
    sock.sendall(_HEADER.pack(len(data)) + data)


def _read_request(conn: socket.socket) -> typing.Tuple[dict, typing.List[int]]:
    head, fds, _, _ = socket.recv_fds(conn, len(MAGIC) + _HEADER.size, 3)
    while len(head) < len(MAGIC) + _HEADER.size:
        more = conn.recv(len(MAGIC) + _HEADER.size - len(head))
        if not more:
            raise EOFError("connection closed")
        head += more
    if head[:len(MAGIC)] != MAGIC or len(fds) != 3:
        raise ValueError("not a flytebuild worker request")
    (size,) = _HEADER.unpack(head[len(MAGIC):])
    return json.loads(_read_exact(conn, size)), fds


# ----------------------------------------------------------------------------------------------------------------
# the parent


class _State:
    base_path: typing.List[str] = []
    env: typing.Dict[str, str] = {}
    coerced: typing.Optional[str] = None
    preloaded: typing.FrozenSet[str] = frozenset()
    pex_venv: bool = False
    sigint: typing.Any = signal.default_int_handler


def _preload() -> None:
    for name in _PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module this environment lacks is imported (and fails) per request
            pass
    for command in _COMMANDS:
        importlib.import_module(f"{_PACKAGE}.{command}")


def _listen(path: str) -> socket.socket:
    """Bound by its name in the current directory (the socket's): a deep directory is no problem for the 108-byte
    limit of a socket address."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    name = os.path.basename(path)
    tmp = f"{name}.{os.getpid()}.tmp"
    if os.path.exists(tmp):
        os.unlink(tmp)
    listener.bind(tmp)
    os.chmod(tmp, 0o600)
    listener.listen(64)
    os.replace(tmp, name)  # clients see the socket only once it is ready
    return listener


def _ours(path: str, inode: int) -> bool:
    try:
        return os.stat(path).st_ino == inode
    except OSError:
        return False


def serve(path: str, idle_timeout: float) -> None:
    _State.base_path = [p for p in sys.path if p and os.path.abspath(p) != _HERE]
    _State.env = import_env(os.environ)
    _State.pex_venv = any(os.path.isfile(os.path.join(p, "PEX_EXTRA_SYS_PATH.pth")) for p in _State.base_path)
    if os.environ.get("LC_CTYPE", "").lower().replace("-", "") in ("c.utf8", "utf8"):
        _State.coerced = os.environ["LC_CTYPE"]
    _preload()
    # flytekit's import installs its own SIGINT handler (it exits 1): a fresh process has it, so a runner gets it.
    _State.sigint = signal.getsignal(signal.SIGINT) or signal.default_int_handler
    _State.preloaded = frozenset(m.partition(".")[0] for m in sys.modules)
    listener = _listen(path)
    inode = os.stat(path).st_ino
    with open(path + ".pid", "w") as f:
        f.write(str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener.settimeout(1.0)
    children: typing.Set[int] = set()
    last = time.monotonic()
    try:
        while True:
            for pid in list(children):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done = pid
                if done:
                    children.discard(pid)
                    last = time.monotonic()
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                gone = not _ours(path, inode) or not os.path.isfile(os.path.join(_HERE, "__main__.py"))
                if gone or (not children and time.monotonic() - last > idle_timeout):
                    return
                continue
            uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[2]
            if uid != os.getuid():  # the socket's mode already says so; a second lock on the door
                conn.close()
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    listener.close()
                    code = _supervise(conn)
                finally:
                    os._exit(code)
            conn.close()
            children.add(pid)
            last = time.monotonic()
    finally:
        mine = _ours(path, inode)
        if mine:
            os.unlink(path)
        if mine or not os.path.exists(path):  # a socket replaced by a newer worker: its files are its own
            # No leftovers in the socket dir. The .lock is the clients'; losing it only lets two clients race to
            # start a worker, and one of them wins.
            _remove(path + ".pid", path + ".log", path + ".lock")


def _remove(*paths: str) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


# ----------------------------------------------------------------------------------------------------------------
# the supervisor (one per request)


def _shadowed(env: typing.Mapping[str, str], cwd: str) -> typing.Optional[str]:
    for root in (p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p):
        try:
            names = os.listdir(os.path.join(cwd, root))
        except OSError:
            continue
        for name in names:
            top = name.split(".", 1)[0] if name.endswith((".py", ".so", ".pyc")) else name
            if top in _State.preloaded and top.isidentifier():
                return f"{os.path.join(root, name)} shadows `{top}`, which the worker imported already"
    return None


def _inside(top: str, rel: str) -> str:
    """`rel` under `top`; a path that leaves it (absolute, `..`) is a bad request (service/worker.py: the same)."""
    path = os.path.normpath(os.path.join(top, rel))
    if os.path.isabs(rel) or (path != top and not path.startswith(top.rstrip(os.sep) + os.sep)):
        raise ValueError(f"path outside the request's directory: {rel}")
    return path


def _outputs(cwd: str, wanted: typing.Sequence[str]) -> typing.Dict[str, str]:
    found = {}
    for rel in wanted:
        top = _inside(cwd, rel)
        paths = [top] if os.path.isfile(top) else [
            os.path.join(d, f) for d, _, files in os.walk(top) for f in files]
        for p in sorted(paths):
            with open(p, "rb") as f:
                found[os.path.relpath(p, cwd)] = base64.b64encode(f.read()).decode()
    return found


def _materialize(files: typing.Mapping[str, str]) -> str:
    top = tempfile.mkdtemp(prefix="flytebuild-worker-")
    for rel, data in files.items():
        path = _inside(top, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
    return top


def _wait(runner: int, conn: socket.socket, timeout: typing.Optional[float]) -> typing.Tuple[int, bool]:
    """(exit status, timed out). On timeout the runner's process group is killed; when the client hangs up it gets
    SIGINT (what Ctrl-C gives a plain subprocess: one line and exit 130 instead of a lost half-done run), then
    SIGKILL after GRACE seconds."""
    pidfd = os.pidfd_open(runner) if hasattr(os, "pidfd_open") else None
    deadline = time.monotonic() + timeout if timeout else None
    timed_out = interrupted = False
    while True:
        pid, status = os.waitpid(runner, os.WNOHANG)
        if pid:
            return os.waitstatus_to_exitcode(status), timed_out
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            timed_out = timed_out or not interrupted
            _kill_group(runner)
            deadline = None
            continue
        wait = [pidfd] if pidfd is not None else []
        if not interrupted:
            wait.append(conn)
        ready, _, _ = select.select(wait, [], [], 0.02 if pidfd is None else left)
        if conn in ready and not interrupted and not conn.recv(1, socket.MSG_PEEK):  # the client hung up
            interrupted = True
            _signal_group(runner, signal.SIGINT)
            deadline = time.monotonic() + GRACE


def _signal_group(pid: int, sig: int) -> None:
    for send in (lambda: os.killpg(pid, sig), lambda: os.kill(pid, sig)):
        try:
            send()
            return
        except OSError:
            pass


def _kill_group(pid: int) -> None:
    for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            kill()
        except OSError:
            pass


def _supervise(conn: socket.socket) -> int:
    try:
        request, fds = _read_request(conn)
    except (OSError, EOFError, ValueError):
        return 1
    top = None
    try:
        env = as_started({str(k): str(v) for k, v in request["env"].items()}, _State.coerced)
        differs = sorted(k for k in set(import_env(env)) | set(_State.env) if env.get(k) != _State.env.get(k))
        if differs:
            _send_json(conn, {"fallback": f"environment differs from the worker's in {', '.join(differs)}"})
            return 0
        cwd = request.get("cwd") or "."
        if request.get("files") is not None:
            top = _materialize(request["files"])
            cwd = os.path.join(top, cwd)
        cwd = os.path.abspath(cwd)
        shadow = _shadowed(env, cwd)
        if shadow:
            _send_json(conn, {"fallback": shadow})
            return 0
        argv = [str(a) for a in request["argv"]]
        for rel in request.get("outputs") or ():
            _inside(cwd, rel)  # refused before anything runs
        supervisor = os.getpid()
        conn.sendall(STARTED)  # before the fork: a client that gets it never replays a command that may have run
        runner = os.fork()
        if runner == 0:
            code = 1
            try:
                conn.close()
                code = _run(argv, env, cwd, fds, supervisor)
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)  # the client sees EOF on its pipes when the runner (and what it started) is gone
        code, timed_out = _wait(runner, conn, request.get("timeout"))
        outputs = _outputs(cwd, request.get("outputs") or ()) if not timed_out else {}
        _send_json(conn, {"exit": code, "timed_out": timed_out, "outputs": outputs})
        return 0
    except (OSError, EOFError):
        return 1
    except (KeyError, TypeError, ValueError) as e:
        try:
            _send_json(conn, {"fallback": f"bad request: {e}"})
        except OSError:
            pass
        return 1
    finally:
        if top:
            shutil.rmtree(top, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------------
# the runner: a fresh process, as far as user code can tell


def _fresh_stdio() -> None:
    encoding = os.environ.get("PYTHONIOENCODING", "").split(":")[0] or None

    def stream(fd: int, mode: str, **kw) -> io.TextIOWrapper:
        raw = open(fd, mode + "b", buffering=0 if mode == "w" else -1, closefd=False)
        buffered = io.BufferedWriter(raw) if mode == "w" else raw
        return io.TextIOWrapper(buffered, encoding=encoding, **kw)

    sys.stdin = sys.__stdin__ = stream(0, "r")
    sys.stdout = sys.__stdout__ = stream(1, "w", line_buffering=os.isatty(1))
    sys.stderr = sys.__stderr__ = stream(2, "w", line_buffering=True, errors="backslashreplace")


def _die_with(supervisor: int) -> None:
    """The runner is killed when its supervisor dies (the worker was killed): user code never runs on unwatched."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != supervisor:
        os._exit(1)


def _roots(env: typing.Mapping[str, str], name: str) -> typing.List[str]:
    return [os.path.abspath(p) for p in env.get(name, "").split(os.pathsep) if p]


def _pex_extra_sys_path(env: typing.Mapping[str, str]) -> typing.List[str]:
    """A Pants sandbox runs the user's venv pex with the source roots in PEX_EXTRA_SYS_PATH; the venv's
    site-packages/PEX_EXTRA_SYS_PATH.pth (pex writes it) appends them to sys.path *after* site-packages, where an
    installed distribution wins over a root's module of the same name. A runner of such a venv does the same."""
    if not _State.pex_venv:
        return []
    return _roots(env, "PEX_EXTRA_SYS_PATH") + _roots(env, "__PEX_EXTRA_SYS_PATH__")


def _run(argv: typing.List[str], env: typing.Dict[str, str], cwd: str, fds: typing.List[int],
         supervisor: int) -> int:
    os.setsid()
    _die_with(supervisor)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    signal.signal(signal.SIGINT, _State.sigint)
    for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    atexit._clear()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.path[:] = _roots(env, "PYTHONPATH") + _State.base_path + _pex_extra_sys_path(env)
    sys.argv = [os.path.join(_HERE, "__main__.py"), *argv]
    sys.dont_write_bytecode = bool(env.get("PYTHONDONTWRITEBYTECODE"))
    importlib.invalidate_caches()
    sys.path_importer_cache.clear()
    linecache.clearcache()
    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    _fresh_stdio()
    sys.modules[f"{_PACKAGE}.entrypoint"]._CWD = os.getcwd()
    try:
        if not argv or argv[0] not in _COMMANDS:
            sys.stderr.write(f"usage: <{'|'.join(_COMMANDS)}> [args...]\n")
            code = 2
        else:
            code = importlib.import_module(f"{_PACKAGE}.{argv[0]}").main(argv)
    except SystemExit as e:
        code = e.code
    except BaseException:  # noqa: BLE001 - what the interpreter itself does with an uncaught exception
        import traceback

        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    try:
        threading._shutdown()  # non-daemon threads are joined, as at interpreter exit
    except Exception:  # noqa: BLE001
        pass
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return code & 0xFF


# ----------------------------------------------------------------------------------------------------------------


def _detach() -> None:
    """Double fork: the process that started us gets our pid on stdout and returns at once; we live on in a session
    of our own, outliving it, with no terminal."""
    read, write = os.pipe()
    if os.fork():
        os.close(write)
        pid = os.read(read, 32)
        sys.stdout.write(pid.decode() + "\n")
        sys.stdout.flush()
        os._exit(0)
    os.close(read)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.write(write, str(os.getpid()).encode())
    os.close(write)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)


def main(argv: typing.List[str]) -> int:
    args = argv[1:]
    path, idle, detach, log = None, 600.0, False, None
    try:
        while args:
            flag = args.pop(0)
            if flag == "--socket":
                path = args.pop(0)
            elif flag == "--idle-timeout":
                idle = float(args.pop(0))
            elif flag == "--log":
                log = args.pop(0)
            elif flag == "--detach":
                detach = True
            else:
                raise ValueError(flag)
    except (IndexError, ValueError):
        path = None
    if not path:
        sys.stderr.write("usage: worker --socket PATH [--idle-timeout SECONDS] [--log FILE] [--detach]\n")
        return 2
    if not hasattr(socket, "recv_fds") or not hasattr(os, "waitstatus_to_exitcode"):
        sys.stderr.write("worker: needs Python >= 3.9; every command runs as a subprocess instead\n")
        return 2
    if detach:
        _detach()
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 2)
        os.close(fd)
    path = os.path.abspath(path)
    os.chdir(os.path.dirname(path))
    serve(path, idle)
    return 0
