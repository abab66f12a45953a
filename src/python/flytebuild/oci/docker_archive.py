"""A docker-save archive of a built image (manifest.json + config + layer blobs), for `docker load`
(oci/engine.py, where every Docker engine call lives).

Docker's engine (20.10, as Debian ships it) loads this format but not OCI layout archives; gzip
layers are loaded as they are, so the blobs go in unchanged and the image ID is our config digest.
"""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import BinaryIO, Optional

from flytebuild.oci.image import Image
from flytebuild.oci.registry import Reference, RegistryClient


def _add(tar: tarfile.TarFile, name: str, data: Optional[bytes] = None, path: Optional[Path] = None) -> None:
    ti = tarfile.TarInfo(name)
    ti.mtime, ti.mode = 0, 0o644
    if data is not None:
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    else:
        assert path is not None
        ti.size = path.stat().st_size
        with open(path, "rb") as fh:
            tar.addfile(ti, fh)


def write_docker_archive(
    image: Image, tag: str, out: BinaryIO, *, base_client: Optional[RegistryClient] = None
) -> None:
    """Stream a `docker save`-style tar of `image`, tagged `tag`, to `out`."""
    layer_names = []
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        config_name = image.config_digest.split(":", 1)[1] + ".json"
        _add(tar, config_name, image.config_bytes)
        base_repo = Reference.parse(image.base.reference).repository if image.base is not None else ""
        ours = {l.digest: l for l in image.layers}
        for desc in image.manifest["layers"]:
            digest = desc["digest"]
            name = digest.split(":", 1)[1] + "/layer.tar"
            layer = ours.get(digest)
            if layer is not None:
                if layer.path is not None:
                    _add(tar, name, path=layer.path)
                else:
                    _add(tar, name, layer.read_bytes())
            else:
                if base_client is None:
                    raise ValueError("write_docker_archive: an image with a base needs base_client (with a cache_dir)")
                _add(tar, name, path=base_client.fetch_blob_path(base_repo, digest))
            layer_names.append(name)
        manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": layer_names}]
        _add(tar, "manifest.json", json.dumps(manifest).encode())
