"""`docker load` of a built image: a docker-save archive (manifest.json + config + layer blobs).

Docker's engine (20.10, as Debian ships it) loads this format but not OCI layout archives; gzip
layers are loaded as they are, so the blobs go in unchanged and the image ID is our config digest.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO, Mapping, Optional

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


def write_docker_archive(image: Image, tag: str, out: BinaryIO, *, base_client: Optional[RegistryClient] = None) -> None:
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


def docker_load(image: Image, tag: str, *, base_client: Optional[RegistryClient] = None,
                env: Optional[Mapping[str, str]] = None, docker: str = "docker") -> str:
    """Load `image` into the Docker engine as `tag`; returns docker's output line."""
    exe = shutil.which(docker, path=(env or os.environ).get("PATH"))
    if exe is None:
        raise OSError(f"no `{docker}` on PATH: the `docker` output needs a Docker engine and its CLI. "
                      f"Fix: install Docker, or use the `push` or `oci` output")
    # Through a file, not a pipe: `docker load` answers only at the end, and a failed load must
    # not leave us blocked writing into a full pipe.
    with tempfile.NamedTemporaryFile(prefix="flytebuild-docker-", suffix=".tar") as tmp:
        write_docker_archive(image, tag, tmp, base_client=base_client)
        tmp.flush()
        proc = subprocess.run([exe, "load", "-i", tmp.name], capture_output=True,
                              env=dict(env) if env is not None else None)
    out, err = proc.stdout, proc.stderr
    if proc.returncode != 0:
        raise OSError(f"`docker load` failed: {err.decode(errors='replace').strip() or out.decode(errors='replace').strip()}. "
                      f"Fix: check that the Docker engine is running (DOCKER_HOST)")
    return out.decode(errors="replace").strip()
