"""Where the CLI keeps what it may forget: the user's cache directory for flytebuild.

`$FLYTEBUILD_CACHE_DIR`, else `$XDG_CACHE_HOME/flytebuild`, else `~/.cache/flytebuild`; FLYTEBUILD_CACHE_DIR=""
turns every CLI cache off (Bazel actions do: their inputs are already content-addressed, their outputs cached).
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Optional


def user_cache_dir() -> Optional[str]:
    base = os.environ.get("FLYTEBUILD_CACHE_DIR")
    if base is None:
        base = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "flytebuild")
    return base or None


def cache_path(*parts: str) -> Optional[str]:
    base = user_cache_dir()
    return os.path.join(base, *parts) if base else None


class ParsedImports(dict):
    """`content digest:module:kind → imported names` (core.imports.ImportGraph `parsed`), kept across runs in
    the cache dir so an unchanged file is not parsed again. Keys are content, so an entry is never stale;
    entries this run did not use are dropped once the file would grow past `_LIMIT`."""

    _LIMIT = 50_000

    def __init__(self, path: Optional[str]) -> None:
        super().__init__()
        self.path = path
        self._old: dict = {}
        if path:
            try:
                with open(path, "r", encoding="utf-8") as f:
                    data = json.load(f)
                if isinstance(data, dict) and data.get("format") == 1 and isinstance(data.get("entries"), dict):
                    self._old = data["entries"]
            except (OSError, ValueError):
                pass  # a missing or corrupt cache only costs parsing time

    def get(self, key, default=None):
        found = super().get(key)
        if found is None:
            found = self._old.get(key)
            if found is not None:
                self[key] = found
        return default if found is None else found

    def save(self) -> None:
        if not self.path or all(k in self._old for k in self):
            return  # nothing new to remember
        entries = dict(self) if len(self._old) + len(self) > self._LIMIT else {**self._old, **self}
        directory = os.path.dirname(self.path)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".imports-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"format": 1, "entries": entries}, f, sort_keys=True, separators=(",", ":"))
            os.replace(tmp, self.path)  # atomic: a crash never leaves a truncated file
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
