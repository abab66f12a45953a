"""Publish an image: one function for every front end (Pants `package`/`publish`/`flyte-deploy`, the CLI) and
for both image kinds (a `flyte_image`, an ImageSpec flytebuild builds), over a publisher protocol as ko's
`pkg/publish` has it: a registry push, an OCI image layout directory, or a `docker load`.

The flow: `already_published` (a registry that has the content tag: nothing is built; the front end skips
gathering inputs too) -> the front end gathers the build inputs (wheels, sources) -> `build_and_publish`
(pull the base, assemble the layers in `oci.build`, hand the image to the publisher). Front ends construct a
publisher and render the result.
"""
from __future__ import annotations

import json
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Protocol, Sequence, Tuple

from flytebuild.core.errors import FlytebuildError
from flytebuild.core.imagespec import SpecImage
from flytebuild.core.model import ImagePlan
from flytebuild.core.weakening import python_mismatch, python_of_base
from flytebuild.oci import RegistryClient, RegistryError, engine, publish, write_oci_layout
from flytebuild.oci.base_source import base_source
from flytebuild.oci.build import BuildError, BuiltImage, Distribution, ImageInputs, SourceFile, assemble
from flytebuild.oci.publish import reusable_tag
from flytebuild.oci.registry import Reference
from flytebuild.service.paths import inside

# The image's name, not the target that built it: target names differ between front ends (`examples/baked:image`
# in Pants, `baked-image` in flytebuild.toml), and the same inputs must give the same digest on every one.
LABEL_IMAGE = "org.flytebuild.image"
LABEL_IMAGESPEC = "org.flytebuild.imagespec"
OUTPUTS = ("oci", "cache", "docker", "push")

Say = Callable[[str], None]


# ---------------------------------------------------------------------------------------------
# What to publish


@dataclass(frozen=True)
class ImageJob:
    """One image to build: a flyte_image's plan or an ImageSpec's, in the terms the build needs."""

    address: str  # the target the image belongs to (label, messages)
    describe: str  # "flyte_image examples/baked:image", "ImageSpec `etl` (task a.b) of examples/specs:wf"
    name: str  # the image name: the OCI layout's directory name
    name_field: str  # the field the name comes from (for path errors): image_name | name
    ref: str  # registry/repository:content-version
    base: str
    fingerprint: str
    python: str
    env: Tuple[Tuple[str, str], ...] = ()
    labels: Tuple[Tuple[str, str], ...] = ()
    dockerfile: Optional[str] = None  # ImageSpec fields applied by a Docker engine on top of our layers

    def error(self, err: object) -> FlytebuildError:
        return FlytebuildError(f"Cannot build {self.describe}: {err}", target=self.address)


def image_job(plan: ImagePlan) -> ImageJob:
    return ImageJob(
        address=plan.address,
        describe=f"flyte_image {plan.address}",
        name=plan.name,
        name_field="image_name",
        ref=plan.ref,
        base=plan.base,
        fingerprint=plan.fingerprint,
        python=plan.python or ImageInputs().python,
        env=plan.env,
        labels=((LABEL_IMAGE, plan.name),),
    )


def spec_job(spec: SpecImage, workflow: str, engine_up: bool = False) -> ImageJob:
    """`engine_up`: a Docker engine answers, so fields needing commands inside the image are applied with it."""
    dockerfile = engine_dockerfile(spec, f"{spec.ref}-flytebuild-base") if spec.engine_fields and engine_up else None
    return ImageJob(
        address=workflow,
        describe=f"ImageSpec `{spec.name}` (task {', '.join(spec.tasks)}) of {workflow}",
        name=spec.name,
        name_field="name",
        ref=spec.ref,
        base=spec.base or "",
        fingerprint=spec.fingerprint,
        python=spec.python_exec or ImageInputs().python,
        env=spec.env,
        labels=((LABEL_IMAGE, spec.name), (LABEL_IMAGESPEC, spec.spec_json)),
        dockerfile=dockerfile,
    )


