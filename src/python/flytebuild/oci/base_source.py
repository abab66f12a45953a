"""Where a base image comes from: a registry reference, an OCI image layout directory, or a
`docker save` tarball.

    127.0.0.1:5000/flytebuild/python:3.11     a registry (pulled, blobs cached by digest)
    oci:images/python-base[:TAG]               an OCI image layout (`flytebuild base-image`, skopeo, crane)
    docker-archive:python-base.tar             `docker save` output

Names follow skopeo's transports. A local base answers the two calls the image code makes of a
base's registry client — `pull(ref)` and `fetch_blob_path(repo, digest)` — so assembling, pushing,
writing a layout or loading into Docker work the same whatever the base's origin; its layers are
copied to the target registry like a base from another registry. Relative paths are relative to
`relative_to` (the repository root of the front end).
"""
from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from flytebuild.oci.image import INDEX_TYPES, OCI_CONFIG, OCI_MANIFEST, BaseImage, canonical_json
from flytebuild.oci.layers import LAYER_MEDIA_TYPE, temp_path
from flytebuild.oci.registry import Reference, RegistryClient, RegistryError

LAYOUT = "oci:"
ARCHIVE = "docker-archive:"
_LOCAL_REGISTRY = "flytebuild.local"  # never a real registry: layers are always copied from here
_REF_NAME = "org.opencontainers.image.ref.name"
_TAR = "application/vnd.oci.image.layer.v1.tar"


def is_local(base: str) -> bool:
    return base.startswith((LAYOUT, ARCHIVE))


def split_local(base: str) -> Tuple[str, str, Optional[str]]:
    """(transport, path, tag) of `oci:path[:tag]` / `docker-archive:path`."""
    if base.startswith(ARCHIVE):
        return ARCHIVE, base[len(ARCHIVE):], None
    rest = base[len(LAYOUT):]
    path, sep, tag = rest.rpartition(":")
    if sep and "/" not in tag and tag:
        return LAYOUT, path, tag
    return LAYOUT, rest, None


def _error(base: str, problem: str, fix: str) -> RegistryError:
    return RegistryError(f"Base image {base}: {problem}. Fix: {fix}.", registry=_LOCAL_REGISTRY)


