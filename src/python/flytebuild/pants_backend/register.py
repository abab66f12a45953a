"""flytebuild's Pants backend: Flyte tasks, images and workflows as build targets."""
from flytebuild.pants_backend.goals import plan
from flytebuild.pants_backend.goals import package_image
from flytebuild.pants_backend.goals import verify
from flytebuild.pants_backend.util_rules import images
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
        *images.rules(),
        *package_image.rules(),
        *verify.rules(),
    ]


def target_types():
    return [FlyteImageTarget, FlyteWorkflowTarget]
