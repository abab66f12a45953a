"""A workflow's registration archive (`flyte-package.tgz`, `pyflyte package` style) and its summary lines:
the same bytes from every front end for the same serialized entities and bundle."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from flytebuild.core.bundle import Bundle
from flytebuild.oci.layers import build_layer

ARCHIVE = "flyte-package.tgz"


@dataclass(frozen=True)
class RegistrationArchive:
    files: Tuple[Tuple[str, bytes], ...]  # (name, bytes) to write into the workflow's output directory
    lines: Tuple[str, ...]  # what the front end prints under the archive's path

    @property
    def archive(self) -> bytes:
        return self.files[0][1]


def registration_archive(entities: Sequence[Tuple[str, bytes]], bundle: Optional[Bundle]) -> RegistrationArchive:
    """`entities`: the numbered .pb files serialize.py wrote, in order; `bundle`: the fast tasks' code, if any."""
    entries = list(entities)
    if bundle is not None:
        entries.append((bundle.name, bundle.data))
    archive = build_layer(entries, name="flyte-package").read_bytes()
    files = [(ARCHIVE, archive)]
    lines = [f"{len(entities)} entities (numbered .pb files, `flytectl register files --archive`)"]
    if bundle is not None:
        files.append((bundle.name, bundle.data))
        lines.append(f"code bundle {bundle.name}: {len(bundle.files)} files of the fast tasks")
    else:
        lines.append("no code bundle: every task runs from its image")
    return RegistrationArchive(tuple(files), tuple(lines))
