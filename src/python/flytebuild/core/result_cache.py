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
import threading
from collections import OrderedDict
from typing import Any, Callable, Generic, Optional, TypeVar

T = TypeVar("T")


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


class Memo(Generic[T]):
    """What a long-lived process (pantsd) made from entries, kept in memory by key: after an edit, every unchanged
    workflow's answer is a lookup, not a file read and a decode. A key names its inputs' content, so a value is
    never stale; the least recently used go once the values weigh more than `budget` (`weigh`: bytes, about).
    Values are shared: keep them immutable."""

    def __init__(self, budget: int, weigh: Callable[[T], int]):
        self._budget = budget
        self._weigh = weigh
        self._values: "OrderedDict[str, tuple[T, int]]" = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()  # concurrent goals run rules on several threads

    def get(self, key: str) -> Optional[T]:
        with self._lock:
            found = self._values.get(key)
            if found is None:
                return None
            self._values.move_to_end(key)
            return found[0]

    def put(self, key: str, value: T) -> T:
        weight = self._weigh(value)
        with self._lock:
            old = self._values.pop(key, None)
            self._weight += weight - (old[1] if old else 0)
            self._values[key] = (value, weight)
            while self._weight > self._budget and len(self._values) > 1:
                _, (_, dropped) = self._values.popitem(last=False)
                self._weight -= dropped
        return value

    def get_or_read(self, key: str, cache: ResultCache, make: Callable[[str], T]) -> Optional[T]:
        """The value for `key`: from memory, else `make(text)` of the cache's entry (kept); None when neither has it."""
        value = self.get(key)
        if value is not None:
            return value
        text = cache.get(key)
        return None if text is None else self.put(key, make(text))
