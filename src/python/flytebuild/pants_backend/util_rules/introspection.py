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
    """Introspect these flyte_workflow targets (of one resolve) in one process: one interpreter
    start and one flytekit import, whatever the number of workflows."""

    addresses: tuple[Address, ...]


@dataclass(frozen=True)
class IntrospectionResult:
    address: Address
    entrypoint: str
    json_text: str

    def data(self) -> dict:
        return json.loads(self.json_text)


@dataclass(frozen=True)
class IntrospectionResults:
    results: tuple[IntrospectionResult, ...]

    def get(self, address: Address) -> IntrospectionResult:
        return next(r for r in self.results if r.address == address)


def _script() -> bytes:
    data = pkgutil.get_data("flytebuild.runtime", "introspect.py")
    assert data is not None
    return data


@rule(desc="Introspect Flyte workflows in their own environment", level=LogLevel.DEBUG)
async def introspect_workflows(request: IntrospectionRequest) -> IntrospectionResults:
    wrapped = await MultiGet(
        Get(WrappedTarget, WrappedTargetRequest(a, description_of_origin="flyte introspection"))
        for a in request.addresses
    )
    entry_points = await MultiGet(
        Get(ResolvedPexEntryPoint, ResolvePexEntryPointRequest(w.target[FlyteEntrypointField]))
        for w in wrapped
    )
    entrypoints = [ep.val.spec for ep in entry_points if ep.val is not None]
    transitive = await Get(TransitiveTargets, TransitiveTargetsRequest(request.addresses))
    venv_pex, sources, script = await MultiGet(
        Get(
            VenvPex,
            PexFromTargetsRequest(
                request.addresses,
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
    described = ", ".join(str(a) for a in request.addresses)
    result = await Get(
        FallibleProcessResult,
        VenvPexProcess(
            venv_pex,
            argv=[_SCRIPT, "--batch", *entrypoints],
            input_digest=input_digest,
            extra_env={"PEX_EXTRA_SYS_PATH": os.pathsep.join(sources.source_roots)},
            description=f"Introspect {described}",
            level=LogLevel.DEBUG,
        ),
    )
    stdout = result.stdout.decode("utf-8", "replace")
    try:
        by_entrypoint = json.loads(stdout)["results"]
    except (ValueError, KeyError, TypeError):
        by_entrypoint = {}
    results = []
    for address, entrypoint in zip(request.addresses, entrypoints):
        data = by_entrypoint.get(entrypoint)
        if data is None or "error" in data:
            raise _error(address, entrypoint, data, result.stderr.decode("utf-8", "replace"))
        results.append(IntrospectionResult(address, entrypoint, json.dumps(data, sort_keys=True)))
    return IntrospectionResults(tuple(results))


def _error(address: Address, entrypoint: str, data, stderr: str) -> IntrospectionError:
    err = (data or {}).get("error") or {
        "kind": "introspection_failed",
        "message": stderr.strip()[-2000:] or "no output",
    }
    return IntrospectionError.from_runtime(str(address), entrypoint, err)


def rules():
    return collect_rules()
