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

import json
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Dict, List, Mapping, Optional, Tuple

from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.target_types import InterpreterConstraintsField, PexLayout
from pants.backend.python.util_rules.interpreter_constraints import InterpreterConstraints
from pants.backend.python.util_rules.pex import Pex, PexRequest
from pants.backend.python.util_rules.pex_requirements import PexRequirements, Resolve
from pants.engine.addresses import Address
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import Digest, DigestContents, DigestEntries, DigestSubset, FileEntry, PathGlobs
from pants.engine.rules import Get, MultiGet, _uncacheable_rule, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.option.global_options import NamedCachesDirOption
from pants.source.source_root import SourceRootsRequest, SourceRootsResult

from flytebuild.core.errors import FlytebuildError
from flytebuild.core.imagespec import SpecImage, check_buildable, spec_images
from flytebuild.core.introspection import parse_introspection
from flytebuild.core.lockfile import canonical_name, locked_pins, requirement_name
from flytebuild.core.model import Closure
from flytebuild.oci import RegistryClient, RegistryError, publish
from flytebuild.oci.build import BuildError, Distribution, ImageInputs, SourceFile, assemble, uncached_distributions
from flytebuild.oci.docker_archive import docker_load
from flytebuild.oci.registry import Reference
from flytebuild.core.settings import Settings
from flytebuild.pants_backend.subsystems.flyte import FlyteSubsystem
from flytebuild.pants_backend.util_rules.closures import SourceFileClosureRequest
from flytebuild.pants_backend.util_rules.images import LABEL_TARGET, _cache_dir, local_distributions
from flytebuild.pants_backend.util_rules.introspection import IntrospectionRequest, IntrospectionResults
from flytebuild.pants_backend.util_rules.planning import PlannedWorkflows, WorkflowPlansRequest, _resolve_of

logger = logging.getLogger(__name__)
LABEL_IMAGESPEC = "org.flytebuild.imagespec"


@dataclass(frozen=True)
class PublishImageSpecsRequest:
    addresses: Tuple[Address, ...]  # flyte_workflow targets


@dataclass(frozen=True)
class PublishedImageSpec:
    workflow: str
    name: str
    tasks: Tuple[str, ...]
    ref: str
    digest: str
    pushed: bool
    bytes_uploaded: int
    resolved: Tuple[str, ...]  # name==version of the installed distributions
    engine: bool  # engine-only fields were applied with docker build


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


def _docker_env(env: Mapping[str, str]) -> Dict[str, str]:
    return {k: v for k, v in env.items() if v}


