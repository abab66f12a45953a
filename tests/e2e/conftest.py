"""A throwaway copy of the repo (examples + plugin) driven by the real ./pants, so end-to-end tests
can edit sources without touching the checkout (tests/support/repo_copy.py)."""
import pytest

from tests.support.repo_copy import PantsRepo, pants_repo_copy

__all__ = ["PantsRepo", "pants_repo"]


@pytest.fixture(scope="session")
def pants_repo(tmp_path_factory) -> PantsRepo:
    repo = pants_repo_copy(tmp_path_factory.mktemp("repo"))
    yield repo
    repo.kill_pantsd()
