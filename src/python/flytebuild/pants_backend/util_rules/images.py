"""Build and publish `flyte_image` targets: build-graph facts in, `flytebuild.oci` does the work.

- requirements: a PACKED pex of the image's requirements resolved from its resolve's lockfile;
  each `.deps/<wheel>` (an installed-wheel zip) becomes one layer, cached by the zip's sha256, so
  images that pin the same wheel share the layer;
- sources: exactly the image's first-party closure (what the plan bakes), source roots stripped;
- tag: the image's content version (`ImagePlan.ref`). If the registry already has the tag, nothing
  is built or pushed.

`PublishImagesRequest` -> `PublishedImages` is the entry point for other goals (flyte-deploy).
What happens is `service.images` (the same function the CLI calls); this module gathers the inputs. Talking
to registries and engines is a side effect: the rules doing it first observe the registry (or engine) with a
per-session process (`RegistryProbe`), so they run again whenever what they would talk to changed, while the
pex and source digests they use stay cached.
"""
from __future__ import annotations

import dataclasses
import logging
import queue
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Optional, Tuple

from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.target_types import PexLayout, PythonSourceField
from pants.backend.python.util_rules.pex import Pex
from pants.backend.python.util_rules.pex_from_targets import PexFromTargetsRequest
from pants.base.build_environment import get_buildroot
from pants.core.target_types import FileSourceField, ResourceSourceField
from pants.core.util_rules.source_files import SourceFilesRequest
from pants.core.util_rules.stripped_source_files import StrippedSourceFiles
from pants.engine.addresses import Address, Addresses, UnparsedAddressInputs
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import (
    CreateDigest,
    Digest,
    DigestContents,
    DigestEntries,
    DigestSubset,
    FileContent,
    FileEntry,
    PathGlobs,
)
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import TransitiveTargets, TransitiveTargetsRequest
from pants.option.global_options import NamedCachesDirOption
from pants.util.logging import LogLevel

import flytebuild
from flytebuild.core.model import ImagePlan, ImageTarget
from flytebuild.core.plan import plan_image
from flytebuild.core.weakening import major_minor_of_constraints
from flytebuild.oci import engine
from flytebuild.oci.build import Distribution, SourceFile, uncached_distributions
from flytebuild.pants_backend.subsystems.flyte import FlyteSubsystem
from flytebuild.pants_backend.util_rules.cancellation import CancellableWork
from flytebuild.pants_backend.util_rules.planning import ImageTargetRequest
from flytebuild.service.images import (
    OCILayoutPublisher,
    PublishedImage,
    Registries,
    already_published,
    build_and_publish,
    docker_config_path,
    image_job,
    publisher_for,
)

logger = logging.getLogger(__name__)

_BAKED_SOURCE_FIELDS = (PythonSourceField, ResourceSourceField, FileSourceField)
__all__ = ["PublishedImage"]  # the service's, under the name other rules import


class ImageOutput(Enum):
    oci = "oci"  # an OCI image layout directory under dist/ (what `package` builds by default)
    cache = "cache"  # only the local layer cache
    docker = "docker"  # `docker load` into the local engine
    push = "push"  # to the target's registry (what `publish` and `flyte-deploy` do)


@dataclass(frozen=True)
class PublishImageRequest:
    address: Address
    output: ImageOutput = ImageOutput.push


@dataclass(frozen=True)
class PublishedImageResult:
    image: PublishedImage
    oci_layout: Optional[Digest] = None  # output=oci: the layout's files, rooted at `<name>.oci/`


@dataclass(frozen=True)
class PublishImagesRequest:
    """Push these flyte_image targets (address specs, e.g. "examples/baked:image")."""

    addresses: Tuple[str, ...]


@dataclass(frozen=True)
class PublishedImages:
    images: Tuple[PublishedImage, ...]

    def get(self, address: str) -> PublishedImage:
        for i in self.images:
            if i.address == address or i.address == address.lstrip("/"):
                return i
        raise KeyError(address)


@dataclass(frozen=True)
class ImageBuildContext:
    """Everything an image build needs from the build graph (cacheable)."""

    target: ImageTarget
    plan: ImagePlan
    pex_digest: Digest
    dist_entries: Tuple[FileEntry, ...]  # `.deps/<wheel>` zips of the PACKED pex
    sources_digest: Digest  # the closure's files at their import paths


@dataclass(frozen=True)
class ImageBuildContextRequest:
    address: Address


