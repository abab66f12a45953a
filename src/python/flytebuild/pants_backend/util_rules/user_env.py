"""Run a runtime command in the user's own environment, never in Pants' interpreter.

The environment is a VenvPex of the flyte_workflow targets' resolve (flytekit comes from the user's lockfile) without
their sources, which are put on the path instead: one environment per resolve, shared by introspection,
serialization and deploy, so Pants builds it once and an edit to a source does not rebuild it.
"""
from __future__ import annotations

import functools
import json
import os
from importlib import resources
from typing import Iterable, Sequence

from pants.backend.python.util_rules.pex import VenvPex, VenvPexProcess
from pants.backend.python.util_rules.pex_from_targets import PexFromTargetsRequest
from pants.backend.python.util_rules.python_sources import PythonSourceFiles, PythonSourceFilesRequest
from pants.engine.addresses import Address
from pants.engine.fs import CreateDigest, Digest, FileContent, MergeDigests
from pants.engine.process import FallibleProcessResult
from pants.engine.rules import Get, MultiGet
from pants.engine.target import TransitiveTargets, TransitiveTargetsRequest
from pants.util.logging import LogLevel


# The runtime package's directory in a sandbox: a private top-level name (runtime/__main__.py loads it as such).
RUNTIME_DIR = "_flytebuild_runtime"


@functools.lru_cache(maxsize=None)
def _runtime_package() -> tuple[tuple[str, bytes], ...]:
    package = resources.files("flytebuild.runtime")
    return tuple(sorted((f.name, f.read_bytes()) for f in package.iterdir() if f.name.endswith(".py")))


def runtime_files(prefix: str = "") -> list[FileContent]:
    """The whole runtime package, under `<prefix>/_flytebuild_runtime/` in a sandbox."""
    where = os.path.join(prefix, RUNTIME_DIR)
    return [FileContent(os.path.join(where, name), data) for name, data in _runtime_package()]


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


async def run_in_user_env(
    addresses: tuple[Address, ...],
    files: Sequence[FileContent],
    argv: Sequence[str],
    description: str,
    output_directories: Sequence[str] = (),
) -> FallibleProcessResult:
    """Run `argv` (a runtime command, see `runtime_argv`) in the environment of `addresses`, with their transitive
    sources, the runtime package and `files`.

    Cached by Pants like any process: unchanged targets and inputs are free to run again."""
    transitive = await Get(TransitiveTargets, TransitiveTargetsRequest(addresses))
    venv_pex, sources, scripts = await MultiGet(
        Get(VenvPex, PexFromTargetsRequest, user_env_pex_request(addresses)),
        Get(PythonSourceFiles, PythonSourceFilesRequest(transitive.closure, include_files=True)),
        Get(Digest, CreateDigest([*runtime_files(), *files])),
    )
    input_digest = await Get(Digest, MergeDigests([sources.source_files.snapshot.digest, scripts]))
    return await Get(
        FallibleProcessResult,
        VenvPexProcess(
            venv_pex,
            argv=argv,
            input_digest=input_digest,
            output_directories=output_directories,
            extra_env={"PEX_EXTRA_SYS_PATH": os.pathsep.join(sources.source_roots)},
            description=description,
            level=LogLevel.DEBUG,
        ),
    )


def batch_results(result: FallibleProcessResult) -> dict:
    """A `--batch` command's `results` (key -> data or {"error": ...}); {} when it printed none (it crashed)."""
    try:
        return json.loads(result.stdout.decode("utf-8", "replace"))["results"]
    except (ValueError, KeyError, TypeError):
        return {}


def runtime_error(data, stderr: str, kind: str) -> dict:
    """The command's error for one entry, or, when it reported none, the end of its stderr."""
    return (data or {}).get("error") or {"kind": kind, "message": stderr.strip()[-2000:] or "no output"}
