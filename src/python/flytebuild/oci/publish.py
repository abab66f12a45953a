"""Publishing a built image: to a registry (only missing blobs, in parallel) or an OCI layout dir."""
from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

from flytebuild.oci.image import INDEX_TYPES, LABEL_FINGERPRINT, OCI_INDEX, Image, canonical_json
from flytebuild.oci.layers import Layer, temp_path
from flytebuild.oci.registry import Reference, RegistryClient, RegistryError

# progress(digest, name, status, size): status is one of
# "exists", "mounted", "uploading", "uploaded", "copying" (a base blob fetched from its registry first)
Progress = Callable[[str, str, str, int], None]


@dataclass
class PublishResult:
    reference: str
    digest: str  # manifest digest
    skipped: bool = False  # the tag already pointed at this digest: nothing was pushed
    bytes_uploaded: int = 0  # blob bytes (layers and config) sent; the manifest is not counted
    blobs_uploaded: List[str] = field(default_factory=list)
    blobs_mounted: List[str] = field(default_factory=list)
    blobs_skipped: List[str] = field(default_factory=list)


class TagConflict(RegistryError):
    """A tag we would push already names other content: never trusted, never overwritten."""


def _fingerprint_at(client: RegistryClient, repo: str, tag: str) -> Tuple[Optional[str], Optional[str]]:
    """(manifest digest, fingerprint label) of what `tag` names; (None, None) when the tag is absent.

    One HEAD, then (only when the tag exists) one GET of the manifest and one of its small config blob.
    """
    if client.head_manifest(repo, tag) is None:
        return None, None
    data, media_type, digest = client.get_manifest(repo, tag)
    doc = json.loads(data)
    if media_type in INDEX_TYPES or "config" not in doc:
        return digest, None  # an index is never one of our images
    config = json.loads(client.fetch_blob(repo, doc["config"]["digest"]))
    labels = (config.get("config") or {}).get("Labels") or {}
    return digest, labels.get(LABEL_FINGERPRINT)


def _conflict(client: RegistryClient, ref: Reference, tag: str, found: Optional[str], fingerprint: str) -> TagConflict:
    what = f"carries fingerprint {found}" if found else "carries no flytebuild fingerprint label"
    return TagConflict(
        f"Image {ref.repository}:{tag} already exists in registry {client.registry} with other content: it {what}, "
        f"but this build's fingerprint is {fingerprint}. flytebuild never trusts or overwrites such a tag. Fix: "
        f"delete the tag from {client.registry} (someone pushed other content under flytebuild's version tag), "
        f"or set the image's `repository` to one flytebuild alone pushes to.",
        registry=client.registry, repository=ref.repository)


def reusable_tag(client: RegistryClient, ref: Union[str, Reference], fingerprint: Optional[str]) -> Optional[str]:
    """The digest at `ref`'s tag if it is this very image (its config's fingerprint label equals
    `fingerprint`), None when the tag is absent; a TagConflict when it names anything else."""
    r = Reference.parse(ref) if isinstance(ref, str) else ref
    tag = r.tag or "latest"
    digest, found = _fingerprint_at(client, r.repository, tag)
    if digest is None:
        return None
    if fingerprint is None or found != fingerprint:
        raise _conflict(client, r, tag, found, fingerprint or "(none)")
    return digest


def _noop(digest: str, name: str, status: str, size: int) -> None:
    pass


