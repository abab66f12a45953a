"""What verifying an image reads from its registry: the config's labels (without pulling a layer), and
whether the interpreter the image's console scripts name is a file of one of its layers."""
from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Dict, Optional

from flytebuild.oci.build import LABEL_PYTHON
from flytebuild.oci.registry import Reference, RegistryClient


def image_labels(ref: str, cache_dir: Optional[Path]) -> Dict[str, str]:
    """The config labels of `ref` (manifest and config only; raises RegistryError)."""
    r = Reference.parse(ref)
    config = RegistryClient(r.registry, cache_dir=cache_dir).pull(r).config
    return dict((config.get("config") or {}).get("Labels") or {})


def python_problem(ref: str, cache_dir: Optional[Path]) -> Optional[str]:
    """Static check of the task's command path: the interpreter pyflyte-execute's shebang names (the
    `python` label) is a file of some layer (read from the layer cache, fetched when missing)."""
    r = Reference.parse(ref)
    client = RegistryClient(r.registry, cache_dir=cache_dir)
    image = client.pull(r)
    python = ((image.config.get("config") or {}).get("Labels") or {}).get(LABEL_PYTHON)
    if not python or cache_dir is None:
        return None
    wanted = python.lstrip("/")
    for desc in image.manifest.get("layers", []):
        path = client.fetch_blob_path(r.repository, desc["digest"])
        try:
            with tarfile.open(path, "r:*") as tar:
                if any(m.name.lstrip("./") == wanted for m in tar):
                    return None
        except (tarfile.TarError, OSError, EOFError):
            return None  # a layer we cannot read proves nothing either way
    return (f"the image's python {python} (the `python` field; pyflyte-execute's shebang) is not a file in the "
            f"image, so the task cannot start")
