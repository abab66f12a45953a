"""Deterministic layer tarballs.

Same entries in -> byte-identical gzip out, whatever the source files' mtimes, owners, umask or
the order the entries were given in: entries are sorted by path, parent directories are added,
every header has mtime 0, uid/gid 0, empty uname/gname and a normalized mode (0644 for files,
0755 for directories and executables), the tar is GNU format (long names via ././@LongLink,
never PAX headers, which would carry times) and gzip has mtime 0 and no file name.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import posixpath
import stat
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Dict, Iterable, Optional, Sequence, Tuple, Union


def temp_path(dest: Path) -> Path:
    """A sibling of `dest` to write before renaming into place; unique per process AND thread, because
    images built concurrently share layers and blobs in one cache."""
    return dest.with_name(f"{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")


LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
FILE_MODE = 0o644
EXEC_MODE = 0o755
DIR_MODE = 0o755

Source = Union[bytes, str, "os.PathLike[str]"]
# (path inside the image, content bytes or a file path on disk, mode or None)
EntrySpec = Union[Tuple[str, Source], Tuple[str, Source, Optional[int]]]


class LayerError(ValueError):
    """A layer entry is invalid (bad path, conflicting duplicates, unreadable source)."""


@dataclass(frozen=True)
class Layer:
    """A built layer blob. Exactly one of `data` / `path` holds the compressed bytes."""

    digest: str  # sha256 of the compressed blob (the blob / descriptor digest)
    diff_id: str  # sha256 of the uncompressed tar (goes into the config's rootfs)
    size: int  # compressed size in bytes
    data: Optional[bytes] = None
    path: Optional[Path] = None
    media_type: str = LAYER_MEDIA_TYPE
    name: str = ""  # shown in history and progress, e.g. "sources"

    def open(self) -> BinaryIO:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return open(self.path, "rb")

    def read_bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()

    def descriptor(self) -> Dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


def normalize_path(path: str) -> str:
    """'/app/x.py' -> 'app/x.py'; rejects empty paths and '..' escapes."""
    p = str(path).replace("\\", "/")
    norm = posixpath.normpath("/" + p.lstrip("/")).lstrip("/")
    if not norm or norm == ".":
        raise LayerError(f"layer entry {path!r}: empty path inside the image")
    if any(part == ".." for part in p.split("/")):
        raise LayerError(f"layer entry {path!r}: '..' is not allowed in a path inside the image")
    return norm


def normalize_mode(mode: Optional[int]) -> int:
    return EXEC_MODE if mode is not None and mode & 0o111 else FILE_MODE


class _HashingWriter(io.RawIOBase):
    """Write-through that counts and sha256-hashes what passes."""

    def __init__(self, sink: Optional[BinaryIO]):
        self.sink = sink
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        mv = memoryview(b)
        self.sha.update(mv)
        self.size += len(mv)
        if self.sink is not None:
            self.sink.write(mv)
        return len(mv)


@dataclass(frozen=True)
class _Entry:
    path: str
    source: Union[bytes, Path]
    mode: int
    size: int


def _resolve(entries: Iterable[EntrySpec]) -> Dict[str, _Entry]:
    files: Dict[str, _Entry] = {}
    for spec in entries:
        if len(spec) == 2:
            path, source = spec  # type: ignore[misc]
            mode = None
        else:
            path, source, mode = spec  # type: ignore[misc]
        norm = normalize_path(path)
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            entry = _Entry(norm, data, normalize_mode(mode), len(data))
        else:
            src = Path(source)
            try:
                st = src.stat()
            except OSError as e:
                raise LayerError(f"layer entry {norm!r}: cannot read source file {src}: {e.strerror}") from None
            if not stat.S_ISREG(st.st_mode):
                raise LayerError(f"layer entry {norm!r}: source {src} is not a regular file")
            entry = _Entry(norm, src, normalize_mode(st.st_mode if mode is None else mode), st.st_size)
        prev = files.get(norm)
        if prev is not None and (prev.mode != entry.mode or _content(prev) != _content(entry)):
            raise LayerError(f"layer entry {norm!r} is given twice with different content or mode")
        files[norm] = entry
    for norm in list(files):
        parent = posixpath.dirname(norm)
        while parent:
            if parent in files:
                raise LayerError(f"layer entry {parent!r} is a file but also a parent directory of {norm!r}")
            parent = posixpath.dirname(parent)
    return files


def _content(e: _Entry) -> bytes:
    return e.source if isinstance(e.source, bytes) else e.source.read_bytes()


def _tarinfo(name: str, mode: int, size: int, is_dir: bool) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    ti.mode = mode
    ti.size = 0 if is_dir else size
    ti.mtime = 0
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def write_tar(entries: Iterable[EntrySpec], out: BinaryIO) -> None:
    """Write the deterministic (uncompressed) tar of `entries` to `out`."""
    files = _resolve(entries)
    dirs = set()
    for norm in files:
        parent = posixpath.dirname(norm)
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = posixpath.dirname(parent)
    names = sorted(list(files) + list(dirs), key=lambda n: n.split("/"))
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT, encoding="utf-8") as tar:
        for name in names:
            if name in dirs:
                tar.addfile(_tarinfo(name, DIR_MODE, 0, True))
                continue
            e = files[name]
            if isinstance(e.source, bytes):
                tar.addfile(_tarinfo(name, e.mode, e.size, False), io.BytesIO(e.source))
            else:
                with open(e.source, "rb") as fh:
                    size = os.fstat(fh.fileno()).st_size
                    if size != e.size:
                        raise LayerError(f"layer entry {name!r}: source {e.source} changed while building")
                    tar.addfile(_tarinfo(name, e.mode, size, False), fh)


def build_layer(
    entries: Sequence[EntrySpec],
    out_path: Optional[Union[str, "os.PathLike[str]"]] = None,
    *,
    name: str = "",
    compresslevel: int = 6,
) -> Layer:
    """Build a gzip layer from (path inside image, bytes or source file path[, mode]) entries.

    With `out_path` the blob is streamed to that file (for large layers) and `Layer.path` is set;
    otherwise the blob is kept in memory in `Layer.data`.
    """
    sink: BinaryIO
    if out_path is not None:
        out = Path(out_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(out)
        sink = open(tmp, "wb")
    else:
        sink = io.BytesIO()
    try:
        compressed = _HashingWriter(sink)
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=compresslevel)
        uncompressed = _HashingWriter(gz)  # type: ignore[arg-type]
        write_tar(entries, uncompressed)  # type: ignore[arg-type]
        gz.close()
    except BaseException:
        sink.close()
        if out_path is not None:
            tmp.unlink(missing_ok=True)
        raise
    digest = "sha256:" + compressed.sha.hexdigest()
    diff_id = "sha256:" + uncompressed.sha.hexdigest()
    if out_path is not None:
        sink.close()
        os.replace(tmp, out)
        return Layer(digest, diff_id, compressed.size, path=out, name=name)
    assert isinstance(sink, io.BytesIO)
    return Layer(digest, diff_id, compressed.size, data=sink.getvalue(), name=name)
