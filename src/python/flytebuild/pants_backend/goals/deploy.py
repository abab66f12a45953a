"""`pants flyte-deploy [--dry-run] [--format=table|json] <specs>`: register what changed, nothing else."""
from __future__ import annotations

from enum import Enum

from pants.base.exceptions import IntrinsicError
from pants.build_graph.address import ResolveError
from pants.engine.console import Console
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.rules import Get, collect_rules, goal_rule
from pants.engine.target import InvalidFieldException, Targets
from pants.option.option_types import BoolOption, EnumOption

from flytebuild.core.deploy_report import render_deploy_json, render_deploy_table
from flytebuild.core.errors import FlytebuildError
from flytebuild.pants_backend.target_types import FlyteWorkflowTarget
from flytebuild.pants_backend.util_rules.deployment import DeployRequest, DeployResult
from flytebuild.pants_backend.util_rules.worker import release_parked


class OutputFormat(Enum):
    table = "table"
    json = "json"


class FlyteDeploySubsystem(GoalSubsystem):
    name = "flyte-deploy"
    help = (
        "Register flyte_workflow targets with FlyteAdmin ([flyte] endpoint/insecure/config, project, domain): "
        "each task, workflow and launch plan under its content-addressed version, only those FlyteAdmin does not "
        "hold yet; the fast-register bundle (only the fast tasks' files) is uploaded only when needed."
    )

    dry_run = BoolOption(default=False, help="Show what would be registered and uploaded; change nothing.")
    push_images = BoolOption(
        default=True,
        help="Build and push the tasks' flyte_image targets first (a tag the registry has is not pushed again) "
        "and register tasks pinned to the pushed digest. Off: tasks name the content tag; push it yourself.",
    )
    output_format = EnumOption(
        "--format", default=OutputFormat.table, help="`table` for people, `json` for machines."
    )


class FlyteDeploy(Goal):
    subsystem_cls = FlyteDeploySubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


@goal_rule
async def flyte_deploy(console: Console, subsystem: FlyteDeploySubsystem, targets: Targets) -> FlyteDeploy:
    workflows = tuple(sorted(t.address for t in targets if isinstance(t, FlyteWorkflowTarget)))
    if not workflows:
        console.print_stderr("flyte-deploy: no flyte_workflow targets matched.")
        return FlyteDeploy(exit_code=1)
    try:
        result = await Get(
            DeployResult, DeployRequest(workflows, dry_run=subsystem.dry_run, push_images=subsystem.push_images)
        )
    except (FlytebuildError, ResolveError, IntrinsicError, InvalidFieldException) as e:
        console.print_stderr(f"flyte-deploy: {e}")
        return FlyteDeploy(exit_code=1)
    finally:
        release_parked()  # what the deploy's serializations did not claim (their answers were cached)
    summary = result.summary()
    if subsystem.output_format == OutputFormat.json:
        console.print_stdout(render_deploy_json(summary, result.warnings))
    else:
        console.print_stdout(render_deploy_table(summary, result.warnings))
    if result.exit_code != 0:
        console.print_stderr(
            "flyte-deploy: some entities were not registered (see MESSAGE); workflows whose tasks failed were "
            "left out. Fix the cause and re-run: what was registered is kept."
        )
    return FlyteDeploy(exit_code=result.exit_code)


def rules():
    return collect_rules()
