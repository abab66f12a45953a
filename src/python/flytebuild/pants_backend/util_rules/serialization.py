"""Serialize planned workflows into registrable protobufs, and build the code bundle their fast tasks need.

Serialization runs `runtime/serialize.py` in the user's environment: the same VenvPex and sources as
introspection (util_rules/user_env.py), so flytekit comes from the user's lockfile and Pants never imports
it. The request is built from the plan: per task its mode, image reference and content-addressed version; per
workflow and launch plan its version. Fast tasks carry flytekit's `{{ .remote_package_path }}` placeholder (the
`pyflyte package` / `flytectl register files` convention), filled at registration with the uploaded bundle's
location, so the archive does not depend on the cluster it goes to.
"""
from __future__ import annotations

import base64
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

from pants.backend.python.subsystems.setup import PythonSetup
from pants.engine.addresses import Address
from pants.engine.fs import CreateDigest, Digest, DigestContents, FileContent, PathGlobs
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.source.source_root import SourceRootsRequest, SourceRootsResult
from pants.util.logging import LogLevel

from flytebuild.core.bundle import Bundle, BundleWarning, build_bundle, bundle_warnings, plan_bundle
from flytebuild.core.errors import FlytebuildError
from flytebuild.core.model import ImageTarget, WorkflowPlan

# Shared with the CLI (flytebuild.cli): the request is a pure function of the plan.
from flytebuild.core.registration import REMOTE_PACKAGE_PATH, SerializationError, serialize_request  # noqa: F401
from flytebuild.core.result_cache import Memo, ResultCache, result_key
from flytebuild.pants_backend.util_rules.planning import (
    PlannedWorkflow,
    PlannedWorkflows,
    WorkflowPlansRequest,
    _resolve_of,
)
from flytebuild.pants_backend.util_rules.user_env import (
    UserCodeSetup,
    batch_results,
    input_keys,
    run_in_user_env,
    runtime_argv,
    runtime_error,
)
from flytebuild.service.runtime_package import fingerprint as runtime_fingerprint

_DIR = "__flytebuild"
_OUT = "serialized"


# ---------------------------------------------------------------------------------------------
# The code bundle


@dataclass(frozen=True)
class CodeBundleRequest:
    planned: tuple[PlannedWorkflow, ...]

    def __hash__(self) -> int:
        # The engine hashes every Get's request: the workflows' addresses, not every task of their plans (equality
        # still compares the plans).
        return hash(tuple(p.plan.address for p in self.planned))


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

    def __hash__(self) -> int:
        return hash(self.addresses)  # as CodeBundleRequest's


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
    # The request's plans are no longer the current ones (see serialize_batch): nothing was serialized.
    stale: bool = False

    def check_current(self) -> None:
        if self.stale:
            raise FlytebuildError(
                "The workflows' sources changed while they were being serialized: nothing was registered or "
                "written. Run the command again."
            )


@dataclass(frozen=True)
class _SerializeBatch:
    """Workflows of one resolve, serialized in one process (one interpreter start, one flytekit import)."""

    addresses: tuple[Address, ...]
    request_jsons: tuple[str, ...]  # request_jsons[i] serializes addresses[i]
    plan_addresses: tuple[Address, ...]  # the WorkflowPlansRequest the requests were built from


@dataclass(frozen=True)
class _SerializedBatch:
    workflows: tuple[SerializedWorkflow, ...]
    stale: bool = False


@rule(desc="Serialize Flyte workflows in their own environment")
async def serialize_workflows(request: SerializeRequest, python_setup: PythonSetup) -> SerializedWorkflows:
    wrapped = await MultiGet(
        Get(WrappedTarget, WrappedTargetRequest(a, description_of_origin="flyte serialization"))
        for a in request.addresses
    )
    by_resolve: dict[str, list[tuple[Address, str]]] = defaultdict(list)
    for w, p in zip(wrapped, request.planned):
        req = _request_json(p.plan)
        by_resolve[_resolve_of(w.target, python_setup)].append((w.target.address, req))
    batches = await MultiGet(
        Get(_SerializedBatch, _SerializeBatch(tuple(a for a, _ in jobs), tuple(r for _, r in jobs), request.addresses))
        for _, jobs in sorted((k, sorted(v)) for k, v in by_resolve.items())
    )
    if any(batch.stale for batch in batches):
        return SerializedWorkflows((), stale=True)
    done = {sw.address: sw for batch in batches for sw in batch.workflows}
    return SerializedWorkflows(tuple(done[str(a)] for a in request.addresses))


