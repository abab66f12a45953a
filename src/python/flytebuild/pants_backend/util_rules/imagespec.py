"""Build and push the ImageSpecs found in code that no `flyte_image` target answers.

What gets built is decided in core (`core/imagespec.py`, also used by the plan, so the task's image
ref is the tag built here): the spec's base, its `packages` (+ `requirements` file) resolved by a
PACKED pex, its `env`, and — when the spec sets `source_root`/`copy` — exactly the first-party
closure of the tasks using it (never a whole folder). The same pure assembly as `flyte_image`
(`flytebuild.oci.build.assemble`) makes the layers.

Requirements: when every package is locked in the workflow's resolve, the pex is a subset of that
lockfile (pinned, like a flyte_image); otherwise the packages are resolved by pex from the index
for the spec's `python_version` (or the resolve's interpreter constraints), honouring `pip_index`
and `pip_extra_index_url`.

Fields that need commands run inside the image (`apt_packages`, `commands`, conda, cuda) are applied
with `docker build` on top of our image when a Docker engine answers, and pushed under the same tag;
without an engine the build stops with an error naming the task, the field and the fix.

`PublishImageSpecsRequest(workflow addresses)` -> `PublishedImageSpecs` for goals.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Dict, List, Optional, Tuple

from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.target_types import InterpreterConstraintsField, PexLayout
from pants.backend.python.util_rules.interpreter_constraints import InterpreterConstraints
from pants.backend.python.util_rules.pex import Pex, PexRequest
from pants.backend.python.util_rules.pex_requirements import PexRequirements, Resolve
from pants.engine.addresses import Address
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import Digest, DigestContents, DigestEntries, DigestSubset, FileEntry, PathGlobs
from pants.engine.process import FallibleProcessResult, Process
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.option.global_options import NamedCachesDirOption
from pants.source.source_root import SourceRootsRequest, SourceRootsResult

from flytebuild.core.errors import FlytebuildError
from flytebuild.core.imagespec import SpecImage, check_buildable
from flytebuild.core.introspection import parse_introspection
from flytebuild.core.settings import Settings
from flytebuild.oci import engine
from flytebuild.oci.build import BuildError, Distribution, SourceFile, uncached_distributions
from flytebuild.pants_backend.subsystems.flyte import FlyteSubsystem
from flytebuild.pants_backend.util_rules.cancellation import CancellableWork
from flytebuild.pants_backend.util_rules.images import (
    RegistryProbe,
    RegistryState,
    _publish_logging,
    _registries,
    local_distributions,
)
from flytebuild.pants_backend.util_rules.introspection import IntrospectionRequest, IntrospectionResults
from flytebuild.pants_backend.util_rules.planning import PlannedWorkflows, WorkflowPlansRequest, _resolve_of
from flytebuild.service import specs
from flytebuild.service.images import (
    PublishedImage,
    PublishedImageSpec,
    RegistryPublisher,
    already_published,
    build_and_publish,
    published_spec,
    spec_job,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishImageSpecsRequest:
    addresses: Tuple[Address, ...]  # flyte_workflow targets


@dataclass(frozen=True)
class PublishedImageSpecs:
    images: Tuple[PublishedImageSpec, ...]


@dataclass(frozen=True)
class _SpecBuildRequest:
    workflow: Address
    image: SpecImage
    resolve: str
    interpreter_constraints: InterpreterConstraints
    source_file: Optional[str]  # of the first task using it (for messages)


@rule(desc="Resolve an ImageSpec's packages")
async def _spec_requirements_pex(request: _SpecBuildRequest, python_setup: PythonSetup) -> Pex:
    image = request.image
    # The plan decided the list: packages + requirements file + flytekit (pinned) when the spec lacks it.
    reqs = list(image.requirements)
    if image.requirements_file:
        contents = await Get(DigestContents, PathGlobs([image.requirements_file]))
        if not contents:
            raise specs.missing_requirements_file(image, str(request.workflow), request.source_file)
    lockfile = python_setup.resolves.get(request.resolve)
    lock = await Get(DigestContents, PathGlobs([lockfile])) if lockfile and reqs else ()
    in_lock = specs.all_locked(reqs, lock[0].content.decode("utf-8") if lock else None)
    extra_args = specs.index_args(image)
    ics = (
        InterpreterConstraints([f"CPython=={image.python_version}.*"])
        if image.python_version else request.interpreter_constraints
    )
    return await Get(
        Pex,
        PexRequest(
            output_filename="requirements.pex",
            internal_only=False,
            layout=PexLayout.PACKED,
            requirements=PexRequirements(
                reqs,
                from_superset=Resolve(request.resolve, False) if in_lock else None,
                description_of_origin=f"ImageSpec {image.name} of {request.workflow}",
            ),
            interpreter_constraints=ics,
            additional_args=tuple(extra_args) if not in_lock else (),
            description=f"Resolve the packages of ImageSpec {image.name} ({'lockfile' if in_lock else 'index'})",
        ),
    )


@rule(desc="Build and push an ImageSpec")
async def _publish_spec(
    request: _SpecBuildRequest, flyte: FlyteSubsystem, named_caches: NamedCachesDirOption
) -> PublishedImageSpec:
    image = request.image
    workflow = str(request.workflow)
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(["DOCKER_CONFIG", "HOME", "DOCKER_HOST", "PATH"]))
    docker_env = {k: v for k, v in env.items() if v}
    engine_up = bool(image.engine_fields) and engine.engine_available(docker_env)
    check_buildable(image, target=workflow, file=request.source_file, engine=engine_up)
    try:
        job = spec_job(image, workflow, engine_up)
    except BuildError as e:
        raise FlytebuildError(f"Cannot build ImageSpec `{image.name}` of {workflow}: {e}", target=workflow) from None
    # The push runs on a thread the rule can cancel (Ctrl-C): see util_rules/cancellation.py.
    work: CancellableWork[PublishedImage] = CancellableWork(f"Push {job.ref}")
    registries = dataclasses.replace(_registries(flyte, named_caches, env), cancelled=work.cancelled)
    publisher = RegistryPublisher(registries, flyte.image_push_jobs, run=_publish_logging)
    # What the registry holds now, observed once per run (util_rules/images.py `RegistryProbe`).
    await Get(RegistryState, RegistryProbe(job.ref))
    found = already_published(job, publisher, logger.info)
    if found is not None:
        work.close()
        return PublishedImageSpec(workflow, image.name, image.tasks, image.ref, found.digest, False, 0, (),
                                  engine_up)

    paths = list(image.source_paths)
    copied = sorted({c.source for c in image.copies})
    pex, roots, source_contents, copy_contents = await MultiGet(
        Get(Pex, _SpecBuildRequest, request),
        Get(SourceRootsResult, SourceRootsRequest([PurePath(p) for p in paths], ())),
        Get(DigestContents, PathGlobs(paths)),
        Get(DigestContents, PathGlobs(copied)),
    )
    entries = await Get(DigestEntries, Digest, pex.digest)
    dist_entries = [
        e for e in entries
        if isinstance(e, FileEntry) and e.path.startswith("requirements.pex/.deps/") and e.path.endswith(".whl")
    ]
    all_dists = [Distribution(e.path.rsplit("/", 1)[1], Path(e.path), e.file_digest.fingerprint) for e in dist_entries]
    needed = {d.name for d in uncached_distributions(all_dists, registries.cache_dir)}
    missing = [e for e in dist_entries if e.path.rsplit("/", 1)[1] in needed]
    wheel_contents = (
        await Get(DigestContents, DigestSubset(pex.digest, PathGlobs([e.path for e in missing]))) if missing else ()
    )
    placed: Dict[str, bytes] = {}
    for fc in source_contents:
        root = roots.path_to_root[PurePath(fc.path)].path
        rel = fc.path if root in ("", ".") else fc.path[len(root) + 1:]
        placed[rel] = fc.content
    # Copied files also land where flytekit's builder puts them (/root/<entry>), where a container's command looks.
    by_path = {fc.path: fc.content for fc in copy_contents}
    for c in image.copies:
        placed[c.destination] = by_path[c.source]
    sources = [SourceFile(rel, content) for rel, content in placed.items()]

    def inputs(wheels: Path):
        return local_distributions(wheels, dist_entries, wheel_contents), sources

    try:
        work.start(lambda: build_and_publish(job, inputs, publisher, registries, logger.info, docker_env=docker_env))
        await Get(FallibleProcessResult, Process, work.waiter())
        published = work.result()
    finally:
        work.close()
    logger.info(f"ImageSpec {image.name}: pushed {image.ref}")
    return published_spec(workflow, image, published)


@rule(desc="Build the ImageSpecs of flyte_workflows")
async def publish_image_specs(
    request: PublishImageSpecsRequest, settings: Settings, python_setup: PythonSetup
) -> PublishedImageSpecs:
    addresses = tuple(sorted(request.addresses))
    planned_list = await Get(PlannedWorkflows, WorkflowPlansRequest(addresses))
    wrapped = await MultiGet(
        Get(WrappedTarget, WrappedTargetRequest(a, description_of_origin="flyte ImageSpec")) for a in addresses
    )
    plan_of = {p.plan.address: p for p in planned_list}
    planned = [plan_of[str(a)] for a in addresses]
    # The same batches as planning (one per resolve), so these introspections are cache hits.
    by_resolve: Dict[str, List[Address]] = {}
    for w in wrapped:
        by_resolve.setdefault(_resolve_of(w.target, python_setup), []).append(w.target.address)
    batches = await MultiGet(
        Get(IntrospectionResults, IntrospectionRequest(tuple(sorted(addrs)))) for _, addrs in sorted(by_resolve.items())
    )
    intro_of = {r.address: r for b in batches for r in b.results}
    requests: List[_SpecBuildRequest] = []
    for p, w in zip(planned, wrapped):
        spec_tasks = {t.name: t for t in p.plan.tasks if t.image_source == "code:ImageSpec"}
        if not spec_tasks:
            continue
        intro = parse_introspection(intro_of[w.target.address].data(), target=str(w.target.address))
        tasks = [t for t in intro.tasks if t.name in spec_tasks]
        resolve = _resolve_of(w.target, python_setup)
        ics = InterpreterConstraints.create_from_compatibility_fields(
            [w.target[InterpreterConstraintsField]], python_setup
        )
        for image in p.plan.spec_images:  # what to build is the plan's decision
            specs.check_planned(image, (spec_tasks[t].image_ref for t in image.tasks), str(w.target.address))
            first = next(t for t in tasks if t.name == image.tasks[0])
            requests.append(_SpecBuildRequest(w.target.address, image, resolve, ics, first.source_file))
    # One build per tag: workflows sharing a spec share its image.
    unique = list({r.image.ref: r for r in reversed(requests)}.values())[::-1]
    published = await MultiGet(Get(PublishedImageSpec, _SpecBuildRequest, r) for r in unique)
    by_ref = {p.ref: p for p in published}
    return PublishedImageSpecs(
        tuple(
            by_ref[r.image.ref]
            if str(r.workflow) == by_ref[r.image.ref].workflow
            else dataclasses.replace(
                by_ref[r.image.ref], workflow=str(r.workflow), tasks=r.image.tasks, pushed=False, bytes_uploaded=0
            )
            for r in requests
        )
    )


def rules():
    return collect_rules()
