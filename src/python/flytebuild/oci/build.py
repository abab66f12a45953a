"""Assemble a Flyte task image from build facts, without a daemon and without running anything in it.

Callable without Pants (the CLI and Bazel rules use it as is): inputs are a pulled base image,
installed-wheel chroots (one per distribution, as pex lays them out: a directory or the zip that a
PACKED pex keeps under `.deps/<wheel>`), first-party files at their import paths, env and labels.

Layers, bottom to top (least to most often changing, so a source edit re-uploads one small layer):
  1. one per distribution, into `site_packages`: identical for every image that pins that wheel
     (same digest, stored once per registry, cached locally by the wheel's sha256);
  2. `scripts`: console scripts of the distributions (`pyflyte-execute`, `pyflyte-fast-execute`,
     ...) in `bin_dir`, run by the image's own `python`;
  3. `sources`: exactly the first-party closure, under `workdir`, plus its manifest.

The config puts `bin_dir` on PATH and `workdir` and `site_packages` on PYTHONPATH, and labels the
image with its fingerprint, the digest of its source manifest and the list of baked files, which
`flyte-verify` reads without pulling any layer.
"""
from __future__ import annotations

import configparser
import errno
import hashlib
import json
import os
import posixpath
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from flytebuild.oci.image import BaseImage, Image, build_image, canonical_json, sha256_digest
from flytebuild.oci.layers import EXEC_MODE, Layer, LayerError, build_layer, temp_path

DEFAULT_WORKDIR = "/root"  # where flytekit's own images (ImageSpec) put user code
DEFAULT_SITE_PACKAGES = "/opt/flytebuild/site-packages"
DEFAULT_BIN_DIR = "/opt/flytebuild/bin"
DEFAULT_PYTHON = "/usr/bin/python3"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SOURCE_MANIFEST_FILE = "/opt/flytebuild/sources.json"

LABEL_SOURCE_FILES = "org.flytebuild.source-files"  # JSON list of baked files, relative to workdir
LABEL_DISTRIBUTIONS = "org.flytebuild.distributions"  # JSON list of "name==version"
LABEL_WORKDIR = "org.flytebuild.workdir"
LABEL_PYTHON = "org.flytebuild.python"

# Bump when the bytes of a layer built from the same inputs would change: it keys the layer cache.
LAYOUT_VERSION = "1"

# progress(layer name, status, size): status "cached" | "built"
BuildProgress = Callable[[str, str, int], None]


class BuildError(ValueError):
    """Inputs that cannot make an image (unreadable distribution, clashing paths, ...)."""


@dataclass(frozen=True)
class Distribution:
    """An installed wheel: a chroot directory or a zip of one (pex PACKED `.deps/<wheel>`)."""

    name: str  # the wheel file name, e.g. "flytekit-1.16.31-py3-none-any.whl"
    path: Path
    sha256: Optional[str] = None  # of the zip, when the caller knows it (keys the layer cache)


@dataclass(frozen=True)
class SourceFile:
    path: str  # import path relative to the image's source directory, e.g. "baked/data.py"
    source: Union[bytes, Path]


@dataclass(frozen=True)
class ImageInputs:
    distributions: Tuple[Distribution, ...] = ()
    sources: Tuple[SourceFile, ...] = ()
    python: str = DEFAULT_PYTHON
    env: Tuple[Tuple[str, str], ...] = ()
    labels: Tuple[Tuple[str, str], ...] = ()
    fingerprint: Optional[str] = None
    workdir: str = DEFAULT_WORKDIR
    site_packages: str = DEFAULT_SITE_PACKAGES
    bin_dir: str = DEFAULT_BIN_DIR
    compresslevel: int = 6
    max_distribution_layers: int = 24


@dataclass(frozen=True)
class BuiltImage:
    image: Image
    source_manifest: bytes  # canonical JSON {"workdir", "files": {path: sha256}}
    source_manifest_digest: str
    console_scripts: Tuple[str, ...]
    distributions: Tuple[str, ...]  # "name==version"
    layer_kinds: Tuple[Tuple[str, str], ...] = field(default=())  # (layer digest, "distribution"|"scripts"|"sources")

    @property
    def sources_layer(self) -> Layer:
        return self.image.layers[-1]


# --------------------------------------------------------------------------- distributions


