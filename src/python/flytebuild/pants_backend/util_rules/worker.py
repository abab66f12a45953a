"""pantsd's side of the warm user-env worker (runtime/worker.py, service/worker.py, docs/performance.md): which
interpreter it runs, where its socket lives, and one call that either answers a runtime command from a fresh fork
of it or says the worker cannot be used, so the caller runs the sandboxed process instead.

The interpreter is the user environment's own venv, the one Pants' VenvPex builds in its named cache
(`<named_caches_dir>/pex_root/<venv_rel_dir>`): the same files a sandboxed process runs, so both paths give the
same answer. It is used only once it is complete on disk (a sandboxed process creates it, e.g. the first
introspection after a lockfile change). The venv's path is content-addressed by Pants, so it, with the runtime
package's fingerprint, is the worker's identity: a new lockfile or plugin gets a new worker, the old one idles out.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import IO, Dict, Iterable, Optional, Sequence

from pants.backend.python.util_rules.pex import VenvPex
from pants.engine.fs import FileContent
from pants.option.global_options import GlobalOptions

from flytebuild.pants_backend.subsystems.flyte import FlyteSubsystem
from flytebuild.service import worker as client
from flytebuild.service.runtime_package import RUNTIME_DIR
from flytebuild.service.runtime_package import fingerprint as runtime_fingerprint

logger = logging.getLogger(__name__)

# The runtime package pantsd has on disk (the worker runs it; a sandbox gets a copy under RUNTIME_DIR).
_RUNTIME = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "runtime")


@dataclass(frozen=True)
class WorkerSetup:
    named_caches_dir: str
    socket_dir: str  # <pants_workdir>/flytebuild/worker: one repository's pantsd, its own workers

    def venv_of(self, venv_pex: VenvPex) -> str:
        """Where the venv is (or will be, once a process of the pex ran)."""
        return os.path.join(self.named_caches_dir, "pex_root", venv_pex.venv_rel_dir)

    def python_of(self, venv_pex: VenvPex) -> Optional[str]:
        """The venv's interpreter if the venv is complete on disk (pex renames it into place when done), else None."""
        venv = self.venv_of(venv_pex)
        python = os.path.join(venv, "bin", "python")
        if os.path.isfile(os.path.join(venv, "pyvenv.cfg")) and os.access(python, os.X_OK):
            return python
        return None

    def user_env(self, python: str) -> client.UserEnv:
        return client.UserEnv(python, _RUNTIME, f"{python}|{runtime_fingerprint()}", self.socket_dir)


def worker_setup(flyte: FlyteSubsystem, global_options: GlobalOptions) -> Optional[WorkerSetup]:
    """None when `[flyte].worker` is off."""
    if not flyte.worker:
        return None
    where = os.path.join(global_options.pants_workdir, "flytebuild", "worker")
    return WorkerSetup(str(global_options.named_caches_dir), where)


def _request(setup: WorkerSetup, python: str, contents: Iterable[FileContent], source_roots: Sequence[str]):
    """(the worker, the request's environment, its files) for a sandbox's `contents`."""
    # The command sees what a sandboxed process sees: no variable of pantsd's but the source roots, passed as the
    # sandbox passes them (user_env.py): PEX_EXTRA_SYS_PATH, after site-packages (runtime/worker.py does as pex).
    environ = {"PEX_EXTRA_SYS_PATH": os.pathsep.join(source_roots)}
    # The runtime package's own files are left out: the worker runs its own, of the same fingerprint.
    prefix = RUNTIME_DIR + "/"
    files = {fc.path: fc.content for fc in contents if not fc.path.startswith(prefix)}
    return setup.user_env(python), environ, files


@dataclass(frozen=True)
class WorkerAnswer:
    exit_code: int
    stdout: bytes
    stderr: bytes
    outputs: tuple[tuple[str, bytes], ...]
    timed_out: bool