def engine_dockerfile(spec: SpecImage, built_ref: str) -> str:
    """The engine-only fields (apt_packages, commands) on top of the image we built (tagged `built_ref`)."""
    fields = dict(spec.engine_fields)
    unsupported = sorted(set(fields) - {"apt_packages", "commands"})
    if unsupported:
        raise BuildError(f"{', '.join(unsupported)} cannot be applied with docker build on a pex-based image; "
                         f"define a flyte_image(image_name={spec.name!r}) on a base that has them")
    lines = [f"FROM {built_ref}", "USER root"]
    apt = json.loads(fields.get("apt_packages", "null")) or []
    if apt:
        lines.append("RUN apt-get update && apt-get install -y --no-install-recommends "
                     + " ".join(apt) + " && rm -rf /var/lib/apt/lists/*")
    for command in json.loads(fields.get("commands", "null")) or []:
        lines.append(f"RUN {command}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# What was published


@dataclass(frozen=True)
class PublishedImage:
    address: str
    ref: str  # registry/repository:version
    digest: str  # manifest digest
    pushed: bool  # False: the registry already had the tag (nothing built or pushed), or not a push
    bytes_uploaded: int
    output: str = "push"
    layout: Optional[str] = None  # output=oci: the layout directory written
    layers: Tuple[Tuple[str, str, int, str], ...] = ()  # (name, digest, size, status)
    distributions: Tuple[str, ...] = ()  # name==version installed
    engine: bool = False  # engine-only fields were applied with docker build

    def summary(self) -> dict:
        """`<name>.image.json`, as `package` writes it."""
        return {
            "address": self.address, "ref": self.ref, "digest": self.digest, "output": self.output,
            "pushed": self.pushed, "bytes_uploaded": self.bytes_uploaded,
            "layers": [{"name": n, "digest": d, "size": s, "status": st} for n, d, s, st in self.layers],
        }

    def describe(self) -> str:
        mb = f"{self.bytes_uploaded / 1e6:.1f} MB"
        if self.output == "push":
            if self.pushed:
                return f"pushed {self.ref} ({self.digest}, {mb} uploaded)"
            return f"{self.ref} already in the registry ({self.digest}): nothing built or pushed"
        if self.output == "docker":
            return f"loaded {self.ref} into Docker ({self.digest})"
        if self.output == "cache":
            return f"built {self.ref} ({self.digest}) into the local layer cache"
        return f"OCI layout of {self.ref} ({self.digest}) in {self.layout}"


# ---------------------------------------------------------------------------------------------
# Registries and progress


@dataclass(frozen=True)
class Registries:
    """Registry clients sharing one blob/layer cache and one Docker config (credentials)."""

    cache_dir: Path
    docker_config: Optional[Path] = None
    root: Path = Path(".")  # where a local base's path (oci:<dir>, docker-archive:<tar>) is relative to
    # Set when the front end's run is cancelled (Ctrl-C in Pants): pushes stop before their next request or block,
    # so the manifest (the tag) is never PUT after it and no tag appears without its blobs.
    cancelled: Optional[threading.Event] = None

    def client(self, registry: str) -> RegistryClient:
        return RegistryClient(registry, cache_dir=self.cache_dir, docker_config=self.docker_config,
                              cancelled=self.cancelled)

    def base(self, base: str):
        """(client, ref) of a base image: a registry reference, an OCI layout or a `docker save` tarball."""
        return base_source(base, cache_dir=self.cache_dir, docker_config=self.docker_config, relative_to=self.root)


def docker_config_path(env: Dict[str, str]) -> Path:
    """`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json` of the caller's HOME."""
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]) / "config.json"
    return Path(env.get("HOME") or "~").expanduser() / ".docker" / "config.json"


class LayerLog:
    """A line per layer only for work (built, uploaded, mounted); layers reused as they are (layer cache,
    already in the registry) are counted and told in one line per image."""

    def __init__(self, address: str, say: Say):
        self.address, self.say = address, say
        self.reused: Dict[str, int] = {}

    def _count(self, where: str) -> None:
        self.reused[where] = self.reused.get(where, 0) + 1

    def build(self, name: str, status: str, size: int) -> None:
        if status == "cached":
            self._count("from the layer cache")
        else:
            self.say(f"{self.address}: layer {name or 'base'} {status} ({size / 1e6:.1f} MB)")

    def push(self, digest: str, name: str, status: str, size: int) -> None:
        if status == "exists":
            self._count("already in the registry")
        elif status in ("uploaded", "mounted"):
            self.say(f"{self.address}: layer {name or 'base'} {digest[7:19]} {status} ({size / 1e6:.1f} MB)")

    def summary(self) -> None:
        if self.reused:
            told = ", ".join(f"{n} layer{'s' * (n != 1)} {where}" for where, n in self.reused.items())
            self.say(f"{self.address}: {told}")


# ---------------------------------------------------------------------------------------------
# Publishers


@dataclass(frozen=True)
class Outcome:
    digest: str
    pushed: bool = False
    bytes_uploaded: int = 0
    statuses: Tuple[Tuple[str, str], ...] = ()  # (blob digest, status) of a push
    layout: Optional[str] = None


class Publisher(Protocol):
    """Where a built image goes. `existing` answers before anything is built (the manifest digest when the
    destination already has the content tag); `publish` hands the built image over."""

    output: str

    def existing(self, job: ImageJob) -> Optional[str]: ...

    def publish(self, job: ImageJob, built: BuiltImage, base_client: RegistryClient, log: LayerLog) -> Outcome: ...