@rule(desc="Serialize Flyte workflows", level=LogLevel.DEBUG)
async def serialize_batch(
    batch: _SerializeBatch, setup: UserCodeSetup
) -> _SerializedBatch:
    # After an edit, pantsd first re-checks the nodes of the previous run, this one with the previous plan's
    # requests: serializing those would be a whole user-env pass for nothing (its result is thrown away once the
    # new plan is known). The current plan is the one node every caller shares: a batch whose requests are not
    # built from it is stale and runs nothing.
    current = await Get(PlannedWorkflows, WorkflowPlansRequest(batch.plan_addresses))
    by_address = {p.plan.address: p.plan for p in current}
    try:
        now = tuple(_request_json(by_address.get(str(a))) for a in batch.addresses)
    except FlytebuildError:  # the current plan cannot be serialized: its own request says so, not this one
        now = ()
    if now != batch.request_jsons:
        return _SerializedBatch((), stale=True)
    # Partitioned per workflow like introspection (core/result_cache.py): only workflows whose request or closure
    # changed are serialized again, in one process; the others are read back.
    runtime = runtime_fingerprint()
    cache = ResultCache(setup.results_dir)
    inputs = await input_keys(batch.addresses, batch.addresses)
    keys = [result_key("serialize", req, k, runtime) for req, k in zip(batch.request_jsons, inputs)]
    answers: dict[int, _Answer] = {}
    for i, key in enumerate(keys):
        answer = _ANSWERS.get_or_read(key, cache, _Answer.of_entry)
        if answer is not None:
            answers[i] = answer
    missing = [i for i in range(len(batch.addresses)) if i not in answers]
    if missing:
        files = []
        argv = runtime_argv("serialize", "--batch")
        for i in missing:
            files.append(FileContent(f"{_DIR}/request{i}.json", batch.request_jsons[i].encode("utf-8")))
            argv += [f"{_DIR}/request{i}.json", f"{_OUT}/{i}"]
        described = ", ".join(str(batch.addresses[i]) for i in missing)
        result = await run_in_user_env(
            tuple(batch.addresses[i] for i in missing), files, argv, description=f"Serialize {described}",
            output_directories=(_OUT,), env_addresses=batch.addresses, timeout=setup.timeout,
            # Through the worker: in the introspection's `session` when it introspected these same sources.
            worker=setup.worker, session=True,
        )
        results = batch_results(result)
        stderr = result.stderr.decode("utf-8", "replace")
        for i in missing:
            data = results.get(f"{_OUT}/{i}")
            if data is None or "error" in data:
                raise _error(batch.addresses[i], json.loads(batch.request_jsons[i])["entrypoint"], data, stderr)
        for i in missing:
            prefix = f"{_OUT}/{i}/"
            pbs = tuple(sorted((path[len(prefix):], content) for path, content in result.outputs
                               if path.startswith(prefix)))
            answers[i] = _ANSWERS.put(keys[i], _Answer(json.dumps(results[f"{_OUT}/{i}"], sort_keys=True), pbs))
            cache.put(keys[i], answers[i].entry())
    digests = await MultiGet(
        Get(Digest, CreateDigest([FileContent(name, data) for name, data in answers[i].files]))
        for i in range(len(batch.addresses))
    )
    return _SerializedBatch(
        tuple(
            SerializedWorkflow(str(a), d, answers[i].summary_json)
            for i, (a, d) in enumerate(zip(batch.addresses, digests))
        )
    )


@dataclass(frozen=True)
class _Answer:
    """One workflow's serialization: serialize.py's summary (sorted JSON) and its .pb files by name."""

    summary_json: str
    files: tuple[tuple[str, bytes], ...]

    @staticmethod
    def of_entry(text: str) -> "_Answer":
        data = json.loads(text)
        files = tuple(sorted((name, base64.b64decode(b64)) for name, b64 in data["files"].items()))
        return _Answer(json.dumps(data["summary"], sort_keys=True), files)

    def weight(self) -> int:
        return len(self.summary_json) + sum(len(name) + len(data) for name, data in self.files)

    def entry(self) -> str:
        """The result cache's entry: the summary and the files, base64."""
        files = {name: base64.b64encode(data).decode("ascii") for name, data in self.files}
        return json.dumps({"summary": json.loads(self.summary_json), "files": files}, sort_keys=True)


# Serialization key -> answer, for every workflow pantsd saw: an edit reads no other workflow's entry again.
_ANSWERS: Memo[_Answer] = Memo(budget=64 << 20, weigh=_Answer.weight)


def _request_json(plan: Optional[WorkflowPlan]) -> str:
    # No indent: json's C encoder then does it (~10x faster), and every workflow's request is built twice a run.
    return json.dumps(serialize_request(plan), sort_keys=True) if plan is not None else ""


def _error(address: Address, entrypoint: str, data, stderr: str) -> SerializationError:
    error = runtime_error(data, stderr, "serialization_failed")
    return SerializationError.from_runtime(str(address), entrypoint, error)


def rules():
    return collect_rules()
