"""Run a runtime command in the user's own environment, never in Pants' interpreter.

The environment is a VenvPex of the flyte_workflow targets' resolve (flytekit comes from the user's lockfile) without
their sources, which are put on the path instead: one environment per resolve, shared by introspection,
serialization and deploy, so Pants builds it once and an edit to a source does not rebuild it.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence

from pants.backend.python.util_rules.pex import VenvPex, VenvPexProcess
from pants.backend.python.util_rules.pex_from_targets import PexFromTargetsRequest
from pants.backend.python.util_rules.python_sources import PythonSourceFiles, PythonSourceFilesRequest
from pants.engine.addresses import Address
from pants.engine.fs import CreateDigest, Digest, DigestContents, FileContent, MergeDigests
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import TransitiveTargets, TransitiveTargetsRequest
from pants.option.global_options import GlobalOptions
from pants.util.logging import LogLevel

from flytebuild.core.errors import UserCodeTimeout
from flytebuild.pants_backend.subsystems.flyte import FlyteSubsystem
from flytebuild.pants_backend.util_rules.cancellation import CancellableWork
from flytebuild.pants_backend.util_rules.worker import (
    WorkerAnswer,
    WorkerSetup,
    session_introspect,
    session_key,
    session_serialize,
    worker_run,
    worker_setup,
)
from flytebuild.service.runtime_package import RUNTIME_DIR, package_files

logger = logging.getLogger(__name__)

# How long a worker's answer is awaited in the rule's body (cancellation.py `finished`): a warm worker answers one
# project's introspection or serialization in ~0.06 s, and registers 15 entities in ~0.1 s; past this, a waiter makes
# Ctrl-C stop the command. Ctrl-C within it takes effect when it ends: a deploy that finishes meanwhile is one that
# finished just before Ctrl-C (what it registered is real, and recorded), one that does not is stopped as before.
_GRACE = 0.5


def runtime_files(prefix: str = "") -> list[FileContent]:
    """The whole runtime package, under `<prefix>/_flytebuild_runtime/` in a sandbox."""
    where = os.path.join(prefix, RUNTIME_DIR)
    return [FileContent(os.path.join(where, name), data) for name, data in package_files()]


def runtime_argv(command: str, *args: str, prefix: str = "") -> list[str]:
    """argv (after the interpreter) of a runtime command shipped by `runtime_files(prefix)`."""
    return [os.path.join(prefix, RUNTIME_DIR, "__main__.py"), command, *args]


def user_env_pex_request(addresses: Iterable[Address]) -> PexFromTargetsRequest:
    # One request for every caller: equal requests are one node of the rule graph, built once.
    return PexFromTargetsRequest(
        addresses,
        output_filename="flyte-introspect.pex",
        internal_only=True,
        include_source_files=False,
    )


@dataclass(frozen=True)
class UserEnvResult:
    """What a runtime command answered, whether a warm worker's fork or a sandboxed process ran it."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    outputs: tuple[tuple[str, bytes], ...]  # (path, content) of the files under the output directories
    via: str  # "worker" or "process"


