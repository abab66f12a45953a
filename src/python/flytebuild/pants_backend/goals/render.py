"""`pants flyte-render [--env=NAME] [--format=yaml|json]`: the final pod spec of every task.

What a reviewer sees is exactly what the tasks are serialized with: the `flyte_pod_template`
rendered with its values and the environment's overlay, the code's `@task(pod_template=...)` /
`with_overrides(pod_template=...)` merged on top, validated as a V1PodSpec, and the task's
image put into the primary container (flytekit adds the command and args at serialization).
"""
from __future__ import annotations

import json
from enum import Enum

from pants.base.exceptions import IntrinsicError
from pants.build_graph.address import ResolveError
from pants.engine.console import Console
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.rules import Get, collect_rules, goal_rule
from pants.engine.target import InvalidFieldException, Targets
from pants.option.option_types import EnumOption, StrOption

from flytebuild.core.errors import FlytebuildError

# Shared with the CLI (flytebuild.cli): what is rendered and how are pure.
from flytebuild.core.pod_render import final_pod, render_entries, render_yaml  # noqa: F401
from flytebuild.pants_backend.target_types import FlyteWorkflowTarget
from flytebuild.pants_backend.util_rules.planning import PlannedWorkflows, WorkflowPlansRequest
from flytebuild.pants_backend.util_rules.worker import release_parked


class RenderFormat(Enum):
    yaml = "yaml"
    json = "json"


class FlyteRenderSubsystem(GoalSubsystem):
    name = "flyte-render"
    help = (
        "Print the final Kubernetes pod spec of every task of the given flyte_workflow targets "
        "(pod template + environment overlay + code-level overrides, validated as V1PodSpec)."
    )

    env = StrOption(
        default=None,
        help="Environment whose overlays are applied (default: `[flyte].environment`).",
    )
    output_format = EnumOption(
        "--format", default=RenderFormat.yaml, help="`yaml` (one document per task) or `json`."
    )


class FlyteRender(Goal):
    subsystem_cls = FlyteRenderSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


@goal_rule
async def flyte_render(console: Console, subsystem: FlyteRenderSubsystem, targets: Targets) -> FlyteRender:
    workflows = sorted(t.address for t in targets if isinstance(t, FlyteWorkflowTarget))
    if not workflows:
        console.print_stderr("flyte-render: no flyte_workflow targets matched.")
        return FlyteRender(exit_code=1)
    try:
        planned = await Get(PlannedWorkflows, WorkflowPlansRequest(tuple(workflows), subsystem.env))
    except (FlytebuildError, ResolveError, IntrinsicError, InvalidFieldException) as e:
        console.print_stderr(f"flyte-render: {e}")
        return FlyteRender(exit_code=1)
    finally:
        release_parked()
    entries = render_entries([p.plan for p in planned])
    if subsystem.output_format == RenderFormat.json:
        console.print_stdout(json.dumps({"pods": entries}, sort_keys=True, indent=2, ensure_ascii=False))
    elif entries:
        console.print_stdout(render_yaml(entries), end="")
    else:
        console.print_stderr("flyte-render: no task of these workflows has a pod template.")
    return FlyteRender(exit_code=0)


def rules():
    return collect_rules()
