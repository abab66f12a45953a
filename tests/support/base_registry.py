"""A module-scoped real registry (tests/oci's Debian docker-registry) already holding the examples' Python base
image (tests/support/base_image.py), for Pants tests that push the examples' images.

    from tests.support.base_registry import registry  # noqa: F401 - fixture
"""
import pytest

from tests.oci.conftest import start_registry, stop_registry
from tests.support.base_image import DEFAULT_REPOSITORY, push_base_image

__all__ = ["DEFAULT_REPOSITORY", "registry"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    push_base_image(reg.host, DEFAULT_REPOSITORY, cache_dir=tmp_path_factory.mktemp("c"))
    yield reg
    stop_registry(reg)
