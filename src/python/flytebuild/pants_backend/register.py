"""flytebuild's Pants backend: Flyte tasks, images, pod templates and workflows as build targets."""
from flytebuild.pants_backend.goals import deploy, package_image, package_workflow, plan, render
from flytebuild.pants_backend.goals import run as run_goal
from flytebuild.pants_backend.goals import verify
from flytebuild.pants_backend.goals import imagespec as imagespec_goal
from flytebuild.pants_backend.util_rules import imagespec

from flytebuild.pants_backend.subsystems.flyte import FlyteSubsystem
from flytebuild.pants_backend.target_types import (
    FlyteImageTarget,
    FlytePodTemplateTarget,
    FlyteReferenceTarget,
    FlyteWorkflowTarget,
    pod_template_rules,
)
from flytebuild.pants_backend.util_rules import (
    closures,
    deployment,
    entrypoint,
    images,
    introspection,
    planning,
    pod_templates,
    serialization,
)


def rules():
    return [
        *FlyteSubsystem.rules(),
        *pod_template_rules(),
        *closures.rules(),
        *entrypoint.rules(),
        *introspection.rules(),
        *planning.rules(),
        *pod_templates.rules(),
        *images.rules(),
        *serialization.rules(),
        *deployment.rules(),
        *plan.rules(),
        *render.rules(),
        *run_goal.rules(),
        *package_image.rules(),
        *package_workflow.rules(),
        *deploy.rules(),

        *verify.rules(),
        *imagespec.rules(),
        *imagespec_goal.rules(),
    ]


def target_types():
    return [FlyteImageTarget, FlyteWorkflowTarget, FlytePodTemplateTarget, FlyteReferenceTarget]
