"""flytebuild's Pants backend: Flyte tasks, images and workflows as build targets."""
from flytebuild.pants_backend.goals import plan
from flytebuild.pants_backend.goals import run as run_goal
from flytebuild.pants_backend.goals import package_image
from flytebuild.pants_backend.util_rules import images
from flytebuild.pants_backend.subsystems.flyte import FlyteSubsystem
from flytebuild.pants_backend.target_types import FlyteImageTarget, FlyteReferenceTarget, FlyteWorkflowTarget
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
        *images.rules(),
        *package_image.rules(),
    ]


def target_types():
    return [FlyteImageTarget, FlyteWorkflowTarget, FlyteReferenceTarget]


# --- deploy: serialization, `package` of flyte_workflow, `flyte-deploy` ---
def _deploy_rules():
    from flytebuild.pants_backend.goals import deploy as deploy_goal
    from flytebuild.pants_backend.goals import package_workflow
    from flytebuild.pants_backend.util_rules import deployment, serialization

    return [*serialization.rules(), *deployment.rules(), *package_workflow.rules(), *deploy_goal.rules()]


_base_rules = rules


def rules():  # noqa: F811 - extends the list above without reorganizing it
    return [*_base_rules(), *_deploy_rules()]
