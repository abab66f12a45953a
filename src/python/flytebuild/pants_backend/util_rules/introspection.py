"""Introspect a `flyte_workflow` by importing its entrypoint in the user's own environment.

The import happens in a sandboxed process built from the workflow's closure and resolve
(flytekit comes from the user's lockfile), never in Pants' own interpreter. The process is
cached by Pants, and each workflow's answer is kept in core/result_cache.py under a key of its own inputs: an
unchanged workflow is free to re-plan, and an edit re-imports only the workflows whose closure it touched.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from pants.backend.python.target_types import ResolvedPexEntryPoint, ResolvePexEntryPointRequest
from pants.engine.addresses import Address
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.util.logging import LogLevel

from flytebuild.core.errors import IntrospectionError
from flytebuild.core.result_cache import Memo, ResultCache, result_key
from flytebuild.pants_backend.target_types import FlyteEntrypointField
from flytebuild.pants_backend.util_rules.user_env import (
    UserCodeSetup,
    batch_results,
    input_keys,
    run_in_user_env,
    runtime_argv,
    runtime_error,
)
from flytebuild.service.runtime_package import fingerprint as runtime_fingerprint

logger = logging.getLogger(__name__)

# Introspection key -> answer text, for every workflow pantsd saw: an edit reads no other workflow's entry again.
_ANSWERS: Memo[str] = Memo(budget=16 << 20, weigh=len)


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
async def introspect_workflows(
    request: IntrospectionRequest, setup: UserCodeSetup
) -> IntrospectionResults:
    wrapped = await MultiGet(
        Get(WrappedTarget, WrappedTargetRequest(a, description_of_origin="flyte introspection"))
        for a in request.addresses
    )
    entry_points = await MultiGet(
        Get(ResolvedPexEntryPoint, ResolvePexEntryPointRequest(w.target[FlyteEntrypointField]))
        for w in wrapped
    )
    entrypoints = [ep.val.spec for ep in entry_points if ep.val is not None]
    # `-ldebug` says when this rule ran (again), even when every answer comes from the caches.
    logger.debug(f"flytebuild: introspection of {', '.join(map(str, request.addresses))}")
    # Partitioned per workflow: each one's answer is keyed by its own inputs (its transitive sources, the
    # environment, the runtime package), so after an edit only the workflows whose closure changed are imported again,
    # all of them in one process; the others are read back (Pants' process cache cannot say which would hit).
    runtime = runtime_fingerprint()
    cache = ResultCache(setup.results_dir)
    inputs = await input_keys(request.addresses, request.addresses)
    keys = [result_key("introspect", ep, k, runtime) for ep, k in zip(entrypoints, inputs)]
    answers: dict[str, str] = {}  # entrypoint -> its answer's JSON text
    for entrypoint, key in zip(entrypoints, keys):
        text = _ANSWERS.get_or_read(key, cache, _canonical)
        if text is not None:
            answers[entrypoint] = text
    missing = [(a, ep) for a, ep in zip(request.addresses, entrypoints) if ep not in answers]
    stderr = ""
    failed: dict[str, dict] = {}  # entrypoint -> the runtime's error answer (never cached)
    if missing:
        described = ", ".join(str(a) for a, _ in missing)
        result = await run_in_user_env(
            tuple(a for a, _ in missing),
            [],
            argv=runtime_argv("introspect", "--batch", *sorted({ep for _, ep in missing})),
            description=f"Introspect {described}",
            env_addresses=request.addresses,
            timeout=setup.timeout,
            worker=setup.worker,
            # Through the worker: a runtime `session`, kept for the serialization of the same workflows.
            session=True,
        )
        stderr = result.stderr.decode("utf-8", "replace")
        fresh = batch_results(result)
        for entrypoint, key in zip(entrypoints, keys):
            data = fresh.get(entrypoint)
            if entrypoint in answers or data is None:
                continue
            if "error" in data:
                failed[entrypoint] = data
                continue
            answers[entrypoint] = _ANSWERS.put(key, json.dumps(data, sort_keys=True))
            cache.put(key, answers[entrypoint])
    results = []
    for address, entrypoint in zip(request.addresses, entrypoints):
        if entrypoint in failed:
            # Kept per workflow: planning reports it for this workflow alone, the others of the batch still plan.
            error = {"entrypoint": entrypoint, "error": runtime_error(failed[entrypoint], "", "introspection_failed")}
            results.append(IntrospectionResult(address, entrypoint, json.dumps(error, sort_keys=True)))
        elif entrypoint in answers:
            results.append(IntrospectionResult(address, entrypoint, answers[entrypoint]))
        else:
            raise _error(address, entrypoint, None, stderr)
    return IntrospectionResults(tuple(results))


def _canonical(text: str) -> str:
    """An entry as the rule writes it (sorted keys), whatever wrote the file."""
    return json.dumps(json.loads(text), sort_keys=True)


def _error(address: Address, entrypoint: str, data, stderr: str) -> IntrospectionError:
    return IntrospectionError.from_runtime(
        str(address), entrypoint, runtime_error(data, stderr, "introspection_failed")
    )


def rules():
    return collect_rules()