async def run_in_user_env(
    addresses: tuple[Address, ...],
    files: Sequence[FileContent],
    argv: Sequence[str],
    description: str,
    output_directories: Sequence[str] = (),
    timeout: Optional[int] = None,
    env_addresses: tuple[Address, ...] | None = None,
    worker: Optional[WorkerSetup] = None,
    session: bool = False,
) -> UserEnvResult:
    """Run `argv` (a runtime command, see `runtime_argv`) in the environment of `env_addresses` (default:
    `addresses`), with the transitive sources of `addresses`, the runtime package and `files`.

    With `worker` (see `worker_setup`), a fork of the warm worker runs it, given the same files by content; when the
    worker cannot be used, a sandboxed process does, cached by Pants like any process. Past `timeout` seconds
    either is stopped and a UserCodeTimeout names the targets.

    `session` (worker only): an `introspect --batch` runs as a runtime `session` that stays, parked for the
    serialization of the same sources (worker.py `session_introspect`); a `serialize --batch` is answered by such a
    session when one is parked for its sources, else forks as usual: one user-env pass per edit."""
    transitive = await Get(TransitiveTargets, TransitiveTargetsRequest(addresses))
    venv_pex, sources, scripts = await MultiGet(
        Get(VenvPex, PexFromTargetsRequest, user_env_pex_request(env_addresses or addresses)),
        Get(PythonSourceFiles, PythonSourceFilesRequest(transitive.closure, include_files=True)),
        Get(Digest, CreateDigest([*runtime_files(), *files])),
    )
    input_digest = await Get(Digest, MergeDigests([sources.source_files.snapshot.digest, scripts]))
    target = ", ".join(str(a) for a in addresses)
    python = worker and worker.python_of(venv_pex)
    if worker and python:
        key = session_key(python, str(sources.source_files.snapshot.digest), sources.source_roots)
        if session and argv[1] == "serialize":
            parked = await _await_worker(
                lambda cancelled: session_serialize(key, files, list(zip(argv[3::2], argv[4::2])), timeout,
                                                    cancelled),
                description, target, timeout, " (the introspection's session)")
            if parked is not None:
                return parked
        contents = await Get(DigestContents, Digest, input_digest)
        if session and argv[1] == "introspect":
            warm = await _await_worker(
                lambda cancelled: session_introspect(worker, python, contents, argv[3:], sources.source_roots, key,
                                                     timeout, cancelled),
                description, target, timeout)
            if warm is not None:
                return warm
        warm = await run_in_worker(worker, python, contents, argv, description, target, sources.source_roots,
                                   output_directories, timeout)
        if warm is not None:
            return warm
    result = await Get(
        FallibleProcessResult,
        VenvPexProcess(
            venv_pex,
            argv=argv,
            input_digest=input_digest,
            output_directories=output_directories,
            extra_env={"PEX_EXTRA_SYS_PATH": os.pathsep.join(sources.source_roots)},
            description=description,
            level=LogLevel.DEBUG,
            timeout_seconds=timeout,
        ),
    )
    check_timeout(result, timeout, description, target)
    outputs: tuple[tuple[str, bytes], ...] = ()
    if output_directories:
        produced = await Get(DigestContents, Digest, result.output_digest)
        outputs = tuple((fc.path, fc.content) for fc in produced)
    return UserEnvResult(result.exit_code, result.stdout, result.stderr, outputs, "process")


async def run_in_worker(
    worker: WorkerSetup,
    python: str,
    files: Iterable[FileContent],
    argv: Sequence[str],
    description: str,
    target: str,
    source_roots: Sequence[str] = (),
    output_directories: Sequence[str] = (),
    timeout: Optional[int] = None,
) -> Optional[UserEnvResult]:
    """`argv` in a fresh fork of the warm worker of `python` (`worker.python_of`), given `files` by content; None
    when the worker cannot be used (nothing ran: the caller runs its sandboxed process). A command with side effects
    that the worker lost after it started raises WorkerLost (service/worker.py): it is never run twice. The answer is
    awaited for _GRACE s without a waiter process (a Pants process, ~0.07-0.1 s even when it has nothing to wait
    for); past that the waiter makes Ctrl-C stop the command."""
    return await _await_worker(
        lambda cancelled: worker_run(worker, python, files, argv, source_roots, output_directories, timeout,
                                     cancelled=cancelled),
        description, target, timeout)


async def _await_worker(
    call: Callable[[threading.Event], Optional[WorkerAnswer]],
    description: str,
    target: str,
    timeout: Optional[int],
    via: str = "",
) -> Optional[UserEnvResult]:
    """`call(cancelled)` (a worker.py request) on a thread the rule can cancel: Ctrl-C stops the worker's command as
    it would a sandboxed process."""
    work: CancellableWork[Optional[WorkerAnswer]] = CancellableWork(description)
    try:
        work.start(lambda: call(work.cancelled))
        if not work.finished(_GRACE):
            # Memoized once done: after an edit pantsd re-checks the previous run's nodes, and would start the
            # previous request's waiter again only to learn that the rule must run anew. The deploy, the one request
            # with side effects, runs in a rule keyed by the run's RunId, which no later run re-checks.
            await Get(FallibleProcessResult, Process, work.waiter(ProcessCacheScope.PER_RESTART_SUCCESSFUL))
        answer = work.result()
    finally:
        work.close()
    if answer is None:
        return None
    if answer.timed_out:
        raise UserCodeTimeout(description, timeout, target=target, setting="[flyte].user_code_timeout")
    logger.debug(f"flytebuild: {description}: answered by the warm worker{via}")
    return UserEnvResult(answer.exit_code, answer.stdout, answer.stderr, answer.outputs, "worker")


