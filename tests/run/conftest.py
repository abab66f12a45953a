"""Fixtures of tests/run: the throwaway Pants repo of the end-to-end tests (tests/e2e/conftest.py)."""
from tests.e2e.conftest import pants_repo  # noqa: F401 - re-exported fixture
