"""`flyte_pod_template` targets → core model, and V1PodSpec validation in the user's environment.

Rendering and merging are pure core (core/pod_templates.py, called by core/plan.py per task);
this module reads the target's files and runs runtime/validate_pod.py in a VenvPex holding the
`kubernetes` client from the workflow's own resolve (never in Pants' process).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.util_rules.interpreter_constraints import InterpreterConstraints
from pants.backend.python.util_rules.pex import PexRequest, VenvPex, VenvPexProcess
from pants.backend.python.util_rules.pex_requirements import PexRequirements, Resolve
from pants.engine.addresses import Address
from pants.engine.fs import (
    CreateDigest,
    Digest,
    DigestContents,
    FileContent,
    GlobMatchErrorBehavior,
    PathGlobs,
)
from pants.engine.process import FallibleProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    HydratedSources,
    HydrateSourcesRequest,
    WrappedTarget,
    WrappedTargetRequest,
)
from pants.util.logging import LogLevel

from flytebuild.core.errors import FlytebuildError, LockfileError
from flytebuild.core.lockfile import locked_pins
from flytebuild.core.model import PodTemplateTarget, WorkflowPlan
from flytebuild.core.pod_templates import (
    PodTemplateError,
    PodTemplateSource,
    decode_text,
    validation_batch,
    validation_error,
    validation_run_error,
)
from flytebuild.pants_backend.target_types import (
    FlytePodTemplateOverlaysField,
    FlytePodTemplatePrimaryContainerField,
    FlytePodTemplateSourceField,
    FlytePodTemplateTarget,
    FlytePodTemplateValuesField,
)
from flytebuild.pants_backend.util_rules.user_env import UserCodeSetup, check_timeout, runtime_argv, runtime_files


@dataclass(frozen=True)
class PodTemplateTargetRequest:
    address: Address
    # who points at it, for messages: "the `pod_template` field of examples/mixed:wf"
    origin: str


@rule(desc="Read a flyte_pod_template", level=LogLevel.DEBUG)
async def gather_pod_template(request: PodTemplateTargetRequest) -> PodTemplateTarget:
    wrapped = await Get(
        WrappedTarget, WrappedTargetRequest(request.address, description_of_origin=request.origin)
    )
    tgt = wrapped.target
    if not isinstance(tgt, FlytePodTemplateTarget):
        raise FlytebuildError(
            f"{request.address} is a `{tgt.alias}` target, not a `flyte_pod_template` ({request.origin})",
            fix="point it at a flyte_pod_template target",
        )
    address = str(request.address)
    sources = await Get(HydratedSources, HydrateSourcesRequest(tgt[FlytePodTemplateSourceField]))
    overlays = dict(tgt[FlytePodTemplateOverlaysField].value or {})
    base_dir = request.address.spec_path
    overlay_paths = {env: os.path.normpath(os.path.join(base_dir, rel)) for env, rel in overlays.items()}
    # (a missing `source` file is reported by Pants itself, naming the field and the target)
    source_contents, overlay_contents = await MultiGet(
        Get(DigestContents, Digest, sources.snapshot.digest),
        Get(
            DigestContents,
            PathGlobs(
                sorted(set(overlay_paths.values())),
                glob_match_error_behavior=GlobMatchErrorBehavior.ignore,
            ),
        ),
    )
    by_path = {fc.path: fc.content for fc in overlay_contents}
    missing = sorted(f"{env}: {path}" for env, path in overlay_paths.items() if path not in by_path)
    if missing:
        raise PodTemplateError(
            f"overlay file(s) not found: {', '.join(missing)}",
            target=address,
            fix="create them, or correct `overlays` (paths are relative to the BUILD file)",
        )
    source = source_contents[0]
    return PodTemplateTarget(
        address=address,
        source=PodTemplateSource(source.path, decode_text(source.content, source.path, address)),
        overlays=tuple(
            sorted(
                (env, PodTemplateSource(path, decode_text(by_path[path], path, address)))
                for env, path in overlay_paths.items()
            )
        ),
        values=tuple(sorted((tgt[FlytePodTemplateValuesField].value or {}).items())),
        primary_container_name=tgt[FlytePodTemplatePrimaryContainerField].value,
    )




# ---------------------------------------------------------------------------------------------
# V1PodSpec validation


@dataclass(frozen=True)
class PodTemplateValidationRequest:
    """Validate every pod template of a workflow plan in the workflow's own environment."""

    plan: WorkflowPlan
    resolve: str
    interpreter_constraints: InterpreterConstraints


@dataclass(frozen=True)
class PodTemplatesValid:
    kubernetes: str  # the client version that validated them ("" when there was nothing to check)


@rule(desc="Validate pod templates as Kubernetes V1PodSpec", level=LogLevel.DEBUG)
async def validate_pod_templates(
    request: PodTemplateValidationRequest, python_setup: PythonSetup, setup: UserCodeSetup
) -> PodTemplatesValid:
    entries = validation_batch(request.plan)
    if not entries:
        return PodTemplatesValid("")
    address = request.plan.address
    lockfile = python_setup.resolves.get(request.resolve)
    if lockfile:
        contents = await Get(DigestContents, PathGlobs([lockfile]))
        try:
            locked_pins(contents[0].content.decode("utf-8") if contents else "{}", ("kubernetes",))
        except LockfileError:
            raise FlytebuildError(
                f"Pod templates are validated with the `kubernetes` client from resolve "
                f"`{request.resolve}`, and its lockfile `{lockfile}` does not lock it",
                target=address,
                fix=f"add `kubernetes` to the requirements of resolve `{request.resolve}` and run "
                f"`pants generate-lockfiles --resolve={request.resolve}`",
            ) from None
    batch = {key: {"file": e["file"], "spec": e["spec"]} for key, e in entries.items()}
    venv_pex, input_digest = await MultiGet(
        Get(
            VenvPex,
            PexRequest(
                output_filename="flyte-validate-pod.pex",
                internal_only=True,
                requirements=PexRequirements(
                    ["kubernetes"],
                    from_superset=Resolve(request.resolve, False),
                    description_of_origin=f"pod template validation of {address}",
                ),
                interpreter_constraints=request.interpreter_constraints,
            ),
        ),
        Get(
            Digest,
            CreateDigest(
                [
                    *runtime_files(),
                    FileContent("__flytebuild/pods.json", json.dumps(batch, sort_keys=True).encode("utf-8")),
                ]
            ),
        ),
    )
    result = await Get(
        FallibleProcessResult,
        VenvPexProcess(
            venv_pex,
            argv=runtime_argv("validate_pod", "--batch", "__flytebuild/pods.json"),
            input_digest=input_digest,
            description=f"Validate the pod templates of {address}",
            level=LogLevel.DEBUG,
            timeout_seconds=setup.timeout,
        ),
    )
    check_timeout(result, setup.timeout, f"Validating the pod templates of {address}", str(address))
    try:
        out = json.loads(result.stdout.decode("utf-8", "replace"))
    except ValueError:
        raise FlytebuildError(
            "Pod template validation failed: "
            + (result.stderr.decode("utf-8", "replace").strip()[-2000:] or "no output"),
            target=address,
        ) from None
    error = validation_run_error(out, target=address) or validation_error(
        entries, out.get("results") or {}, target=address
    )
    if error is not None:
        raise error
    return PodTemplatesValid(str(out.get("kubernetes") or ""))


def rules():
    return collect_rules()
