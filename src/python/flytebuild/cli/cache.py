"""Where the CLI keeps what it may forget: the user's cache directory for flytebuild.

`$FLYTEBUILD_CACHE_DIR`, else `$XDG_CACHE_HOME/flytebuild`, else `~/.cache/flytebuild`; FLYTEBUILD_CACHE_DIR=""
turns every CLI cache off (Bazel actions do: their inputs are already content-addressed, their outputs cached).
"""
from __future__ import annotations

import os
from typing import Optional


def user_cache_dir() -> Optional[str]:
    base = os.environ.get("FLYTEBUILD_CACHE_DIR")
    if base is None:
        base = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "flytebuild")
    return base or None


def cache_path(*parts: str) -> Optional[str]:
    base = user_cache_dir()
    return os.path.join(base, *parts) if base else None
