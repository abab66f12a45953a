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

import logging
import os
import subprocess
import threading
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

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
    env = setup.user_env(python)
    # The command sees what a sandboxed process sees: no variable of pantsd's but the source roots, passed as the
    # sandbox passes them (user_env.py): PEX_EXTRA_SYS_PATH, after site-packages (runtime/worker.py does as pex).
    environ = {"PEX_EXTRA_SYS_PATH": os.pathsep.join(source_roots)}
    prefix = RUNTIME_DIR + "/"
    files = {fc.path: fc.content for fc in contents if not fc.path.startswith(prefix)}
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
