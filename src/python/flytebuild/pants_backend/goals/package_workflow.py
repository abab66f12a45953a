"""`pants package <flyte_workflow>`: the registration archive, in the layout `pyflyte package` writes.

`dist/<path.to.dir>/<name>/flyte-package.tgz` holds the numbered `.pb` files (`flytectl register files
--archive` accepts it) and, when a task is fast, the code bundle `fast<blake3>.tar.gz`, which is also written
beside it. Fast tasks carry flytekit's `{{ .remote_package_path }}` placeholder, which flytectl fills on upload.
Same inputs, same bytes.
"""
from __future__ import annotations

from dataclasses import dataclass

from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, PackageFieldSet
from pants.engine.fs import CreateDigest, Digest, DigestContents, FileContent
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.unions import UnionRule

from flytebuild.pants_backend.target_types import FlyteEntrypointField
from flytebuild.pants_backend.util_rules.planning import PlannedWorkflows, WorkflowPlansRequest
from flytebuild.pants_backend.util_rules.serialization import (
    CodeBundle,
    CodeBundleRequest,
    SerializedWorkflows,
    SerializeRequest,
)
from flytebuild.service.registration import ARCHIVE, registration_archive


@dataclass(frozen=True)
class FlyteWorkflowPackageFieldSet(PackageFieldSet):
    required_fields = (FlyteEntrypointField,)

    entrypoint: FlyteEntrypointField


@rule(desc="Package a Flyte workflow for registration")
async def package_flyte_workflow(field_set: FlyteWorkflowPackageFieldSet) -> BuiltPackage:
    address = field_set.address
    planned = await Get(PlannedWorkflows, WorkflowPlansRequest((address,)))
    ordered = tuple(planned)
    code_bundle, serialized = await MultiGet(
        Get(CodeBundle, CodeBundleRequest(ordered)),
        Get(SerializedWorkflows, SerializeRequest((address,), ordered)),
    )
    contents = await Get(DigestContents, Digest, serialized.workflows[0].digest)
    built = registration_archive([(fc.path, fc.content) for fc in contents], code_bundle.bundle)
    out_dir = f"{address.spec_path.replace('/', '.') or 'root'}/{address.target_name}"
    digest = await Get(Digest, CreateDigest([FileContent(f"{out_dir}/{name}", data) for name, data in built.files]))
    artifacts = [BuiltPackageArtifact(f"{out_dir}/{ARCHIVE}", built.lines)]
    artifacts += [BuiltPackageArtifact(f"{out_dir}/{name}") for name, _ in built.files[1:]]
    return BuiltPackage(digest, tuple(artifacts))


def rules():
    return [*collect_rules(), UnionRule(PackageFieldSet, FlyteWorkflowPackageFieldSet)]
