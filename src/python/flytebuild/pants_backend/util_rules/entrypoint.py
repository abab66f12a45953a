"""Infer the dependency of a `flyte_workflow` on the module of its `entrypoint`."""
from __future__ import annotations

from dataclasses import dataclass

from pants.backend.python.dependency_inference.module_mapper import (
    PythonModuleOwners,
    PythonModuleOwnersRequest,
)
from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.target_types import (
    PythonResolveField,
    ResolvedPexEntryPoint,
    ResolvePexEntryPointRequest,
)
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    DependenciesRequest,
    ExplicitlyProvidedDependencies,
    FieldSet,
    InferDependenciesRequest,
    InferredDependencies,
)
from pants.engine.unions import UnionRule

from flytebuild.core.errors import FlytebuildError
from flytebuild.pants_backend.target_types import FlyteEntrypointField, FlyteWorkflowDependenciesField


@dataclass(frozen=True)
class FlyteEntrypointInferenceFieldSet(FieldSet):
    required_fields = (FlyteWorkflowDependenciesField, FlyteEntrypointField)

    dependencies: FlyteWorkflowDependenciesField
    entrypoint: FlyteEntrypointField
    resolve: PythonResolveField


class InferFlyteEntrypointDependency(InferDependenciesRequest):
    infer_from = FlyteEntrypointInferenceFieldSet


@rule(desc="Inferring dependency from the flyte_workflow `entrypoint` field")
async def infer_flyte_entrypoint_dependency(
    request: InferFlyteEntrypointDependency, python_setup: PythonSetup
) -> InferredDependencies:
    field_set = request.field_set
    entry_point, explicitly_provided = await MultiGet(
        Get(ResolvedPexEntryPoint, ResolvePexEntryPointRequest(field_set.entrypoint)),
        Get(ExplicitlyProvidedDependencies, DependenciesRequest(field_set.dependencies)),
    )
    assert entry_point.val is not None
    owners = await Get(
        PythonModuleOwners,
        PythonModuleOwnersRequest(
            entry_point.val.module, resolve=field_set.resolve.normalized_value(python_setup)
        ),
    )
    if owners.unambiguous:
        return InferredDependencies(owners.unambiguous)
    if owners.ambiguous:
        # The user picked the owner, as the error below tells them to: by listing it in
        # `dependencies` (nothing left to infer) or by excluding the others with `!`.
        if explicitly_provided.any_are_covered_by_includes(owners.ambiguous):
            return InferredDependencies([])
        chosen = explicitly_provided.disambiguated(
            owners.ambiguous, owners_must_be_ancestors=entry_point.file_name_used
        )
        if chosen is not None:
            return InferredDependencies([chosen])
        owned_by = ", ".join(sorted(str(a) for a in owners.ambiguous))
        why = f"is owned by several targets ({owned_by})"
        fix = "add the one you mean to `dependencies`, or exclude the others with `!`"
    else:
        why = "is not owned by any python_source target"
        fix = (
            "check the module path (`module.path:attr`, or `file.py:attr` relative to the BUILD "
            "file) and that a `python_sources()` target covers the file"
        )
    raise FlytebuildError(
        f"{field_set.address}: entrypoint `{field_set.entrypoint.value.spec}` names module "
        f"`{entry_point.val.module}`, which {why}. Fix: {fix}."
    )


def rules():
    return [*collect_rules(), UnionRule(InferDependenciesRequest, InferFlyteEntrypointDependency)]
