"""Gather build-graph facts for one flyte_workflow and hand them to the pure core planner."""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.target_types import InterpreterConstraintsField, PythonResolveField
from pants.backend.python.util_rules.interpreter_constraints import InterpreterConstraints
from pants.engine.addresses import Address, Addresses, UnparsedAddressInputs
from pants.engine.collection import Collection
from pants.engine.fs import DigestContents, PathGlobs
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    AllTargets,
    Target,
    WrappedTarget,
    WrappedTargetRequest,
)
from pants.util.logging import LogLevel

from flytebuild.core import validate
from flytebuild.core.errors import FlytebuildError, PlanError
from flytebuild.core.fingerprint import file_digest
from flytebuild.core.imagespec import requirement_lines, spec_lookups
from flytebuild.core.introspection import parse_introspection
from flytebuild.core.model import Closure, FileDigest, ImageTarget, PodTemplateTarget, WorkflowPlan, WorkflowTarget
from flytebuild.core.plan import plan_workflow, with_cross_workflow_warnings
from flytebuild.core.settings import Settings
from flytebuild.core.weakening import unpinned
from flytebuild.pants_backend.target_types import (
    FlyteDomainField,
    FlyteImageBaseField,
    FlyteImageEnvField,
    FlyteImageNameField,
    FlyteImagePythonField,
    FlyteImageRegistryField,
    FlyteImageRepositoryField,
    FlyteImageTarget,
    FlyteProjectField,
    FlyteWorkflowCacheKeyField,
    FlyteWorkflowImageField,
    FlyteWorkflowImagesField,
    FlyteWorkflowPodTemplateField,
    FlyteWorkflowTaskImagesField,
    FlyteWorkflowTaskPodTemplatesField,
)
from flytebuild.pants_backend.util_rules.closures import (
    ClosureRequest,
    SourceFileClosureRequest,
)
from flytebuild.pants_backend.util_rules.introspection import (
    IntrospectionRequest,
    IntrospectionResult,
    IntrospectionResults,
)
from flytebuild.pants_backend.util_rules.pod_templates import (
    PodTemplatesValid,
    PodTemplateTargetRequest,
    PodTemplateValidationRequest,
)
from flytebuild.pants_backend.util_rules.settings import PlanningSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageTargetRequest:
    address: Address


@dataclass(frozen=True)
class WorkflowPlanRequest:
    introspection: IntrospectionResult
    environment: str | None = None  # overrides [flyte].environment (flyte-render --env)


@dataclass(frozen=True)
class WorkflowPlansRequest:
    addresses: tuple[Address, ...]
    environment: str | None = None  # overrides [flyte].environment (flyte-render --env)


@dataclass(frozen=True)
class PlannedWorkflow:
    plan: WorkflowPlan
    images: tuple[ImageTarget, ...]


class PlannedWorkflows(Collection[PlannedWorkflow]):
    pass


@dataclass(frozen=True)
class WorkflowPlanOutcome:
    """One workflow's plan, or the paragraph saying why it could not be planned."""

    address: str
    planned: PlannedWorkflow | None
    error: str | None


@dataclass(frozen=True)
class WorkflowPlanOutcomes:
    """Every requested workflow planned on its own: one bad workflow does not hide the others."""

    outcomes: tuple[WorkflowPlanOutcome, ...]

    @property
    def planned(self) -> tuple[PlannedWorkflow, ...]:
        return tuple(o.planned for o in self.outcomes if o.planned is not None)

    @property
    def errors(self) -> tuple[str, ...]:
        return tuple(o.error for o in self.outcomes if o.error is not None)


@dataclass(frozen=True)
class _OutcomeRequest:
    request: WorkflowPlanRequest


def _resolve_of(tgt: Target, python_setup: PythonSetup) -> str:
    return tgt[PythonResolveField].normalized_value(python_setup)


def _checked_image_fields(tgt: Target, settings: Settings) -> tuple:
    """(image_name, base, registry, repository, env) of a flyte_image, each checked (core/validate.py): a bad
    value fails with the target, the field and the fix before anything resolves."""
    name = tgt[FlyteImageNameField].value or tgt.address.target_name
    base = tgt[FlyteImageBaseField].value or settings.default_base
    registry = tgt[FlyteImageRegistryField].value or settings.registry
    repository = tgt[FlyteImageRepositoryField].value or name
    env = tuple(sorted((tgt[FlyteImageEnvField].value or {}).items()))
    validate.check_image(
        str(tgt.address),
        image_name=name,
        base=base,
        registry=registry,
        repository=repository,
        python=tgt[FlyteImagePythonField].value,
        env=env,
        repository_defaulted=not tgt[FlyteImageRepositoryField].value,
        base_from="" if tgt[FlyteImageBaseField].value else "[flyte].default_base",
        registry_from="" if tgt[FlyteImageRegistryField].value else "[flyte].registry",
    )
    return name, base, registry, repository, env


