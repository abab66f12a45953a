"""Content fingerprints, Merkle style: files → closures → images → tasks → workflows → launch plans.

Every fingerprint is blake3 over a domain tag and the canonical JSON of its inputs, so
- two kinds of entity never collide even when their inputs look alike (domain separation);
- the same inputs give the same digest on any machine (sorted keys, no whitespace, UTF-8);
- a parent covers its children only through their fingerprints, never their raw content.

File digests are plain blake3 of the bytes, as `b3sum` prints them, so they can be checked with
ordinary tools.
"""
from __future__ import annotations

import functools
import json
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Mapping, Optional, Sequence, Tuple

from blake3 import blake3

from flytebuild.core.introspection import Task
from flytebuild.core.model import Closure, ExternalImage, FileDigest, ImageTarget

# Bump when the meaning of any fingerprint changes: every version then changes once, on purpose.
SCHEME = "flytebuild.v1"

VERSION_LENGTH = 32

# Files at least this large are hashed through mmap with blake3's own threads.
_LARGE_FILE = 1 << 20
# Below this, hashing is cheaper than handing the file to another thread (auto mode only).
_SMALL_FILE = 128 << 10


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, no NaN: one byte string per JSON value."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _fingerprint(domain: str, payload: Any) -> str:
    hasher = blake3()
    hasher.update(f"{SCHEME}/{domain}\0".encode("utf-8"))
    hasher.update(canonical_json(payload))
    return hasher.hexdigest()


def version_of(fingerprint: str) -> str:
    """The registered version of an entity: the first 32 hex chars (128 bits) of its fingerprint."""
    return fingerprint[:VERSION_LENGTH]


# ---------------------------------------------------------------------------------------------
# Files


def file_digest(content: bytes) -> str:
    """blake3 hex of a file's bytes (identical to `b3sum`)."""
    return blake3(content).hexdigest()


def _digest_path(path: str) -> str:
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size >= _LARGE_FILE:
            hasher = blake3(max_threads=blake3.AUTO)
            hasher.update_mmap(path)
            return hasher.hexdigest()
        return blake3(f.read()).hexdigest()


