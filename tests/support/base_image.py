"""The tests' Python 3.11 base image: flytebuild's own `base-image --from-debian` (oci/debian_base.py),
its layer cached in `.bootstrap/cache/base-image/` (keyed by the installed package versions), pushed to
a test registry in a second.

    python tests/support/base_image.py 127.0.0.1:5000 [flytebuild/python:3.11]
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src" / "python"))

from flytebuild.oci import publish  # noqa: E402
from flytebuild.oci.debian_base import debian_python_image  # noqa: E402

CACHE = REPO / ".bootstrap" / "cache" / "base-image"
DEFAULT_REPOSITORY = "flytebuild/python:3.11"


def push_base_image(registry: str, repository: str = DEFAULT_REPOSITORY, cache_dir=None) -> str:
    """Push the base image to `registry` (e.g. "127.0.0.1:5000"); returns the full reference."""
    ref = f"{registry}/{repository}"
    publish(debian_python_image(CACHE), ref, cache_dir=cache_dir or CACHE / "oci")
    return ref


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(push_base_image(sys.argv[1], *(sys.argv[2:3] or [DEFAULT_REPOSITORY])))
