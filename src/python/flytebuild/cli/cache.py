"""Where the CLI keeps what it may forget: the user's cache directory for flytebuild.

`$FLYTEBUILD_CACHE_DIR`, else `$XDG_CACHE_HOME/flytebuild`, else `~/.cache/flytebuild`; FLYTEBUILD_CACHE_DIR=""
turns every CLI cache off (Bazel actions do: their inputs are already content-addressed, their outputs cached).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import tempfile
import typing
from importlib import resources
from typing import Any, Callable, Mapping, Optional, Tuple, Union

from blake3 import blake3

from flytebuild.core.result_cache import ResultCache


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
                # one dumps and one write: json.dump writes chunk by chunk, thousands of calls for this file
                f.write(json.dumps({"format": 1, "entries": entries}, sort_keys=True, separators=(",", ":")))
            os.replace(tmp, self.path)  # atomic: a crash never leaves a truncated file
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


class JsonCache(ResultCache):
    """core/result_cache.py's store, read as JSON in one parse (its `get` parses once to vet an entry and hands
    back text: twice the work for entries read by the hundred, such as the per-workflow plans)."""

    def load(self, key: str) -> Optional[Any]:
        if self.directory is None:
            return None
        try:
            with open(self._path(key), encoding="utf-8") as f:
                return json.load(f)
        except (OSError, UnicodeDecodeError, ValueError):
            return None  # a damaged entry (a full disk, a hand edit) is a miss, never a crash

    def store(self, key: str, value: Any) -> None:
        self.put(key, json.dumps(value, sort_keys=True, separators=(",", ":")))


@functools.lru_cache(maxsize=None)
def source_fingerprint(*packages: str) -> str:
    """blake3 over the modules of `packages`: part of the key of anything their code decides (a plan made by
    another flytebuild is not replayed). Content, not mtimes: a reinstall of the same code still hits."""
    h = blake3()
    for package in packages:
        for path in sorted((p for p in resources.files(package).iterdir() if p.name.endswith(".py")), key=_name):
            data = path.read_bytes()
            h.update(f"{package}/{path.name}\0{len(data)}\0".encode("utf-8"))
            h.update(data)
    return h.hexdigest()


def _name(path: Any) -> str:
    return path.name


# --- frozen dataclasses as JSON: what `dataclasses.asdict` writes, read back into the same value ------------------


def to_json(value: Any) -> Any:
    return dataclasses.asdict(value)


def from_json(cls: type, data: Mapping[str, Any]) -> Any:
    """The inverse of `to_json` for a frozen dataclass of strings, numbers, Optionals, tuples and dataclasses."""
    values = dict(data)
    for name, convert in _converters(cls):
        values[name] = convert(values[name])
    if not _plain(cls) or values.keys() != _names(cls):
        return cls(**values)  # raises TypeError on a missing or unknown field: a damaged entry
    # What copy and pickle do: a frozen dataclass's __init__ sets every field through object.__setattr__, a third of
    # a replay's time, and these values were written from a value of this very class (a key covers its code).
    value = object.__new__(cls)
    value.__dict__.update(values)
    return value


@functools.lru_cache(maxsize=None)
def _plain(cls: type) -> bool:
    """No __post_init__ and no __slots__: given every field, __init__ only stores them."""
    return not hasattr(cls, "__post_init__") and not hasattr(cls, "__slots__")


@functools.lru_cache(maxsize=None)
def _names(cls: type) -> frozenset:
    return frozenset(f.name for f in dataclasses.fields(cls))


Convert = Optional[Callable[[Any], Any]]


@functools.lru_cache(maxsize=None)
def _converters(cls: type) -> Tuple[Tuple[str, Callable[[Any], Any]], ...]:
    # Per class once, and only the fields whose JSON value is not already the Python value (str, int, None are):
    # a hundred plans are decoded per command.
    hints = typing.get_type_hints(cls)
    found = ((f.name, _converter(hints[f.name])) for f in dataclasses.fields(cls))
    return tuple((name, convert) for name, convert in found if convert is not None)


def _converter(tp: Any) -> Convert:
    if dataclasses.is_dataclass(tp):
        return functools.partial(from_json, tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union:
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"no JSON decoding for {tp}: a Union other than Optional")
        item = _converter(inner[0])
        return None if item is None else (lambda v: None if v is None else item(v))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            each = _converter(args[0])
            return tuple if each is None else (lambda v: tuple(each(x) for x in v))
        items = [_converter(a) for a in args]
        return lambda v: tuple(x if c is None else c(x) for c, x in zip(items, v))
    if tp in (str, int, float, bool, type(None)):
        return None
    raise TypeError(f"no JSON decoding for {tp}")
