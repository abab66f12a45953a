"""`pants package <flyte_workflow>`: the registration archive, in the layout `pyflyte package` writes.

`dist/<path.to.dir>/<name>/flyte-package.tgz` holds the numbered `.pb` files (`flytectl register files
--archive` accepts it) and, when a task is fast, the code bundle `fast<blake3>.tar.gz`, which is also written
beside it. Fast tasks carry flytekit's `{{ .remote_package_path }}` placeholder, which flytectl fills on upload.
Same inputs, same bytes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, PackageFieldSet
from pants.engine.fs import CreateDigest, Digest, DigestContents, FileContent
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.unions import UnionRule

from flytebuild.core.errors import FlytebuildError
from flytebuild.oci.layers import build_layer
from flytebuild.pants_backend.target_types import FlyteEntrypointField
from flytebuild.pants_backend.util_rules.planning import PlannedWorkflows, WorkflowPlansRequest
from flytebuild.pants_backend.util_rules.serialization import (
    CodeBundle,
    CodeBundleRequest,
    ImageRefs,
    SerializedWorkflows,
    SerializeRequest,
)

ARCHIVE = "flyte-package.tgz"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlyteWorkflowPackageFieldSet(PackageFieldSet):
    required_fields = (FlyteEntrypointField,)

    entrypoint: FlyteEntrypointField


@dataclass(frozen=True)
class _Build:
    field_set: FlyteWorkflowPackageFieldSet


class _FailGoal(str):
    """A log line of Pants' `package` goal that fails the goal once every archive is written.

    `package` writes all packages' files, then logs each artifact's lines (`str(line)`), and exits 0; a package
    that raises instead makes it write nothing at all. So a workflow that cannot be packaged returns an empty
    package whose log line raises its error paragraph: the other archives are on disk, the run exits 1 with the
    paragraph, never a half-written archive for the broken workflow."""

    def __str__(self) -> str:
        raise FlytebuildError(str.__str__(self))


@rule(desc="Package a Flyte workflow for registration")
async def package_flyte_workflow(field_set: FlyteWorkflowPackageFieldSet) -> BuiltPackage:
    try:
        return await Get(BuiltPackage, _Build(field_set))
    except FlytebuildError as e:
        address = str(field_set.address)
        logger.error(f"{address}: {e}")
        digest = await Get(Digest, CreateDigest([]))
        return BuiltPackage(digest, (BuiltPackageArtifact(None, (_FailGoal(f"{address}: {e}"),)),))


@rule(desc="Build a Flyte workflow's registration archive")
async def _build_flyte_workflow(request: _Build) -> BuiltPackage:
    field_set = request.field_set
    address = field_set.address
    planned = await Get(PlannedWorkflows, WorkflowPlansRequest((address,)))
    ordered = tuple(planned)
    code_bundle, serialized = await MultiGet(
        Get(CodeBundle, CodeBundleRequest(ordered)),
        Get(SerializedWorkflows, SerializeRequest((address,), ordered, ImageRefs.from_plans(ordered))),
    )
    contents = await Get(DigestContents, Digest, serialized.workflows[0].digest)
    entries = [(fc.path, fc.content) for fc in contents]
    bundle = code_bundle.bundle
    if bundle is not None:
        entries.append((bundle.name, bundle.data))
    archive = build_layer(entries, name="flyte-package").read_bytes()
    out_dir = f"{address.spec_path.replace('/', '.') or 'root'}/{address.target_name}"
    files = [FileContent(f"{out_dir}/{ARCHIVE}", archive)]
    lines = [f"{len(contents)} entities (numbered .pb files, `flytectl register files --archive`)"]
    if bundle is not None:
        files.append(FileContent(f"{out_dir}/{bundle.name}", bundle.data))
        lines.append(f"code bundle {bundle.name}: {len(bundle.files)} files of the fast tasks")
    else:
        lines.append("no code bundle: every task runs from its image")
    digest = await Get(Digest, CreateDigest(files))
    artifacts = [BuiltPackageArtifact(f"{out_dir}/{ARCHIVE}", tuple(lines))]
    if bundle is not None:
        artifacts.append(BuiltPackageArtifact(f"{out_dir}/{bundle.name}"))
    return BuiltPackage(digest, tuple(artifacts))


def rules():
    return [*collect_rules(), UnionRule(PackageFieldSet, FlyteWorkflowPackageFieldSet)]
