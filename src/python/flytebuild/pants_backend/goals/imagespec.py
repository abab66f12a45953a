"""`pants flyte-imagespec <workflows>`: build and push the ImageSpecs in code that no flyte_image
target answers, tagged with their content version (the ref the plan gives their tasks)."""
from __future__ import annotations

from enum import Enum

from pants.build_graph.address import ResolveError
from pants.engine.console import Console
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.internals.native_engine import IntrinsicError
from pants.engine.rules import Get, collect_rules, goal_rule
from pants.engine.target import InvalidFieldException, Targets
from pants.option.option_types import EnumOption

from flytebuild.core.errors import FlytebuildError
from flytebuild.core.report import _table
from flytebuild.pants_backend.target_types import FlyteWorkflowTarget
from flytebuild.pants_backend.util_rules.imagespec import PublishedImageSpecs, PublishImageSpecsRequest


class OutputFormat(Enum):
    table = "table"
    json = "json"


class FlyteImageSpecSubsystem(GoalSubsystem):
    name = "flyte-imagespec"
    help = (
        "Build and push, daemonlessly, every ImageSpec used in the code of these flyte_workflows that no "
        "flyte_image target answers: its base, packages, env, and exactly the closure of its tasks."
    )
    output_format = EnumOption("--format", default=OutputFormat.table, help="`table` for people, `json` for machines.")


class FlyteImageSpec(Goal):
    subsystem_cls = FlyteImageSpecSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


@goal_rule
async def flyte_imagespec(console: Console, subsystem: FlyteImageSpecSubsystem, targets: Targets) -> FlyteImageSpec:
    workflows = tuple(sorted(t.address for t in targets if isinstance(t, FlyteWorkflowTarget)))
    if not workflows:
        console.print_stderr("flyte-imagespec: no flyte_workflow targets matched.")
        return FlyteImageSpec(exit_code=1)
    try:
        published = await Get(PublishedImageSpecs, PublishImageSpecsRequest(workflows))
    except (FlytebuildError, ResolveError, IntrinsicError, InvalidFieldException) as e:
        console.print_stderr(f"flyte-imagespec: {e}")
        return FlyteImageSpec(exit_code=1)
    if subsystem.output_format == OutputFormat.json:
        import json

        console.print_stdout(json.dumps({"images": [
            {"workflow": i.workflow, "name": i.name, "tasks": list(i.tasks), "ref": i.ref, "digest": i.digest,
             "pushed": i.pushed, "bytes_uploaded": i.bytes_uploaded, "distributions": list(i.resolved),
             "engine": i.engine}
            for i in published.images]}, indent=2, sort_keys=True))
    else:
        rows = [[i.workflow, i.name, i.ref, i.digest[:19], "pushed" if i.pushed else "present",
                 ", ".join(i.tasks)] for i in published.images]
        console.print_stdout("\n".join(_table(["WORKFLOW", "IMAGESPEC", "REF", "DIGEST", "STATUS", "TASKS"], rows))
                             if rows else "no ImageSpec without a flyte_image target")
    return FlyteImageSpec(exit_code=0)


def rules():
    return collect_rules()