def publish(
    image: Image,
    ref: Union[str, Reference],
    *,
    client: Optional[RegistryClient] = None,
    base_client: Optional[RegistryClient] = None,
    jobs: int = 4,
    progress: Optional[Progress] = None,
    cache_dir: Optional[Union[str, Path]] = None,
) -> PublishResult:
    """Push `image` as `ref` (registry/repo:tag). Idempotent and minimal:

    - if the tag already resolves to the same manifest digest nothing is uploaded;
    - blobs the repository already has are skipped; base layers living in another repository of
      the same registry are mounted; base layers from another registry are fetched (verified,
      cached) and uploaded;
    - missing blobs go up `jobs` at a time; the manifest is PUT last, so a failed push never
      leaves the tag pointing at a half-uploaded image.
    """
    r = Reference.parse(ref) if isinstance(ref, str) else ref
    tag = r.tag or r.digest or "latest"
    progress = progress or _noop
    client = client or RegistryClient(r.registry, cache_dir=cache_dir)
    result = PublishResult(str(r), image.manifest_digest)

    existing = client.head_manifest(r.repository, tag)
    if existing is not None and existing.digest == image.manifest_digest:
        result.skipped = True
        return result
    ours = ((image.config.get("config") or {}).get("Labels") or {}).get(LABEL_FINGERPRINT)
    if existing is not None and ours is not None:
        # A versioned (fingerprinted) tag is reused when it holds the same inputs, refused otherwise.
        digest, found = _fingerprint_at(client, r.repository, tag)
        if digest is not None and found == ours:
            result.digest, result.skipped = digest, True
            return result
        if digest is not None:
            raise _conflict(client, r, tag, found, ours)

    base_ref = Reference.parse(image.base.reference) if image.base is not None else None
    same_registry = base_ref is not None and base_ref.registry == client.registry
    if base_ref is not None and not same_registry and base_client is None:
        base_client = RegistryClient(base_ref.registry, cache_dir=cache_dir or client.cache_dir)

    def push_local(layer: Layer) -> Tuple[str, int]:
        progress(layer.digest, layer.name, "uploading", layer.size)
        body = layer.data if layer.data is not None else (lambda: open(layer.path, "rb"))  # type: ignore[arg-type]
        client.upload_blob(r.repository, layer.digest, layer.size, body)  # type: ignore[arg-type]
        progress(layer.digest, layer.name, "uploaded", layer.size)
        return "uploaded", layer.size

    def push_base(desc: Dict[str, object]) -> Tuple[str, int]:
        digest, size = str(desc["digest"]), int(desc["size"])  # type: ignore[arg-type]
        assert base_ref is not None
        if same_registry and base_ref.repository != r.repository:
            try:
                how = _mount(client, r.repository, digest, base_ref.repository)
            except RegistryError:
                how = None
            if how == "mounted":
                progress(digest, "base", "mounted", size)
                return "mounted", 0
        src = base_client or client
        if src.cache_dir is None:
            raise RegistryError(f"Copying base layer {digest} to {client.registry}/{r.repository} needs a cache "
                                f"directory. Fix: pass cache_dir to publish().", registry=client.registry,
                                repository=r.repository)
        progress(digest, "base", "copying", size)
        path = src.fetch_blob_path(base_ref.repository, digest)
        client.upload_blob(r.repository, digest, size, lambda: open(path, "rb"))
        progress(digest, "base", "uploaded", size)
        return "uploaded", size

    base_descs = image.base_layers()
    candidates: List[Tuple[str, str, int, Callable[[], Tuple[str, int]]]] = []
    for d in base_descs:
        candidates.append((str(d["digest"]), "base", int(d["size"]), (lambda d=d: push_base(d))))
    for layer in image.layers:
        candidates.append((layer.digest, layer.name, layer.size, (lambda l=layer: push_local(l))))
    seen = set()

    def check(c):
        digest, name, size, fn = c
        if client.blob_exists(r.repository, digest):
            progress(digest, name, "exists", size)
            return None
        return c

    unique = []
    for c in candidates:
        if c[0] not in seen:
            seen.add(c[0])
            unique.append(c)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        missing = [c for c in pool.map(check, unique) if c is not None]
        missing_digests = {c[0] for c in missing}
        result.blobs_skipped = [c[0] for c in unique if c[0] not in missing_digests]
        for (digest, _, _, _), (how, nbytes) in zip(missing, pool.map(lambda c: c[3](), missing)):
            (result.blobs_mounted if how == "mounted" else result.blobs_uploaded).append(digest)
            result.bytes_uploaded += nbytes

    if client.blob_exists(r.repository, image.config_digest):
        result.blobs_skipped.append(image.config_digest)
    else:
        client.upload_blob(r.repository, image.config_digest, len(image.config_bytes), image.config_bytes)
        result.blobs_uploaded.append(image.config_digest)
        result.bytes_uploaded += len(image.config_bytes)
    try:
        client.put_manifest(r.repository, tag, image.manifest_bytes, image.media_type)
    except RegistryError as e:
        # The answer may be lost after the registry stored the manifest: the tag then names this very image.
        if e.status not in (401, 403, 400) and _tag_is(client, r.repository, tag, image.manifest_digest):
            return result
        raise
    return result


def _tag_is(client: RegistryClient, repo: str, tag: str, digest: str) -> bool:
    try:
        found = client.head_manifest(repo, tag)
    except RegistryError:
        return False
    return found is not None and found.digest == digest


