"""Third-party requirements without a build graph: which are declared, and their locked pins.

Declared requirements come from a requirements file (what Pants' `python_requirements()` reads)
or, without one, from the Pants/Pex lockfile's own header (`generated_with_requirements`). Pins
come from the lockfile (transitively, `core.lockfile.locked_pins`); with only a requirements
file, each requirement's own line is its pin (`flytekit==1.16.31`).
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Tuple

from flytebuild.core.errors import FlytebuildError, LockfileError
from flytebuild.core.lockfile import canonical_name, locked_pins, requirement_name


@dataclass(frozen=True)
class Requirements:
    declared: Tuple[Tuple[str, str], ...]  # (canonical name, requirement line)
    lock_text: Optional[str]
    source: str  # the file the declarations came from (for messages)

    @property
    def names(self) -> Tuple[str, ...]:
        return tuple(name for name, _ in self.declared)

    def pins(self, names: Iterable[str]) -> Tuple[str, ...]:
        wanted = sorted({canonical_name(n) for n in names})
        if not wanted:
            return ()
        if self.lock_text is not None:
            return _locked_pins(self.lock_text, tuple(wanted))
        lines = dict(self.declared)
        return tuple(sorted(lines[n].replace(" ", "") for n in wanted if n in lines))

    def check(self, names: Iterable[str], owner: str, config_file: str) -> None:
        unknown = sorted({canonical_name(n) for n in names} - set(self.names))
        if unknown:
            raise FlytebuildError(
                f"{owner} requires {', '.join(unknown)}, which {self.source} does not declare",
                file=config_file,
                fix=f"add {', '.join(unknown)} to {self.source} (and relock), or fix the spelling",
            )


def parse_requirements_txt(text: str, path: str) -> Tuple[Tuple[str, str], ...]:
    """(canonical name, requirement) per line; options (`-r`, `--index-url`, ...) are skipped."""
    found: Dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            name = requirement_name(line)
        except ValueError:
            raise FlytebuildError(
                f"Line {number} of {path} is not a requirement: {raw.strip()!r}",
                file=path,
                fix="write one PEP 508 requirement per line",
            ) from None
        found[name] = line
    return tuple(sorted(found.items()))


def lockfile_requirements(text: str, path: str) -> Tuple[Tuple[str, str], ...]:
    """The requirements a Pants lockfile was generated from (its `//` metadata header)."""
    header = "\n".join(
        line.lstrip()[2:] for line in text.splitlines() if line.lstrip().startswith("//")
    )
    start, end = header.find("{"), header.rfind("}")
    try:
        metadata = json.loads(header[start : end + 1]) if start >= 0 else {}
        lines = metadata["generated_with_requirements"]
    except (ValueError, KeyError, TypeError):
        raise LockfileError(
            f"{path} has no Pants metadata header listing the requirements it locks",
            file=path,
            fix="also set `requirements = \"<requirements.txt>\"` in the flytebuild configuration",
        ) from None
    return tuple(sorted((requirement_name(r), r) for r in lines))


def load_requirements(root: str, requirements_file: Optional[str], lockfile: Optional[str]) -> Requirements:
    def read(rel: str) -> str:
        try:
            with open(os.path.join(root, rel), encoding="utf-8") as f:
                return f.read()
        except OSError as e:
            raise FlytebuildError(
                f"Cannot read {rel}: {e.strerror}", file=rel, fix="fix `requirements`/`lockfile` in the configuration"
            ) from None

    lock_text = read(lockfile) if lockfile else None
    if requirements_file:
        return Requirements(
            parse_requirements_txt(read(requirements_file), requirements_file), lock_text, requirements_file
        )
    if lock_text is not None and lockfile:
        return Requirements(lockfile_requirements(lock_text, lockfile), lock_text, lockfile)
    return Requirements((), None, "the configuration (no `requirements` or `lockfile`)")


@functools.lru_cache(maxsize=1024)
def _locked_pins(lock_text: str, wanted: Tuple[str, ...]) -> Tuple[str, ...]:
    """Memoized: every module of a project asks for the same few requirement sets."""
    return locked_pins(lock_text, wanted)