@rule(desc="Gather a flyte_image's closure")
async def gather_image_target(
    request: ImageTargetRequest, planning: PlanningSettings, python_setup: PythonSetup
) -> ImageTarget:
    settings = planning.settings
    wrapped = await Get(
        WrappedTarget, WrappedTargetRequest(request.address, description_of_origin="flyte image")
    )
    tgt = wrapped.target
    if not isinstance(tgt, FlyteImageTarget):
        raise FlytebuildError(
            f"{request.address} is a `{tgt.alias}` target, not a `flyte_image`. Fix: point "
            "`image`/`images`/`task_images` (or [flyte].default_image) at a flyte_image target."
        )
    name, base, registry, repository, env = _checked_image_fields(tgt, settings)
    closure = await Get(
        Closure, ClosureRequest(Addresses([request.address]), _resolve_of(tgt, python_setup))
    )
    name = tgt[FlyteImageNameField].value or request.address.target_name
    if not python_setup.enable_resolves:
        warning = unpinned(str(request.address), closure.requirements,
                           "set [python].enable_resolves = true with a lockfile for the resolve "
                           "(`pants generate-lockfiles`)")
        if warning:
            logger.warning(warning)
    return ImageTarget(
        address=str(request.address),
        image_name=name,
        base=base,
        registry=registry,
        repository=repository,
        env=env,
        python=tgt[FlyteImagePythonField].value,
        sources=closure.sources,
        requirements=closure.requirements,
        pins=closure.pins,
    )


async def _addresses(values: list[str], owner: Address, field: str) -> list[Address]:
    if not values:
        return []
    return list(
        await Get(
            Addresses,
            UnparsedAddressInputs(
                values,
                owning_address=owner,
                description_of_origin=f"the `{field}` field of {owner}",
            ),
        )
    )


async def _pod_templates(
    tgt: Target,
) -> tuple[PodTemplateTarget | None, tuple[tuple[str, PodTemplateTarget], ...]]:
    """The workflow's `pod_template` and `task_pod_templates`, read from their targets."""
    address = tgt.address
    value = tgt[FlyteWorkflowPodTemplateField].value
    mapping = dict(tgt[FlyteWorkflowTaskPodTemplatesField].value or {})
    workflow_addr = await _addresses([value] if value else [], address, "pod_template")
    task_addrs = await _addresses(list(mapping.values()), address, "task_pod_templates")
    requests = [PodTemplateTargetRequest(a, f"the `pod_template` field of {address}") for a in workflow_addr]
    requests += [
        PodTemplateTargetRequest(a, f"the `task_pod_templates` field of {address}") for a in task_addrs
    ]
    gathered = await MultiGet(Get(PodTemplateTarget, PodTemplateTargetRequest, r) for r in requests)
    workflow_template = gathered[0] if workflow_addr else None
    per_task = gathered[len(workflow_addr):]
    return workflow_template, tuple(sorted(zip(mapping, per_task), key=lambda kv: kv[0]))