@dataclass(frozen=True)
class _DistFiles:
    files: Tuple[Tuple[str, bytes, int], ...]  # (path relative to site-packages, content, mode)
    project: str
    version: str
    console_scripts: Tuple[Tuple[str, str], ...]  # (script name, "module:attr")


def _skip(rel: str) -> bool:
    # pex bookkeeping and the `.prefix` (bin scripts with the build machine's shebang, data files)
    # stay out: scripts are generated for the image's own interpreter.
    top = rel.split("/", 1)[0]
    return top in (".layout.json", ".prefix") or "/__pycache__/" in f"/{rel}" or rel.endswith(".pyc")


def _read_distribution(dist: Distribution) -> _DistFiles:
    files: List[Tuple[str, bytes, int]] = []
    path = Path(dist.path)
    try:
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs.sort()
                for n in sorted(names):
                    full = Path(root) / n
                    rel = full.relative_to(path).as_posix()
                    if _skip(rel) or full.is_symlink() and not full.exists():
                        continue
                    files.append((rel, full.read_bytes(), full.stat().st_mode))
        else:
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if info.is_dir() or _skip(info.filename):
                        continue
                    mode = (info.external_attr >> 16) & 0o777
                    files.append((info.filename, zf.read(info), mode))
    except (OSError, zipfile.BadZipFile) as e:
        raise BuildError(f"distribution {dist.name}: cannot read {path}: {e}") from None
    dist_info = sorted({rel.split("/", 1)[0] for rel, _, _ in files if rel.split("/", 1)[0].endswith(".dist-info")})
    if not dist_info:
        raise BuildError(f"distribution {dist.name} at {path} has no .dist-info directory: not an installed wheel")
    by_path = {rel: data for rel, data, _ in files}
    meta = by_path.get(f"{dist_info[0]}/METADATA", b"").decode("utf-8", "replace")
    project = _header(meta, "Name") or dist.name.split("-")[0]
    version = _header(meta, "Version") or ""
    scripts: List[Tuple[str, str]] = []
    eps = by_path.get(f"{dist_info[0]}/entry_points.txt")
    if eps:
        cp = configparser.ConfigParser(delimiters=("=",), interpolation=None)
        cp.optionxform = str  # type: ignore[assignment]  # script names are case-sensitive
        cp.read_string(eps.decode("utf-8"))
        if cp.has_section("console_scripts"):
            scripts = sorted((k.strip(), v.strip()) for k, v in cp.items("console_scripts"))
    return _DistFiles(tuple(sorted(files)), project, version, tuple(scripts))


def _header(metadata: str, key: str) -> Optional[str]:
    for line in metadata.splitlines():
        if not line.strip():
            break  # headers end at the first blank line
        k, _, v = line.partition(":")
        if k.strip().lower() == key.lower():
            return v.strip()
    return None


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _tree_sha256(path: Path) -> str:
    h = hashlib.sha256()
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for n in sorted(names):
            full = Path(root) / n
            if full.is_file():
                h.update(full.relative_to(path).as_posix().encode() + b"\0")
                h.update(str(os.access(full, os.X_OK)).encode() + b"\0")
                h.update(hashlib.sha256(full.read_bytes()).digest())
    return h.hexdigest()


class LayerCache:
    """Built distribution layers on disk, keyed by the wheel's content and the layout.

    Blobs live in `<dir>/blobs/sha256/<hex>`, the same content-addressed store RegistryClient
    uses for pulled blobs, so publishing and OCI layouts read them from one place.
    """

    def __init__(self, directory: Union[str, Path]):
        self.dir = Path(directory)

    def _meta(self, key: str) -> Path:
        return self.dir / "layers" / f"{key}.json"

    def get(self, key: str) -> Optional[Tuple[Layer, Dict[str, object]]]:
        try:
            meta = json.loads(self._meta(key).read_text())
        except (OSError, ValueError):
            return None
        blob = self.dir / "blobs" / "sha256" / meta["digest"].split(":", 1)[1]
        if not blob.exists() or blob.stat().st_size != meta["size"]:
            return None
        layer = Layer(meta["digest"], meta["diff_id"], meta["size"], path=blob, name=meta["name"])
        return layer, meta

    def put(self, key: str, build: Callable[[Path], Layer], extra: Mapping[str, object]) -> Layer:
        tmp_dir = self.dir / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(tmp_dir / f"{key}.tgz")
        layer = build(tmp)
        blob = self.dir / "blobs" / "sha256" / layer.digest.split(":", 1)[1]
        blob.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, blob)
        meta = {"digest": layer.digest, "diff_id": layer.diff_id, "size": layer.size, "name": layer.name, **extra}
        self._meta(key).parent.mkdir(parents=True, exist_ok=True)
        tmp_meta = temp_path(self._meta(key))
        tmp_meta.write_text(json.dumps(meta, sort_keys=True))
        os.replace(tmp_meta, self._meta(key))
        return Layer(layer.digest, layer.diff_id, layer.size, path=blob, name=layer.name)


