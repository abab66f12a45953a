"""The `[flyte]` options scope."""
from __future__ import annotations

from pants.option.option_types import StrOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import help_text


class FlyteSubsystem(Subsystem):
    options_scope = "flyte"
    help = "Settings for Flyte targets (flytebuild)."

    default_image = StrOption(
        default=None,
        help=help_text(
            """
            Image for tasks that name none in code, `task_images` or the workflow's `image`:
            `//path:target` names a `flyte_image`, anything else is an image reference.
            Without it, flytekit's default image for the interpreter version is used.
            """
        ),
    )
    default_base = StrOption(
        default="localhost:5000/flytebuild/python:3.11",
        help="Base image of `flyte_image` targets that set no `base`.",
    )
    registry = StrOption(
        default="localhost:5000", help="Registry of `flyte_image` targets that set no `registry`."
    )
    project = StrOption(default="flytesnacks", help="Default Flyte project.")
    domain = StrOption(default="development", help="Default Flyte domain.")

    environment = StrOption(
        default=None,
        help=help_text(
            """
            Environment whose overlay is merged into every `flyte_pod_template` that has
            `overlays` (e.g. `dev`, `prod`); also `${env}` in templates. Unset: no overlay.
            """
        ),
    )
