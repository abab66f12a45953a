"""Fixtures of the reliability suite: the session's real registry (tests/support/fixtures.py), a tiny base image and
extra registries (tests/oci), and the fault proxy in front of the registry."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

# The tiny base image pushed with our own client, and extra registries (htpasswd) for one test.
from tests.oci.conftest import base_image, make_registry  # noqa: F401 - re-exported fixtures
from tests.reliability.faultproxy import FaultProxy


@pytest.fixture
def fault_proxy(registry):
    proxy = FaultProxy(registry.host)
    yield proxy
    proxy.close()


@pytest.fixture(scope="session")
def _cli_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli-cache")


@pytest.fixture(scope="module", autouse=True)
def _own_cli_cache(_cli_cache) -> Iterator[None]:
    """The `flytebuild` runs of this suite (in-process and subprocesses, which inherit the environment) keep their
    caches and warm workers in the session's temp directory, not in the user's ~/.cache/flytebuild (tests/conftest.py
    stops the workers there after the session). Module scope: set before the modules' own fixtures."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLYTEBUILD_CACHE_DIR", str(_cli_cache))
        yield
