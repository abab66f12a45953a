"""Exact closures from the build graph: the first-party files and third-party requirements that
a flyte_image bakes, or that the module defining a task needs."""
from __future__ import annotations

from dataclasses import dataclass

from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.target_types import (
    PythonRequirementsField,
    PythonResolveField,
    PythonSourceField,
)
from pants.core.target_types import FileSourceField, ResourceSourceField
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.engine.addresses import Addresses
from pants.engine.fs import Digest, DigestContents, PathGlobs
from pants.engine.internals.graph import Owners, OwnersRequest
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import Targets, TransitiveTargets, TransitiveTargetsRequest
from pants.util.logging import LogLevel

from flytebuild.core.errors import FlytebuildError
from flytebuild.core.fingerprint import file_digest
from flytebuild.core.lockfile import canonical_name, locked_pins
from flytebuild.core.model import Closure, FileDigest

_BAKED_SOURCE_FIELDS = (PythonSourceField, ResourceSourceField, FileSourceField)


@dataclass(frozen=True)
class ClosureRequest:
    """The closure of `roots` (included when they own sources), pinned by `resolve`'s lockfile."""

    roots: Addresses
    resolve: str


@dataclass(frozen=True)
class SourceFileClosureRequest:
    """The closure of the target(s) owning one source file (the file defining a task)."""

    path: str
    resolve: str


@dataclass(frozen=True)
class FileDigests:
    entries: tuple[FileDigest, ...]


@dataclass(frozen=True)
class LockedPins:
    pins: tuple[str, ...]


@dataclass(frozen=True)
class LockedPinsRequest:
    resolve: str
    names: tuple[str, ...]


@rule(desc="blake3 of source files", level=LogLevel.DEBUG)
async def blake3_file_digests(digest: Digest) -> FileDigests:
    # Memoized per Digest by the engine: unchanged files are never hashed twice in pantsd.
    contents = await Get(DigestContents, Digest, digest)
    return FileDigests(
        tuple(sorted(FileDigest(fc.path, file_digest(fc.content)) for fc in contents))
    )


@rule(desc="Locked pins of requirements", level=LogLevel.DEBUG)
async def resolve_locked_pins(request: LockedPinsRequest, python_setup: PythonSetup) -> LockedPins:
    lockfile = python_setup.resolves.get(request.resolve)
    if not lockfile or not request.names:
        return LockedPins(())
    contents = await Get(DigestContents, PathGlobs([lockfile]))
    if not contents:
        raise FlytebuildError(
            f"The lockfile `{lockfile}` of resolve `{request.resolve}` does not exist, so the "
            f"requirements {', '.join(request.names)} cannot be pinned. Fix: run "
            f"`pants generate-lockfiles --resolve={request.resolve}`."
        )
    return LockedPins(locked_pins(contents[0].content.decode("utf-8"), request.names))


@rule(desc="Closure of targets", level=LogLevel.DEBUG)
async def closure_of_targets(request: ClosureRequest) -> Closure:
    transitive = await Get(TransitiveTargets, TransitiveTargetsRequest(request.roots))
    source_fields = [
        tgt[field]
        for tgt in transitive.closure
        for field in _BAKED_SOURCE_FIELDS
        if tgt.has_field(field)
    ]
    names = sorted(
        {
            canonical_name(req.project_name)
            for tgt in transitive.closure
            if tgt.has_field(PythonRequirementsField)
            for req in tgt[PythonRequirementsField].value
        }
    )
    sources = await Get(SourceFiles, SourceFilesRequest(source_fields))
    digests, pins = await MultiGet(
        Get(FileDigests, Digest, sources.snapshot.digest),
        Get(LockedPins, LockedPinsRequest(request.resolve, tuple(names))),
    )
    return Closure(sources=digests.entries, requirements=tuple(names), pins=pins.pins)


@rule(desc="Closure of a source file", level=LogLevel.DEBUG)
async def closure_of_source_file(
    request: SourceFileClosureRequest, python_setup: PythonSetup
) -> Closure:
    owners = await Get(Owners, OwnersRequest((request.path,)))
    targets = await Get(Targets, Addresses(owners))
    # A file in several resolves (`resolve=parametrize(...)`) has one owner per resolve: only
    # the one in `request.resolve` is the code that runs (and that its lockfile pins).
    roots = Addresses(
        sorted(
            t.address
            for t in targets
            if t.has_field(PythonSourceField)
            and (
                not t.has_field(PythonResolveField)
                or t[PythonResolveField].normalized_value(python_setup) == request.resolve
            )
        )
    )
    return await Get(Closure, ClosureRequest(roots, request.resolve))


def rules():
    return collect_rules()