# run(push, report): runs `push(report)`; a front end may move it to a worker thread (Pants logs only from
# the rule's thread).
Runner = Callable[[Callable[[Callable], object], Callable], object]


def _direct(push: Callable[[Callable], object], report: Callable) -> object:
    return push(report)


class RegistryPublisher:
    """Push to the image's registry: only missing blobs, `jobs` at a time, the manifest last."""

    output = "push"

    def __init__(self, registries: Registries, jobs: int = 4, run: Runner = _direct):
        self.registries, self.jobs, self.run = registries, jobs, run

    def existing(self, job: ImageJob) -> Optional[str]:
        # A tag is trusted only when its config carries this job's fingerprint label; other content under our
        # version tag is a TagConflict naming the image and the registry (never reused, never overwritten).
        ref = Reference.parse(job.ref)
        return reusable_tag(self.registries.client(ref.registry), ref, job.fingerprint)

    def publish(self, job: ImageJob, built: BuiltImage, base_client: RegistryClient, log: LayerLog) -> Outcome:
        ref = Reference.parse(job.ref)
        client = self.registries.client(ref.registry)
        statuses: Dict[str, str] = {}

        def progress(digest: str, name: str, status: str, size: int) -> None:
            statuses[digest] = status
            log.push(digest, name, status, size)

        result = self.run(
            lambda report: publish(built.image, ref, client=client, base_client=base_client, jobs=self.jobs,
                                   progress=report, cache_dir=self.registries.cache_dir),
            progress,
        )
        return Outcome(built.image.manifest_digest, not result.skipped, result.bytes_uploaded,  # type: ignore[attr-defined]
                       tuple(sorted(statuses.items())))


class OCILayoutPublisher:
    """An OCI image layout directory `<directory>/<image name>.oci` (never outside `directory`)."""

    output = "oci"

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def existing(self, job: ImageJob) -> Optional[str]:
        return None  # a layout is always written: it is the output

    def layout_path(self, job: ImageJob) -> Path:
        return inside(self.directory, f"{job.name}.oci", target=job.address, field=job.name_field, value=job.name)

    def publish(self, job: ImageJob, built: BuiltImage, base_client: RegistryClient, log: LayerLog) -> Outcome:
        root = self.layout_path(job)
        write_oci_layout(built.image, root, ref_name=job.ref, base_client=base_client)
        return Outcome(built.image.manifest_digest, layout=str(root))


class DockerPublisher:
    """`docker load` into the local engine, tagged with the image's ref."""

    output = "docker"

    def __init__(self, env: Optional[Dict[str, str]] = None):
        self.env = env

    def existing(self, job: ImageJob) -> Optional[str]:
        return None  # loading is cheap next to asking the engine what it holds

    def publish(self, job: ImageJob, built: BuiltImage, base_client: RegistryClient, log: LayerLog) -> Outcome:
        engine.docker_load(built.image, job.ref, base_client=base_client, env=self.env)
        return Outcome(built.image.manifest_digest)


class CachePublisher:
    """Nothing beyond the build: its layers are in the local layer cache (a later push or layout reuses them)."""

    output = "cache"

    def existing(self, job: ImageJob) -> Optional[str]:
        return None

    def publish(self, job: ImageJob, built: BuiltImage, base_client: RegistryClient, log: LayerLog) -> Outcome:
        return Outcome(built.image.manifest_digest)


# ---------------------------------------------------------------------------------------------
# The one function


def already_published(job: ImageJob, publisher: Publisher, say: Say) -> Optional[PublishedImage]:
    """The published image when the publisher already has the content tag (nothing to build), else None."""
    try:
        digest = publisher.existing(job)
    except RegistryError as e:
        raise job.error(e) from None
    if digest is None:
        return None
    say(f"{job.address}: {job.ref} is already in the registry; nothing to build or push")
    return PublishedImage(job.address, job.ref, digest, False, 0, publisher.output)


# inputs(tmp) -> (distributions, sources): the front end's gathered build inputs; wheels may be written to tmp.
Inputs = Callable[[Path], Tuple[Sequence[Distribution], Sequence[SourceFile]]]


