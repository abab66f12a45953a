"""The fast-register code bundle: exactly the first-party files the `fast` tasks need.

A bundle exists only when some task is `fast`. It holds the union of those tasks' closures (never
the whole repo, never a file outside a closure such as `.env` or a key), each file at its import
path (source root stripped) because `pyflyte-fast-execute` extracts it into the task's working
directory and imports modules from there. The archive is deterministic (oci/layers.py's tar
writer: sorted entries, zeroed times and owners, gzip mtime 0), so its name —
`fast<blake3 of the archive>.tar.gz` — is a content address: an unchanged bundle is never
uploaded twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple

from blake3 import blake3

from flytebuild.core.errors import FlytebuildError
from flytebuild.core.lockfile import canonical_name
from flytebuild.core.model import ImageTarget, WorkflowPlan
from flytebuild.oci.layers import LayerError, build_layer

PREFIX = "fast"
SUFFIX = ".tar.gz"


class BundleError(FlytebuildError):
    """The bundle cannot be laid out (a file outside every source root, two files on one path)."""


@dataclass(frozen=True, order=True)
class BundleFile:
    path: str  # inside the bundle: the import path, e.g. `shared/helpers.py`
    source: str  # repo-relative path, e.g. `examples/shared/helpers.py`


@dataclass(frozen=True)
class BundlePlan:
    files: Tuple[BundleFile, ...]
    tasks: Tuple[str, ...]  # the fast tasks the bundle serves

    @property
    def sources(self) -> Tuple[str, ...]:
        return tuple(f.source for f in self.files)


@dataclass(frozen=True)
class Bundle:
    name: str  # fast<digest>.tar.gz
    digest: str  # blake3 hex of the archive bytes
    data: bytes
    files: Tuple[BundleFile, ...]

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True, order=True)
class BundleWarning:
    task: str
    message: str


def strip_source_root(path: str, source_roots: Sequence[str]) -> str:
    """`examples/shared/helpers.py` with root `examples` -> `shared/helpers.py` (longest root wins)."""
    best: Optional[str] = None
    for root in source_roots:
        root = root.strip("/")
        if root in ("", "."):
            candidate = path
        elif path.startswith(root + "/"):
            candidate = path[len(root) + 1:]
        else:
            continue
        if best is None or len(candidate) < len(best):
            best = candidate
    if best is None:
        raise BundleError(
            f"`{path}` is in the closure of a fast task but under no source root "
            f"({', '.join(sorted(source_roots)) or 'none configured'})",
            file=path,
            fix="add its directory to [source] root_patterns so its import path is known",
        )
    return best


def fast_tasks(plans: Iterable[WorkflowPlan]) -> Dict[str, Tuple[str, ...]]:
    """Fast task name -> its closure's repo-relative sources, over all plans."""
    found: Dict[str, Tuple[str, ...]] = {}
    for plan in plans:
        for task in plan.tasks:
            if task.mode == "fast":
                found[task.name] = tuple(sorted(set(found.get(task.name, ())) | set(task.sources)))
    return found


def plan_bundle(plans: Iterable[WorkflowPlan], source_roots: Sequence[str]) -> Optional[BundlePlan]:
    """What the bundle holds, or None when no task is fast (then nothing is read or archived)."""
    tasks = fast_tasks(plans)
    if not tasks:
        return None
    by_path: Dict[str, str] = {}
    for source in sorted({s for sources in tasks.values() for s in sources}):
        path = strip_source_root(source, source_roots)
        other = by_path.get(path)
        if other is not None and other != source:
            raise BundleError(
                f"`{other}` and `{source}` both import as `{path}`: one bundle cannot hold both",
                file=source,
                fix="give the two modules distinct import paths, or bake one of them into the task's image",
            )
        by_path[path] = source
    files = tuple(sorted(BundleFile(p, s) for p, s in by_path.items()))
    return BundlePlan(files, tuple(sorted(tasks)))


def build_bundle(plan: BundlePlan, read: Callable[[str], bytes]) -> Bundle:
    """Archive the planned files; `read(repo_path)` returns a file's bytes."""
    try:
        layer = build_layer([(f.path, read(f.source)) for f in plan.files], name="bundle")
    except LayerError as e:
        raise BundleError(f"cannot build the code bundle: {e}") from None
    data = layer.read_bytes()
    digest = blake3(data).hexdigest()
    return Bundle(f"{PREFIX}{digest}{SUFFIX}", digest, data, plan.files)


def bundle_warnings(plans: Iterable[WorkflowPlan], images: Mapping[str, ImageTarget]) -> Tuple[BundleWarning, ...]:
    """Per task, where a code bundle cannot help.

    A raw container task runs its image's own command: pyflyte would still ship it a bundle it
    never downloads. A fast task whose image has no flytekit cannot run `pyflyte-fast-execute`,
    so the bundle cannot be downloaded, let alone imported.
    """
    found = set()
    for plan in plans:
        for task in plan.tasks:
            if task.mode == "container":
                found.add(BundleWarning(
                    task.name,
                    "raw container task: runs its image's command, so it gets no code bundle "
                    "(pyflyte --copy would ship it one it cannot use)",
                ))
            elif task.mode == "fast" and task.image_address:
                image = images.get(task.image_address)
                if image is not None and "flytekit" not in {canonical_name(r) for r in image.requirements}:
                    found.add(BundleWarning(
                        task.name,
                        f"image {image.address} has no flytekit: pyflyte-fast-execute cannot download or run "
                        "the code bundle; add flytekit to the image's dependencies or bake the task's code",
                    ))
    return tuple(sorted(found))
