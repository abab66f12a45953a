"""Shared fixtures: the repo root and the user's own environment (flytekit from the committed lockfile)."""
import glob
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _exported_python():
    found = sorted(glob.glob(str(REPO / "dist/export/python/virtualenvs/flyte/*/bin/python")))
    return found[-1] if found else None


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def user_python() -> str:
    """CPython 3.11 with flytekit, exported by Pants from examples/3rdparty/flyte.lock."""
    override = os.environ.get("FLYTEBUILD_USER_PYTHON")
    if override:
        return override
    python = _exported_python()
    if python is None:
        subprocess.run([str(REPO / "pants"), "export", "--resolve=flyte"], cwd=REPO, check=True)
        python = _exported_python()
    assert python, "pants export --resolve=flyte did not produce a virtualenv"
    return python
