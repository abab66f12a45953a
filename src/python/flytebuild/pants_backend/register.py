"""flytebuild's Pants backend: Flyte tasks, images and workflows as build targets."""
from flytebuild.pants_backend.goals import plan
from flytebuild.pants_backend.goals import run as run_goal
from flytebuild.pants_backend.subsystems.flyte import FlyteSubsystem
from flytebuild.pants_backend.target_types import FlyteImageTarget, FlyteWorkflowTarget
from flytebuild.pants_backend.util_rules import closures, entrypoint, introspection, planning


def rules():
    return [
        *FlyteSubsystem.rules(),
        *closures.rules(),
        *entrypoint.rules(),
        *introspection.rules(),
        *planning.rules(),
        *plan.rules(),
        *run_goal.rules(),
    ]


def target_types():
    return [FlyteImageTarget, FlyteWorkflowTarget]
