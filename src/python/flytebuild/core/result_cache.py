"""A content-addressed store of what a user-environment process answered, so the same question is not asked twice.

The key covers everything the answer can depend on (the request, the digests of every file the process can
import, the environment's identity, the runtime script itself): a changed input is a new key, never a stale answer,
so nothing is ever invalidated. Front ends use it to partition work per workflow: a batch carries only the
workflows whose key missed, the rest are read back here (Pants' own process cache cannot answer "which of these
would hit"). Entries are small JSON texts under `<dir>/<2 hex>/<kind>-<sha256>.json`, written atomically; a
directory that cannot be written only costs the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any, Optional


def result_key(kind: str, *parts: Any) -> str:
    """A key for `kind` (e.g. "introspect") over JSON-able parts; bytes are hashed first."""
    h = hashlib.sha256(kind.encode("utf-8") + b"\0")
    for part in parts:
        if isinstance(part, bytes):
            part = {"sha256": hashlib.sha256(part).hexdigest()}
        h.update(json.dumps(part, sort_keys=True, separators=(",", ":")).encode("utf-8") + b"\0")
    return f"{kind}-{h.hexdigest()}"  # the kind in the name: a person (or a test) can tell the entries apart


class ResultCache:
    def __init__(self, directory: Optional[str]):
        self.directory = directory  # None: every lookup misses, nothing is written

    def _path(self, key: str) -> str:
        assert self.directory is not None
        return os.path.join(self.directory, key.rsplit("-", 1)[-1][:2], f"{key}.json")

    def get(self, key: str) -> Optional[str]:
        if self.directory is None:
            return None
        try:
            with open(self._path(key), encoding="utf-8") as f:
                text = f.read()
            json.loads(text)  # a damaged entry (a full disk, a hand edit) is a miss, never a crash
            return text
        except (OSError, UnicodeDecodeError, ValueError):
            return None

    def put(self, key: str, text: str) -> None:
        if self.directory is None:
            return
        path = self._path(key)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, path)
        except OSError:
            pass
