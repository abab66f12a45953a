"""Run the `flytebuild` CLI as a user does: a subprocess, here on the Pants venv's CPython 3.9
(the oldest Python the CLI supports; TOML through tomli there), importing user code only through
the user's own interpreter (the `user_python` fixture)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

# pants_repo, registry, python_base, cache_dir, docker: the session's (tests/support/fixtures.py).

REPO = Path(__file__).resolve().parents[2]


class Cli:
    def __init__(self, user_python: str, cache_dir: Path):
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO / "src/python"),
            "FLYTEBUILD_PYTHON": user_python,
            "FLYTEBUILD_CACHE_DIR": str(cache_dir),
            # The warm worker is on, as for users; a test's worker does not outlive it for long.
            "FLYTEBUILD_WORKER_IDLE_TIMEOUT": "30",
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

