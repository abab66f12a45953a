"""Fixtures of tests/support: `admin`, a running stand-in FlyteAdmin (see flyteadmin/fixture.py)."""
import pytest

from tests.support.flyteadmin.fixture import flyteadmin


@pytest.fixture
def admin(user_python):
    with flyteadmin(user_python) as handle:
        yield handle