def worker_run(
    setup: WorkerSetup,
    python: str,
    contents: Iterable[FileContent],
    argv: Sequence[str],
    source_roots: Sequence[str],
    output_directories: Sequence[str],
    timeout: Optional[int],
    cancelled: Optional[threading.Event] = None,
) -> Optional[WorkerAnswer]:
    """Run `argv` (`runtime_argv`'s) in a fresh fork of the worker for `python`, in a fresh directory holding
    `contents` (the runtime package's own files are left out: the worker runs its own, of the same fingerprint);
    None when no worker can be reached (the caller runs the sandboxed process instead, with the same inputs).
    `cancelled` (CancellableWork's, set on Ctrl-C) stops the command as Pants stops a process: client.Cancelled."""
    env, environ, files = _request(setup, python, contents, source_roots)
    prefix = RUNTIME_DIR + "/"
    command = list(argv[1:]) if argv and argv[0].startswith(prefix) else list(argv)
    try:
        # The first call starts the worker (flytekit imported once); each call is a fresh fork of it.
        result = client.run(env, command, environ=environ, files=files, outputs=list(output_directories),
                            timeout=timeout, fallback=False, cancelled=cancelled)
    except client.WorkerUnavailable as e:  # it cannot start, refused the request, or died during it
        logger.debug(f"flytebuild: {e}; running a sandboxed process")
        return None
    except subprocess.TimeoutExpired:
        return WorkerAnswer(-15, b"", b"", (), True)
    outputs = tuple(sorted((path, bytes(data)) for path, data in result.outputs.items()))
    return WorkerAnswer(result.returncode, result.stdout, result.stderr, outputs, False)


# ----------------------------------------------------------------------------------------------------------------
# One user-env pass per edit: introspection and serialization in the same fork (runtime/session.py)
#
# The introspection rule runs `session` instead of `introspect --batch`: the same answer (line 1), after which the
# fork waits, with the user's modules imported, for the serialization that the plan may ask of the same workflows.
# It is parked under a key of everything a fresh fork for that serialization would be given but the requests: the
# interpreter (the worker), the sources by digest and the source roots. The serialization rule claims it by that
# key (once: a claimed session is nobody else's) and sends its requests as contents; without a parked session of
# the same key (no edit between, the same workflows missing in both rules' result caches) it forks as before.

_PARK_SECONDS = 30.0  # planning between the two rules takes ~0.1 s after an edit, seconds on a first, cold run
_PARKED_AT_MOST = 4  # the oldest goes first
_SESSION_OUT = "__flytebuild_session"  # the serialization's output directories, under this one


class _Session:
    """A `session` fork that answered its introspection and waits on stdin."""

    def __init__(self, key: tuple, proc: client.WorkerProcess, stderr: IO[bytes]):
        self.key, self.proc, self.stderr = key, proc, stderr
        self.parked = time.monotonic()

    def stderr_so_far(self) -> bytes:
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read()

    def kill(self) -> None:
        """Stopped where it is (a timeout, Ctrl-C, or no usable answer): the user's code does not run on."""
        self.proc.kill()
        self.stderr.close()

    def close(self) -> None:
        """EOF on stdin: nothing (more) to serialize, the fork exits; killed if it does not within a second."""
        try:
            self.proc.stdin.close()
            self.proc.wait(1.0)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.proc.kill()
        self.stderr.close()


_PARKED: Dict[tuple, _Session] = {}
_PARKED_LOCK = threading.Lock()


def _park(session: _Session) -> None:
    with _PARKED_LOCK:
        old = _PARKED.pop(session.key, None)
        _PARKED[session.key] = session
        evicted = [old] if old is not None else []
        while len(_PARKED) > _PARKED_AT_MOST:
            evicted.append(_PARKED.pop(next(iter(_PARKED))))
    for s in evicted:
        s.close()
    timer = threading.Timer(_PARK_SECONDS, _expire, args=(session,))
    timer.daemon = True
    timer.start()


def _expire(session: _Session) -> None:
    with _PARKED_LOCK:
        if _PARKED.get(session.key) is not session:
            return  # claimed, or replaced
        del _PARKED[session.key]
    session.close()


def release_parked() -> None:
    """Closes every session still parked; a goal rule of ours calls it once its plans and serializations are done.

    What it parked and did not claim by then nobody will (a `flyte-plan` serializes nothing): each one is a fork with
    the user's modules imported, holding memory for `_PARK_SECONDS` otherwise. A goal running at the same time in the
    same pantsd may lose a session it was about to claim; its serialization then forks anew, with the same answer."""
    with _PARKED_LOCK:
        sessions = list(_PARKED.values())
        _PARKED.clear()
    for s in sessions:
        s.close()


