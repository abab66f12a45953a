"""`flytebuild base-image --from-debian`: a Python base image from this machine's Debian packages,
written as an OCI layout (`default_base = "oci:<dir>"`) or pushed to a registry. No network, no Docker."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

from flytebuild.core.errors import FlytebuildError
from flytebuild.oci import RegistryError, publish, write_oci_layout
from flytebuild.oci.debian_base import LABEL_PYTHON_VERSION, DebianBaseError, debian_python_image


def cache_root() -> Path:
    """~/.cache/flytebuild (or $XDG_CACHE_HOME/flytebuild): built layers, pulled blobs, this base's layer."""
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "flytebuild"


def base_image(output: Optional[str], push: Optional[str], tag: str, packages: Sequence[str]) -> str:
    if not output and not push:
        raise FlytebuildError("`flytebuild base-image` needs somewhere to put the image",
                              fix="pass --output <dir> (an OCI layout) or --push <registry>/<repository>:<tag>")
    try:
        image = debian_python_image(cache_root() / "base-image", packages)
    except DebianBaseError as e:
        raise FlytebuildError(str(e)) from None
    python = image.config["config"]["Labels"][LABEL_PYTHON_VERSION]
    if push:
        try:
            publish(image, push, cache_dir=cache_root() / "oci")
        except (RegistryError, ValueError) as e:
            raise FlytebuildError(f"Cannot push the base image to {push}: {e}") from None
        return f"pushed {push} ({image.manifest_digest}, Python {python}): set default_base = \"{push}\""
    assert output is not None
    write_oci_layout(image, output, ref_name=tag)
    return (f"OCI layout {output} ({image.manifest_digest}, Python {python}): "
            f"set default_base = \"oci:{output}\"")
