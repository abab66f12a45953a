"""ImageSpecs in code: the image node flytebuild plans (and builds) for each, and when a flyte_image may answer one.

flytekit builds an ImageSpec by copying `source_root` (a whole folder) and `copy` paths into a Docker build and
installing `packages`/`requirements` plus flytekit. Here the build graph answers instead:

- identity is the spec's content (`spec_key`), never only its name: unnamed specs (flytekit names them all
  `flytekit`) stay distinct;
- baked sources: `source_root` = the closures of the tasks using the spec that lie under it; `copy` = the listed
  paths resolved to first-party files, plus the closures of those that are Python modules (never a folder walk);
  a copied file also lands where flytekit's builder puts it (`/root/<entry>`), so a container's command finds it;
- requirements: `packages` + the `requirements` file + flytekit when the spec does not name it (pinned to the
  lockfile's version when the tasks' closures pin it), as flytekit's own builders add it;
- base: the spec's `base_image` (else `[flyte].default_base`);
- tag: a content fingerprint of all that, so the plan knows the ref before anything is built.

Pure: no Pants, no flytekit.
"""
from __future__ import annotations

import posixpath
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from flytebuild.core import fingerprint as fp
from flytebuild.core.errors import FlytebuildError, PlanError
from flytebuild.core.introspection import Task
from flytebuild.core.lockfile import canonical_name, requirement_name
from flytebuild.core.model import Closure, CopiedFile, FileDigest, ImageTarget, SpecImage

__all__ = [
    "SpecImage",
    "CopiedFile",
    "ENGINE_FIELDS",
    "spec_key",
    "spec_digest",
    "spec_images",
    "spec_conflicts",
    "spec_lookups",
    "copy_candidates",
    "requirement_lines",
    "check_buildable",
]

# Fields whose effect needs commands run inside the image (a Docker engine).
ENGINE_FIELDS = ("apt_packages", "commands", "conda_channels", "conda_packages", "cuda", "cudnn")
# Fields that only name where to push or how flytekit tags/builds: not part of the content.
_NOT_CONTENT = ("name", "registry", "tag_format", "source_root", "copy", "source_copy_mode")
FLYTEKIT_DEFAULT_NAME = "flytekit"  # what flytekit names an ImageSpec without `name`


def _as_tuple(value: Any) -> Tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def spec_key(spec: Mapping[str, Any]) -> str:
    return fp.canonical_json(dict(spec)).decode("utf-8")


def spec_digest(spec: Mapping[str, Any]) -> str:
    """Short content identity of a spec (shown in plans; equal specs, equal digests)."""
    return fp.version_of(fp._fingerprint("image_spec_content", dict(spec)))[:16]


def uses_spec(task: Task) -> bool:
    return task.image.kind == "image_spec" and bool(task.image.spec)


def runs_python(task: Task) -> bool:
    """Tasks whose container runs Python through pyflyte-execute (not raw containers, not container-less)."""
    return task.has_container and task.kind != "container"


# ---------------------------------------------------------------------------------------------
# What adapters look up for the plan


def copy_candidates(entry: str, task_source_file: Optional[str]) -> List[str]:
    """Repo paths a `copy` entry may mean, first match wins.

    flytekit resolves copy entries against the directory pyflyte runs in (the project's root), which in a
    monorepo is some directory above the module: the module's own directory first, then each parent, then the
    repository root.
    """
    entry = entry.strip().lstrip("./") if entry.startswith("./") else entry.strip()
    if not entry or entry.startswith("/") or ".." in entry.split("/"):
        return []
    out: List[str] = []
    directory = posixpath.dirname(task_source_file or "")
    while True:
        candidate = posixpath.normpath(posixpath.join(directory, entry)) if directory else posixpath.normpath(entry)
        if candidate not in out:
            out.append(candidate)
        if not directory:
            return out
        directory = posixpath.dirname(directory)


