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

from flytebuild.core import validate
from flytebuild.core.errors import FlytebuildError
from flytebuild.pants_backend.target_types import FlyteEntrypointField
from flytebuild.pants_backend.util_rules.planning import PlannedWorkflows, WorkflowPlansRequest
from flytebuild.pants_backend.util_rules.serialization import (
    CodeBundle,
    CodeBundleRequest,
    SerializedWorkflows,
    SerializeRequest,
)
from flytebuild.service.registration import ARCHIVE, registration_archive

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
    paragraph, never a half-written archive for the broken workflow.

    Why not a public API (reviewed against Pants 2.17.1, pants/core/goals/package.py `package_asset`): the goal
    MultiGets every BuiltPackage (one raising rule fails them all before `write_digest`), then always returns
    `Package(exit_code=0)`; BuiltPackage and BuiltPackageArtifact carry no status, the goal has no keep-going
    option, and a plugin cannot wrap or replace a built-in goal rule. `extra_log_lines` is the one hook that runs
    after the files are written. Drop this when Pants lets a package fail on its own (then raise from the rule)."""

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
    # The target name becomes `dist/<dir>/<name>/`: Pants bans `/` in names but not `..`, which would write the
    # archive into dist/ itself, over another target's files. Refused before anything is planned.
    reason = validate.name_problem(address.target_name)
    if reason:
        validate.raise_problems(
            [validate.Problem("name", address.target_name, reason, "rename the target, e.g. `name=\"wf\"`")],
            str(address), lambda f: "the target name", None, "flyte_workflow")
    planned = await Get(PlannedWorkflows, WorkflowPlansRequest((address,)))
    ordered = tuple(planned)
    code_bundle, serialized = await MultiGet(
        Get(CodeBundle, CodeBundleRequest(ordered)),
        Get(SerializedWorkflows, SerializeRequest((address,), ordered)),
    )
    serialized.check_current()
    contents = await Get(DigestContents, Digest, serialized.workflows[0].digest)
    built = registration_archive([(fc.path, fc.content) for fc in contents], code_bundle.bundle)
    out_dir = f"{address.spec_path.replace('/', '.') or 'root'}/{address.target_name}"
    digest = await Get(Digest, CreateDigest([FileContent(f"{out_dir}/{name}", data) for name, data in built.files]))
    artifacts = [BuiltPackageArtifact(f"{out_dir}/{ARCHIVE}", built.lines)]
    artifacts += [BuiltPackageArtifact(f"{out_dir}/{name}") for name, _ in built.files[1:]]
    return BuiltPackage(digest, tuple(artifacts))


def rules():
    return [*collect_rules(), UnionRule(PackageFieldSet, FlyteWorkflowPackageFieldSet)]
