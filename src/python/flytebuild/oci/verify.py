"""What verifying an image reads from its registry: the config's labels, without pulling a layer."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

from flytebuild.oci.registry import Reference, RegistryClient


def image_labels(ref: str, cache_dir: Optional[Path]) -> Dict[str, str]:
    """The config labels of `ref` (manifest and config only; raises RegistryError)."""
    r = Reference.parse(ref)
    config = RegistryClient(r.registry, cache_dir=cache_dir).pull(r).config
    return dict((config.get("config") or {}).get("Labels") or {})
