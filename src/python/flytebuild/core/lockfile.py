"""Locked pins from a Pants/Pex lockfile: the exact third-party versions a closure runs with."""
from __future__ import annotations

import functools
import json
import re
from typing import Any, Dict, Iterable, List, Mapping, Tuple, Union

from flytebuild.core.errors import LockfileError

_SEPARATORS = re.compile(r"[-_.]+")
# The distribution name at the start of a PEP 508 requirement string.
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")


@functools.lru_cache(maxsize=65536)  # a plan asks for the same few hundred names per task, over and over
def canonical_name(name: str) -> str:
    """PEP 503 normalized project name: `Foo_Bar.baz` → `foo-bar-baz`."""
    return _SEPARATORS.sub("-", name.strip()).lower()


def requirement_name(requirement: str) -> str:
    """Canonical project name of a PEP 508 requirement string (`azure-storage-blob[aio]>=1; ...`)."""
    match = _REQUIREMENT_NAME.match(requirement)
    if not match:
        raise ValueError(f"not a PEP 508 requirement: {requirement!r}")
    return canonical_name(match.group(1))


def _load(lock: Union[str, bytes, Mapping[str, Any]]) -> Mapping[str, Any]:
    if isinstance(lock, Mapping):
        return lock
    if isinstance(lock, bytes):
        lock = lock.decode("utf-8")
    # Pants prepends `//` comment lines (metadata header) to the Pex JSON.
    body = "\n".join(line for line in lock.splitlines() if not line.lstrip().startswith("//"))
    try:
        data = json.loads(body)
    except ValueError as e:
        raise LockfileError(
            f"The lockfile is not valid JSON after its `//` header ({e})",
            fix="regenerate it with `pants generate-lockfiles`",
        ) from None
    if not isinstance(data, Mapping):
        raise LockfileError("The lockfile is not a JSON object", fix="regenerate it with `pants generate-lockfiles`")
    return data


class _Locked:
    __slots__ = ("name", "version", "deps", "hash")

    def __init__(self, name: str, version: str, deps: Tuple[str, ...], hash_: str) -> None:
        self.name, self.version, self.deps, self.hash = name, version, deps, hash_


def _index(data: Mapping[str, Any]) -> Dict[str, _Locked]:
    try:
        resolve = data["locked_resolves"][0]
        entries = resolve["locked_requirements"]
        index: Dict[str, _Locked] = {}
        for entry in entries:
            name = canonical_name(entry["project_name"])
            artifacts = entry.get("artifacts") or []
            hash_ = ""
            if artifacts:
                hash_ = f"{artifacts[0].get('algorithm', 'sha256')}:{artifacts[0]['hash']}"
            deps = tuple(requirement_name(r) for r in entry.get("requires_dists") or ())
            index[name] = _Locked(name, str(entry["version"]), deps, hash_)
        return index
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise LockfileError(
            f"The lockfile has no readable `locked_resolves[0].locked_requirements` ({e!r})",
            fix="regenerate it with `pants generate-lockfiles`",
        ) from None


_INDEXES: Dict[Union[str, bytes], Dict[str, _Locked]] = {}


def _index_of(lock: Union[str, bytes, Mapping[str, Any]]) -> Dict[str, _Locked]:
    """The lock's index, parsed once per lockfile text: a plan asks once per closure (a 2 MB lock, tens of
    closures), and the parse cost dominated a plan that had nothing else to do."""
    if isinstance(lock, Mapping):
        return _index(lock)
    found = _INDEXES.get(lock)
    if found is None:
        if len(_INDEXES) >= 4:
            _INDEXES.clear()
        found = _INDEXES[lock] = _index(_load(lock))
    return found


def locked_pins(
    lock: Union[str, bytes, Mapping[str, Any]],
    project_names: Iterable[str],
    *,
    with_hashes: bool = False,
    strict: bool = True,
) -> Tuple[str, ...]:
    """Sorted `name==version` pins of `project_names` and everything they depend on.

    Extras and environment markers on dependencies are ignored on purpose: a dependency is
    included whenever the lock has it. Over-including only makes a fingerprint change more often;
    under-including would let a version change go unnoticed.

    `with_hashes` appends the first artifact's hash (`name==version#sha256:...`). With `strict`,
    a requested name missing from the lock raises LockfileError (the lock is stale).
    """
    index = _index_of(lock)
    wanted = sorted({canonical_name(n) for n in project_names})
    missing = [n for n in wanted if n not in index]
    if missing and strict:
        raise LockfileError(
            f"The lockfile does not lock {', '.join(missing)}, which the build graph requires",
            fix="regenerate the resolve's lockfile with `pants generate-lockfiles`",
        )
    seen = set()
    stack: List[str] = [n for n in wanted if n in index]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(d for d in index[name].deps if d in index and d not in seen)
    pins = []
    for name in sorted(seen):
        locked = index[name]
        pin = f"{name}=={locked.version}"
        if with_hashes and locked.hash:
            pin += f"#{locked.hash}"
        pins.append(pin)
    # Plain string order, so callers comparing with `sorted(...)` agree.
    return tuple(sorted(pins))
