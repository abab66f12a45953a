"""`pants package <flyte_image>` builds the image daemonlessly, tagged with its content version: an OCI image
layout under dist/ (default), only the local layer cache, or a `docker load`; `pants publish` pushes it
(goals/publish_image.py), as pants.backend.docker splits building from pushing. `[flyte].image_output=push`
keeps the one-step package-and-push for flows that want it."""
from __future__ import annotations

import json
from dataclasses import dataclass

from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, PackageFieldSet
from pants.engine.fs import AddPrefix, CreateDigest, Digest, FileContent, MergeDigests
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.unions import UnionRule

from flytebuild.core.errors import FlytebuildError
from flytebuild.pants_backend.subsystems.flyte import FlyteSubsystem
from flytebuild.pants_backend.target_types import FlyteImageDependenciesField
from flytebuild.pants_backend.util_rules.images import ImageOutput, PublishedImageResult, PublishImageRequest


@dataclass(frozen=True)
class FlyteImageFieldSet(PackageFieldSet):
    required_fields = (FlyteImageDependenciesField,)

    dependencies: FlyteImageDependenciesField


def image_output(flyte: FlyteSubsystem) -> ImageOutput:
    try:
        return ImageOutput(flyte.image_output)
    except ValueError:
        raise FlytebuildError(
            f"Unknown image output {flyte.image_output!r}",
            fix="set --flyte-image-output (or [flyte].image_output) to one of "
            + ", ".join(o.value for o in ImageOutput),
        ) from None


def dist_prefix(field_set: FlyteImageFieldSet) -> str:
    return field_set.address.spec_path.replace("/", ".") or "root"


@rule(desc="Package a flyte_image")
async def package_flyte_image(field_set: FlyteImageFieldSet, flyte: FlyteSubsystem) -> BuiltPackage:
    output = image_output(flyte)
    result = await Get(PublishedImageResult, PublishImageRequest(field_set.address, output))
    image = result.image
    prefix = dist_prefix(field_set)
    name = field_set.address.target_name
    summary = (json.dumps(image.summary(), indent=2, sort_keys=True) + "\n").encode()
    summary_digest = await Get(Digest, CreateDigest([FileContent(f"{name}.image.json", summary)]))
    parts = [summary_digest] + ([result.oci_layout] if result.oci_layout is not None else [])
    digest = await Get(Digest, AddPrefix(await Get(Digest, MergeDigests(parts)), prefix))
    line = image.describe() if output != ImageOutput.oci else f"OCI layout of {image.ref} ({image.digest})"
    return BuiltPackage(digest, (BuiltPackageArtifact(f"{prefix}/{name}.image.json", (line,)),))


def rules():
    return [*collect_rules(), UnionRule(PackageFieldSet, FlyteImageFieldSet)]
