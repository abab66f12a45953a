"""flytebuild's Pants backend: Flyte tasks, images, pod templates, references and workflows as build targets."""
from flytebuild.pants_backend.goals import deploy, package_image, package_workflow, plan, publish_image, render, verify
from flytebuild.pants_backend.goals import imagespec as imagespec_goal
from flytebuild.pants_backend.goals import run as run_goal
from flytebuild.pants_backend.goals import tailor as tailor_goal
from flytebuild.pants_backend.subsystems.flyte import FlyteSubsystem
from flytebuild.pants_backend.target_types import (
    FlyteImageTarget,
    FlytePodTemplateTarget,
    FlyteReferenceTarget,
    FlyteWorkflowTarget,
)
from flytebuild.pants_backend.util_rules import (
    closures,
    deployment,
    entrypoint,
    images,
    imagespec,
    introspection,
    planning,
    pod_templates,
    reference_check,
    serialization,
    settings,
    user_env,
)


def rules():
    return [
        *FlyteSubsystem.rules(),
        *settings.rules(),
        *closures.rules(),
        *entrypoint.rules(),
        *introspection.rules(),
        *planning.rules(),
        *pod_templates.rules(),
        *reference_check.rules(),
        *images.rules(),
        *imagespec.rules(),
        *serialization.rules(),
        *user_env.rules(),
        *deployment.rules(),
        *plan.rules(),
        *render.rules(),
        *run_goal.rules(),
        *package_image.rules(),
        *publish_image.rules(),
        *package_workflow.rules(),
        *imagespec_goal.rules(),
        *verify.rules(),
        *tailor_goal.rules(),
        *deploy.rules(),
    ]


def target_types():
    return [FlyteImageTarget, FlyteWorkflowTarget, FlytePodTemplateTarget, FlyteReferenceTarget]
