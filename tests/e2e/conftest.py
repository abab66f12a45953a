"""A throwaway copy of the repo (examples + plugin) driven by the real ./pants, so end-to-end tests
can edit sources without touching the checkout. The Pants venv, pex tool and caches are shared."""
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_SHARED_BOOTSTRAP = ("venv", "pex.pex", "cache")


class PantsRepo:
    def __init__(self, root: Path):
        self.root = root

    def pants(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        env = {**os.environ, "PANTS_DYNAMIC_UI": "false", "NO_COLOR": "1"}
        proc = subprocess.run(
            [str(self.root / "pants"), *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"pants {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def write(self, relpath: str, text: str) -> None:
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def read(self, relpath: str) -> str:
        return (self.root / relpath).read_text()

    def kill_pantsd(self) -> None:
        for pid_file in (self.root / ".pids").glob("*/pantsd/pid"):
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            except (ValueError, ProcessLookupError):
                pass


@pytest.fixture(scope="session")
def pants_repo(tmp_path_factory) -> PantsRepo:
    subprocess.run([str(REPO / "pants"), "--version"], cwd=REPO, check=True, capture_output=True)
    root = tmp_path_factory.mktemp("repo")
    for name in ("pants", "pants.toml", "BUILD"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, root / name)
    for name in ("examples", "src"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".bootstrap").mkdir()
    for name in _SHARED_BOOTSTRAP:
        os.symlink(REPO / ".bootstrap" / name, root / ".bootstrap" / name)
    repo = PantsRepo(root)
    yield repo
    repo.kill_pantsd()