def _engine_available(env: Mapping[str, str]) -> bool:
    docker = shutil.which("docker", path=env.get("PATH"))
    if not docker:
        return False
    try:
        return subprocess.run([docker, "info"], env=_docker_env(env), capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _requirement_lines(text: str) -> List[str]:
    out = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            out.append(line)
    return out


@rule(desc="Resolve an ImageSpec's packages")
async def _spec_requirements_pex(request: _SpecBuildRequest, python_setup: PythonSetup) -> Pex:
    image = request.image
    reqs = list(image.packages)
    if image.requirements_file:
        contents = await Get(DigestContents, PathGlobs([image.requirements_file]))
        if not contents:
            raise FlytebuildError(
                f"ImageSpec `{image.name}` names requirements file `{image.requirements_file}`, which does not exist",
                target=str(request.workflow), file=request.source_file,
                fix="fix ImageSpec(requirements=...) (a path relative to the repository root or the module)",
            )
        reqs += _requirement_lines(contents[0].content.decode("utf-8"))
    names = {canonical_name(requirement_name(r)) for r in reqs}
    lockfile = python_setup.resolves.get(request.resolve)
    locked: set = set()
    if lockfile and names:
        lock = await Get(DigestContents, PathGlobs([lockfile]))
        if lock:
            pins = locked_pins(lock[0].content.decode("utf-8"), names, strict=False)
            locked = {canonical_name(p.split("==", 1)[0]) for p in pins}
    in_lock = bool(names) and names <= locked
    extra_args: List[str] = []
    if image.pip_index:
        extra_args.append(f"--index-url={image.pip_index}")
    extra_args += [f"--index-url={u}" for u in image.pip_extra_index_url]
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


def _error(image: SpecImage, workflow: Address, err: Exception) -> FlytebuildError:
    return FlytebuildError(f"Cannot build ImageSpec `{image.name}` (task {', '.join(image.tasks)}) of {workflow}: {err}")


def _docker_build(image: SpecImage, built_ref: str, env: Mapping[str, str]) -> None:
    """Apply the engine-only fields on top of the image we built, tag it as `image.ref`, push it."""
    fields = dict(image.engine_fields)
    lines = [f"FROM {built_ref}", "USER root"]
    apt = json.loads(fields.get("apt_packages", "null")) or []
    if apt:
        lines.append("RUN apt-get update && apt-get install -y --no-install-recommends "
                     + " ".join(apt) + " && rm -rf /var/lib/apt/lists/*")
    for command in json.loads(fields.get("commands", "null")) or []:
        lines.append(f"RUN {command}")
    unsupported = sorted(set(fields) - {"apt_packages", "commands"})
    if unsupported:
        raise BuildError(f"{', '.join(unsupported)} cannot be applied with docker build on a pex-based image; "
                         f"define a flyte_image(image_name={image.name!r}) on a base that has them")
    docker = shutil.which("docker", path=env.get("PATH")) or "docker"
    with tempfile.TemporaryDirectory(prefix="flytebuild-imagespec-") as ctx:
        Path(ctx, "Dockerfile").write_text("\n".join(lines) + "\n")
        for args in (["build", "--network", "host", "-t", image.ref, ctx], ["push", image.ref]):
            proc = subprocess.run([docker, *args], env=_docker_env(env), capture_output=True, text=True)
            if proc.returncode != 0:
                raise BuildError(f"`docker {args[0]}` failed: {(proc.stderr or proc.stdout).strip()[-800:]}")


@_uncacheable_rule(desc="Build and push an ImageSpec")
async def _publish_spec(
    request: _SpecBuildRequest, flyte: FlyteSubsystem, named_caches: NamedCachesDirOption
) -> PublishedImageSpec:
    image = request.image
    workflow = str(request.workflow)
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(["DOCKER_CONFIG", "HOME", "DOCKER_HOST", "PATH"]))
    engine = bool(image.engine_fields) and _engine_available(env)
    check_buildable(image, target=workflow, file=request.source_file, engine=engine)

    cache_dir = _cache_dir(flyte, named_caches)
    docker_config = Path(env.get("DOCKER_CONFIG") or Path(env.get("HOME") or "~").expanduser() / ".docker") / "config.json"
    ref = Reference.parse(image.ref)
    client = RegistryClient(ref.registry, cache_dir=cache_dir, docker_config=docker_config)
    try:
        existing = client.head_manifest(ref.repository, ref.tag or "latest")
    except RegistryError as e:
        raise _error(image, request.workflow, e) from None
    if existing is not None:
        logger.info(f"ImageSpec {image.name}: {image.ref} is already in the registry; nothing to build or push")
        return PublishedImageSpec(workflow, image.name, image.tasks, image.ref, existing.digest, False, 0, (), engine)

    paths = list(image.source_paths)
    pex, roots, source_contents = await MultiGet(
        Get(Pex, _SpecBuildRequest, request),
        Get(SourceRootsResult, SourceRootsRequest([PurePath(p) for p in paths], ())),
        Get(DigestContents, PathGlobs(paths)),
    )
    entries = await Get(DigestEntries, Digest, pex.digest)
    dist_entries = [
        e for e in entries
        if isinstance(e, FileEntry) and e.path.startswith("requirements.pex/.deps/") and e.path.endswith(".whl")
    ]
    all_dists = [Distribution(e.path.rsplit("/", 1)[1], Path(e.path), e.file_digest.fingerprint) for e in dist_entries]
    needed = {d.name for d in uncached_distributions(all_dists, cache_dir)}
    missing = [e for e in dist_entries if e.path.rsplit("/", 1)[1] in needed]
    wheel_contents = (
        await Get(DigestContents, DigestSubset(pex.digest, PathGlobs([e.path for e in missing]))) if missing else ()
    )
    sources = []
    for fc in source_contents:
        root = roots.path_to_root[PurePath(fc.path)].path
        rel = fc.path if root in ("", ".") else fc.path[len(root) + 1:]
        sources.append(SourceFile(rel, fc.content))

    base_ref = Reference.parse(image.base or "")
    built_ref = image.ref if not engine else f"{image.ref}-flytebuild-base"
    try:
        with tempfile.TemporaryDirectory(prefix="flytebuild-wheels-") as tmp:
            dists = local_distributions(Path(tmp), dist_entries, wheel_contents)
            base_client = RegistryClient(base_ref.registry, cache_dir=cache_dir, docker_config=docker_config)
            base = base_client.pull(base_ref)
            inputs = ImageInputs(
                distributions=tuple(dists),
                sources=tuple(sorted(sources, key=lambda s: s.path)),
                python=image.python_exec or ImageInputs().python,
                env=image.env,
                labels=((LABEL_TARGET, workflow), (LABEL_IMAGESPEC, image.spec_json)),
                fingerprint=image.fingerprint,
            )
            built = assemble(inputs, base, cache_dir=cache_dir,
                             progress=lambda n, s, size: logger.info(f"ImageSpec {image.name}: layer {n} {s} ({size / 1e6:.1f} MB)"))
        if engine:
            # The engine applies what needs commands inside the image; our layers are its base.
            docker_load(built.image, built_ref, base_client=base_client, env=_docker_env(env))
            _docker_build(image, built_ref, env)
            pushed = client.head_manifest(ref.repository, ref.tag or "latest")
            if pushed is None:
                raise BuildError(f"docker push reported success but the registry has no {image.ref}")
            return PublishedImageSpec(workflow, image.name, image.tasks, image.ref, pushed.digest, True, 0,
                                      built.distributions, True)
        result = publish(built.image, ref, client=client, base_client=base_client, jobs=flyte.image_push_jobs,
                         cache_dir=cache_dir)
    except (RegistryError, BuildError, OSError) as e:
        raise _error(image, request.workflow, e) from None
    logger.info(f"ImageSpec {image.name}: pushed {image.ref}")
    return PublishedImageSpec(workflow, image.name, image.tasks, image.ref, built.image.manifest_digest,
                              not result.skipped, result.bytes_uploaded, built.distributions, False)


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
        intro = parse_introspection(intro_of[w.target.address].data())
        tasks = [t for t in intro.tasks if t.name in spec_tasks]
        resolve = _resolve_of(w.target, python_setup)
        files = sorted({t.source_file for t in tasks if t.source_file})
        closures_list = await MultiGet(Get(Closure, SourceFileClosureRequest(f, resolve)) for f in files)
        built = spec_images(tasks, dict(zip(files, closures_list)), settings.default_base, settings.registry)
        ics = InterpreterConstraints.create_from_compatibility_fields([w.target[InterpreterConstraintsField]], python_setup)
        for image in built.values():
            planned_refs = {spec_tasks[t].image_ref for t in image.tasks}
            if planned_refs != {image.ref}:  # the plan and the build must name the same tag
                raise FlytebuildError(
                    f"ImageSpec `{image.name}`: planned as {', '.join(sorted(filter(None, planned_refs)))} but "
                    f"would be built as {image.ref}", target=str(w.target.address),
                    fix="report this as a flytebuild bug")
            first = next(t for t in tasks if t.name == image.tasks[0])
            requests.append(_SpecBuildRequest(w.target.address, image, resolve, ics, first.source_file))
    published = await MultiGet(Get(PublishedImageSpec, _SpecBuildRequest, r) for r in requests)
    return PublishedImageSpecs(tuple(published))


def rules():
    return collect_rules()