def _cache_dir(flyte: FlyteSubsystem, named_caches: NamedCachesDirOption) -> Path:
    configured = flyte.image_cache_dir
    return Path(configured).expanduser() if configured else Path(named_caches.val) / "flytebuild_oci"


@rule(desc="Gather a flyte_image's build inputs")
async def image_build_context(request: ImageBuildContextRequest) -> ImageBuildContext:
    target = await Get(ImageTarget, ImageTargetRequest(request.address))
    transitive = await Get(TransitiveTargets, TransitiveTargetsRequest([request.address]))
    source_fields = [
        tgt[f] for tgt in transitive.closure for f in _BAKED_SOURCE_FIELDS if tgt.has_field(f)
    ]
    pex, stripped = await MultiGet(
        Get(
            Pex,
            PexFromTargetsRequest(
                [request.address],
                output_filename="requirements.pex",
                internal_only=False,  # a lockfile subset, as for a shipped pex
                layout=PexLayout.PACKED,
                include_source_files=False,
                description=f"Resolve the requirements of {request.address}",
            ),
        ),
        Get(StrippedSourceFiles, SourceFilesRequest(source_fields)),
    )
    entries = await Get(DigestEntries, Digest, pex.digest)
    dists = tuple(
        e for e in entries
        if isinstance(e, FileEntry) and e.path.startswith("requirements.pex/.deps/") and e.path.endswith(".whl")
    )
    return ImageBuildContext(target, plan_image(target), pex.digest, dists, stripped.snapshot.digest)



def local_distributions(tmp: Path, dist_entries, wheel_contents) -> list:
    """The pex's `.deps/<wheel>` entries as `Distribution`s: wheels not yet in the layer cache are written to
    `tmp` (their content was fetched); cached ones are named by their digest alone."""
    by_path = {fc.path: fc.content for fc in wheel_contents}
    dists = []
    for e in dist_entries:
        name = e.path.rsplit("/", 1)[1]
        local = tmp / name
        if e.path in by_path:
            local.write_bytes(by_path[e.path])
        dists.append(Distribution(name, local, e.file_digest.fingerprint))
    return dists

def _registries(flyte: FlyteSubsystem, named_caches: NamedCachesDirOption, env: EnvironmentVars) -> Registries:
    return Registries(_cache_dir(flyte, named_caches), docker_config_path(dict(env)), Path(get_buildroot()))


def _publish_logging(push, progress):
    """Run `push(report)` on a worker and hand its progress events to `progress` on this (the rule's) thread: the
    uploads report from publish()'s pool, and Pants drops log records made on threads it did not start."""
    events: queue.Queue = queue.Queue()
    with ThreadPoolExecutor(1, thread_name_prefix="flytebuild-push") as pool:
        future = pool.submit(push, lambda *event: events.put(event))
        while True:
            try:
                progress(*events.get(timeout=0.2))
            except queue.Empty:
                if future.done():
                    break
    return future.result()


# ---------------------------------------------------------------------------------------------
# The registry, observed once per run


@dataclass(frozen=True)
class RegistryProbe:
    ref: str
    docker: bool = False  # ask the local Docker engine instead (`docker image inspect`)


@dataclass(frozen=True)
class RegistryState:
    ref: str
    answer: str  # the tag's manifest digest, `absent`, or `error: ...`


_PROBE = """
import sys
from flytebuild.oci.registry import Reference, RegistryClient
ref = Reference.parse(sys.argv[1])
try:
    found = RegistryClient(ref.registry).head_manifest(ref.repository, ref.tag or "latest")
    print(found.digest if found is not None else "absent")
except Exception as e:  # the rule asks again in-process and reports it properly
    print(f"error: {e}")
"""


@rule(desc="Ask a registry for an image tag", level=LogLevel.DEBUG)
async def probe_registry(probe: RegistryProbe) -> RegistryState:
    """A per-session process (Pants' public way to observe the outside world once per run): rules that await
    it re-run when the registry's answer changed since the last run, and answer from memory when it did not."""
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(["DOCKER_CONFIG", "HOME", "DOCKER_HOST", "PATH"]))
    argv = (sys.executable, "-c", _PROBE, probe.ref)
    if probe.docker:
        argv = tuple(engine.inspect_argv(engine.docker_exe(dict(env)) or "docker", probe.ref))
    result = await Get(
        FallibleProcessResult,
        Process(
            argv=argv,
            env={"PYTHONPATH": str(Path(flytebuild.__file__).resolve().parents[1]),
                 **{k: v for k, v in env.items() if v}},
            description=f"Ask the registry for {probe.ref}",
            level=LogLevel.DEBUG,
            cache_scope=ProcessCacheScope.PER_SESSION,
        ),
    )
    return RegistryState(probe.ref, f"{result.exit_code} {result.stdout.decode('utf-8', 'replace').strip()}")


