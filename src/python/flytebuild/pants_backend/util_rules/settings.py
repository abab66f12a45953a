"""The run's `core.settings.Settings`, built from the `[flyte]` subsystem: the only place Pants reads it for
project/domain/registry/default base+image/environment/admin (everything else asks for `Settings`)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from pants.base.build_root import BuildRoot
from pants.engine.addresses import Addresses, UnparsedAddressInputs
from pants.engine.rules import Get, collect_rules, rule

from flytebuild.core.settings import AdminSettings, Settings
from flytebuild.pants_backend.subsystems.flyte import FlyteSubsystem


@rule(desc="Read the [flyte] settings")
async def flyte_settings(flyte: FlyteSubsystem, build_root: BuildRoot) -> Settings:
    default_image = flyte.default_image
    if default_image and default_image.startswith("//"):
        # One spelling for the planner: `//` + the address as Pants prints it (`//path:name`, `//:name`).
        (address,) = await Get(
            Addresses,
            UnparsedAddressInputs([default_image], owning_address=None, description_of_origin="[flyte].default_image"),
        )
        default_image = "//" + str(address).lstrip("/")
    config = flyte.config
    if config:
        config = os.path.join(build_root.path, os.path.expanduser(config))
    return Settings(
        project=flyte.project,
        domain=flyte.domain,
        registry=flyte.registry,
        default_base=flyte.default_base,
        default_image=default_image,
        environment=flyte.environment,
        admin=AdminSettings(
            endpoint=flyte.endpoint,
            # Not given (neither --flyte-insecure nor --no-flyte-insecure, nor in pants.toml or the environment):
            # unset, so the flytekit config decides (TLS without one), as on every other path.
            insecure=None if flyte.options.is_default("insecure") else flyte.insecure,
            config=config,
            timeout=flyte.admin_timeout,
            ledger=flyte.ledger,
        ),
    )


@dataclass(frozen=True)
class PlanningSettings:
    """`Settings.planning()`, what the planning rules depend on: a run with another endpoint (`flyte-deploy
    --flyte-endpoint=...`, then `flyte-plan` without one) finds every plan node unchanged instead of planning again."""

    settings: Settings


@rule(desc="Read the [flyte] settings a plan depends on")
async def planning_settings(settings: Settings) -> PlanningSettings:
    return PlanningSettings(settings.planning())


def rules():
    return collect_rules()
