"""A Python 3.11 base image made from this machine's own Debian packages (no internet needed).

The files of `python3 dash coreutils bash libc-bin libstdc++6` and everything they depend on (dpkg's own
lists) go into one reproducible layer (symlinks kept, merged-/usr links, mtime 0), plus a minimal
/etc/passwd, /tmp and /root. The layer is built once and cached in `.bootstrap/cache/base-image/`
(keyed by the installed package versions); pushing it to a registry takes a second.

    python tests/support/base_image.py 127.0.0.1:5000 [flytebuild/python:3.11]
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Dict, List, Set, Tuple

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src" / "python"))

from flytebuild.oci import build_image, publish  # noqa: E402
from flytebuild.oci.layers import Layer  # noqa: E402

# libstdc++6: manylinux wheels with C++ extensions (grpcio, used by flytekit) link against it.
PACKAGES = ("python3", "dash", "coreutils", "bash", "libc-bin", "libstdc++6")
CACHE = REPO / ".bootstrap" / "cache" / "base-image"
DEFAULT_REPOSITORY = "flytebuild/python:3.11"
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
_MERGED = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}


def _installed(pkg: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    return out.returncode == 0 and "install ok installed" in out.stdout


def closure(packages=PACKAGES) -> Dict[str, str]:
    """Installed packages reachable through Depends/Pre-Depends -> version."""
    seen: Dict[str, str] = {}
    todo = list(packages)
    while todo:
        pkg = todo.pop()
        if pkg in seen:
            continue
        out = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Version}\t${Depends}, ${Pre-Depends}", pkg],
                             capture_output=True, text=True)
        if out.returncode != 0 or not out.stdout:
            continue
        line = out.stdout.splitlines()[0]
        name, version, deps = line.split("\t")
        seen[pkg] = version
        for alt_group in deps.split(","):
            for alt in alt_group.split("|"):
                dep = alt.strip().split(" ")[0].split(":")[0]
                if dep and _installed(dep):
                    todo.append(dep)
                    break
    return dict(sorted(seen.items()))


def _normalize(path: str) -> str:
    rel = path.lstrip("/")
    top, _, rest = rel.partition("/")
    if top in _MERGED and os.path.islink("/" + top):
        rel = _MERGED[top] + ("/" + rest if rest else "")
    return rel


def files_of(packages: Dict[str, str]) -> List[str]:
    paths: Set[str] = set()
    for pkg in packages:
        out = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True, check=True)
        for p in out.stdout.splitlines():
            p = p.strip()
            if not p.startswith("/") or p in ("/", "/."):
                continue
            if p.startswith(("/usr/share/doc", "/usr/share/man", "/usr/share/info", "/usr/share/locale")):
                continue
            paths.add(p)
    return sorted(paths)


def _tar(paths: List[str]) -> bytes:
    entries: Dict[str, Tuple[str, object]] = {}  # rel -> (kind, payload)
    for link, target in _MERGED.items():
        entries[link] = ("symlink", target)
    for p in paths:
        rel = _normalize(p)
        real = "/" + rel
        if os.path.islink(real):
            entries[rel] = ("symlink", os.readlink(real))
        elif os.path.isdir(real):
            entries.setdefault(rel, ("dir", os.stat(real).st_mode & 0o7777))
        elif os.path.isfile(real):
            entries[rel] = ("file", real)
    passwd = b"root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    group = b"root:x:0:\nnogroup:x:65534:\n"
    entries["etc/passwd"] = ("bytes", passwd)
    entries["etc/group"] = ("bytes", group)
    entries["tmp"] = ("dir", 0o1777)
    entries["root"] = ("dir", 0o700)
    # parents of everything, as directories
    for rel in list(entries):
        parent = os.path.dirname(rel)
        while parent and parent not in entries:
            entries[parent] = ("dir", 0o755)
            parent = os.path.dirname(parent)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for rel in sorted(entries, key=lambda n: n.split("/")):
            kind, payload = entries[rel]
            ti = tarfile.TarInfo(rel)
            ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 0, 0, 0, "", ""
            if kind == "symlink":
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, str(payload), 0o777
                tar.addfile(ti)
            elif kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, int(payload)  # type: ignore[arg-type]
                tar.addfile(ti)
            else:
                data = payload if kind == "bytes" else Path(str(payload)).read_bytes()
                st_mode = 0o644 if kind == "bytes" else os.stat(str(payload)).st_mode
                ti.mode = 0o755 if st_mode & 0o111 else 0o644
                ti.size = len(data)  # type: ignore[arg-type]
                tar.addfile(ti, io.BytesIO(data))  # type: ignore[arg-type]
    return buf.getvalue()


def base_layer() -> Layer:
    """The base image's single layer, built once per set of installed package versions."""
    packages = closure()
    key = hashlib.sha256(json.dumps(packages, sort_keys=True).encode() + b"v1").hexdigest()[:16]
    blob = CACHE / f"{key}.tar.gz"
    meta = CACHE / f"{key}.json"
    if blob.exists() and meta.exists():
        m = json.loads(meta.read_text())
        return Layer(m["digest"], m["diff_id"], m["size"], path=blob, name="debian-python3")
    raw = _tar(files_of(packages))
    gz = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=0, compresslevel=6) as f:
        f.write(raw)
    data = gz.getvalue()
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = blob.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, blob)
    m = {"digest": "sha256:" + hashlib.sha256(data).hexdigest(),
         "diff_id": "sha256:" + hashlib.sha256(raw).hexdigest(), "size": len(data), "packages": packages}
    meta.write_text(json.dumps(m, sort_keys=True))
    return Layer(m["digest"], m["diff_id"], m["size"], path=blob, name="debian-python3")


def push_base_image(registry: str, repository: str = DEFAULT_REPOSITORY, cache_dir=None) -> str:
    """Push the base image to `registry` (e.g. "127.0.0.1:5000"); returns the full reference."""
    layer = base_layer()
    image = build_image([layer], None, env=ENV, cmd=["/usr/bin/python3"],
                        labels={"org.flytebuild.base": "debian-packages"}, created_by="debian packages")
    ref = f"{registry}/{repository}"
    publish(image, ref, cache_dir=cache_dir or CACHE / "oci")
    return ref


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(push_base_image(sys.argv[1], *(sys.argv[2:3] or [DEFAULT_REPOSITORY])))
