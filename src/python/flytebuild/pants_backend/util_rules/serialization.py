"""Serialize planned workflows into registrable protobufs, and build the code bundle their fast tasks need.

Serialization runs `runtime/serialize.py` in the user's environment: the same VenvPex and sources as
introspection (util_rules/user_env.py), so flytekit comes from the user's lockfile and Pants never imports
it. The request is built from the plan: per task its mode, image reference and content-addressed version; per
workflow and launch plan its version. Fast tasks carry flytekit's `{{ .remote_package_path }}` placeholder (the
`pyflyte package` / `flytectl register files` convention), filled at registration with the uploaded bundle's
location, so the archive does not depend on the cluster it goes to.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

from pants.backend.python.subsystems.setup import PythonSetup
from pants.engine.addresses import Address
from pants.engine.fs import Digest, DigestContents, DigestSubset, FileContent, PathGlobs, RemovePrefix
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.source.source_root import SourceRootsRequest, SourceRootsResult
from pants.util.logging import LogLevel

from flytebuild.core.bundle import Bundle, BundleWarning, build_bundle, bundle_warnings, plan_bundle
from flytebuild.core.errors import FlytebuildError
from flytebuild.core.model import ImageTarget
# Shared with the CLI (flytebuild.cli): the request is a pure function of the plan.
from flytebuild.core.registration import REMOTE_PACKAGE_PATH, SerializationError, serialize_request  # noqa: F401
from flytebuild.pants_backend.util_rules.planning import PlannedWorkflow, _resolve_of
from flytebuild.pants_backend.util_rules.user_env import batch_results, run_in_user_env, runtime_error, runtime_script

_DIR = "__flytebuild"
_OUT = "serialized"


# ---------------------------------------------------------------------------------------------
# The code bundle


@dataclass(frozen=True)
class CodeBundleRequest:
    planned: tuple[PlannedWorkflow, ...]


@dataclass(frozen=True)
class CodeBundle:
    bundle: Optional[Bundle]  # None: no task is fast, nothing was read or archived
    warnings: tuple[BundleWarning, ...]


@rule(desc="Build the fast-register code bundle", level=LogLevel.DEBUG)
async def build_code_bundle(request: CodeBundleRequest) -> CodeBundle:
    plans = [p.plan for p in request.planned]
    images: dict[str, ImageTarget] = {i.address: i for p in request.planned for i in p.images}
    warnings = bundle_warnings(plans, images)
    fast_sources = sorted({s for plan in plans for t in plan.tasks if t.mode == "fast" for s in t.sources})
    if not fast_sources:
        return CodeBundle(None, warnings)
    roots = await Get(SourceRootsResult, SourceRootsRequest.for_files(fast_sources))
    source_roots = sorted({r.path for r in roots.path_to_root.values()})
    bundle_plan = plan_bundle(plans, source_roots)
    assert bundle_plan is not None
    contents = await Get(DigestContents, PathGlobs(bundle_plan.sources))
    by_path = {fc.path: fc.content for fc in contents}
    missing = [s for s in bundle_plan.sources if s not in by_path]
    if missing:
        raise FlytebuildError(f"Files of the fast tasks' closures vanished while deploying: {', '.join(missing)}")
    return CodeBundle(build_bundle(bundle_plan, by_path.__getitem__), warnings)


# ---------------------------------------------------------------------------------------------
# Serialization


@dataclass(frozen=True)
class SerializeRequest:
    """Serialize these planned workflows (of any resolves), each task with the image reference its plan gives it.

    `addresses[i]` is the flyte_workflow target of `planned[i]`.
    """

    addresses: tuple[Address, ...]
    planned: tuple[PlannedWorkflow, ...]


@dataclass(frozen=True)
class SerializedWorkflow:
    address: str
    digest: Digest  # the numbered .pb files, at the digest's root
    summary_json: str  # serialize.py's summary: entities (kind, name, version, file, fast), warnings

    def summary(self) -> dict:
        return json.loads(self.summary_json)


@dataclass(frozen=True)
class SerializedWorkflows:
    workflows: tuple[SerializedWorkflow, ...]


@dataclass(frozen=True)
class _SerializeBatch:
    """Workflows of one resolve, serialized in one process (one interpreter start, one flytekit import)."""

    addresses: tuple[Address, ...]
    request_jsons: tuple[str, ...]  # request_jsons[i] serializes addresses[i]


@dataclass(frozen=True)
class _SerializedBatch:
    workflows: tuple[SerializedWorkflow, ...]


@rule(desc="Serialize Flyte workflows in their own environment")
async def serialize_workflows(request: SerializeRequest, python_setup: PythonSetup) -> SerializedWorkflows:
    wrapped = await MultiGet(
        Get(WrappedTarget, WrappedTargetRequest(a, description_of_origin="flyte serialization"))
        for a in request.addresses
    )
    by_resolve: dict[str, list[tuple[Address, str]]] = defaultdict(list)
    for w, p in zip(wrapped, request.planned):
        req = json.dumps(serialize_request(p.plan), sort_keys=True, indent=1)
        by_resolve[_resolve_of(w.target, python_setup)].append((w.target.address, req))
    batches = await MultiGet(
        Get(_SerializedBatch, _SerializeBatch(tuple(a for a, _ in jobs), tuple(r for _, r in jobs)))
        for _, jobs in sorted((k, sorted(v)) for k, v in by_resolve.items())
    )
    done = {sw.address: sw for batch in batches for sw in batch.workflows}
    return SerializedWorkflows(tuple(done[str(a)] for a in request.addresses))


@rule(desc="Serialize Flyte workflows", level=LogLevel.DEBUG)
async def serialize_batch(batch: _SerializeBatch) -> _SerializedBatch:
    files = [
        FileContent(f"{_DIR}/serialize.py", runtime_script("serialize.py")),
        FileContent(f"{_DIR}/introspect.py", runtime_script("introspect.py")),
    ]
    argv = [f"{_DIR}/serialize.py", "--batch"]
    for i, req in enumerate(batch.request_jsons):
        files.append(FileContent(f"{_DIR}/request{i}.json", req.encode("utf-8")))
        argv += [f"{_DIR}/request{i}.json", f"{_OUT}/{i}"]
    described = ", ".join(str(a) for a in batch.addresses)
    result = await run_in_user_env(
        batch.addresses, files, argv, description=f"Serialize {described}", output_directories=(_OUT,)
    )
    results = batch_results(result)
    stderr = result.stderr.decode("utf-8", "replace")
    for i, address in enumerate(batch.addresses):
        data = results.get(f"{_OUT}/{i}")
        if data is None or "error" in data:
            raise _error(address, json.loads(batch.request_jsons[i])["entrypoint"], data, stderr)
    digests = await MultiGet(
        Get(Digest, DigestSubset(result.output_digest, PathGlobs([f"{_OUT}/{i}/**"])))
        for i in range(len(batch.addresses))
    )
    stripped = await MultiGet(
        Get(Digest, RemovePrefix(d, f"{_OUT}/{i}")) for i, d in enumerate(digests)
    )
    return _SerializedBatch(
        tuple(
            SerializedWorkflow(str(a), d, json.dumps(results[f"{_OUT}/{i}"], sort_keys=True))
            for i, (a, d) in enumerate(zip(batch.addresses, stripped))
        )
    )


def _error(address: Address, entrypoint: str, data, stderr: str) -> SerializationError:
    return SerializationError.from_runtime(str(address), entrypoint, runtime_error(data, stderr, "serialization_failed"))


def rules():
    return collect_rules()