class LocalBase:
    """A base image on disk, with the `pull`/`fetch_blob_path` calls of a RegistryClient."""

    registry = _LOCAL_REGISTRY

    def __init__(self, base: str, path: Path, tag: Optional[str], archive: bool, cache_dir: Optional[Path]):
        self.base, self.path, self.tag, self.archive = base, path, tag, archive
        self._blobs: Dict[str, Path] = {}
        # `cache_dir` must be set for publish() to copy layers; an archive's layers are extracted into it.
        self.cache_dir = cache_dir if archive else path
        if archive and cache_dir is None:
            raise ValueError("a docker-archive base needs a cache directory")

    @property
    def reference(self) -> Reference:
        digest = hashlib.sha256(str(self.path).encode()).hexdigest()[:16]
        return Reference(_LOCAL_REGISTRY, f"local/{digest}", self.tag or "latest")

    # ------------------------------------------------------------------ RegistryClient's calls

    def pull(self, ref: Union[str, Reference, None] = None, **_: Any) -> BaseImage:
        manifest, config, digest = self._read_archive() if self.archive else self._read_layout()
        return BaseImage(str(self.reference), manifest, config, digest)

    def fetch_blob_path(self, repo: str, digest: str) -> Path:
        path = self._blobs.get(digest)
        if path is None and not self.archive:
            path = self.path / "blobs" / digest.replace(":", "/", 1)
        if path is None or not path.is_file():
            raise _error(self.base, f"blob {digest} is missing", "rewrite the image (it is incomplete)")
        return path

    # ------------------------------------------------------------------ OCI layout

    def _blob(self, digest: str) -> bytes:
        path = self.path / "blobs" / digest.replace(":", "/", 1)
        try:
            data = path.read_bytes()
        except OSError:
            raise _error(self.base, f"blob {digest} is missing from {self.path}", "rewrite the layout") from None
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise _error(self.base, f"blob {digest} does not match its digest", "rewrite the layout")
        return data

    def _read_layout(self) -> Tuple[Mapping[str, Any], Mapping[str, Any], str]:
        index_file = self.path / "index.json"
        if not (self.path / "oci-layout").is_file() or not index_file.is_file():
            raise _error(self.base, f"{self.path} is not an OCI image layout (no oci-layout/index.json)",
                         "point it at a directory written by `flytebuild base-image`, skopeo or crane, "
                         "or use docker-archive:<file> for `docker save` output")
        entries = json.loads(index_file.read_text()).get("manifests") or []
        if self.tag is not None:
            entries = [e for e in entries if (e.get("annotations") or {}).get(_REF_NAME) in (self.tag,)
                       or (e.get("annotations") or {}).get(_REF_NAME, "").endswith(":" + self.tag)]
        if len(entries) != 1:
            names = sorted((e.get("annotations") or {}).get(_REF_NAME, "?") for e in
                           json.loads(index_file.read_text()).get("manifests") or [])
            raise _error(
                self.base,
                f"{self.path} holds {len(entries)} matching images (names: {', '.join(names) or 'none'})",
                "name one with oci:<dir>:<tag>",
            )
        desc = entries[0]
        while desc.get("mediaType") in INDEX_TYPES:  # a multi-platform index: linux/amd64
            inner = json.loads(self._blob(desc["digest"])).get("manifests") or []
            found = [
                m
                for m in inner
                if (m.get("platform") or {}).get("os") == "linux"
                and (m.get("platform") or {}).get("architecture") == "amd64"
            ]
            if not found:
                raise _error(self.base, "it has no linux/amd64 image", "use a base built for linux/amd64")
            desc = found[0]
        manifest = json.loads(self._blob(desc["digest"]))
        config = json.loads(self._blob(manifest["config"]["digest"]))
        return manifest, config, desc["digest"]

    # ------------------------------------------------------------------ docker save

    def _read_archive(self) -> Tuple[Mapping[str, Any], Mapping[str, Any], str]:
        assert self.cache_dir is not None
        blobs = self.cache_dir / "blobs" / "sha256"
        blobs.mkdir(parents=True, exist_ok=True)
        files: Dict[str, Tuple[Path, str, int, bool]] = {}  # member -> (cached path, digest, size, gzip)
        small: Dict[str, bytes] = {}
        try:
            with tarfile.open(self.path, mode="r:*") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    fh = tar.extractfile(member)
                    assert fh is not None
                    if member.name.endswith(".json") or member.name == "repositories":
                        small[member.name] = fh.read()
                        continue
                    tmp = temp_path(blobs / "incoming")
                    sha = hashlib.sha256()
                    with open(tmp, "wb") as out:
                        head = b""
                        for chunk in iter(lambda: fh.read(1 << 20), b""):
                            head = head or chunk[:2]
                            sha.update(chunk)
                            out.write(chunk)
                    dest = blobs / sha.hexdigest()
                    os.replace(tmp, dest)
                    files[member.name] = (dest, "sha256:" + sha.hexdigest(), member.size, head == b"\x1f\x8b")
        except (OSError, tarfile.TarError) as e:
            raise _error(self.base, f"cannot read {self.path}: {e}", "pass the tar `docker save` wrote") from None
        try:
            (entry,) = json.loads(small["manifest.json"])
        except (KeyError, ValueError):
            raise _error(
                self.base,
                f"{self.path} is not `docker save` output holding one image (manifest.json)",
                "save one image: docker save -o base.tar IMAGE:TAG",
            ) from None
        config_bytes = small.get(entry["Config"]) or (
            files.get(entry["Config"]) and files[entry["Config"]][0].read_bytes()
        )
        if not config_bytes:
            raise _error(self.base, f"{self.path} lacks the image config {entry['Config']}", "save the image again")
        config = json.loads(config_bytes)
        layers = []
        for name in entry["Layers"]:
            if name not in files:
                raise _error(self.base, f"{self.path} lacks layer {name}", "save the image again")
            path, digest, size, gz = files[name]
            self._blobs[digest] = path
            layers.append({"mediaType": LAYER_MEDIA_TYPE if gz else _TAR, "digest": digest, "size": size})
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": "sha256:" + hashlib.sha256(config_bytes).hexdigest(),
                "size": len(config_bytes),
            },
            "layers": layers,
        }
        return manifest, config, "sha256:" + hashlib.sha256(canonical_json(manifest)).hexdigest()


def base_source(
    base: str,
    *,
    cache_dir: Optional[Union[str, Path]],
    docker_config: Optional[Path] = None,
    relative_to: Union[str, Path] = ".",
) -> Tuple[Union[RegistryClient, LocalBase], Union[Reference, str]]:
    """(client, ref) for a base image string: `client.pull(ref)` gives the BaseImage."""
    if not is_local(base):
        ref = Reference.parse(base)
        return RegistryClient(ref.registry, cache_dir=cache_dir, docker_config=docker_config), ref
    transport, path, tag = split_local(base)
    full = Path(relative_to, os.path.expanduser(path))
    if not full.exists():
        raise _error(
            base,
            f"{full} does not exist",
            "write it first (`flytebuild base-image`, `docker save`) or fix the path (relative to the repository root)",
        )
    return LocalBase(base, full, tag, transport == ARCHIVE, Path(cache_dir) if cache_dir else None), base
