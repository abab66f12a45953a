"""`pants flyte-imagespec <workflows>`: build and push the ImageSpecs in code that no flyte_image
target answers, tagged with their content version (the ref the plan gives their tasks)."""
from __future__ import annotations

from enum import Enum

from pants.base.exceptions import IntrinsicError
from pants.build_graph.address import ResolveError
from pants.engine.console import Console
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.rules import Get, collect_rules, goal_rule
from pants.engine.target import InvalidFieldException, Targets
from pants.option.option_types import EnumOption

from flytebuild.core.errors import FlytebuildError
from flytebuild.pants_backend.target_types import FlyteWorkflowTarget
from flytebuild.pants_backend.util_rules.imagespec import PublishedImageSpecs, PublishImageSpecsRequest
from flytebuild.pants_backend.util_rules.worker import release_parked
from flytebuild.service.images import render_specs


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
    finally:
        release_parked()
    console.print_stdout(render_specs(published.images, subsystem.output_format.value))
    return FlyteImageSpec(exit_code=0)


def rules():
    return collect_rules()
