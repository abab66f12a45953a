"""A throwaway copy of the repo (examples + plugin) driven by the real ./pants, so tests and benches can edit
sources, or point the examples' images at a test registry, without touching the checkout. The Pants venv, pex
tool and caches are symlinked from the checkout, so a copy starts warm."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parents[2]
SHARED_BOOTSTRAP = ("venv", "pex.pex", "cache")
# Plain output: no live UI or colour codes in what tests and benches parse.
PANTS_ENV = {"PANTS_DYNAMIC_UI": "false", "NO_COLOR": "1"}


def copy_repo(root: Path, registry_host: Optional[str] = None) -> Path:
    """Fill `root` (an existing, empty directory) with pants, pants.toml, BUILD, examples/ and src/.

    With `registry_host`, the examples' BUILD files and examples/flytebuild.toml (the CLI's mirror of them) name
    it instead of `localhost:5000`, and the copy's .pants.rc sets `[flyte] registry` / `default_base` to it (for
    targets that name neither, e.g. examples/typed:image), so their images push to (and pull their base from)
    that registry."""
    for name in ("pants", "pants.toml", "BUILD"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, root / name)
    for name in ("examples", "src"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".bootstrap").mkdir()
    for name in SHARED_BOOTSTRAP:
        os.symlink(REPO / ".bootstrap" / name, root / ".bootstrap" / name)
    if registry_host is not None:
        for build in [*(root / "examples").rglob("BUILD"), root / "examples/flytebuild.toml"]:
            if build.exists():
                build.write_text(build.read_text().replace("localhost:5000", registry_host))
        # Pants reads <buildroot>/.pants.rc after pants.toml: these win over any [flyte] defaults there.
        (root / ".pants.rc").write_text(f'[flyte]\nregistry = "{registry_host}"\n'
                                        f'default_base = "{registry_host}/flytebuild/python:3.11"\n')
    return root


def kill_pantsd(root: Path, wait_s: float = 0.0) -> None:
    """SIGTERM the copy's pantsd and the warm workers it started; with `wait_s`, wait up to that long for each
    pantsd to exit."""
    _stop_workers(root)
    for pid_file in (root / ".pids").glob("*/pantsd/pid"):
        try:
            pid = int(pid_file.read_text().strip())
            os.kill(pid, signal.SIGTERM)
        except (ValueError, ProcessLookupError):
            continue
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)


def _stop_workers(root: Path) -> None:
    """A worker is detached from pantsd and idles for minutes after it (its socket may be in the temp directory):
    each runs the copy's own runtime script, which names it."""
    script = str(root / "src/python/flytebuild/runtime/__main__.py")
    stop_workers(lambda argv: script in argv)


def stop_workers(chosen: Callable[[list], bool]) -> None:
    """SIGTERM the warm workers (`.../runtime/__main__.py worker --socket <path> ...`) whose argv is `chosen`."""
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace").split("\0")
            if "worker" in argv and "--socket" in argv and chosen(argv):
                os.kill(int(entry), signal.SIGTERM)
        except OSError:
            continue


class PantsRepo:
    def __init__(self, root: Path):
        self.root = root

    def pants(self, *args: str, check: bool = False, env=None) -> subprocess.CompletedProcess:
        """`./pants ARGS` in the copy; `env` adds variables (e.g. DOCKER_HOST) for this command only."""
        proc = subprocess.run(
            [str(self.root / "pants"), *args],
            cwd=self.root,
            env={**os.environ, **PANTS_ENV, **(env or {})},
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
        kill_pantsd(self.root)


def pants_repo_copy(root: Path, registry_host: Optional[str] = None, repo_class=PantsRepo):
    """A `repo_class` over a fresh copy in `root`; the caller calls `.kill_pantsd()` when done."""
    # Bootstrap Pants in the checkout first, so its shared venv is complete before any copy uses it (./pants writes
    # the stamp last; `make test` has done it already). Install only: a Pants start (and a pantsd, which would
    # outlive the session and which test workers would race to start) is not needed for that.
    if not any((REPO / ".bootstrap/venv").glob(".ok-*")):
        subprocess.run([str(REPO / "pants")], cwd=REPO, check=True, capture_output=True,
                       env={**os.environ, "PANTS_BOOTSTRAP_ONLY": "1"})
    return repo_class(copy_repo(root, registry_host))