def check_timeout(result: FallibleProcessResult, timeout: Optional[int], description: str, target: str) -> None:
    """Pants stops a process at its timeout with exit code -15 and says so in its output."""
    said = b"Exceeded timeout" in result.stdout or b"Exceeded timeout" in result.stderr
    if timeout and (said or result.exit_code == -15):
        raise UserCodeTimeout(description, timeout, target=target, setting="[flyte].user_code_timeout")


def batch_results(result: UserEnvResult) -> dict:
    """A `--batch` command's `results` (key -> data or {"error": ...}); {} when it printed none (it crashed)."""
    try:
        return json.loads(result.stdout.decode("utf-8", "replace"))["results"]
    except (ValueError, KeyError, TypeError):
        return {}


def runtime_error(data, stderr: str, kind: str) -> dict:
    """The command's error for one entry, or, when it reported none, the end of its stderr."""
    return (data or {}).get("error") or {"kind": kind, "message": stderr.strip()[-2000:] or "no output"}


@dataclass(frozen=True)
class _SourcesKeyRequest:
    address: Address


@dataclass(frozen=True)
class _SourcesKey:
    text: str  # "<digest of the transitive sources>|<source roots>"


@rule(desc="Key a target's transitive sources", level=LogLevel.TRACE)
async def sources_key(request: _SourcesKeyRequest) -> _SourcesKey:
    # A node per target: after an edit only the targets whose closure changed compute it again; the others are
    # graph lookups by address (their closures are not compared target by target, as a request holding them is).
    transitive = await Get(TransitiveTargets, TransitiveTargetsRequest([request.address]))
    sources = await Get(PythonSourceFiles, PythonSourceFilesRequest(transitive.closure, include_files=True))
    return _SourcesKey(f"{sources.source_files.snapshot.digest.fingerprint}|{','.join(sources.source_roots)}")


async def input_keys(addresses: tuple[Address, ...], env_addresses: tuple[Address, ...]) -> tuple[str, ...]:
    """Per target: a key over everything a user-env process can see for it (its transitive sources and source
    roots, the environment of `env_addresses`), for core/result_cache.py. Pants digests: nothing is re-read."""
    keys = await MultiGet(Get(_SourcesKey, _SourcesKeyRequest(a)) for a in addresses)
    venv_pex = await Get(VenvPex, PexFromTargetsRequest, user_env_pex_request(env_addresses))
    env = venv_pex.digest.fingerprint
    return tuple(f"{k.text}|{env}" for k in keys)


@dataclass(frozen=True)
class UserCodeSetup:
    """What the rules that run user code read of the options: a node of its own, not the `[flyte]` subsystem, so a
    run that changes an option they do not read (`--flyte-endpoint`, `--flyte-ledger`) re-runs none of their bodies
    (introspection, serialization, pod-template validation: their answers would come from the caches anyway)."""

    timeout: Optional[int]  # [flyte].user_code_timeout
    worker: Optional[WorkerSetup]  # None when [flyte].worker is off
    results_dir: str  # core/result_cache.py's directory: per repo, in Pants' workdir (`.pants.d`)


@rule(desc="Read the [flyte] settings of user-code processes")
async def user_code_setup(flyte: FlyteSubsystem, global_options: GlobalOptions) -> UserCodeSetup:
    return UserCodeSetup(
        timeout=flyte.user_code_timeout,
        worker=worker_setup(flyte, global_options),
        results_dir=os.path.join(global_options.pants_workdir, "flytebuild", "results"),
    )


def rules():
    return collect_rules()