def _claim(key: tuple) -> Optional[_Session]:
    with _PARKED_LOCK:
        return _PARKED.pop(key, None)


def session_key(python: str, sources_fingerprint: str, source_roots: Sequence[str]) -> tuple:
    return (python, sources_fingerprint, tuple(source_roots))


def session_introspect(
    setup: WorkerSetup,
    python: str,
    contents: Iterable[FileContent],
    entrypoints: Sequence[str],
    source_roots: Sequence[str],
    key: tuple,
    timeout: Optional[int],
    cancelled: Optional[threading.Event] = None,
) -> Optional[WorkerAnswer]:
    """`introspect --batch <entrypoints>`'s answer from a `session` fork, which is then parked under `key` for the
    serialization; None when no worker can be reached or the fork ended without answering (the caller runs the
    plain request instead: introspection is pure)."""
    env, environ, files = _request(setup, python, contents, source_roots)
    stderr = tempfile.TemporaryFile()
    try:
        proc = client.start(env, ["session", *entrypoints], environ=environ, files=files, outputs=[_SESSION_OUT],
                            stderr=stderr)
    except client.WorkerUnavailable as e:
        stderr.close()
        logger.debug(f"flytebuild: {e}; running the plain request")
        return None
    session = _Session(key, proc, stderr)
    try:
        line = client.read_line(proc, time.monotonic() + timeout if timeout else None, cancelled)
    except subprocess.TimeoutExpired:
        session.kill()
        return WorkerAnswer(-15, b"", b"", (), True)
    except BaseException:  # Cancelled (Ctrl-C), or anything else: the user's code does not run on without us
        session.kill()
        raise
    if not line.endswith(b"\n"):  # it ended first (the worker died under it, or it crashed): not an answer
        session.kill()
        return None
    _park(session)
    return WorkerAnswer(0, line, session.stderr_so_far(), (), False)


def session_serialize(
    key: tuple,
    files: Iterable[FileContent],
    pairs: Sequence[tuple[str, str]],
    timeout: Optional[int],
    cancelled: Optional[threading.Event] = None,
) -> Optional[WorkerAnswer]:
    """`serialize --batch <request> <out_dir>...`'s answer and output files from the session parked under `key`, given
    the requests by content; None when there is none (or it ended without answering: the caller forks anew, as
    serialization is pure). The output directories' paths come back as a fresh fork's would."""
    session = _claim(key)
    if session is None:
        return None
    proc = session.proc
    sent = {fc.path: base64.b64encode(fc.content).decode("ascii") for fc in files}
    line = {"serialize": [[request, f"{_SESSION_OUT}/{out}"] for request, out in pairs], "files": sent}
    try:
        proc.stdin.write(json.dumps(line).encode() + b"\n")
        proc.stdin.close()
        answer = client.read_line(proc, time.monotonic() + timeout if timeout else None, cancelled)
        if answer.endswith(b"\n"):
            proc.wait(30)
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        session.kill()
        return WorkerAnswer(-15, b"", b"", (), True) if isinstance(e, subprocess.TimeoutExpired) else None
    except BaseException:
        session.kill()
        raise
    stderr = session.stderr_so_far()
    session.stderr.close()
    try:
        data = json.loads(answer)
        # The results are keyed by the output directories as sent; the caller asked for `out`, as a fresh fork is.
        data["results"] = {out: data["results"][f"{_SESSION_OUT}/{out}"] for _, out in pairs}
    except (ValueError, KeyError, TypeError):
        return None  # no answer (it ended first, or not one serialize --batch gives): a fresh fork answers
    if proc.lost:
        return None
    prefix = _SESSION_OUT + "/"
    outputs = tuple(sorted((path[len(prefix):], bytes(content)) for path, content in proc.outputs.items()
                           if path.startswith(prefix)))
    return WorkerAnswer(proc.returncode or 0, json.dumps(data).encode(), stderr, outputs, False)
