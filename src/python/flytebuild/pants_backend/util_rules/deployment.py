"""Deploy flyte_workflow targets to FlyteAdmin: plan -> images -> bundle -> serialize -> register.

`DeployRequest(addresses, dry_run)` -> `DeployResult` is the one deploy path: `flyte-deploy` renders it, and any
goal that needs the workflows registered first (`run --remote`) awaits the same request.

Who answers, cheapest first:
1. the deploy ledger (runtime/ledger.py, through service/deploy.py `answer_from_ledger`): when it vouches for every
   serialized entity, the summary runtime/deploy.py would print, and nothing runs: no process, no gRPC call;
2. a fork of the warm worker (`[flyte].worker`, util_rules/worker.py), cancellable on Ctrl-C (within user_env.py's
   `_GRACE`: a deploy that answers sooner needs no waiter process);
3. a sandboxed VenvPex process (no worker, the worker cannot start, or it refused the request before starting it).
Every path runs in this rule's body, which needs the run's RunId: once per invocation (`--loop` iteration).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Optional

from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.util_rules.pex import VenvPex, VenvPexProcess
from pants.backend.python.util_rules.pex_from_targets import PexFromTargetsRequest
from pants.engine.addresses import Address
from pants.engine.fs import CreateDigest, Digest, DigestContents, FileContent
from pants.engine.internals.session import RunId
from pants.engine.process import FallibleProcessResult, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.option.global_options import GlobalOptions
from pants.util.logging import LogLevel

from flytebuild.core.bundle import Bundle, BundleWarning
from flytebuild.core.registration import DeployError, deploy_summary
from flytebuild.core.settings import Settings
from flytebuild.pants_backend.util_rules.images import PublishedImages, PublishImagesRequest
from flytebuild.pants_backend.util_rules.imagespec import PublishedImageSpecs, PublishImageSpecsRequest
from flytebuild.pants_backend.util_rules.planning import PlannedWorkflows, WorkflowPlansRequest, _resolve_of
from flytebuild.pants_backend.util_rules.serialization import (
    CodeBundle,
    CodeBundleRequest,
    SerializedWorkflows,
    SerializeRequest,
)
from flytebuild.pants_backend.util_rules.user_env import (
    UserCodeSetup,
    run_in_worker,
    runtime_argv,
    runtime_files,
    user_env_pex_request,
)
from flytebuild.service.deploy import (
    answer_from_ledger,
    bundle_path,
    check_admin,
    deploy_request,
    entities_of,
    images_summary,
    inline_entities,
    serialization_warnings,
)
from flytebuild.service.worker import WorkerLost

logger = logging.getLogger(__name__)

_DIR = "__flytebuild"


@dataclass(frozen=True)
class DeployRequest:
    addresses: tuple[Address, ...]  # flyte_workflow targets
    dry_run: bool = False
    # Build and push the tasks' flyte_image targets first (skipped per image when the registry has its tag with this
    # image's fingerprint label). Off (`flyte-deploy --no-push-images`): a later push creates the tag. Either way tasks
    # name the content tag, never a digest, so both paths register identical entities (see docs/reliability.md).
    # On by default: a deploy leaves nothing missing on the cluster's side.
    push_images: bool = True


@dataclass(frozen=True)
class DeployResult:
    exit_code: int  # 0: every entity registered or unchanged; 1: some failed or blocked
    summary_json: str  # runtime/deploy.py's summary (entities with status, bundle, bytes_uploaded)
    warnings: tuple[BundleWarning, ...]
    log: str  # the deploy's progress lines

    def summary(self) -> dict:
        return json.loads(self.summary_json)


# Helpers awaited by the rule come before it: Pants finds their Gets when the rule is defined.


def _request_files(bundle: Optional[Bundle], deploy_json: dict) -> tuple[FileContent, ...]:
    """The deploy's files by content: the bundle and request.json, which holds the entities (the runtime package
    itself comes with the worker or the sandbox)."""
    files = [FileContent(bundle_path(bundle), bundle.data)] if bundle is not None else []
    # No indent: json's C encoder then does it, ~10x faster over every entity's bytes (1392 at 48 projects).
    files.append(FileContent(f"{_DIR}/request.json", json.dumps(deploy_json, sort_keys=True).encode()))
    return tuple(files)


async def _deploy_process(
    venv_pex: VenvPex, files: tuple[FileContent, ...], argv: list[str], description: str, run_id: RunId
) -> FallibleProcessResult:
    """Without the worker: a sandboxed process of the user environment's VenvPex."""
    input_digest = await Get(
        Digest,
        CreateDigest(
            [
                *files,
                *runtime_files(),
                # A deploy talks to the outside world: it runs once per Pants invocation (`--loop` iteration), never
                # from a cache. Not an uncacheable process, though: after an edit pantsd re-checks the previous run's
                # nodes before it knows the new plan, and would run an uncacheable one again, registering the
                # previous serialization; this process is new in each run by this file, and never persisted.
                FileContent(f"{_DIR}/run_id", str(run_id).encode()),
            ]
        ),
    )
    return await Get(
        FallibleProcessResult,
        VenvPexProcess(
            venv_pex,
            argv=argv,
            input_digest=input_digest,
            description=description,
            level=LogLevel.INFO,
            cache_scope=ProcessCacheScope.PER_RESTART_ALWAYS,
        ),
    )