class StatCache:
    """Persistent `(path, size, mtime_ns, inode, ctime_ns) → digest` map, stored as JSON at `path`.

    A warm run where nothing changed stats every file and hashes none. Entries whose mtime is
    within `_RACY_WINDOW_NS` of the moment the cache is saved are not persisted: a file written
    again within the filesystem's timestamp granularity could keep its size and mtime while its
    content changes (git's "racily clean" problem), and a stale digest would be a silent wrong
    version. The ctime is in the key as in git's index: a rewrite whose mtime is set back (`touch -d`, an
    archive tool, a checkout) still changes it, as no user can set ctime.
    """

    _FORMAT = 2
    _RACY_WINDOW_NS = 2_000_000_000

    def __init__(self, path: str) -> None:
        self.path = path
        self._entries: dict = {}
        self._lock = threading.Lock()
        self._dirty = False
        self.hits = 0
        self.misses = 0
        try:
            with open(path, "r", encoding="utf-8") as f:
                data = json.load(f)
            if isinstance(data, dict) and data.get("format") == self._FORMAT:
                self._entries = dict(data.get("entries") or {})
        except (OSError, ValueError):
            # A missing or corrupt cache only costs hashing time; never fail a build over it.
            self._entries = {}

    @staticmethod
    def _key(st: os.stat_result) -> list:
        return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]

    def get(self, abspath: str, st: os.stat_result) -> Optional[str]:
        with self._lock:
            entry = self._entries.get(abspath)
            if entry is not None and entry[:4] == self._key(st):
                self.hits += 1
                return entry[4]
            self.misses += 1
            return None

    def lookup_many(self, abspaths: Sequence[str], stats: Sequence[os.stat_result]) -> list:
        """`get` for many files under one lock acquisition (the warm path's hot loop)."""
        found: list = []
        with self._lock:
            entries = self._entries
            for abspath, st in zip(abspaths, stats):
                e = entries.get(abspath)
                hit = (
                    e is not None
                    and e[0] == st.st_size
                    and e[1] == st.st_mtime_ns
                    and e[2] == st.st_ino
                    and e[3] == st.st_ctime_ns
                )
                found.append(e[4] if hit else None)
            hits = sum(d is not None for d in found)
            self.hits += hits
            self.misses += len(found) - hits
        return found

    def put(self, abspath: str, st: os.stat_result, digest: str) -> None:
        with self._lock:
            self._entries[abspath] = [*self._key(st), digest]
            self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        cutoff = time.time_ns() - self._RACY_WINDOW_NS
        with self._lock:
            entries = {p: e for p, e in self._entries.items() if e[1] < cutoff}
            payload = {"format": self._FORMAT, "entries": entries}
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        # Write-then-rename so a crash never leaves a truncated cache behind.
        fd, tmp = tempfile.mkstemp(prefix=".statcache-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(payload, f, sort_keys=True, separators=(",", ":"))
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self._dirty = False


def digest_files(
    root: str,
    paths: Iterable[str],
    threads: Optional[int] = None,
    cache: Optional[StatCache] = None,
) -> Tuple[FileDigest, ...]:
    """blake3 of files under `root` (repo-relative `paths`), in parallel, sorted by path.

    With `cache`, files whose (size, mtime_ns, inode) are unchanged are not read at all (the
    stats are cheap and done up front); the cache is saved at the end. The rest are hashed by
    `threads` workers, each taking a contiguous chunk: blake3 releases the GIL while hashing,
    and chunking keeps the per-file executor overhead from dominating many small files.
    """
    rel_paths = sorted({p.replace(os.sep, "/") for p in paths})
    base = os.path.abspath(root)
    # normpath only where a path could be non-canonical: it costs more than the stat.
    abspaths = [
        os.path.normpath(os.path.join(base, rel)) if ("/." in "/" + rel or "//" in rel) else f"{base}/{rel}"
        for rel in rel_paths
    ]
    digests: list = [None] * len(rel_paths)
    stats: list = [None] * len(rel_paths)
    if cache is not None:
        stats = [os.stat(abspath) for abspath in abspaths]
        digests = cache.lookup_many(abspaths, stats)
    todo = [i for i, d in enumerate(digests) if d is None]

    def hash_chunk(indices: Sequence[int]) -> None:
        for i in indices:
            digests[i] = _digest_path(abspaths[i])
            if cache is not None and StatCache._key(os.stat(abspaths[i])) == StatCache._key(stats[i]):
                # Unchanged while we read it: safe to remember (a torn read is never cached).
                cache.put(abspaths[i], stats[i], digests[i])

    if threads is None:
        # Auto: small files are faster in one thread (the GIL hand-offs around open/read cost
        # more than hashing a few KiB); large ones go to the pool.
        sizes = [(stats[i] or os.stat(abspaths[i])).st_size for i in todo]
        hash_chunk([i for i, size in zip(todo, sizes) if size < _SMALL_FILE])
        todo = [i for i, size in zip(todo, sizes) if size >= _SMALL_FILE]
    workers = max(1, min(threads or (os.cpu_count() or 1), len(todo)))
    if workers == 1:
        hash_chunk(todo)
    else:
        chunks = [todo[k::workers] for k in range(workers)]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(hash_chunk, chunks):
                pass
    if cache is not None:
        cache.save()
    return tuple(FileDigest(rel, d) for rel, d in zip(rel_paths, digests))


# ---------------------------------------------------------------------------------------------
# Closures and images


def closure_fingerprint(
    sources: Iterable[FileDigest], pins: Iterable[str], requirements: Iterable[str] = ()
) -> str:
    """Fingerprint of a set of files and locked pins (order never matters: they are sets)."""
    return _fingerprint(
        "closure",
        {
            "sources": sorted({(s.path, s.digest) for s in sources}),
            "pins": sorted(set(pins)),
            "requirements": sorted(set(requirements)),
        },
    )


@functools.lru_cache(maxsize=65536)
def closure_value_fingerprint(closure: Closure) -> str:
    """`closure_fingerprint` of a Closure value, memoized: the tasks of one module share it."""
    return closure_fingerprint(closure.sources, closure.pins, closure.requirements)


@functools.lru_cache(maxsize=4096)
def image_fingerprint(image: ImageTarget) -> str:
    """Fingerprint of everything that decides an image's content and where it is pushed.

    The target's address and `image_name` are deliberately left out: renaming or moving a target
    does not change a single byte of the image. Memoized (the target is a frozen, hashable value): every
    workflow's plan names every image of the project, so unmemoized this grows with projects x workflows.
    """
    return _fingerprint(
        "image",
        {
            "base": image.base,
            "registry": image.registry,
            "repository": image.repository or image.image_name,
            "env": sorted([k, v] for k, v in image.env),
            "python": image.python,
            "closure": closure_fingerprint(image.sources, image.pins, image.requirements),
        },
    )


def external_image_fingerprint(image: ExternalImage) -> str:
    """An image we do not build: only its reference (and ImageSpec, if any) are known."""
    return _fingerprint("external_image", {"ref": image.ref, "spec": image.spec_json})


def any_image_fingerprint(image: "ImageTarget | ExternalImage") -> str:
    if isinstance(image, ImageTarget):
        return image_fingerprint(image)
    return external_image_fingerprint(image)


# ---------------------------------------------------------------------------------------------
# Entities


def task_fingerprint(
    task: Task, closure: Optional[Closure], image_fp: str, pod_template: Optional[Any] = None
) -> str:
    """Fingerprint of a task: its code closure, pins, image, interface, config, cache and name.

    Pass `closure=None` for raw container tasks: their Python code never runs, so editing the
    module that declares them must not re-register them. Whether a task is baked or fast is
    not an input of its own: it follows from the closure and the image, both covered here.
    `pod_template` is the final rendered template (target + overlay + code); it is hashed only
    when present, so tasks without one keep their versions.
    """
    extra = {} if pod_template is None else {"pod_template": pod_template}
    return _fingerprint(
        "task",
        {
            **extra,
            "name": task.name,
            "kind": task.kind,
            "task_type": task.task_type,
            "closure": None if closure is None else closure_value_fingerprint(closure),
            "image": image_fp,
            "interface": task.interface.to_json(),
            "input_defaults": dict(task.input_defaults),
            "config": dict(task.config),
            "cache": {
                "enabled": task.cache.enabled,
                "version": task.cache.version,
                "serialize": task.cache.serialize,
                "ignored_inputs": sorted(task.cache.ignored_inputs),
            },
        },
    )


def cache_version(task: Task, code: Optional[str] = None) -> Optional[str]:
    """The discovery version to register: the user's `cache_version` plus the interface hash.

    flytekit's local cache key ignores the interface, so adding a dataclass field would return
    stale outputs; folding the interface into the version makes local and remote agree.
    `code` (policy `cache_key="code"`) is the fingerprint of what runs (the task's source
    closure, or a raw container's image): folded in, any code change is a cache miss.
    """
    if not task.cache.enabled:
        return None
    payload = {"interface": task.interface.to_json(), "ignored_inputs": sorted(task.cache.ignored_inputs)}
    if code is not None:
        payload["code"] = code
    interface = _fingerprint("cache_interface", payload)
    return f"{task.cache.version or ''}-{interface[:12]}"


def workflow_fingerprint(
    name: str, interface: Any, structure: Any, children: Mapping[str, str]
) -> str:
    """Fingerprint of a workflow: its shape and the versions of the entities its nodes use.

    `children` maps `kind:name` to the child's version; the children's content is covered only
    through those versions (Merkle).
    """
    return _fingerprint(
        "workflow",
        {"name": name, "interface": interface, "structure": structure, "children": dict(children)},
    )


def launch_plan_fingerprint(
    name: str,
    workflow_version: str,
    fixed_inputs: Mapping[str, Any],
    default_inputs: Mapping[str, Any],
    config: Mapping[str, Any],
) -> str:
    return _fingerprint(
        "launch_plan",
        {
            "name": name,
            "workflow": workflow_version,
            "fixed_inputs": dict(fixed_inputs),
            "default_inputs": dict(default_inputs),
            "config": dict(config),
        },
    )