@rule(desc="Build and publish a flyte_image")
async def publish_image(
    request: PublishImageRequest, flyte: FlyteSubsystem, named_caches: NamedCachesDirOption,
    python_setup: PythonSetup,
) -> PublishedImageResult:
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(["DOCKER_CONFIG", "HOME", "DOCKER_HOST", "PATH"]))
    # Plan first (cheap, cached): with the tag already in the registry nothing else is needed.
    job = image_job(plan_image(await Get(ImageTarget, ImageTargetRequest(request.address))))
    # A push runs on a thread the rule can cancel (Ctrl-C): no registry request after it, so no tag appears later.
    work: Optional[CancellableWork[PublishedImage]] = None
    registries = _registries(flyte, named_caches, env)
    if request.output == ImageOutput.push:
        work = CancellableWork(f"Push {job.ref}")
        registries = dataclasses.replace(registries, cancelled=work.cancelled)
    with tempfile.TemporaryDirectory(prefix="flytebuild-oci-") as tmp:
        publisher = publisher_for(request.output.value, registries, flyte.image_push_jobs, Path(tmp),
                                  docker_env=dict(env), run=_publish_logging)
        if isinstance(publisher, OCILayoutPublisher):
            publisher.layout_path(job)  # a name escaping the output directory fails before any work
        if request.output == ImageOutput.docker:
            await Get(RegistryState, RegistryProbe(job.ref, docker=True))
        if request.output == ImageOutput.push:
            # What the registry holds now, asked once per run (a per-session process): a tag pushed or deleted
            # since the last run re-runs this rule, an unchanged registry answers from memory.
            await Get(RegistryState, RegistryProbe(job.ref))
            found = already_published(job, publisher, logger.info)
            if found is not None:
                assert work is not None
                work.close()
                return PublishedImageResult(found, None)
        ctx = await Get(ImageBuildContext, ImageBuildContextRequest(request.address))
        # Only the installed wheels whose layers are not cached yet are read out of the store.
        all_dists = [Distribution(e.path.rsplit("/", 1)[1], Path(e.path), e.file_digest.fingerprint)
                     for e in ctx.dist_entries]
        needed = {d.name for d in uncached_distributions(all_dists, registries.cache_dir)}
        missing = [e for e in ctx.dist_entries if e.path.rsplit("/", 1)[1] in needed]
        wheel_contents = (
            await Get(DigestContents, DigestSubset(ctx.pex_digest, PathGlobs([e.path for e in missing])))
            if missing else ()
        )
        source_contents = await Get(DigestContents, Digest, ctx.sources_digest)

        def inputs(wheels: Path):
            return (local_distributions(wheels, ctx.dist_entries, wheel_contents),
                    [SourceFile(fc.path, fc.content) for fc in source_contents])

        def build() -> PublishedImage:
            return build_and_publish(
                job, inputs, publisher, registries, logger.info, docker_env=dict(env),
                user_python=major_minor_of_constraints(python_setup.interpreter_constraints), warn=logger.warning,
            )

        if work is not None:
            try:
                work.start(build)
                await Get(FallibleProcessResult, Process, work.waiter())
                return PublishedImageResult(work.result(), None)
            finally:
                work.close()
        published = build()
        if published.layout is None:
            return PublishedImageResult(published, None)
        # OCI layout: handed back as a digest rooted at `<name>.oci/`, which `package` writes under dist/.
        root = Path(tmp)
        files = [FileContent(p.relative_to(root).as_posix(), p.read_bytes())
                 for p in sorted(Path(published.layout).rglob("*")) if p.is_file()]
        relative = Path(published.layout).relative_to(root).as_posix()
    layout = await Get(Digest, CreateDigest(files))
    # `layout` becomes the directory inside the digest (`<name>.oci`), where `package` writes it under dist/.
    return PublishedImageResult(dataclasses.replace(published, layout=relative), layout)


@rule(desc="Publish flyte_images")
async def publish_images(request: PublishImagesRequest) -> PublishedImages:
    addresses = await Get(
        Addresses,
        UnparsedAddressInputs(request.addresses, owning_address=None, description_of_origin="PublishImagesRequest"),
    )
    published = await MultiGet(Get(PublishedImageResult, PublishImageRequest(a)) for a in addresses)
    return PublishedImages(tuple(p.image for p in published))


def rules():
    return collect_rules()
