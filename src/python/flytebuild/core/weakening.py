"""Warnings for settings that silently weaken flytebuild's guarantees.

- no lockfile (or Pants resolves disabled): an image's requirements are resolved anew at build time
  and its content tag does not pin their transitive versions, so one tag can name different images;
- an image whose Python major.minor differs from the user environment's: the requirements are
  resolved for the user's interpreter (wheels tagged cp3XY), so the image's Python cannot load them;


Pure text decisions; the front ends say where the setting lives (core/wording.py).
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Optional

LABEL_PYTHON_VERSION = "org.flytebuild.python-version"  # set by `flytebuild base-image`


def unpinned(image: str, requirements: Iterable[str], how_to_pin: str) -> Optional[str]:
    reqs = sorted(requirements)
    if not reqs:
        return None
    return (f"{image}: requirements {', '.join(reqs)} are not locked, so its content tag does not pin their "
            f"transitive versions (a rebuild can bake other versions under the same tag); {how_to_pin}")


def python_of_base(config: Mapping[str, Any]) -> Optional[str]:
    """major.minor of a base image's Python, when the image says: our label, or the official images'
    PYTHON_VERSION environment variable."""
    inner = config.get("config") or {}
    label = (inner.get("Labels") or {}).get(LABEL_PYTHON_VERSION)
    if label:
        return ".".join(str(label).split(".")[:2])
    for item in inner.get("Env") or []:
        if item.startswith("PYTHON_VERSION="):
            return ".".join(item.split("=", 1)[1].split(".")[:2])
    return None


def major_minor_of_constraints(constraints: Iterable[str]) -> Optional[str]:
    """`3.11` from interpreter constraints that allow exactly one major.minor (`CPython==3.11.*`)."""
    found = set()
    for c in constraints:
        m = re.fullmatch(r"\s*(?:CPython)?\s*==\s*(\d+)\.(\d+)(?:\.\*)?\s*", c)
        if not m:
            return None
        found.add(f"{m.group(1)}.{m.group(2)}")
    return found.pop() if len(found) == 1 else None


def python_mismatch(image: str, base: str, image_python: Optional[str], user_python: Optional[str]) -> Optional[str]:
    if not image_python or not user_python or image_python == user_python:
        return None
    return (f"{image}: its base {base} has Python {image_python}, but requirements are resolved for the user "
            f"environment's Python {user_python}: compiled wheels will not import in the image; use a base "
            f"with Python {user_python} (e.g. `flytebuild base-image --from-debian` on a machine with it)")


