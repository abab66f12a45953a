"""Introspect a `flyte_workflow` by importing its entrypoint in the user's own environment.

The import happens in a sandboxed process built from the workflow's closure and resolve
(flytekit comes from the user's lockfile), never in Pants' own interpreter. The process is
cached by Pants: an unchanged workflow is free to re-plan.
"""
from __future__ import annotations

import json
import os
import pkgutil
from dataclasses import dataclass

from pants.backend.python.target_types import ResolvedPexEntryPoint, ResolvePexEntryPointRequest
from pants.backend.python.util_rules.pex import VenvPex, VenvPexProcess
from pants.backend.python.util_rules.pex_from_targets import PexFromTargetsRequest
from pants.backend.python.util_rules.python_sources import (
    PythonSourceFiles,
    PythonSourceFilesRequest,
)
from pants.engine.addresses import Address
from pants.engine.fs import CreateDigest, Digest, FileContent, MergeDigests
from pants.engine.process import FallibleProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    TransitiveTargets,
    TransitiveTargetsRequest,
    WrappedTarget,
    WrappedTargetRequest,
)
from pants.util.logging import LogLevel

from flytebuild.core.errors import IntrospectionError
from flytebuild.pants_backend.target_types import FlyteEntrypointField

_SCRIPT = "__flytebuild/introspect.py"


@dataclass(frozen=True)
class IntrospectionRequest:
    address: Address


@dataclass(frozen=True)
class IntrospectionResult:
    address: Address
    entrypoint: str
    json_text: str

    def data(self) -> dict:
        return json.loads(self.json_text)


def _script() -> bytes:
    data = pkgutil.get_data("flytebuild.runtime", "introspect.py")
    assert data is not None
    return data


@rule(desc="Introspect a Flyte workflow in its own environment", level=LogLevel.DEBUG)
async def introspect_workflow(request: IntrospectionRequest) -> IntrospectionResult:
    wrapped = await Get(
        WrappedTarget,
        WrappedTargetRequest(request.address, description_of_origin="flyte introspection"),
    )
    field = wrapped.target[FlyteEntrypointField]
    entry_point, transitive = await MultiGet(
        Get(ResolvedPexEntryPoint, ResolvePexEntryPointRequest(field)),
        Get(TransitiveTargets, TransitiveTargetsRequest([request.address])),
    )
    assert entry_point.val is not None
    entrypoint = entry_point.val.spec

    venv_pex, sources, script = await MultiGet(
        Get(
            VenvPex,
            PexFromTargetsRequest(
                [request.address],
                output_filename="flyte-introspect.pex",
                internal_only=True,
                include_source_files=False,
            ),
        ),
        Get(PythonSourceFiles, PythonSourceFilesRequest(transitive.closure, include_files=True)),
        Get(Digest, CreateDigest([FileContent(_SCRIPT, _script())])),
    )
    input_digest = await Get(
        Digest, MergeDigests([sources.source_files.snapshot.digest, script])
    )
    result = await Get(
        FallibleProcessResult,
        VenvPexProcess(
            venv_pex,
            argv=[_SCRIPT, entrypoint],
            input_digest=input_digest,
            extra_env={"PEX_EXTRA_SYS_PATH": os.pathsep.join(sources.source_roots)},
            description=f"Introspect {request.address} ({entrypoint})",
            level=LogLevel.DEBUG,
        ),
    )
    stdout = result.stdout.decode("utf-8", "replace")
    if result.exit_code != 0:
        raise _error(request.address, entrypoint, stdout, result.stderr.decode("utf-8", "replace"))
    return IntrospectionResult(request.address, entrypoint, stdout)


def _error(address: Address, entrypoint: str, stdout: str, stderr: str) -> IntrospectionError:
    try:
        err = json.loads(stdout)["error"]
    except (ValueError, KeyError, TypeError):
        err = {"kind": "introspection_failed", "message": stderr.strip()[-2000:] or "no output"}
    return IntrospectionError.from_runtime(str(address), entrypoint, err)


def rules():
    return collect_rules()
