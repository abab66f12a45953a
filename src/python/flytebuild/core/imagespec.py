"""ImageSpecs found in code with no `flyte_image` target: what flytebuild builds for them.

flytekit builds an ImageSpec by copying `source_root` (a whole folder) into a Docker build. Here the
build graph answers instead: the image bakes exactly the first-party closure of the tasks that use
the spec (the union of their modules' closures), on the spec's base, with its packages resolved by
pex. The tag is a content fingerprint of the spec's fields and of that closure (file digests and the
locked pins of what it imports), so the plan knows the ref before anything is built and the
task's image ref points at what will be pushed.

Pure: no Pants, no flytekit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from flytebuild.core import fingerprint as fp
from flytebuild.core.errors import FlytebuildError
from flytebuild.core.introspection import Task
from flytebuild.core.model import Closure, FileDigest

# Fields whose effect needs commands run inside the image (a Docker engine).
ENGINE_FIELDS = ("apt_packages", "commands", "conda_channels", "conda_packages", "cuda", "cudnn")
# Fields that only name where to push or how flytekit tags/builds: not part of the content.
_NOT_CONTENT = ("name", "registry", "tag_format", "source_root", "copy", "source_copy_mode")


@dataclass(frozen=True)
class SpecImage:
    """What to build for one ImageSpec (one per distinct spec content within a workflow)."""

    name: str
    registry: Optional[str]
    ref: str  # registry/name:version (content tag)
    fingerprint: str
    version: str
    base: Optional[str]  # None: [flyte].default_base
    nested_base: bool  # base_image is itself an ImageSpec
    python_version: Optional[str]
    python_exec: Optional[str]
    env: Tuple[Tuple[str, str], ...]
    packages: Tuple[str, ...]
    requirements_file: Optional[str]  # repo-relative
    pip_extra_index_url: Tuple[str, ...]
    pip_index: Optional[str]
    engine_fields: Tuple[Tuple[str, str], ...]  # (field, canonical JSON value): need an engine
    sources: Tuple[FileDigest, ...]  # union closure of its tasks (what is baked)
    pins: Tuple[str, ...]
    tasks: Tuple[str, ...]
    spec_json: str  # canonical JSON of the spec as found in code

    @property
    def source_paths(self) -> Tuple[str, ...]:
        return tuple(sorted({s.path for s in self.sources}))


def _as_tuple(value: Any) -> Tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _bakes_code(spec: Mapping[str, Any]) -> bool:
    """flytekit copies code into an ImageSpec image only when asked to (`source_root`/`copy`)."""
    return bool(spec.get("source_root") or spec.get("copy"))


def spec_key(spec: Mapping[str, Any]) -> str:
    return fp.canonical_json(dict(spec)).decode("utf-8")


def spec_images(
    tasks: Iterable[Task],
    closures: Mapping[str, Closure],
    default_base: Optional[str] = None,
    default_registry: Optional[str] = None,
) -> Dict[str, SpecImage]:
    """Per spec (keyed by `spec_key`), the image flytebuild builds for the given tasks' ImageSpecs.

    Call with the tasks whose ImageSpec has no flyte_image target.
    """
    by_spec: Dict[str, List[Task]] = {}
    specs: Dict[str, Mapping[str, Any]] = {}
    for task in tasks:
        spec = task.image.spec
        if task.image.kind != "image_spec" or not spec:
            continue
        key = spec_key(spec)
        by_spec.setdefault(key, []).append(task)
        specs[key] = spec
    out = {}
    for key, users in by_spec.items():
        out[key] = _spec_image(specs[key], key, users, closures, default_base, default_registry)
    return out


def _spec_image(
    spec: Mapping[str, Any],
    key: str,
    tasks: Sequence[Task],
    closures: Mapping[str, Closure],
    default_base: Optional[str],
    default_registry: Optional[str],
) -> SpecImage:
    name = str(spec.get("name") or "flytekit")
    sources: Dict[str, FileDigest] = {}
    pins: set = set()
    for t in tasks:
        closure = closures.get(t.source_file or "")
        if closure is not None:
            # The locked pins always count (a re-lock changes what the packages resolve to);
            # the files only when the spec asks for code in the image.
            pins.update(closure.pins)
            if _bakes_code(spec):
                sources.update({s.path: s for s in closure.sources})
    base_value = spec.get("base_image")
    nested = isinstance(base_value, Mapping)
    base = None if nested else (str(base_value) if base_value else default_base)
    registry = spec.get("registry") or default_registry
    engine_fields = tuple(
        (f, fp.canonical_json(spec.get(f)).decode("utf-8"))
        for f in ENGINE_FIELDS
        if spec.get(f) not in (None, "", [], {}, False)
    )
    content = {k: v for k, v in sorted(spec.items()) if k not in _NOT_CONTENT}
    content["base_image"] = base_value if nested else base
    fingerprint = fp._fingerprint(
        "image_spec",
        {
            "spec": content,
            "registry": registry,
            "name": name,
            "closure": fp.closure_fingerprint(tuple(sorted(sources.values())), tuple(sorted(pins)), ()),
        },
    )
    version = fp.version_of(fingerprint)
    repository = f"{str(registry).rstrip('/')}/{name}" if registry else name
    env = spec.get("env") or {}
    return SpecImage(
        name=name,
        registry=str(registry) if registry else None,
        ref=f"{repository}:{version}",
        fingerprint=fingerprint,
        version=version,
        base=base,
        nested_base=nested,
        python_version=str(spec["python_version"]) if spec.get("python_version") else None,
        python_exec=str(spec["python_exec"]) if spec.get("python_exec") else None,
        env=tuple(sorted((str(k), str(v)) for k, v in dict(env).items())),
        packages=_as_tuple(spec.get("packages")),
        requirements_file=str(spec["requirements"]) if spec.get("requirements") else None,
        pip_extra_index_url=_as_tuple(spec.get("pip_extra_index_url")),
        pip_index=str(spec["pip_index"]) if spec.get("pip_index") else None,
        engine_fields=engine_fields,
        sources=tuple(sorted(sources.values())),
        pins=tuple(sorted(pins)),
        tasks=tuple(sorted(t.name for t in tasks)),
        spec_json=key,
    )


def check_buildable(image: SpecImage, *, target: str, file: Optional[str], engine: bool) -> None:
    """Raise the user-facing error for an ImageSpec flytebuild cannot build as asked."""
    tasks = ", ".join(image.tasks)
    if image.nested_base:
        raise FlytebuildError(
            f"ImageSpec `{image.name}` (task {tasks}) has another ImageSpec as base_image, which "
            "flytebuild does not build from code",
            target=target,
            file=file,
            fix=f"define a flyte_image for the base and set base_image to its reference, or a flyte_image(image_name={image.name!r}) for this one",
        )
    if not image.registry:
        raise FlytebuildError(
            f"ImageSpec `{image.name}` (task {tasks}) has no registry to push to",
            target=target,
            file=file,
            fix="set ImageSpec(registry=...) or [flyte].registry",
        )
    if not image.base:
        raise FlytebuildError(
            f"ImageSpec `{image.name}` (task {tasks}) has no base_image and [flyte].default_base is unset",
            target=target,
            file=file,
            fix="set ImageSpec(base_image=...) or [flyte].default_base",
        )
    if image.engine_fields and not engine:
        fields = ", ".join(f for f, _ in image.engine_fields)
        raise FlytebuildError(
            f"ImageSpec `{image.name}` (task {tasks}) sets {fields}, which need commands run inside "
            "the image, and no Docker engine is available",
            target=target,
            file=file,
            fix=f"define flyte_image(image_name={image.name!r}) with what the task needs, or run with a Docker engine (DOCKER_HOST or /var/run/docker.sock)",
        )
