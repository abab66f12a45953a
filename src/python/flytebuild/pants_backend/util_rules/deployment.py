"""Deploy flyte_workflow targets to FlyteAdmin: plan -> images -> bundle -> serialize -> register.

`DeployRequest(addresses, dry_run)` -> `DeployResult` is the one deploy path: `flyte-deploy` renders it, and any
goal that needs the workflows registered first (`run --remote`) awaits the same request.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.util_rules.pex import VenvPex, VenvPexProcess
from pants.backend.python.util_rules.pex_from_targets import PexFromTargetsRequest
from pants.engine.addresses import Address
from pants.engine.fs import AddPrefix, CreateDigest, Digest, FileContent, MergeDigests
from pants.engine.internals.session import RunId
from pants.engine.process import FallibleProcessResult, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.option.global_options import GlobalOptions
from pants.util.logging import LogLevel

from flytebuild.core.bundle import BundleWarning
from flytebuild.core.registration import deploy_summary
from flytebuild.core.settings import Settings
from flytebuild.pants_backend.util_rules.images import PublishedImage, PublishedImages, PublishImagesRequest
from flytebuild.pants_backend.util_rules.imagespec import PublishedImageSpecs, PublishImageSpecsRequest
from flytebuild.pants_backend.util_rules.planning import PlannedWorkflows, WorkflowPlansRequest, _resolve_of
from flytebuild.pants_backend.util_rules.serialization import (
    CodeBundle,
    CodeBundleRequest,
    SerializedWorkflows,
    SerializeRequest,
)
from flytebuild.pants_backend.util_rules.user_env import runtime_argv, runtime_files, user_env_pex_request
from flytebuild.service.deploy import bundle_path, check_admin, deploy_request, entities_of, images_summary

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


@rule(desc="Deploy Flyte workflows")
async def deploy_workflows(
    request: DeployRequest, settings: Settings, python_setup: PythonSetup, global_options: GlobalOptions, run_id: RunId
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
    # deploy.py needs flyteidl and grpcio (flytekit's own dependencies): the environment introspection built for
    # the first resolve has them, so no new environment is built.
    wrapped = await MultiGet(
        Get(WrappedTarget, WrappedTargetRequest(a, description_of_origin="flyte-deploy")) for a in addresses
    )
    resolve = _resolve_of(wrapped[0].target, python_setup)
    same_resolve = tuple(w.target.address for w in wrapped if _resolve_of(w.target, python_setup) == resolve)
    code_bundle, serialized, venv_pex, published = await MultiGet(
        Get(CodeBundle, CodeBundleRequest(ordered)),
        Get(SerializedWorkflows, SerializeRequest(addresses, ordered)),
        Get(VenvPex, PexFromTargetsRequest, user_env_pex_request(tuple(sorted(same_resolve)))),
        Get(PublishedImages, PublishImagesRequest(wanted)),
    )
    serialized.check_current()
    pushed: tuple[PublishedImage, ...] = published.images
    files = []
    entities = [e for i, sw in enumerate(serialized.workflows) for e in entities_of(i, sw.summary(), ordered[i].plan)]
    bundle = code_bundle.bundle
    if bundle is not None:
        files.append(FileContent(bundle_path(bundle), bundle.data))
    # What this checkout registered before (runtime/ledger.py): unchanged entities cost no call. Per repo, in
    # Pants' workdir (a cache: deleting it only costs Gets).
    ledger_dir = os.path.join(global_options.pants_workdir, "flytebuild", "ledger")
    deploy_json = deploy_request(admin, request.dry_run, entities, bundle, ledger_dir=ledger_dir)
    files += [
        *runtime_files(),
        FileContent(f"{_DIR}/request.json", json.dumps(deploy_json, indent=1, sort_keys=True).encode()),
        # A deploy talks to the outside world: it runs once per Pants invocation (`--loop` iteration), never from
        # a cache. Not an uncacheable process, though: after an edit pantsd re-checks the previous run's nodes
        # before it knows the new plan, and would run an uncacheable one again, registering the previous
        # serialization; this process is new in each run by this file, and never persisted.
        FileContent(f"{_DIR}/run_id", str(run_id).encode()),
    ]

    parts = await MultiGet(
        [*(Get(Digest, AddPrefix(sw.digest, f"wf{i}")) for i, sw in enumerate(serialized.workflows)),
         Get(Digest, CreateDigest(files))]
    )
    input_digest = await Get(Digest, MergeDigests(parts))
    result = await Get(
        FallibleProcessResult,
        VenvPexProcess(
            venv_pex,
            argv=runtime_argv("deploy", f"{_DIR}/request.json"),
            input_digest=input_digest,
            description=("Check" if request.dry_run else "Register")
            + f" {len(entities)} Flyte entities of {len(addresses)} workflow target(s) at {admin.where}",
            level=LogLevel.INFO,
            cache_scope=ProcessCacheScope.PER_RESTART_ALWAYS,
        ),
    )
    stderr = result.stderr.decode("utf-8", "replace")
    data = deploy_summary(result.stdout.decode("utf-8", "replace"), stderr)
    warnings = set(code_bundle.warnings)
    for sw in serialized.workflows:
        for w in sw.summary().get("warnings", ()):
            if w.get("kind") != "raw_container":  # already reported by the bundle's own check
                warnings.add(BundleWarning(w["task"], w["message"]))
    data["images"] = images_summary(pushed)
    return DeployResult(result.exit_code, json.dumps(data, sort_keys=True), tuple(sorted(warnings)), stderr)


def rules():
    return collect_rules()
