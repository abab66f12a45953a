"""`pants flyte-verify <specs>`: is every baked task really runnable from its image?

For each baked task of the matched flyte_workflows, its image (published first: content-tagged,
so an existing tag is not rebuilt) is checked:
- with a Docker engine: the image is pulled and run once (`--network none`); inside it every task
  module is imported and `pyflyte-execute` must be on PATH;
- without one: statically, from the image config's labels (the baked files and distributions
  recorded at build time), fetched from the registry without pulling any layer.
This answers "the baked image missed the workflow file" before anything is registered.
"""
from __future__ import annotations

from enum import Enum

from pants.base.exceptions import IntrinsicError
from pants.build_graph.address import ResolveError
from pants.engine.console import Console
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.rules import Get, collect_rules, goal_rule
from pants.engine.target import InvalidFieldException, Targets
from pants.option.global_options import NamedCachesDirOption
from pants.option.option_types import EnumOption

from flytebuild.core.errors import FlytebuildError
from flytebuild.core.verify import baked_tasks, image_addresses
from flytebuild.pants_backend.subsystems.flyte import FlyteSubsystem
from flytebuild.pants_backend.target_types import FlyteWorkflowTarget
from flytebuild.pants_backend.util_rules.images import PublishedImages, PublishImagesRequest, _cache_dir
from flytebuild.pants_backend.util_rules.imagespec import PublishedImageSpecs, PublishImageSpecsRequest
from flytebuild.pants_backend.util_rules.planning import PlannedWorkflows, WorkflowPlansRequest
from flytebuild.pants_backend.util_rules.worker import release_parked
from flytebuild.service import verify as verify_io


class VerifyFormat(Enum):
    table = "table"
    json = "json"


class VerifyEngine(Enum):
    auto = "auto"  # Docker when an engine answers, else static
    docker = "docker"
    static = "static"


class FlyteVerifySubsystem(GoalSubsystem):
    name = "flyte-verify"
    help = (
        "Check that every baked task of the matched flyte_workflows can run from its image: its "
        "modules import inside the image and pyflyte-execute is on PATH (run in Docker when an "
        "engine is present, else checked statically from the image's source manifest label). "
        "Images are published first (content-tagged: an existing tag is not rebuilt)."
    )

    output_format = EnumOption("--format", default=VerifyFormat.table, help="`table` or `json`.")
    engine = EnumOption("--engine", default=VerifyEngine.auto, help="`auto`, `docker` or `static`.")


class FlyteVerify(Goal):
    subsystem_cls = FlyteVerifySubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


@goal_rule
async def flyte_verify(
    console: Console, subsystem: FlyteVerifySubsystem, targets: Targets, flyte: FlyteSubsystem,
    named_caches: NamedCachesDirOption,
) -> FlyteVerify:
    workflows = sorted(t.address for t in targets if isinstance(t, FlyteWorkflowTarget))
    if not workflows:
        console.print_stderr("flyte-verify: no flyte_workflow targets matched.")
        return FlyteVerify(exit_code=1)
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(["DOCKER_HOST", "DOCKER_CONFIG", "PATH", "HOME"]))
    try:
        planned = await Get(PlannedWorkflows, WorkflowPlansRequest(tuple(workflows)))
        baked = baked_tasks([p.plan for p in planned])
        published = await Get(PublishedImages, PublishImagesRequest(image_addresses(baked)))
        # Baked tasks on ImageSpecs in code: their images are built (or found) under the plan's tag first.
        if any(t.image_ref and not t.image_address for t in baked):
            await Get(PublishedImageSpecs, PublishImageSpecsRequest(tuple(workflows)))
    except (FlytebuildError, ResolveError, IntrinsicError, InvalidFieldException) as e:
        console.print_stderr(f"flyte-verify: {e}")
        return FlyteVerify(exit_code=1)
    finally:
        release_parked()

    try:
        outcome = verify_io.verify(
            baked, {img.address: img.ref for img in published.images}, subsystem.engine.value, env,
            _cache_dir(flyte, named_caches), subsystem.output_format.value,
            engine_fix="start Docker (DOCKER_HOST), or use --flyte-verify-engine=static",
        )
    except FlytebuildError as e:
        console.print_stderr(f"flyte-verify: {e}")
        return FlyteVerify(exit_code=1)
    console.print_stdout(outcome.report)
    if outcome.failure:
        console.print_stderr(f"flyte-verify: {outcome.failure}")
    return FlyteVerify(exit_code=1 if outcome.failure else 0)


def rules():
    return collect_rules()
