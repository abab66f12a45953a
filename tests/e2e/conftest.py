"""A throwaway copy of the repo (examples + plugin) driven by the real ./pants, so end-to-end tests
can edit sources without touching the checkout (tests/support/repo_copy.py)."""
from tests.support.repo_copy import PantsRepo

__all__ = ["PantsRepo", "pants_repo"]

# `pants_repo` is one per session now (tests/support/fixtures.py, registered by tests/conftest.py). The name stays
# importable for conftests that re-exported it; it is not a fixture here, so importing it shadows nothing.
pants_repo = None
