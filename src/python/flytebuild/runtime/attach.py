"""`python -I -S attach.py --venv V --runtime R --identity I --socket-dir D -- <cold argv...>`: run one runtime
command (`run`, `remote`) in a fresh fork of the warm worker (worker.py), as `pants run` does: a tiny process
that imports neither flytekit nor anything of the user's, hands the worker its own stdin/stdout/stderr, argv,
environment and working directory, and exits with the command's status. When no worker can serve it (none can be
started, it refuses the request, it dies before answering) it execs `<cold argv...>`, the command `pants run`
runs without a worker, so the answer is the same either way; the worker only makes it start faster.

Standard library only, run as a script (never imported by the worker or by user code). The client of the other
front ends is flytebuild/service/worker.py, which cannot be imported here (the runtime never imports flytebuild):
the few protocol pieces both need (socket name, framing) are kept once per side, and tests/service/test_worker_attach.py
checks that they agree.

Ctrl-C: the runner is in a session of its own, so the SIGINT of the terminal or of Pants reaches only this
process; it shuts down its writing half of the connection, on which the worker gives the runner's process group
SIGINT (the user's program is interrupted as without the worker) and still sends the exit status, which
this process exits with. A second signal: it exits at once. When the worker dies after it started the command,
the command is not run again (it may have launched something): one error line, exit 1.
"""
import fcntl
import hashlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
_START_TIMEOUT = 120.0
_MAX_SOCKET_PATH = 100


def _worker_module():
    spec = importlib.util.spec_from_file_location("_flytebuild_attach_worker", os.path.join(_HERE, "worker.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def socket_path(python, runtime_dir, identity, socket_dir, environ, import_env):
    """The worker's socket: the same name flytebuild/service/worker.py's socket_path gives."""
    key = hashlib.sha256(json.dumps(
        [os.path.abspath(python), os.path.realpath(python), runtime_dir, identity,
         sorted(import_env(environ).items())]).encode()).hexdigest()[:24]
    return os.path.join(socket_dir, f"w-{key}.sock")


def _connect(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dir_fd = None
    try:
        if len(path) > _MAX_SOCKET_PATH:
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


def connect(python, runtime_dir, path, environ):
    """A connection to the worker at `path`, started (detached, by the protocol of service/worker.py's connect)
    when there is none; None if that fails."""
    sock = _connect(path)
    if sock is not None:
        return sock
    main = os.path.join(runtime_dir, "__main__.py")
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        st = os.stat(os.path.dirname(path))
        if st.st_uid != os.getuid() or st.st_mode & 0o022 or not os.path.isfile(main):
            return None
        lock = open(path + ".lock", "a")
    except OSError:
        return None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sock = _connect(path)
        if sock is not None:
            return sock
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        # The worker never sees the source roots (it must import no user module): worker.py and service/worker.py.
        parent_env = {k: v for k, v in environ.items()
                      if k not in ("PYTHONPATH", "PEX_EXTRA_SYS_PATH", "__PEX_EXTRA_SYS_PATH__")}
        try:
            started = subprocess.run(
                [python, main, "worker", "--socket", path, "--idle-timeout", "600", "--log", path + ".log",
                 "--detach"],
                cwd=os.path.dirname(path), env=parent_env, stdin=subprocess.DEVNULL, capture_output=True,
                text=True, timeout=60)
            pid = int(started.stdout.split()[0])
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            return None
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            sock = _connect(path)
            if sock is not None:
                return sock
            try:
                os.kill(pid, 0)
            except OSError:
                return None
            time.sleep(0.02)
    return None


def _read_reply(sock, worker, started):
    """The worker's answer, None if the connection ended without one; `started` gets True once the worker said the
    command may have started (worker.STARTED, in front of the answer)."""
    def exact(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    try:
        head = exact(1)
        if head == worker.STARTED:
            started.append(True)
            head = exact(1)
        head = head and head + (exact(worker._HEADER.size - 1) or b"")
        if not head or len(head) < worker._HEADER.size:
            return None
        body = exact(worker._HEADER.unpack(head)[0])
        return json.loads(body) if body is not None else None
    except (OSError, ValueError):
        return None


def _exit_as(code):
    """Exit with the runner's status; killed by a signal, die of the same signal (as the cold process would)."""
    if code < 0:
        sys.stdout.flush()
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        code = 128 - code
    os._exit(code & 0xFF)


def _cold(argv):
    os.execv(argv[0], argv)


def main(args):
    opts = {}
    while args and args[0] != "--":
        opts[args[0].lstrip("-")] = args[1]
        args = args[2:]
    cold = args[1:]
    worker = _worker_module()
    environ = dict(os.environ)
    # The user environment's venv: pex creates it on the first cold run; until it is complete, run cold.
    venv, runtime_dir = opts["venv"], opts["runtime"]
    python = os.path.join(venv, "bin", "python")
    if not os.path.isfile(os.path.join(venv, "pyvenv.cfg")) or not os.access(python, os.X_OK):
        _cold(cold)
    path = socket_path(python, runtime_dir, opts["identity"], opts["socket-dir"], environ, worker.import_env)
    sock = connect(python, runtime_dir, path, environ)
    if sock is None:
        _cold(cold)
    # The command after the runtime's __main__.py, as the worker runs it. The source roots are in PEX_EXTRA_SYS_PATH,
    # which the worker appends after site-packages as the venv's pex does; the pex does not pass PYTHONPATH on.
    command = cold[next(i for i, a in enumerate(cold) if a.endswith("__main__.py")) + 1:]
    environ.pop("PYTHONPATH", None)
    request = {"argv": command, "env": environ, "cwd": os.getcwd(), "files": None, "outputs": [], "timeout": None}
    data = json.dumps(request).encode()
    try:
        socket.send_fds(sock, [worker.MAGIC + worker._HEADER.pack(len(data))], [0, 1, 2])
        sock.sendall(data)
    except OSError:
        sock.close()
        _cold(cold)
    interrupted = []

    def interrupt(signum, _frame):
        # Ctrl-C: hang up our writing side; the worker gives the runner SIGINT (as a plain process would get it)
        # and still sends its exit status. A second one: stop waiting.
        if interrupted:
            _exit_as(-interrupted[0])
        interrupted.append(signum)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    started = []
    reply = _read_reply(sock, worker, started)
    if reply is not None and "exit" in reply:
        _exit_as(int(reply["exit"]))
    if interrupted:
        _exit_as(-interrupted[0])
    sock.close()
    if started:  # it may have partly run (launched, printed): running it again could do it twice
        sys.stderr.write(f"error: the warm worker died while running `{' '.join(command[:1])}`; it may have partly "
                         "run. Fix: check what it did, then re-run (or pass --no-flyte-worker).\n")
        sys.exit(1)
    _cold(cold)  # refused (`fallback`) or gone before starting it: the command runs as it would without a worker


if __name__ == "__main__":
    main(sys.argv[1:])