def spec_lookups(tasks: Iterable[Task]) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """(copy candidate paths, requirements files) the adapter should read for the tasks' ImageSpecs."""
    candidates, req_files = set(), set()
    for t in tasks:
        if not uses_spec(t):
            continue
        spec = t.image.spec or {}
        for entry in _as_tuple(spec.get("copy")):
            candidates.update(copy_candidates(entry, t.source_file))
        if spec.get("requirements"):
            req_files.add(str(spec["requirements"]))
    return tuple(sorted(candidates)), tuple(sorted(req_files))


def requirement_lines(text: str) -> Tuple[str, ...]:
    """Requirement strings of a requirements.txt (comments, options and blank lines dropped)."""
    out = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            out.append(line)
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# A flyte_image answering a spec by name


def spec_conflicts(spec: Mapping[str, Any], image: ImageTarget) -> List[str]:
    """Why a flyte_image cannot stand for a spec: what the spec asks for that the target would drop."""
    reasons = []
    base = spec.get("base_image")
    if isinstance(base, Mapping):
        reasons.append("its base_image is another ImageSpec")
    elif base and str(base) != image.base:
        reasons.append(f"base_image `{base}` differs from the flyte_image's base `{image.base}`")
    have = {canonical_name(r) for r in image.requirements}
    missing = sorted({canonical_name(requirement_name(p)) for p in _as_tuple(spec.get("packages"))} - have)
    if missing:
        reasons.append(f"packages {', '.join(missing)} are not requirements of the flyte_image")
    if spec.get("copy"):
        reasons.append(
            "it copies files (`copy`), which the flyte_image's sources do not place at flytekit's destinations"
        )
    env = dict(spec.get("env") or {})
    ours = dict(image.env)
    differ = sorted(k for k, v in env.items() if ours.get(k) != str(v))
    if differ:
        reasons.append(f"env {', '.join(differ)} differ from the flyte_image's env")
    return reasons


# ---------------------------------------------------------------------------------------------
# The images


def spec_images(
    tasks: Iterable[Task],
    closures: Mapping[str, Closure],
    default_base: Optional[str] = None,
    default_registry: Optional[str] = None,
    *,
    files: Optional[Mapping[str, FileDigest]] = None,
    requirement_files: Optional[Mapping[str, Sequence[str]]] = None,
    flytekit_version: Optional[str] = None,
    target: Optional[str] = None,
) -> Dict[str, SpecImage]:
    """Per spec (keyed by `spec_key`), the image flytebuild builds for the given tasks' ImageSpecs.

    Call with the tasks whose ImageSpec no flyte_image answers. `files` are the copy candidates that exist (see
    `spec_lookups`), `closures` hold the task modules' and the copied modules' closures, `requirement_files` the
    requirement lines of each spec's `requirements` file.
    """
    by_spec: Dict[str, List[Task]] = {}
    specs: Dict[str, Mapping[str, Any]] = {}
    for task in tasks:
        if not uses_spec(task):
            continue
        key = spec_key(task.image.spec or {})
        by_spec.setdefault(key, []).append(task)
        specs[key] = task.image.spec or {}
    out = {}
    for key, users in by_spec.items():
        out[key] = _spec_image(
            specs[key],
            key,
            users,
            closures,
            default_base,
            default_registry,
            files or {},
            requirement_files or {},
            flytekit_version,
            target,
        )
    return out


def _under(path: str, root: Optional[str]) -> bool:
    if root is None:
        return False
    root = posixpath.normpath(str(root)).strip("/")
    return root in ("", ".") or path == root or path.startswith(root + "/")


def _flytekit_pin(closures: Iterable[Closure], flytekit_version: Optional[str]) -> str:
    for closure in closures:
        for pin in closure.pins:
            if canonical_name(pin.split("==", 1)[0]) == "flytekit":
                return pin
    return f"flytekit=={flytekit_version}" if flytekit_version else "flytekit"


