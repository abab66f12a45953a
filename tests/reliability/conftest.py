"""Fixtures of the reliability suite: the real registry (tests/oci) and the fault proxy in front of it."""
from __future__ import annotations

import pytest

# A real Debian docker-registry on loopback, a layer cache and a tiny base image pushed with our own client.
from tests.oci.conftest import base_image, cache_dir, make_registry, registry  # noqa: F401 - re-exported fixtures
from tests.reliability.faultproxy import FaultProxy


@pytest.fixture
def fault_proxy(registry):  # noqa: F811 - the imported fixture
    proxy = FaultProxy(registry.host)
    yield proxy
    proxy.close()