@dataclass(frozen=True)
class DistributionLayer:
    """One layer holding one or more installed wheels."""

    layer: Layer
    members: Tuple[Tuple[str, str], ...]  # (project, version)
    console_scripts: Tuple[Tuple[str, str, str], ...]  # (script, entry point, project)
    cached: bool


def _cache_key(dist: Distribution, site_packages: str, compresslevel: int) -> str:
    path = Path(dist.path)
    content = dist.sha256 or (_tree_sha256(path) if path.is_dir() else _sha256_file(path))
    return hashlib.sha256(
        "\0".join([LAYOUT_VERSION, site_packages, str(compresslevel), dist.name, content]).encode()
    ).hexdigest()


def _group_key(group: Sequence[Distribution], site_packages: str, compresslevel: int) -> str:
    keys = [_cache_key(d, site_packages, compresslevel) for d in group]
    return keys[0] if len(keys) == 1 else hashlib.sha256(("group\0" + "\0".join(keys)).encode()).hexdigest()


def _project_of(wheel_name: str) -> str:
    return re.sub(r"[-_.]+", "-", wheel_name.split("-", 1)[0]).lower()


def group_distributions(dists: Sequence[Distribution], max_layers: int) -> List[Tuple[Distribution, ...]]:
    """One layer per wheel up to `max_layers`; beyond, wheels go to `max_layers` buckets by project
    name, so a version bump rebuilds one bucket and images pinning the same wheels share layers.

    Engines cap the layers of an image (overlay2: 128 with the base's), and storage drivers that
    copy per layer (vfs) pay for every one, so the count is bounded.
    """
    ordered = sorted(dists, key=lambda d: d.name)
    if len(ordered) <= max_layers:
        return [(d,) for d in ordered]
    buckets: List[List[Distribution]] = [[] for _ in range(max(1, max_layers))]
    for d in ordered:
        h = int(hashlib.sha256(_project_of(d.name).encode()).hexdigest(), 16)
        buckets[h % len(buckets)].append(d)
    return [tuple(b) for b in buckets if b]


def uncached_distributions(
    dists: Sequence[Distribution], cache_dir: Union[str, Path], inputs: Optional["ImageInputs"] = None
) -> List[Distribution]:
    """The wheels whose files are needed to build `inputs`' layers (the others come from the cache)."""
    inputs = inputs or ImageInputs()
    cache = LayerCache(cache_dir)
    need: List[Distribution] = []
    for group in group_distributions(dists, inputs.max_distribution_layers):
        if cache.get(_group_key(group, inputs.site_packages, inputs.compresslevel)) is None:
            need.extend(group)
    return need


def distribution_layer(
    group: Sequence[Distribution],
    site_packages: str = DEFAULT_SITE_PACKAGES,
    *,
    cache: Optional[LayerCache] = None,
    compresslevel: int = 6,
) -> DistributionLayer:
    """The layer of installed wheels under `site_packages`, from the cache if built before."""
    key = _group_key(group, site_packages, compresslevel)
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            layer, meta = hit
            members = tuple((str(a), str(b)) for a, b in meta.get("members", []))  # type: ignore[union-attr]
            scripts = tuple((str(a), str(b), str(c)) for a, b, c in meta.get("console_scripts", []))  # type: ignore[union-attr]
            return DistributionLayer(layer, members, scripts, True)
    entries: List[Tuple[str, bytes, int]] = []
    members_l: List[Tuple[str, str]] = []
    scripts_l: List[Tuple[str, str, str]] = []
    for dist in group:
        files = _read_distribution(dist)
        entries += [(posixpath.join(site_packages, rel), data, mode) for rel, data, mode in files.files]
        members_l.append((files.project, files.version))
        scripts_l += [(s, ep, files.project) for s, ep in files.console_scripts]
    members, scripts = tuple(members_l), tuple(scripts_l)
    name = f"{members[0][0]}=={members[0][1]}" if len(members) == 1 else \
        f"requirements ({len(members)}: {', '.join(p for p, _ in members)})"

    def build(out: Optional[Path]) -> Layer:
        try:
            return build_layer(entries, out, name=name, compresslevel=compresslevel)
        except LayerError as e:
            raise BuildError(f"distributions {', '.join(d.name for d in group)}: {e}") from None

    if cache is None:
        layer = build(None)
    else:
        layer = cache.put(key, build, {"members": [list(m) for m in members],
                                       "console_scripts": [list(s) for s in scripts]})
    return DistributionLayer(layer, members, scripts, False)


