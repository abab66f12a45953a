"""One image layer cache per test process (the `layers` fixture), for the tests that are not about empty caches.

Layers are content-addressed (a layer's key is what goes into it), so every test that builds the examples' images
can reuse the flytekit layers another test of the same process built: one build of them per xdist worker, not one
per test or module. Per process, never shared between workers: each worker's pytest has its own base temp dir.
Tests about building from empty caches keep caches of their own (tests/images/test_package.py's
twice-from-clean-caches, test_package_logs.py and test_imagespec.py's same-inputs test, the CLI against Pants in
tests/images/test_imagespec.py, tests/e2e/test_equivalence.py: every front end from its own empty cache)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def layers(tmp_path_factory) -> Path:
    """A `--flyte-image-cache-dir` for Pants (the CLI's is `$XDG_CACHE_HOME/flytebuild/oci`)."""
    path = tmp_path_factory.getbasetemp() / "shared-layers"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def layers_xdg(tmp_path_factory, layers) -> Path:
    """An XDG_CACHE_HOME for the CLI whose layer cache (`flytebuild/oci`) is `layers`: the CLI and Pants build
    through the same service, so each reuses the layers the other built."""
    xdg = tmp_path_factory.getbasetemp() / "shared-xdg"
    (xdg / "flytebuild").mkdir(parents=True, exist_ok=True)
    if not (xdg / "flytebuild/oci").exists():
        (xdg / "flytebuild/oci").symlink_to(layers, target_is_directory=True)
    return xdg
