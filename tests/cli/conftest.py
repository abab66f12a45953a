"""Run the `flytebuild` CLI as a user does: a subprocess, here on the Pants venv's CPython 3.9
(the oldest Python the CLI supports; TOML through tomli there), importing user code only through
the user's own interpreter (the `user_python` fixture)."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# The e2e suite's throwaway repo copy driven by the real ./pants (tests/e2e/conftest.py).
_spec = importlib.util.spec_from_file_location("_e2e_conftest", REPO / "tests/e2e/conftest.py")
_e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_e2e)
pants_repo = _e2e.pants_repo


class Cli:
    def __init__(self, user_python: str, cache_dir: Path):
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO / "src/python"),
            "FLYTEBUILD_PYTHON": user_python,
            "FLYTEBUILD_CACHE_DIR": str(cache_dir),
        }

    def __call__(self, *args: str, cwd=None, check: bool = False, env=None) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "flytebuild.cli", *args],
            cwd=cwd or REPO,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"flytebuild {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture(scope="session")
def cli(user_python, tmp_path_factory) -> Cli:
    return Cli(user_python, tmp_path_factory.mktemp("flytebuild-cache"))


# The image suite's real registry with the Debian Python base pushed to it (tests/images/conftest.py).
_ispec = importlib.util.spec_from_file_location("_images_conftest_for_cli", REPO / "tests/images/conftest.py")
_images = importlib.util.module_from_spec(_ispec)
sys.modules[_ispec.name] = _images
_ispec.loader.exec_module(_images)
registry = _images.registry
python_base = _images.python_base
cache_dir = _images.cache_dir
docker = _images.docker  # a real dockerd of the session's own (for `flytebuild verify`)