# --------------------------------------------------------------------------- scripts and sources

_ENTRY_RE = re.compile(r"^(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+))?\s*(\[.*\])?$")


def console_script(entry_point: str, python: str, site_packages: str) -> bytes:
    """A console script like pip's, run by the image's interpreter.

    It also puts `site_packages` on sys.path when PYTHONPATH was overridden (a pod spec's env), so
    `pyflyte-execute` keeps working.
    """
    m = _ENTRY_RE.match(entry_point)
    if not m:
        raise BuildError(f"invalid console_scripts entry point {entry_point!r}")
    module, attr = m.group("module"), m.group("attr")
    call = f"{attr.split('.')[0]}" if attr else None
    lines = [
        f"#!{python}",
        "# Generated by flytebuild from the distribution's console_scripts entry point.",
        "import re",
        "import sys",
        f"if {site_packages!r} not in sys.path:",
        f"    sys.path.append({site_packages!r})",
    ]
    if attr:
        lines.append(f"from {module} import {call}")
        lines += [
            "if __name__ == '__main__':",
            "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])",
            f"    sys.exit({attr}())",
        ]
    else:
        run = f"    runpy.run_module({module!r}, run_name='__main__')"
        lines += ["import runpy", "if __name__ == '__main__':", run]
    return ("\n".join(lines) + "\n").encode("utf-8")


def source_manifest(sources: Sequence[SourceFile], workdir: str) -> bytes:
    files = {}
    for s in sources:
        data = s.source if isinstance(s.source, bytes) else Path(s.source).read_bytes()
        files[posixpath.normpath(s.path.lstrip("/"))] = sha256_digest(data)
    return canonical_json({"workdir": workdir, "files": dict(sorted(files.items()))})


def _check_sources(sources: Sequence[SourceFile]) -> None:
    seen: Dict[str, SourceFile] = {}
    for s in sources:
        p = posixpath.normpath(s.path.lstrip("/"))
        if p.startswith("..") or p == ".":
            raise BuildError(f"source file {s.path!r}: import path must stay inside the source directory")
        if p in seen and seen[p].source != s.source:
            raise BuildError(f"two different files land at {p!r} in the image (source roots overlap?)")
        seen[p] = s


# --------------------------------------------------------------------------- the image


def assemble(
    inputs: ImageInputs,
    base: BaseImage,
    *,
    cache_dir: Optional[Union[str, Path]] = None,
    progress: Optional[BuildProgress] = None,
) -> BuiltImage:
    """Layers, config and manifest for `inputs` on top of `base`. Same inputs -> same digests."""
    try:
        return _assemble(inputs, base, cache_dir=cache_dir, progress=progress)
    except OSError as e:
        raise disk_error(e, cache_dir) from None


def disk_error(e: OSError, cache_dir: Optional[Union[str, Path]]) -> BuildError:
    """A full, read-only or forbidden layer cache as one paragraph (never `[Errno 28]` with our traceback)."""
    where = e.filename or cache_dir or "the temporary directory"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return BuildError(f"No space left on the device holding {where} while writing image layers (layer cache "
                          f"{cache_dir or 'none'}). Fix: free disk space there, or point the image cache "
                          f"([flyte].image_cache_dir / `image_cache_dir`) at a disk with room.")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return BuildError(f"Cannot write {where} while building image layers ({e.strerror}). Fix: make the layer "
                          f"cache {cache_dir or ''} writable, or point the image cache at a writable directory.")
    return BuildError(f"Building image layers failed on {where}: {e.strerror or e}. Fix: check that path and the "
                      f"layer cache {cache_dir or ''}.")