@rule(desc="Plan a flyte_workflow")
async def plan_flyte_workflow(
    request: WorkflowPlanRequest, planning: PlanningSettings, python_setup: PythonSetup
) -> PlannedWorkflow:
    settings = planning.settings.with_environment(request.environment)
    introspection = request.introspection
    address = introspection.address
    logger.debug(f"flytebuild: planning {address}")  # `-ldebug` says which workflows were planned (again)
    wrapped = await Get(
        WrappedTarget, WrappedTargetRequest(address, description_of_origin="flyte-plan")
    )
    tgt = wrapped.target
    validate.check_workflow(
        str(address),
        project=tgt[FlyteProjectField].value or settings.project,
        domain=tgt[FlyteDomainField].value or settings.domain,
        project_from="" if tgt[FlyteProjectField].value else "[flyte].project",
        domain_from="" if tgt[FlyteDomainField].value else "[flyte].domain",
    )
    resolve = _resolve_of(tgt, python_setup)
    image_value = tgt[FlyteWorkflowImageField].value
    images_map = dict(tgt[FlyteWorkflowImagesField].value or {})
    task_images_map = dict(tgt[FlyteWorkflowTaskImagesField].value or {})

    intro = parse_introspection(introspection.data(), target=str(address))

    image_addr = await _addresses([image_value] if image_value else [], address, "image")
    mapped = await _addresses(list(images_map.values()), address, "images")
    per_task = await _addresses(list(task_images_map.values()), address, "task_images")
    default_addr: list[Address] = []
    if settings.default_image and settings.default_image.startswith("//"):
        default_addr = await _addresses([settings.default_image], address, "[flyte].default_image")

    # Image names used in code and not mapped explicitly are matched by `image_name`.
    named_in_code = {t.image.name for t in intro.tasks if t.image.name} - set(images_map)
    by_name: list[Address] = []
    if named_in_code:
        all_targets = await Get(AllTargets)
        by_name = [
            t.address
            for t in all_targets
            if isinstance(t, FlyteImageTarget)
            and (t[FlyteImageNameField].value or t.address.target_name) in named_in_code
        ]
    candidates = sorted({*image_addr, *mapped, *per_task, *default_addr, *by_name})

    # What the ImageSpecs in code name: copy candidates (literal paths, never a folder walk) and requirements files.
    copy_candidates, requirement_paths = spec_lookups(intro.tasks)
    spec_contents = (
        await Get(DigestContents, PathGlobs([*copy_candidates, *requirement_paths]))
        if copy_candidates or requirement_paths else ()
    )
    spec_files = {
        fc.path: FileDigest(fc.path, file_digest(fc.content)) for fc in spec_contents if fc.path in copy_candidates
    }
    requirement_files = {
        fc.path: requirement_lines(fc.content.decode("utf-8")) for fc in spec_contents if fc.path in requirement_paths
    }
    source_files = sorted(
        {t.source_file for t in intro.tasks if t.source_file} | {p for p in spec_files if p.endswith(".py")}
    )
    closures_list = await MultiGet(
        Get(Closure, SourceFileClosureRequest(path, resolve)) for path in source_files
    )
    images_list = await MultiGet(Get(ImageTarget, ImageTargetRequest(a)) for a in candidates)
    closures = dict(zip(source_files, closures_list))
    pod_template, task_pod_templates = await _pod_templates(tgt)
    cache_key = tgt[FlyteWorkflowCacheKeyField].value
    workflow = WorkflowTarget(
        address=str(address),
        entrypoint=introspection.entrypoint,
        project=tgt[FlyteProjectField].value or "",  # unset: the planner takes Settings'
        domain=tgt[FlyteDomainField].value or "",
        image=str(image_addr[0]) if image_addr else None,
        images=tuple(sorted(zip(images_map, (str(a) for a in mapped)))),
        task_images=tuple(sorted(zip(task_images_map, (str(a) for a in per_task)))),
        pod_template=pod_template,
        task_pod_templates=task_pod_templates,
        cache_key=cache_key if isinstance(cache_key, str) else None,
        task_cache_keys=() if isinstance(cache_key, str) else tuple(sorted(cache_key.items())),
    )
    plan = plan_workflow(
        workflow,
        intro,
        closures,
        {img.address: img for img in images_list},
        settings,
        spec_files=spec_files,
        requirement_files=requirement_files,
    )
    # Every rendered template is checked as a Kubernetes V1PodSpec in the workflow's own
    # environment before anything uses the plan (a cached process: free when nothing changed).
    await Get(
        PodTemplatesValid,
        PodTemplateValidationRequest(
            plan,
            resolve,
            InterpreterConstraints.create_from_compatibility_fields(
                [tgt[InterpreterConstraintsField]], python_setup
            ),
        ),
    )
    return PlannedWorkflow(plan, tuple(images_list))


@rule(desc="Plan a flyte_workflow (isolated)")
async def plan_outcome(request: _OutcomeRequest) -> WorkflowPlanOutcome:
    address = str(request.request.introspection.address)
    try:
        planned = await Get(PlannedWorkflow, WorkflowPlanRequest, request.request)
    except FlytebuildError as e:
        return WorkflowPlanOutcome(address, None, str(e))
    return WorkflowPlanOutcome(address, planned, None)


@dataclass(frozen=True)
class _EarlyCheckRequest:
    address: Address


@dataclass(frozen=True)
class _EarlyCheck:
    address: str
    error: str | None


