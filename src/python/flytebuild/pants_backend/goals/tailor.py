"""`pants tailor`: BUILD targets for the workflows of a flytekit project.

Every directory holding `@workflow` functions (found statically, `core/discover.py`) gets one
`flyte_image(name="image", dependencies=[<its workflow files>])` baking their closure (first-party
code and requirements, flytekit included, as inferred) and one
`flyte_workflow(name=<function>, entrypoint="<file>.py:<function>", image=":image")` per workflow.
Targets that exist already (a flyte_workflow with that entrypoint, a flyte_image named `image`) are
left alone, so `tailor` can be re-run after adding workflows.
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass

from pants.base.specs import AncestorGlobSpec, RawSpecs
from pants.core.goals.tailor import PutativeTarget, PutativeTargets, PutativeTargetsRequest
from pants.engine.fs import DigestContents, PathGlobs
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import UnexpandedTargets
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from flytebuild.core.discover import FoundWorkflow, target_names, workflows_in_source
from flytebuild.pants_backend.target_types import FlyteEntrypointField, FlyteImageTarget, FlyteWorkflowTarget


@dataclass(frozen=True)
class PutativeFlyteTargetsRequest(PutativeTargetsRequest):
    pass


@rule(level=LogLevel.DEBUG, desc="Determine candidate Flyte targets to create")
async def find_putative_flyte_targets(request: PutativeFlyteTargetsRequest) -> PutativeTargets:
    contents = await Get(DigestContents, PathGlobs, request.path_globs("*.py"))
    found = []
    for fc in contents:
        try:
            names = workflows_in_source(fc.content.decode("utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        found.extend(FoundWorkflow(fc.path, name) for name in names)
    if not found:
        return PutativeTargets()
    by_dir = defaultdict(list)
    for w in found:
        by_dir[os.path.dirname(w.path)].append(w)
    existing = await Get(
        UnexpandedTargets,
        RawSpecs(ancestor_globs=tuple(AncestorGlobSpec(d) for d in by_dir), description_of_origin="flyte tailor"),
    )
    taken_entrypoints = {
        (t.address.spec_path, t[FlyteEntrypointField].value.spec)
        for t in existing if t.has_field(FlyteEntrypointField) and t[FlyteEntrypointField].value is not None
    }
    images = {t.address.spec_path for t in existing
              if isinstance(t, FlyteImageTarget) and t.address.target_name == "image"}
    result = []
    for directory, workflows in sorted(by_dir.items()):
        new = [w for w in workflows
               if (directory, f"{os.path.basename(w.path)}:{w.function}") not in taken_entrypoints]
        if not new:
            continue
        files = sorted({os.path.basename(w.path) for w in workflows})
        if directory not in images:
            result.append(PutativeTarget.for_target_type(
                FlyteImageTarget, path=directory, name="image", triggering_sources=(),
                kwargs={"dependencies": tuple(f"./{f}" for f in files)},
                comments=["# Bakes the workflows' code and requirements: their tasks run from it (flytebuild)."],
            ))
        for name, w in zip(target_names(new), new):
            result.append(PutativeTarget.for_target_type(
                FlyteWorkflowTarget, path=directory, name=name, triggering_sources=(),
                kwargs={"entrypoint": f"{os.path.basename(w.path)}:{w.function}", "image": ":image"},
            ))
    return PutativeTargets(result)


def rules():
    return [*collect_rules(), UnionRule(PutativeTargetsRequest, PutativeFlyteTargetsRequest)]