def _assemble(
    inputs: ImageInputs,
    base: BaseImage,
    *,
    cache_dir: Optional[Union[str, Path]] = None,
    progress: Optional[BuildProgress] = None,
) -> BuiltImage:
    progress = progress or (lambda name, status, size: None)
    cache = LayerCache(cache_dir) if cache_dir is not None else None
    _check_sources(inputs.sources)

    dist_layers: List[Layer] = []
    names: List[str] = []
    scripts: Dict[str, Tuple[str, str]] = {}  # script -> (entry point, project) ; first dist wins by name order
    for group in group_distributions(inputs.distributions, inputs.max_distribution_layers):
        d = distribution_layer(group, inputs.site_packages, cache=cache, compresslevel=inputs.compresslevel)
        progress(d.layer.name, "cached" if d.cached else "built", d.layer.size)
        dist_layers.append(d.layer)
        names += [f"{p}=={v}" for p, v in d.members]
        for script, ep, project in d.console_scripts:
            scripts.setdefault(script, (ep, project))

    script_entries = [
        (posixpath.join(inputs.bin_dir, s), console_script(ep, inputs.python, inputs.site_packages), EXEC_MODE)
        for s, (ep, _) in sorted(scripts.items())
    ]
    layers = list(dist_layers)
    if script_entries:
        layers.append(build_layer(script_entries, name="scripts", compresslevel=inputs.compresslevel))
        progress("scripts", "built", layers[-1].size)

    manifest = source_manifest(inputs.sources, inputs.workdir)
    manifest_digest = sha256_digest(manifest)
    source_entries: List[Tuple[str, Union[bytes, Path]]] = [
        (posixpath.join(inputs.workdir, s.path.lstrip("/")), s.source) for s in inputs.sources
    ]
    source_entries.append((SOURCE_MANIFEST_FILE, manifest))
    sources_layer = build_layer(source_entries, name="sources", compresslevel=inputs.compresslevel)
    progress("sources", "built", sources_layer.size)
    layers.append(sources_layer)

    base_env = {e.partition("=")[0]: e.partition("=")[2] for e in (base.config.get("config") or {}).get("Env") or []}
    env = dict(inputs.env)
    if script_entries:
        env["PATH"] = f"{inputs.bin_dir}:{env.get('PATH') or base_env.get('PATH') or DEFAULT_PATH}"
    labels = dict(inputs.labels)
    labels[LABEL_SOURCE_FILES] = json.dumps(sorted(json.loads(manifest)["files"]), separators=(",", ":"))
    labels[LABEL_DISTRIBUTIONS] = json.dumps(sorted(names), separators=(",", ":"))
    labels[LABEL_WORKDIR] = inputs.workdir
    labels[LABEL_PYTHON] = inputs.python
    image = build_image(
        layers,
        base,
        env=env,
        pythonpath=[inputs.workdir, inputs.site_packages] if dist_layers else [inputs.workdir],
        workdir=inputs.workdir,
        labels=labels,
        fingerprint=inputs.fingerprint,
        source_manifest_digest=manifest_digest,
    )
    kinds = [(l.digest, "distribution") for l in dist_layers]
    if script_entries:
        kinds.append((layers[-2].digest, "scripts"))
    kinds.append((sources_layer.digest, "sources"))
    return BuiltImage(image, manifest, manifest_digest, tuple(sorted(scripts)), tuple(sorted(names)), tuple(kinds))


def distributions_in(deps_dir: Union[str, Path]) -> Tuple[Distribution, ...]:
    """The installed wheels of a pex's `.deps/` directory (PACKED: zips, LOOSE: directories)."""
    d = Path(deps_dir)
    return tuple(Distribution(p.name, p) for p in sorted(d.iterdir()) if p.name.endswith(".whl"))


def sources_from_roots(
    files: Iterable[Union[str, Path]], roots: Sequence[Union[str, Path]], repo: Union[str, Path] = "."
) -> Tuple[SourceFile, ...]:
    """Repo-relative files -> SourceFiles at their import paths (the longest matching source root stripped)."""
    out = []
    ordered = sorted((Path(r).as_posix().strip("/") for r in roots), key=len, reverse=True)
    for f in files:
        rel = Path(f).as_posix()
        root = next((r for r in ordered if r in ("", ".") or rel.startswith(r + "/")), None)
        if root is None:
            raise BuildError(f"{rel} is under none of the source roots {', '.join(map(str, roots))}")
        import_path = rel if root in ("", ".") else rel[len(root) + 1 :]
        out.append(SourceFile(import_path, Path(repo) / rel))
    return tuple(sorted(out, key=lambda s: s.path))