@rule(desc="Plan flyte_workflows")
async def plan_flyte_workflow_outcomes(
    request: WorkflowPlansRequest, planning: PlanningSettings, python_setup: PythonSetup
) -> WorkflowPlanOutcomes:
    settings = planning.settings
    wrapped = await MultiGet(
        Get(WrappedTarget, WrappedTargetRequest(a, description_of_origin="flyte-plan"))
        for a in request.addresses
    )
    validate.check_options(settings.default_base, settings.registry, "[flyte].default_base", "[flyte].registry")
    # Field values (and those of the images a workflow names explicitly) are checked before any user code runs;
    # a workflow with a bad one fails alone, as any other planning error does.
    early = await MultiGet(Get(_EarlyCheck, _EarlyCheckRequest(w.target.address)) for w in wrapped)
    failed_early = {c.address: c.error for c in early if c.error is not None}
    by_resolve: dict[str, list[Address]] = defaultdict(list)
    for w in wrapped:
        if str(w.target.address) not in failed_early:
            by_resolve[_resolve_of(w.target, python_setup)].append(w.target.address)
    batches = await MultiGet(
        Get(IntrospectionResults, IntrospectionRequest(tuple(sorted(addresses))))
        for _, addresses in sorted(by_resolve.items())
    )
    outcomes = await MultiGet(
        Get(WorkflowPlanOutcome, _OutcomeRequest(WorkflowPlanRequest(result, request.environment)))
        for batch in batches
        for result in batch.results
    )
    outcomes = sorted([*outcomes, *(WorkflowPlanOutcome(a, None, e) for a, e in failed_early.items())],
                      key=lambda o: o.address)
    # Warnings only a view over every planned workflow can give (one image name answering different specs).
    plans = with_cross_workflow_warnings([o.planned.plan for o in outcomes if o.planned is not None])
    by_address = {p.address: p for p in plans}
    return WorkflowPlanOutcomes(
        tuple(
            o if o.planned is None else WorkflowPlanOutcome(
                o.address, PlannedWorkflow(by_address[o.address], o.planned.images), None
            )
            for o in outcomes
        )
    )


@rule(desc="Check a flyte_workflow's fields", level=LogLevel.DEBUG)
async def early_check(request: _EarlyCheckRequest, planning: PlanningSettings) -> _EarlyCheck:
    """The workflow's project/domain and the fields of the images it names explicitly (core/validate.py)."""
    settings = planning.settings
    wrapped = await Get(WrappedTarget, WrappedTargetRequest(request.address, description_of_origin="flyte-plan"))
    tgt = wrapped.target
    try:
        if tgt.has_field(FlyteProjectField):
            validate.check_workflow(
                str(tgt.address),
                project=tgt[FlyteProjectField].value or settings.project,
                domain=tgt[FlyteDomainField].value or settings.domain,
                project_from="" if tgt[FlyteProjectField].value else "[flyte].project",
                domain_from="" if tgt[FlyteDomainField].value else "[flyte].domain",
            )
        named: list[Address] = []
        if tgt.has_field(FlyteWorkflowImageField):
            value = tgt[FlyteWorkflowImageField].value
            named += await _addresses([value] if value else [], tgt.address, "image")
            named += await _addresses(list((tgt[FlyteWorkflowImagesField].value or {}).values()), tgt.address, "images")
            named += await _addresses(list((tgt[FlyteWorkflowTaskImagesField].value or {}).values()), tgt.address,
                                      "task_images")
        images = await MultiGet(
            Get(WrappedTarget, WrappedTargetRequest(a, description_of_origin="flyte-plan")) for a in sorted(set(named))
        )
        for image in images:
            if isinstance(image.target, FlyteImageTarget):
                _checked_image_fields(image.target, settings)
    except FlytebuildError as e:
        return _EarlyCheck(str(request.address), str(e))
    return _EarlyCheck(str(request.address), None)


@rule(desc="Plan flyte_workflows")
async def plan_flyte_workflows(request: WorkflowPlansRequest) -> PlannedWorkflows:
    """Every workflow planned, or one error holding the paragraph of each workflow that failed."""
    outcomes = await Get(WorkflowPlanOutcomes, WorkflowPlansRequest, request)
    failed = [o for o in outcomes.outcomes if o.error is not None]
    if len(failed) == 1:
        raise FlytebuildError(failed[0].error or "")
    if failed:
        raise PlanError("\n\n".join(f"{o.address}: {o.error}" for o in failed))
    return PlannedWorkflows(sorted(outcomes.planned, key=lambda p: p.plan.address))


def rules():
    return collect_rules()
