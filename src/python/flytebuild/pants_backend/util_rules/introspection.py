"""Introspect a `flyte_workflow` by importing its entrypoint in the user's own environment.

The import happens in a sandboxed process built from the workflow's closure and resolve
(flytekit comes from the user's lockfile), never in Pants' own interpreter. The process is
cached by Pants: an unchanged workflow is free to re-plan.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from pants.backend.python.target_types import ResolvedPexEntryPoint, ResolvePexEntryPointRequest
from pants.engine.addresses import Address
from pants.engine.fs import FileContent
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.util.logging import LogLevel

from flytebuild.core.errors import IntrospectionError
from flytebuild.pants_backend.target_types import FlyteEntrypointField
from flytebuild.pants_backend.util_rules.user_env import batch_results, run_in_user_env, runtime_error, runtime_script
from flytebuild.pants_backend.subsystems.flyte import FlyteSubsystem

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


@rule(desc="Introspect Flyte workflows in their own environment", level=LogLevel.DEBUG)
async def introspect_workflows(request: IntrospectionRequest, flyte: FlyteSubsystem) -> IntrospectionResults:
    wrapped = await MultiGet(
        Get(WrappedTarget, WrappedTargetRequest(a, description_of_origin="flyte introspection"))
        for a in request.addresses
    )
    entry_points = await MultiGet(
        Get(ResolvedPexEntryPoint, ResolvePexEntryPointRequest(w.target[FlyteEntrypointField]))
        for w in wrapped
    )
    entrypoints = [ep.val.spec for ep in entry_points if ep.val is not None]
    described = ", ".join(str(a) for a in request.addresses)
    result = await run_in_user_env(
        request.addresses,
        [FileContent(_SCRIPT, runtime_script("introspect.py"))],
        argv=[_SCRIPT, "--batch", *entrypoints],
        description=f"Introspect {described}",
        timeout=flyte.user_code_timeout,
    )
    by_entrypoint = batch_results(result)
    results = []
    for address, entrypoint in zip(request.addresses, entrypoints):
        data = by_entrypoint.get(entrypoint)
        if data is None or "error" in data:
            raise _error(address, entrypoint, data, result.stderr.decode("utf-8", "replace"))
        results.append(IntrospectionResult(address, entrypoint, json.dumps(data, sort_keys=True)))
    return IntrospectionResults(tuple(results))


def _error(address: Address, entrypoint: str, data, stderr: str) -> IntrospectionError:
    return IntrospectionError.from_runtime(str(address), entrypoint, runtime_error(data, stderr, "introspection_failed"))


def rules():
    return collect_rules()