@rule(desc="Deploy Flyte workflows")
async def deploy_workflows(
    request: DeployRequest,
    settings: Settings,
    python_setup: PythonSetup,
    global_options: GlobalOptions,
    user_code: UserCodeSetup,
    run_id: RunId,
) -> DeployResult:
    admin = settings.admin
    # Configuration errors before any work.
    check_admin(
        admin,
        fix="set [flyte].endpoint (`host:port`, with [flyte].insecure for plaintext) or [flyte].config (a flytekit "
        "config file) in pants.toml, or pass --flyte-endpoint=... / PANTS_FLYTE_ENDPOINT",
        config_option="[flyte].config, relative to the build root",
    )
    addresses = tuple(sorted(request.addresses))
    planned = await Get(PlannedWorkflows, WorkflowPlansRequest(addresses))
    by_address = {p.plan.address: p for p in planned}
    ordered = tuple(by_address[str(a)] for a in addresses)

    # Images are built and pushed while the workflows are serialized (by tag): deploy.py registers nothing before
    # both are done.
    wanted: tuple[str, ...] = ()
    if request.push_images and not request.dry_run:
        wanted = tuple(sorted({t.image_address for p in ordered for t in p.plan.tasks if t.image_address}))
        # ImageSpecs in code without a flyte_image: built by flytebuild under the tag the plan gave their tasks.
        if any(t.image_source == "code:ImageSpec" for p in ordered for t in p.plan.tasks):
            await Get(PublishedImageSpecs, PublishImageSpecsRequest(addresses))
    code_bundle, serialized, published = await MultiGet(
        Get(CodeBundle, CodeBundleRequest(ordered)),
        Get(SerializedWorkflows, SerializeRequest(addresses, ordered)),
        Get(PublishedImages, PublishImagesRequest(wanted)),
    )
    serialized.check_current()
    entities = [e for i, sw in enumerate(serialized.workflows) for e in entities_of(i, sw.summary(), ordered[i].plan)]
    contents = await MultiGet(Get(DigestContents, Digest, sw.digest) for sw in serialized.workflows)
    files = {f"wf{i}/{fc.path}": fc.content for i, found in enumerate(contents) for fc in found}
    bundle = code_bundle.bundle
    if bundle is not None:
        files[bundle_path(bundle)] = bundle.data
    # What this checkout registered before (runtime/ledger.py): unchanged entities cost no call. Per repo, in
    # Pants' workdir (a cache: deleting it only costs Gets).
    ledger_dir = os.path.join(global_options.pants_workdir, "flytebuild", "ledger")
    deploy_json = deploy_request(admin, request.dry_run, entities, bundle, ledger_dir=ledger_dir)
    warnings = _warnings(code_bundle, serialized)
    images = images_summary(published.images)

    # The ledger vouches for every entity: deploy.py would answer without a call, so it is not even started (no
    # sandbox, no interpreter). Decided by deploy.py's own code (service/deploy.py answer_from_ledger).
    known = answer_from_ledger(deploy_json, files)
    if known is not None:
        logger.debug(f"flytebuild: the deploy ledger vouches for all {len(entities)} entities: no deploy process")
        return _result(0, known.summary, images, warnings, known.log)

    # deploy.py needs flyteidl and grpcio (flytekit's own dependencies): the environment introspection built for
    # the first resolve has them, so no new environment is built.
    wrapped = await MultiGet(
        Get(WrappedTarget, WrappedTargetRequest(a, description_of_origin="flyte-deploy")) for a in addresses
    )
    resolve = _resolve_of(wrapped[0].target, python_setup)
    same_resolve = tuple(w.target.address for w in wrapped if _resolve_of(w.target, python_setup) == resolve)
    venv_pex = await Get(VenvPex, PexFromTargetsRequest, user_env_pex_request(tuple(sorted(same_resolve))))
    description = ("Check" if request.dry_run else "Register") + (
        f" {len(entities)} Flyte entities of {len(addresses)} workflow target(s) at {admin.where}")
    argv = runtime_argv("deploy", f"{_DIR}/request.json")
    # The entities' bytes inline in request.json: one file for the worker to write, not one per entity.
    sent = _request_files(bundle, inline_entities(deploy_json, files))
    setup = user_code.worker
    python = setup and setup.python_of(venv_pex)
    if setup and python:
        # A fork of the warm worker (grpc and flyteidl already imported). It runs in the rule's body, which runs
        # once per invocation (it needs this run's RunId): never from a cache, never for the previous run's nodes.
        # A worker lost after the deploy started is an error, never a second deploy (service/worker.py).
        try:
            warm = await run_in_worker(setup, python, sent, argv, description, ", ".join(map(str, addresses)))
        except WorkerLost as e:
            raise DeployError(e.what, fix="see what FlyteAdmin holds, then run `flyte-deploy` again (what was "
                              "registered is found and kept), with --no-flyte-worker to deploy without the worker")
        if warm is not None:
            return _answered(warm.exit_code, warm.stdout, warm.stderr, images, warnings)
    process = await _deploy_process(venv_pex, sent, argv, description, run_id)
    return _answered(process.exit_code, process.stdout, process.stderr, images, warnings)


def _warnings(code_bundle: CodeBundle, serialized: SerializedWorkflows) -> tuple[BundleWarning, ...]:
    warnings = set(code_bundle.warnings)
    for sw in serialized.workflows:
        warnings.update(serialization_warnings(sw.summary()))
    return tuple(sorted(warnings))


def _answered(
    exit_code: int, stdout: bytes, stderr: bytes, images: list, warnings: tuple[BundleWarning, ...]
) -> DeployResult:
    log = stderr.decode("utf-8", "replace")
    return _result(exit_code, deploy_summary(stdout.decode("utf-8", "replace"), log), images, warnings, log)


def _result(exit_code: int, summary: dict, images: list, warnings: tuple[BundleWarning, ...], log: str) -> DeployResult:
    return DeployResult(exit_code, json.dumps({**summary, "images": images}, sort_keys=True), warnings, log)


def rules():
    return collect_rules()
