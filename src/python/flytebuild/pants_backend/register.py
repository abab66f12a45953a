"""flytebuild's Pants backend: Flyte tasks, images and workflows as build targets."""
from flytebuild.pants_backend.goals import plan
from flytebuild.pants_backend.subsystems.flyte import FlyteSubsystem
from flytebuild.pants_backend.target_types import FlyteImageTarget, FlyteWorkflowTarget
from flytebuild.pants_backend.util_rules import closures, entrypoint, introspection, planning
from flytebuild.pants_backend.goals import render
from flytebuild.pants_backend.target_types import FlytePodTemplateTarget, pod_template_rules
from flytebuild.pants_backend.util_rules import pod_templates


def rules():
    return [
        *FlyteSubsystem.rules(),
        *closures.rules(),
        *entrypoint.rules(),
        *introspection.rules(),
        *planning.rules(),
        *plan.rules(),
        *pod_template_rules(),
        *pod_templates.rules(),
        *render.rules(),
    ]


def target_types():
    return [FlyteImageTarget, FlyteWorkflowTarget, FlytePodTemplateTarget]