def _mount(client: RegistryClient, repo: str, digest: str, from_repo: str) -> Optional[str]:
    """Try a cross-repository mount; 'mounted' on success, None if the registry started an upload instead."""
    import urllib.parse

    resp = client.request("POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from={urllib.parse.quote(from_repo)}",
                          repo=repo, actions="pull,push", headers={"Content-Length": "0"}, body=b"",
                          ok=(201, 202), what=f"mount of {digest}")
    with resp:
        return "mounted" if resp.status == 201 else None


def write_oci_layout(
    image: Image,
    directory: Union[str, Path],
    *,
    ref_name: Optional[str] = None,
    base_client: Optional[RegistryClient] = None,
) -> Path:
    """Write an OCI image layout (oci-layout, index.json, blobs/sha256/...) holding `image`.

    Base layers are taken from `base_client`'s cache (fetched and verified if missing). The
    index lists only this image (an existing index.json in `directory` is replaced).
    """
    root = Path(directory)
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(digest: str, write: Callable[[Path], None]) -> None:
        dest = blobs / digest.split(":", 1)[1]
        if dest.exists():
            return
        tmp = temp_path(dest)
        write(tmp)
        os.replace(tmp, dest)

    if image.base is not None and image.base_layers():
        base_ref = Reference.parse(image.base.reference)
        if base_client is None:
            raise ValueError("write_oci_layout: an image with a base needs base_client (with a cache_dir)")
        for d in image.base_layers():
            src = base_client.fetch_blob_path(base_ref.repository, str(d["digest"]))
            put(str(d["digest"]), lambda tmp, src=src: shutil.copyfile(src, tmp))
    for layer in image.layers:
        if layer.path is not None:
            put(layer.digest, lambda tmp, layer=layer: shutil.copyfile(layer.path, tmp))  # type: ignore[arg-type]
        else:
            put(layer.digest, lambda tmp, layer=layer: tmp.write_bytes(layer.data))  # type: ignore[arg-type]
    put(image.config_digest, lambda tmp: tmp.write_bytes(image.config_bytes))
    put(image.manifest_digest, lambda tmp: tmp.write_bytes(image.manifest_bytes))

    desc: Dict[str, object] = {"mediaType": image.media_type, "digest": image.manifest_digest,
                               "size": len(image.manifest_bytes)}
    if ref_name:
        desc["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
    (root / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    (root / "index.json").write_bytes(canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc]}))
    return root


def publish_layout(
    directory: Union[str, Path],
    ref: Union[str, Reference],
    *,
    client: Optional[RegistryClient] = None,
    jobs: int = 4,
    progress: Optional[Progress] = None,
) -> PublishResult:
    """Push the one image of an OCI image layout (as `write_oci_layout` writes it) as `ref`: the same blobs, so
    the same manifest digest as pushing the built image; missing blobs only, the manifest last."""
    root = Path(directory)
    index = json.loads((root / "index.json").read_bytes())
    manifests = index.get("manifests") or []
    if len(manifests) != 1:
        raise ValueError(f"{root} holds {len(manifests)} images; a flytebuild layout holds one")
    desc = manifests[0]

    def blob(digest: str) -> Path:
        return root / "blobs" / digest.replace(":", "/", 1)

    manifest_bytes = blob(desc["digest"]).read_bytes()
    manifest = json.loads(manifest_bytes)
    r = Reference.parse(ref) if isinstance(ref, str) else ref
    tag = r.tag or r.digest or "latest"
    progress = progress or _noop
    client = client or RegistryClient(r.registry)
    result = PublishResult(str(r), str(desc["digest"]))
    existing = client.head_manifest(r.repository, tag)
    if existing is not None and existing.digest == desc["digest"]:
        result.skipped = True
        return result

    def push(d: Dict[str, object]) -> Tuple[str, int]:
        digest, size = str(d["digest"]), int(d["size"])  # type: ignore[arg-type]
        if client.blob_exists(r.repository, digest):
            progress(digest, "", "exists", size)
            return "exists", 0
        progress(digest, "", "uploading", size)
        client.upload_blob(r.repository, digest, size, lambda: open(blob(digest), "rb"))
        progress(digest, "", "uploaded", size)
        return "uploaded", size

    blobs = [manifest["config"], *manifest.get("layers", [])]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for d, (how, nbytes) in zip(blobs, pool.map(push, blobs)):
            (result.blobs_uploaded if how == "uploaded" else result.blobs_skipped).append(str(d["digest"]))
            result.bytes_uploaded += nbytes
    client.put_manifest(r.repository, tag, manifest_bytes, str(desc.get("mediaType") or manifest.get("mediaType")))
    return result
