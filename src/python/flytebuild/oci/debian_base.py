"""A Python base image made from this machine's own Debian packages: no network, no Docker.

`flytebuild base-image --from-debian` (and the tests' registry fixtures) use it. The files of
`python3 dash coreutils bash libc-bin libstdc++6` and of everything they depend on (dpkg's own
lists) go into one reproducible layer (symlinks kept, merged-/usr links, mtime 0, uid/gid 0), plus
a minimal /etc/passwd, /tmp and /root. The same installed package versions give the same digest.
The layer is cached by those versions; writing or pushing the image afterwards takes a second.
The image's Python version is recorded as the `org.flytebuild.python-version` label.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Dict, List, Sequence, Set, Tuple

from flytebuild.oci.image import Image, build_image
from flytebuild.oci.layers import Layer

# libstdc++6: manylinux wheels with C++ extensions (grpcio, used by flytekit) link against it.
PACKAGES = ("python3", "dash", "coreutils", "bash", "libc-bin", "libstdc++6")
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
LABEL_PYTHON_VERSION = "org.flytebuild.python-version"
_MERGED = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}


class DebianBaseError(RuntimeError):
    pass


def _installed(pkg: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    return out.returncode == 0 and "install ok installed" in out.stdout


def closure(packages: Sequence[str] = PACKAGES) -> Dict[str, str]:
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


def base_layer(cache: Path, packages: Sequence[str] = PACKAGES) -> Layer:
    """The base image's single layer, built once per set of installed package versions (cached in `cache`)."""
    cache = Path(cache)
    packages = closure(packages)
    key = hashlib.sha256(json.dumps(packages, sort_keys=True).encode() + b"v1").hexdigest()[:16]
    blob = cache / f"{key}.tar.gz"
    meta = cache / f"{key}.json"
    if blob.exists() and meta.exists():
        m = json.loads(meta.read_text())
        return Layer(m["digest"], m["diff_id"], m["size"], path=blob, name="debian-python3")
    raw = _tar(files_of(packages))
    gz = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=0, compresslevel=6) as f:
        f.write(raw)
    data = gz.getvalue()
    cache.mkdir(parents=True, exist_ok=True)
    tmp = blob.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, blob)
    m = {"digest": "sha256:" + hashlib.sha256(data).hexdigest(),
         "diff_id": "sha256:" + hashlib.sha256(raw).hexdigest(), "size": len(data), "packages": packages}
    meta.write_text(json.dumps(m, sort_keys=True))
    return Layer(m["digest"], m["diff_id"], m["size"], path=blob, name="debian-python3")


def python_version() -> str:
    """major.minor of the machine's /usr/bin/python3 (the one the image gets)."""
    out = subprocess.run(["/usr/bin/python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True)
    return out.stdout.strip()


def debian_python_image(cache: Path, packages: Sequence[str] = PACKAGES) -> Image:
    """The image: the packages' layer, PATH/LANG set, `python3` as its command."""
    if not os.path.exists("/usr/bin/dpkg-query"):
        raise DebianBaseError("--from-debian reads the installed packages with dpkg: this machine has no dpkg. "
                              "Fix: run it on a Debian/Ubuntu machine with python3 installed, or use any Python "
                              "base image (a registry reference, oci:<dir>, docker-archive:<tar>)")
    missing = [p for p in packages if not _installed(p)]
    if missing:
        raise DebianBaseError(f"Debian package(s) {', '.join(missing)} are not installed. "
                              f"Fix: apt-get install -y {' '.join(missing)}")
    layer = base_layer(cache, packages)
    labels = {"org.flytebuild.base": "debian-packages", LABEL_PYTHON_VERSION: python_version()}
    return build_image([layer], None, env=ENV, cmd=["/usr/bin/python3"], labels=labels, created_by="debian packages")
