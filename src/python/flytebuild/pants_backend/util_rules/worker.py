"""pantsd's side of the warm user-env worker (docs/performance.md): which interpreter it runs, where its socket
lives, and one call that either answers a runtime command from a fresh fork of it or says the worker cannot be
used, so the caller runs the sandboxed process instead.

The interpreter is the user environment's own venv, the one Pants' VenvPex builds in its named cache
(`<named_caches_dir>/pex_root/<venv_rel_dir>`): the same files a sandboxed process runs, so both paths give the
same answer. It is used only once it exists (a sandboxed process creates it, e.g. the first introspection).
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from typing import Optional, Sequence

from pants.backend.python.util_rules.pex import VenvPex
from pants.engine.fs import DigestContents
from pants.option.global_options import GlobalOptions

from flytebuild.pants_backend.subsystems.flyte import FlyteSubsystem

logger = logging.getLogger(__name__)

_SOCKET_PATH_MAX = 100  # AF_UNIX paths are limited to 107 bytes on Linux


@dataclass(frozen=True)
class WorkerSetup:
    named_caches_dir: str
    socket_dir: str  # <pants_workdir>/flytebuild/worker: one repository's pantsd, one set of workers

    def python_of(self, venv_pex: VenvPex) -> Optional[str]:
        """The venv's interpreter if the venv is complete on disk (pex renames it into place when done), else None."""
        venv = os.path.join(self.named_caches_dir, "pex_root", venv_pex.venv_rel_dir)
        python = os.path.join(venv, "bin", "python")
        if os.path.isfile(os.path.join(venv, "pyvenv.cfg")) and os.access(python, os.X_OK):
            return python
        return None

    def socket_for(self, python: str) -> str:
        """One worker per environment: a new lockfile is a new venv, hence a new worker."""
        name = hashlib.sha256(python.encode()).hexdigest()[:16] + ".sock"
        path = os.path.join(self.socket_dir, name)
        if len(path.encode()) <= _SOCKET_PATH_MAX:
            return path
        # A deep workdir: a short path keyed by the long one, private to this user.
        where = hashlib.sha256(path.encode()).hexdigest()[:16]
        return os.path.join(tempfile.gettempdir(), f"flytebuild-{os.getuid()}", f"{where}.sock")


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


_warned: set[str] = set()


def worker_run(
    setup: WorkerSetup,
    python: str,
    contents: DigestContents,
    argv: Sequence[str],
    source_roots: Sequence[str],
    output_directories: Sequence[str],
    timeout: Optional[int],
) -> Optional[WorkerAnswer]:
    """Run `argv` in a fresh fork of the worker for `python`, in a fresh directory holding `contents`; None when no
    worker can be used (the caller runs the sandboxed process instead, with the same inputs)."""
    try:
        from flytebuild.service import worker as client
    except ImportError as e:
        return _unavailable(python, f"no worker client ({e})")
    files = {fc.path: fc.content for fc in contents}
    try:
        answer = client.run_files(
            python,
            setup.socket_for(python),
            list(argv),
            files,
            source_roots=list(source_roots),
            output_dirs=list(output_directories),
            timeout=timeout,
        )
    except client.WorkerUnavailable as e:
        return _unavailable(python, str(e))
    return WorkerAnswer(
        answer.exit_code,
        answer.stdout,
        answer.stderr,
        tuple(sorted(answer.outputs.items())),
        answer.timed_out,
    )


def _unavailable(python: str, why: str) -> None:
    # Said once per environment and pantsd: the sandboxed process gives the same answer, only slower.
    if python not in _warned:
        _warned.add(python)
        logger.warning(f"flytebuild: the warm worker is not used ({why}); running sandboxed processes instead.")
    else:
        logger.debug(f"flytebuild: worker not used: {why}")
    return None
