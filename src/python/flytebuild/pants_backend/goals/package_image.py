"""`pants package <flyte_image>`: build the image daemonlessly and push it (or write an OCI layout,
or `docker load` it), tagged with its content version, as pants.backend.docker packages images."""
from __future__ import annotations

import json
from dataclasses import dataclass

from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, OutputPathField, PackageFieldSet
from pants.engine.fs import AddPrefix, CreateDigest, Digest, FileContent, MergeDigests
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.unions import UnionRule

from flytebuild.core.errors import FlytebuildError
from flytebuild.pants_backend.subsystems.flyte import FlyteSubsystem
from flytebuild.pants_backend.target_types import FlyteImageDependenciesField
from flytebuild.pants_backend.util_rules.images import ImageOutput, PublishedImage, PublishImageRequest


@dataclass(frozen=True)
class FlyteImageFieldSet(PackageFieldSet):
    required_fields = (FlyteImageDependenciesField,)

    dependencies: FlyteImageDependenciesField


def _output(flyte: FlyteSubsystem) -> ImageOutput:
    try:
        return ImageOutput(flyte.image_output)
    except ValueError:
        raise FlytebuildError(
            f"Unknown image output {flyte.image_output!r}",
            fix="set --flyte-image-output (or [flyte].image_output) to one of push, oci, docker",
        ) from None


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


@rule(desc="Package a flyte_image")
async def package_flyte_image(field_set: FlyteImageFieldSet, flyte: FlyteSubsystem) -> BuiltPackage:
    output = _output(flyte)
    image = await Get(PublishedImage, PublishImageRequest(field_set.address, output))
    prefix = field_set.address.spec_path.replace("/", ".") or "root"
    summary = {
        "address": image.address, "ref": image.ref, "digest": image.digest, "output": image.output,
        "pushed": image.pushed, "bytes_uploaded": image.bytes_uploaded,
        "layers": [{"name": n, "digest": d, "size": s, "status": st} for n, d, s, st in image.layers],
    }
    name = field_set.address.target_name
    summary_digest = await Get(
        Digest,
        CreateDigest([FileContent(f"{name}.image.json", (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode())]),
    )
    parts = [summary_digest] + ([image.oci_layout] if image.oci_layout is not None else [])
    digest = await Get(Digest, AddPrefix(await Get(Digest, MergeDigests(parts)), prefix))

    if output == ImageOutput.push:
        line = (f"pushed {image.ref} ({image.digest}, {_mb(image.bytes_uploaded)} uploaded)" if image.pushed
                else f"{image.ref} already in the registry ({image.digest}): nothing built or pushed")
    elif output == ImageOutput.docker:
        line = f"loaded {image.ref} into Docker ({image.digest})"
    else:
        line = f"OCI layout of {image.ref} ({image.digest})"
    artifacts = [BuiltPackageArtifact(f"{prefix}/{name}.image.json", (line,))]
    return BuiltPackage(digest, tuple(artifacts))


def rules():
    return [*collect_rules(), UnionRule(PackageFieldSet, FlyteImageFieldSet)]