def build_and_publish(
    job: ImageJob,
    inputs: Inputs,
    publisher: Publisher,
    registries: Registries,
    say: Say,
    docker_env: Optional[Dict[str, str]] = None,
    user_python: Optional[str] = None,
    warn: Optional[Say] = None,
) -> PublishedImage:
    """Pull the base, assemble the image (layers cached by content), hand it to `publisher`.

    `user_python` (major.minor the requirements are resolved for): `warn` is told when the base says its
    Python is another one."""
    log = LayerLog(job.address, say)
    if job.dockerfile is not None and publisher.output != "push":
        # docker build applies those fields and pushes the result: there is no layout or cache entry of ours to
        # write (hence no ImageSpec with them in Bazel's `imagespec` output group either).
        raise FlytebuildError(
            f"Cannot build {job.describe} as `{publisher.output}` output: its apt_packages/commands are applied by "
            "docker build, whose result can only be pushed",
            target=job.address,
            fix="push it (the default of `imagespec`), or answer it with a flyte_image on a base that has them",
        )
    if isinstance(publisher, OCILayoutPublisher):
        publisher.layout_path(job)  # a name that escapes the output directory fails before any work
    try:
        base_client, base_ref = registries.base(job.base)
        with tempfile.TemporaryDirectory(prefix="flytebuild-wheels-") as tmp:
            dists, sources = inputs(Path(tmp))
            base = base_client.pull(base_ref)
            mismatch = (python_mismatch(job.address, job.base, python_of_base(base.config), user_python)
                        if dists else None)
            if mismatch and warn is not None:
                warn(mismatch)
            image_inputs = ImageInputs(
                distributions=tuple(dists),
                sources=tuple(sorted(sources, key=lambda s: s.path)),
                python=job.python,
                env=job.env,
                labels=job.labels,
                fingerprint=job.fingerprint,
            )
            built = assemble(image_inputs, base, cache_dir=registries.cache_dir,
                             progress=log.build)
        layers = tuple((l.name, l.digest, l.size, "built") for l in built.image.layers)
        if job.dockerfile is not None:
            return _with_engine(job, built, base_client, registries, docker_env, layers)
        outcome = publisher.publish(job, built, base_client, log)
    except (RegistryError, BuildError, OSError) as e:
        raise job.error(e) from None
    log.summary()
    if outcome.statuses:
        statuses = dict(outcome.statuses)
        layers = tuple((n, d, s, statuses.get(d, "exists")) for n, d, s, _ in layers)
    return PublishedImage(job.address, job.ref, outcome.digest, outcome.pushed, outcome.bytes_uploaded,
                          publisher.output, outcome.layout, layers, built.distributions)


def _with_engine(job: ImageJob, built: BuiltImage, base_client: RegistryClient, registries: Registries,
                 env: Optional[Dict[str, str]], layers) -> PublishedImage:
    """The engine applies what needs commands inside the image (our layers are its base) and pushes it."""
    assert job.dockerfile is not None
    built_ref = job.dockerfile.splitlines()[0].split(" ", 1)[1]
    engine.docker_load(built.image, built_ref, base_client=base_client, env=env)
    engine.build_and_push(job.dockerfile, job.ref, env)
    ref = Reference.parse(job.ref)
    pushed = registries.client(ref.registry).head_manifest(ref.repository, ref.tag or "latest")
    if pushed is None:
        raise BuildError(f"docker push reported success but the registry has no {job.ref}")
    return PublishedImage(job.address, job.ref, pushed.digest, True, 0, "push", None, layers,
                          built.distributions, True)


def publisher_for(output: str, registries: Registries, jobs: int, directory: Optional[Path],
                  docker_env: Optional[Dict[str, str]] = None, run: Runner = _direct) -> Publisher:
    if output == "push":
        return RegistryPublisher(registries, jobs, run)
    if output == "oci":
        assert directory is not None
        return OCILayoutPublisher(directory)
    if output == "docker":
        return DockerPublisher(docker_env)
    if output == "cache":
        return CachePublisher()
    raise FlytebuildError(f"Unknown image output {output!r}", fix=f"use one of {', '.join(OUTPUTS)}")


# ---------------------------------------------------------------------------------------------
# ImageSpecs: what `flyte-imagespec` / `flytebuild imagespec` report


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
    output: str = "push"


def published_spec(workflow: str, spec: SpecImage, published: PublishedImage) -> PublishedImageSpec:
    return PublishedImageSpec(workflow, spec.name, spec.tasks, spec.ref, published.digest, published.pushed,
                              published.bytes_uploaded, published.distributions, published.engine, published.output)


def _status(spec: PublishedImageSpec) -> str:
    if spec.output != "push":
        return f"built ({spec.output})"
    return "pushed" if spec.pushed else "present"


def render_specs(specs: Sequence[PublishedImageSpec], fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"images": [
            {"workflow": i.workflow, "name": i.name, "tasks": list(i.tasks), "ref": i.ref, "digest": i.digest,
             "pushed": i.pushed, "bytes_uploaded": i.bytes_uploaded, "distributions": list(i.resolved),
             "engine": i.engine, "output": i.output}
            for i in specs]}, indent=2, sort_keys=True)
    from flytebuild.core.report import _table

    rows = [[i.workflow, i.name, i.ref, i.digest[:19], _status(i), ", ".join(i.tasks)]
            for i in specs]
    return ("\n".join(_table(["WORKFLOW", "IMAGESPEC", "REF", "DIGEST", "STATUS", "TASKS"], rows))
            if rows else "no ImageSpec without a flyte_image target")