def _resolve_copies(
    spec: Mapping[str, Any], tasks: Sequence[Task], files: Mapping[str, FileDigest], name: str, target: Optional[str]
) -> Tuple[List[CopiedFile], List[str]]:
    copies: List[CopiedFile] = []
    modules: List[str] = []
    for entry in _as_tuple(spec.get("copy")):
        found = None
        tried: List[str] = []
        for t in tasks:
            for candidate in copy_candidates(entry, t.source_file):
                if candidate not in tried:
                    tried.append(candidate)
                if found is None and candidate in files:
                    found = files[candidate]
        if found is None:
            raise PlanError(
                f"ImageSpec `{name}` (task {', '.join(sorted(t.name for t in tasks))}) copies `{entry}`, which is "
                f"no file of the repository (looked for {', '.join(tried) or 'nothing: absolute or `..` path'})",
                target=target,
                file=tasks[0].source_file,
                fix="list files relative to the module's directory or one of its parents (directories are not "
                "expanded: list the files, so the build graph knows them)",
            )
        destination = posixpath.normpath(entry.lstrip("./") if entry.startswith("./") else entry)
        copies.append(CopiedFile(found.path, destination, found.digest))
        if found.path.endswith(".py"):
            modules.append(found.path)
    return sorted(set(copies)), modules


def _spec_image(
    spec: Mapping[str, Any],
    key: str,
    tasks: Sequence[Task],
    closures: Mapping[str, Closure],
    default_base: Optional[str],
    default_registry: Optional[str],
    files: Mapping[str, FileDigest],
    requirement_files: Mapping[str, Sequence[str]],
    flytekit_version: Optional[str],
    target: Optional[str],
) -> SpecImage:
    name = str(spec.get("name") or FLYTEKIT_DEFAULT_NAME)
    python_users = [t for t in tasks if runs_python(t)]
    sources: Dict[str, FileDigest] = {}
    pins: set = set()
    task_closures = [closures[t.source_file] for t in python_users if t.source_file in closures]
    for closure in task_closures:
        # The locked pins always count (a re-lock changes what the packages resolve to).
        pins.update(closure.pins)
        sources.update({s.path: s for s in closure.sources if _under(s.path, spec.get("source_root"))})
    copies, modules = _resolve_copies(spec, tasks, files, name, target)
    for module in modules:
        closure = closures.get(module)
        if closure is not None:
            sources.update({s.path: s for s in closure.sources})
            pins.update(closure.pins)
        if module not in sources:  # a script no python_source owns: baked as a file, at flytekit's destination
            continue

    requirements = list(_as_tuple(spec.get("packages")))
    req_file = str(spec["requirements"]) if spec.get("requirements") else None
    if req_file:
        requirements += list(requirement_files.get(req_file, ()))
    warnings = []
    if not any(canonical_name(requirement_name(r)) == "flytekit" for r in requirements):
        # flytekit's builders add it too: without it pyflyte-execute is missing and no Python task can start.
        requirements.append(_flytekit_pin(task_closures or closures.values(), flytekit_version))

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
            "requirements": sorted(requirements),
            "copies": [[c.source, c.destination, c.digest] for c in copies],
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
        requirements_file=req_file,
        pip_extra_index_url=_as_tuple(spec.get("pip_extra_index_url")),
        pip_index=str(spec["pip_index"]) if spec.get("pip_index") else None,
        engine_fields=engine_fields,
        sources=tuple(sorted(sources.values())),
        pins=tuple(sorted(pins)),
        tasks=tuple(sorted(t.name for t in tasks)),
        spec_json=key,
        requirements=tuple(requirements),
        copies=tuple(copies),
        warnings=tuple(warnings),
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
            fix="define a flyte_image for the base and set base_image to its reference, or a "
            f"flyte_image(image_name={image.name!r}) for this one",
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
            fix=f"define flyte_image(image_name={image.name!r}) with what the task needs, or run with a Docker engine "
            "(DOCKER_HOST or /var/run/docker.sock)",
        )
