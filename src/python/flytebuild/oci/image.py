"""Image config and manifest on top of a base image, as canonical JSON so digests reproduce."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from flytebuild.oci.layers import LAYER_MEDIA_TYPE, Layer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
# Same bytes (a gzip tar), Docker's name for it: mapped so our manifest is pure OCI.
_LAYER_TYPE_MAP = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": LAYER_MEDIA_TYPE,
    "application/vnd.docker.image.rootfs.diff.tar": "application/vnd.oci.image.layer.v1.tar",
}

EPOCH = "1970-01-01T00:00:00Z"
LABEL_FINGERPRINT = "org.flytebuild.fingerprint"
LABEL_SOURCE_MANIFEST = "org.flytebuild.source-manifest"


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the bytes whose sha256 is the digest."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class BaseImage:
    """A base image as pulled: where it came from, its (platform) manifest and its config."""

    reference: str  # e.g. "127.0.0.1:5000/base:1" (where its blobs can be fetched/mounted from)
    manifest: Mapping[str, Any]
    config: Mapping[str, Any]
    manifest_digest: str = ""

    @property
    def layers(self) -> List[Dict[str, Any]]:
        return [dict(d) for d in self.manifest.get("layers", [])]

    @property
    def diff_ids(self) -> List[str]:
        return list(self.config.get("rootfs", {}).get("diff_ids", []))


@dataclass(frozen=True)
class Image:
    """A built image: our new layers, the base's layer descriptors, config and manifest bytes."""

    config_bytes: bytes
    manifest_bytes: bytes
    layers: Sequence[Layer]  # ours, built locally
    base: Optional[BaseImage] = None
    config_digest: str = field(init=False)
    manifest_digest: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "config_digest", sha256_digest(self.config_bytes))
        object.__setattr__(self, "manifest_digest", sha256_digest(self.manifest_bytes))

    @property
    def media_type(self) -> str:
        return OCI_MANIFEST

    @property
    def manifest(self) -> Dict[str, Any]:
        return json.loads(self.manifest_bytes)

    @property
    def config(self) -> Dict[str, Any]:
        return json.loads(self.config_bytes)

    def base_layers(self) -> List[Dict[str, Any]]:
        """Descriptors of the layers that come from the base (not built here)."""
        n = len(self.layers)
        all_layers = self.manifest["layers"]
        return all_layers[: len(all_layers) - n] if n else list(all_layers)


def _merge_env(base_env: Sequence[str], env: Mapping[str, str]) -> List[str]:
    merged: Dict[str, str] = {}
    for item in base_env:
        k, _, v = item.partition("=")
        merged[k] = v
    for k in sorted(env):
        merged[k] = env[k]
    return [f"{k}={v}" for k, v in merged.items()]


def build_image(
    layers: Sequence[Layer],
    base: Optional[BaseImage] = None,
    *,
    env: Optional[Mapping[str, str]] = None,
    pythonpath: Sequence[str] = (),
    workdir: Optional[str] = None,
    entrypoint: Optional[Sequence[str]] = None,
    cmd: Optional[Sequence[str]] = None,
    labels: Optional[Mapping[str, str]] = None,
    fingerprint: Optional[str] = None,
    source_manifest_digest: Optional[str] = None,
    created_by: str = "flytebuild",
) -> Image:
    """Config + manifest for `layers` on top of `base` (None: from scratch, linux/amd64).

    Entrypoint/Cmd are the base's unless given. PYTHONPATH is `pythonpath` followed by the
    base's own PYTHONPATH. Labels carry the fingerprint and the source-manifest digest. Every
    time field is the epoch, so the digests depend on the inputs only.
    """
    base_cfg: Mapping[str, Any] = base.config if base is not None else {}
    base_inner: Mapping[str, Any] = base_cfg.get("config") or {}
    env = dict(env or {})
    if pythonpath:
        base_pp = [e.partition("=")[2] for e in base_inner.get("Env") or [] if e.startswith("PYTHONPATH=")]
        env["PYTHONPATH"] = ":".join(list(pythonpath) + [p for p in base_pp if p])
    all_labels: Dict[str, str] = dict(base_inner.get("Labels") or {})
    all_labels.update(labels or {})
    if fingerprint is not None:
        all_labels[LABEL_FINGERPRINT] = fingerprint
    if source_manifest_digest is not None:
        all_labels[LABEL_SOURCE_MANIFEST] = source_manifest_digest

    inner: Dict[str, Any] = {k: v for k, v in base_inner.items() if v not in (None, "", [], {})}
    inner["Env"] = _merge_env(base_inner.get("Env") or [], env)
    if workdir is not None:
        inner["WorkingDir"] = workdir
    if entrypoint is not None:
        inner["Entrypoint"] = list(entrypoint)
        if cmd is None:
            inner.pop("Cmd", None)  # as Docker does: a new ENTRYPOINT resets the base's CMD
    if cmd is not None:
        inner["Cmd"] = list(cmd)
    if all_labels:
        inner["Labels"] = all_labels
    else:
        inner.pop("Labels", None)

    history = [dict(h) for h in base_cfg.get("history") or []]
    for layer in layers:
        history.append({"created": EPOCH, "created_by": f"{created_by}: {layer.name or 'layer'}"})
    config: Dict[str, Any] = {
        "architecture": base_cfg.get("architecture", "amd64"),
        "os": base_cfg.get("os", "linux"),
        "created": EPOCH,
        "config": inner,
        "rootfs": {"type": "layers", "diff_ids": (base.diff_ids if base else []) + [l.diff_id for l in layers]},
        "history": history,
    }
    for key in ("variant", "os.version", "os.features"):
        if base_cfg.get(key):
            config[key] = base_cfg[key]
    config_bytes = canonical_json(config)

    base_layers = []
    for d in base.layers if base else []:
        d = {k: v for k, v in d.items() if k in ("mediaType", "digest", "size", "annotations", "urls")}
        d["mediaType"] = _LAYER_TYPE_MAP.get(d.get("mediaType", ""), d.get("mediaType", LAYER_MEDIA_TYPE))
        base_layers.append(d)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config_bytes), "size": len(config_bytes)},
        "layers": base_layers + [l.descriptor() for l in layers],
    }
    return Image(config_bytes, canonical_json(manifest), tuple(layers), base)
