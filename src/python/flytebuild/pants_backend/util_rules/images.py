"""Build and publish `flyte_image` targets: build-graph facts in, `flytebuild.oci` does the work.

- requirements: a PACKED pex of the image's requirements resolved from its resolve's lockfile;
  each `.deps/<wheel>` (an installed-wheel zip) becomes one layer, cached by the zip's sha256, so
  images that pin the same wheel share the layer;
- sources: exactly the image's first-party closure (what the plan bakes), source roots stripped;
- tag: the image's content version (`ImagePlan.ref`). If the registry already has the tag, nothing
  is built or pushed.

`PublishImagesRequest` -> `PublishedImages` is the entry point for other goals (flyte-deploy).
Talking to registries and engines is a side effect, so those rules are uncacheable: they run
again in every Pants session, while the pex and source digests they use stay cached.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Optional, Tuple

from pants.backend.python.target_types import PexLayout
from pants.backend.python.util_rules.pex import Pex
from pants.backend.python.util_rules.pex_from_targets import PexFromTargetsRequest
from pants.core.target_types import FileSourceField, ResourceSourceField
from pants.backend.python.target_types import PythonSourceField
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
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
from pants.engine.rules import Get, MultiGet, _uncacheable_rule, collect_rules, rule
from pants.engine.target import TransitiveTargets, TransitiveTargetsRequest
from pants.option.global_options import NamedCachesDirOption

from flytebuild.core.errors import FlytebuildError
from flytebuild.core.model import ImagePlan, ImageTarget
from flytebuild.core.plan import plan_image
from flytebuild.oci import RegistryClient, RegistryError, publish, write_oci_layout
from flytebuild.oci.build import (
    BuildError,
    BuiltImage,
    Distribution,
    ImageInputs,
    SourceFile,
    assemble,
    uncached_distributions,
)
from flytebuild.oci.docker_archive import docker_load
from flytebuild.oci.publish import reusable_tag
from flytebuild.oci.registry import Reference
from flytebuild.pants_backend.subsystems.flyte import FlyteSubsystem
from flytebuild.pants_backend.util_rules.planning import ImageTargetRequest

logger = logging.getLogger(__name__)

_BAKED_SOURCE_FIELDS = (PythonSourceField, ResourceSourceField, FileSourceField)
LABEL_TARGET = "org.flytebuild.target"


class ImageOutput(Enum):
    push = "push"  # to the target's registry
    oci = "oci"  # an OCI image layout directory under dist/
    docker = "docker"  # `docker load` into the local engine


@dataclass(frozen=True)
class PublishImageRequest:
    address: Address
    output: ImageOutput = ImageOutput.push


@dataclass(frozen=True)
class PublishedImage:
    address: str
    ref: str  # registry/repository:version
    digest: str  # manifest digest
    pushed: bool  # False: the registry already had the tag (nothing built or pushed), or not a push
    bytes_uploaded: int
    output: str = "push"
    oci_layout: Optional[Digest] = None  # output=oci: the layout's files, rooted at `<name>.oci/`
    layers: Tuple[Tuple[str, str, int, str], ...] = ()  # (name, digest, size, status)


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

def _error(address: str, err: Exception) -> FlytebuildError:
    return FlytebuildError(f"Cannot build flyte_image {address}: {err}")


class _LayerLog:
    """Per-layer INFO lines only for work (a layer built, uploaded or mounted): those are progress. Layers reused
    as they are (from the layer cache, or already in the registry) are counted and told in one line per image,
    so an image that changed only its sources does not print a line per requirements layer."""

    def __init__(self, address: str):
        self.address = address
        self.reused: dict[str, int] = {}

    def _count(self, where: str) -> None:
        self.reused[where] = self.reused.get(where, 0) + 1

    def build(self, name: str, status: str, size: int) -> None:
        if status == "cached":
            self._count("from the layer cache")
        else:
            logger.info(f"{self.address}: layer {name or 'base'} {status} ({size / 1e6:.1f} MB)")

    def push(self, digest: str, name: str, status: str, size: int) -> None:
        if status == "exists":
            self._count("already in the registry")
        elif status in ("uploaded", "mounted"):
            logger.info(f"{self.address}: layer {name or 'base'} {digest[7:19]} {status} ({size / 1e6:.1f} MB)")

    def summary(self) -> None:
        if self.reused:
            told = ", ".join(f"{n} layer{'s' * (n != 1)} {where}" for where, n in self.reused.items())
            logger.info(f"{self.address}: {told}")


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


@_uncacheable_rule(desc="Build and publish a flyte_image")
async def publish_image(
    request: PublishImageRequest, flyte: FlyteSubsystem, named_caches: NamedCachesDirOption
) -> PublishedImage:
    address = str(request.address)
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(["DOCKER_CONFIG", "HOME", "DOCKER_HOST", "PATH"]))
    # Plan first (cheap, cached): with the tag already in the registry nothing else is needed.
    plan = plan_image(await Get(ImageTarget, ImageTargetRequest(request.address)))
    cache_dir = _cache_dir(flyte, named_caches)
    docker_config = Path(env.get("DOCKER_CONFIG") or Path(env.get("HOME") or "~").expanduser() / ".docker") / "config.json"
    ref = Reference.parse(plan.ref)

    client = None
    if request.output == ImageOutput.push:
        client = RegistryClient(ref.registry, cache_dir=cache_dir, docker_config=docker_config)
        try:
            existing = reusable_tag(client, ref, plan.fingerprint)  # trusted only with our fingerprint label
        except RegistryError as e:
            raise _error(address, e) from None
        if existing is not None:
            logger.info(f"{address}: {plan.ref} is already in the registry; nothing to build or push")
            return PublishedImage(address, plan.ref, existing, False, 0, request.output.value)

    ctx = await Get(ImageBuildContext, ImageBuildContextRequest(request.address))
    # Only the installed wheels whose layers are not cached yet are read out of the store.
    all_dists = [Distribution(e.path.rsplit("/", 1)[1], Path(e.path), e.file_digest.fingerprint)
                 for e in ctx.dist_entries]
    needed = {d.name for d in uncached_distributions(all_dists, cache_dir)}
    missing = [e for e in ctx.dist_entries if e.path.rsplit("/", 1)[1] in needed]
    wheel_contents = (
        await Get(DigestContents, DigestSubset(ctx.pex_digest, PathGlobs([e.path for e in missing])))
        if missing else ()
    )
    source_contents = await Get(DigestContents, Digest, ctx.sources_digest)

    base_ref = Reference.parse(plan.base)
    try:
        with tempfile.TemporaryDirectory(prefix="flytebuild-wheels-") as tmp:
            dists = local_distributions(Path(tmp), ctx.dist_entries, wheel_contents)
            base_client = RegistryClient(base_ref.registry, cache_dir=cache_dir, docker_config=docker_config)
            base = base_client.pull(base_ref)
            inputs = ImageInputs(
                distributions=tuple(dists),
                sources=tuple(SourceFile(fc.path, fc.content) for fc in source_contents),
                python=ctx.target.python or ImageInputs().python,
                env=plan.env,
                labels=((LABEL_TARGET, address),),
                fingerprint=plan.fingerprint,
            )
            layer_log = _LayerLog(address)
            built = assemble(inputs, base, cache_dir=cache_dir, progress=layer_log.build)
    except (RegistryError, BuildError) as e:
        raise _error(address, e) from None

    layers = tuple((l.name, l.digest, l.size, "built") for l in built.image.layers)
    if request.output == ImageOutput.push:
        assert client is not None
        sizes = {}

        def progress(digest: str, name: str, status: str, size: int) -> None:
            sizes[digest] = status
            layer_log.push(digest, name, status, size)

        try:
            result = _publish_logging(
                lambda report: publish(built.image, ref, client=client, base_client=base_client,
                                       jobs=flyte.image_push_jobs, progress=report, cache_dir=cache_dir),
                progress,
            )
        except RegistryError as e:
            raise _error(address, e) from None
        layer_log.summary()
        layers = tuple((n, d, s, sizes.get(d, "exists")) for n, d, s, _ in layers)
        return PublishedImage(address, plan.ref, built.image.manifest_digest, not result.skipped,
                              result.bytes_uploaded, request.output.value, None, layers)

    layer_log.summary()
    if request.output == ImageOutput.docker:
        try:
            docker_load(built.image, plan.ref, base_client=base_client,
                        env={k: v for k, v in env.items() if v})
        except (RegistryError, OSError, subprocess.SubprocessError) as e:
            raise _error(address, e) from None
        return PublishedImage(address, plan.ref, built.image.manifest_digest, False, 0, request.output.value,
                              None, layers)

    # OCI layout: handed back as a digest, which `package` writes under dist/.
    with tempfile.TemporaryDirectory(prefix="flytebuild-oci-") as tmp:
        root = Path(tmp) / f"{plan.name}.oci"
        write_oci_layout(built.image, root, ref_name=plan.ref, base_client=base_client)
        files = [
            FileContent(f"{plan.name}.oci/{p.relative_to(root).as_posix()}", p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()
        ]
    layout = await Get(Digest, CreateDigest(files))
    return PublishedImage(address, plan.ref, built.image.manifest_digest, False, 0, request.output.value,
                          layout, layers)


@rule(desc="Publish flyte_images")
async def publish_images(request: PublishImagesRequest) -> PublishedImages:
    addresses = await Get(
        Addresses,
        UnparsedAddressInputs(request.addresses, owning_address=None, description_of_origin="PublishImagesRequest"),
    )
    published = await MultiGet(Get(PublishedImage, PublishImageRequest(a)) for a in addresses)
    return PublishedImages(tuple(published))


def rules():
    return collect_rules()
