"""Fixtures of the reliability suite: the session's real registry (tests/support/fixtures.py), a tiny base image and
extra registries (tests/oci), and the fault proxy in front of the registry."""
from __future__ import annotations

import pytest

# The tiny base image pushed with our own client, and extra registries (htpasswd) for one test.
from tests.oci.conftest import base_image, make_registry  # noqa: F401 - re-exported fixtures
from tests.reliability.faultproxy import FaultProxy


@pytest.fixture
def fault_proxy(registry):
    proxy = FaultProxy(registry.host)
    yield proxy
    proxy.close()
