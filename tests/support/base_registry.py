"""A real registry (tests/oci's Debian docker-registry) already holding the examples' Python base image
(tests/support/base_image.py), for Pants tests that push the examples' images.

    from tests.support.base_registry import registry  # noqa: F401 - fixture

It is the session's `registry` with `python_base` pushed (tests/support/fixtures.py): one registry per session.
"""
import pytest

from tests.support.base_image import DEFAULT_REPOSITORY

__all__ = ["DEFAULT_REPOSITORY", "registry"]


# Session-scoped like the registry it returns: a session fixture (registry_repo) that a test of the importing
# module requests sees this definition of `registry`, and a narrower scope would be a ScopeMismatch.
@pytest.fixture(scope="session")
def registry(registry, python_base):  # noqa: F811 - the session's fixture of the same name, with the base pushed
    return registry
