"""`pants flyte-plan`: per workflow, per task — image (and why), baked/fast mode, version."""
from __future__ import annotations

from enum import Enum

from pants.base.exceptions import IntrinsicError
from pants.build_graph.address import ResolveError
from pants.engine.console import Console
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.rules import Get, MultiGet, collect_rules, goal_rule
from pants.engine.target import InvalidFieldException, Targets
from pants.option.option_types import EnumOption

from flytebuild.core.errors import FlytebuildError
from flytebuild.core.model import ImageTarget
from flytebuild.core.plan import plan_image
from flytebuild.core.report import render_json, render_table
from flytebuild.core.settings import Settings
from flytebuild.pants_backend.target_types import FlyteImageTarget, FlyteWorkflowTarget
from flytebuild.pants_backend.util_rules.planning import (
    ImageTargetRequest,
    WorkflowPlanOutcomes,
    WorkflowPlansRequest,
)
from flytebuild.pants_backend.util_rules.reference_check import (
    ReferenceCheckRequest,
    ReferenceWarnings,
)
from flytebuild.pants_backend.util_rules.worker import release_parked
from flytebuild.service import references


class OutputFormat(Enum):
    table = "table"
    json = "json"


class FlytePlanSubsystem(GoalSubsystem):
    name = "flyte-plan"
    help = (
        "Show, per flyte_workflow and per task, the image it runs in (and where that choice came "
        "from), whether its code is baked into the image or needs fast-register, and its "
        "content-addressed version."
    )

    output_format = EnumOption(
        "--format", default=OutputFormat.table, help="`table` for people, `json` for machines."
    )


class FlytePlan(Goal):
    subsystem_cls = FlytePlanSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


@goal_rule
async def flyte_plan(
    console: Console, subsystem: FlytePlanSubsystem, targets: Targets, settings: Settings
) -> FlytePlan:
    workflows = sorted(t.address for t in targets if isinstance(t, FlyteWorkflowTarget))
    image_addresses = sorted(t.address for t in targets if isinstance(t, FlyteImageTarget))
    if not workflows and not image_addresses:
        console.print_stderr("flyte-plan: no flyte_workflow or flyte_image targets matched.")
        return FlytePlan(exit_code=1)
    try:
        # Each workflow planned on its own: a broken one is reported, the others still print.
        outcomes = await Get(WorkflowPlanOutcomes, WorkflowPlansRequest(tuple(workflows)))
        listed = await MultiGet(Get(ImageTarget, ImageTargetRequest(a)) for a in image_addresses)
    except (FlytebuildError, ResolveError, IntrinsicError, InvalidFieldException) as e:
        console.print_stderr(f"flyte-plan: {e}")
        return FlytePlan(exit_code=1)
    finally:
        release_parked()  # nothing here serializes
    planned = outcomes.planned
    for outcome in outcomes.outcomes:
        if outcome.error is not None:
            console.print_stderr(f"flyte-plan: {outcome.address}: {outcome.error}")
    images = {img.address: img for p in planned for img in p.images}
    images.update({img.address: img for img in listed})
    image_plans = [plan_image(images[a]) for a in sorted(images)]
    workflow_plans = [p.plan for p in planned]
    # With a cluster configured, the references the code declares are checked against the registered entities
    # (warnings only). Without one, or without references, nothing runs and nothing connects.
    if references.wanted(workflow_plans, settings.admin):
        checked = await Get(ReferenceWarnings, ReferenceCheckRequest(tuple(workflows), tuple(workflow_plans)))
        workflow_plans = list(references.with_warnings(workflow_plans, checked.by_address))
    render = render_json if subsystem.output_format == OutputFormat.json else render_table
    console.print_stdout(render(image_plans, workflow_plans))
    return FlytePlan(exit_code=1 if outcomes.errors else 0)


def rules():
    return collect_rules()
