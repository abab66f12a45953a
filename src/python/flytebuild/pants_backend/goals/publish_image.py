"""`pants publish <flyte_image>`: push the OCI image layout `package` builds, tagged with its content version.

As in Pants' docker backend (`package` runs `docker build`, `publish` runs `docker push`), the push is an
InteractiveProcess the publish goal runs: `python -m flytebuild.service.push <layout> <ref>`, with the layout
as its input. Blobs the registry has are skipped; the same blobs give the same manifest digest as any other
path (`flyte-deploy`, the CLI).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from pants.core.goals.publish import (
    PublishFieldSet,
    PublishOutputData,
    PublishPackages,
    PublishProcesses,
    PublishRequest,
)
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.process import InteractiveProcess
from pants.engine.rules import Get, collect_rules, rule

import flytebuild
from flytebuild.pants_backend.subsystems.flyte import FlyteSubsystem
from flytebuild.pants_backend.target_types import FlyteImageDependenciesField
from flytebuild.pants_backend.util_rules.images import ImageOutput, PublishedImageResult, PublishImageRequest


class PublishFlyteImageRequest(PublishRequest):
    pass


@dataclass(frozen=True)
class PublishFlyteImageFieldSet(PublishFieldSet):
    publish_request_type = PublishFlyteImageRequest
    required_fields = (FlyteImageDependenciesField,)

    dependencies: FlyteImageDependenciesField

    def get_output_data(self) -> PublishOutputData:
        return PublishOutputData({"publisher": "flytebuild", **super().get_output_data()})


@rule(desc="Push a flyte_image")
async def publish_flyte_image(request: PublishFlyteImageRequest, flyte: FlyteSubsystem) -> PublishProcesses:
    # The layout `package` builds with the default output (memoized: built once when both ran).
    built = await Get(PublishedImageResult, PublishImageRequest(request.field_set.address, ImageOutput.oci))
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(["DOCKER_CONFIG", "HOME"]))
    image = built.image
    assert built.oci_layout is not None and image.layout is not None
    process = InteractiveProcess(
        argv=(sys.executable, "-m", "flytebuild.service.push", image.layout, image.ref, str(flyte.image_push_jobs)),
        env={"PYTHONPATH": str(Path(flytebuild.__file__).resolve().parents[1]), **{k: v for k, v in env.items() if v}},
        input_digest=built.oci_layout,
    )
    return PublishProcesses([PublishPackages(names=(image.ref,), process=process, description=f"({image.digest})")])


def rules():
    return [*collect_rules(), *PublishFlyteImageFieldSet.rules()]
