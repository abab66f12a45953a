"""An image whose `python` names an interpreter it does not have (`/nope/bin/python3`): pyflyte-execute's shebang
names it, so the task cannot start. `flytebuild verify` finds it in both modes, with the real parts: the image built
and pushed to the real registry, then checked statically (its layers) and by a real Docker engine (the image run
with that interpreter as its entrypoint, as the registered task's container starts)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.test_pants import WF

REPO = Path(__file__).resolve().parents[2]


TABLES = '''
[images.nope-image]
image_name = "nope"
base = "{registry}/flytebuild/python:3.11"
registry = "{registry}"
repository = "rel/nope"
python = "/nope/bin/python3"
dependencies = ["rel_nope"]
requirements = ["flytekit"]

[workflows.nope-wf]
entrypoint = "rel_nope/tasks.py:wf"
image = "nope-image"
'''


@pytest.fixture(scope="module")
def config(registry_repo, registry, python_base):
    """The examples' flytebuild.toml (naming the test registry) plus an image with a missing `python`."""
    root = registry_repo.root
    (root / "examples/rel_nope").mkdir(exist_ok=True)
    (root / "examples/rel_nope/__init__.py").write_text("")
    (root / "examples/rel_nope/tasks.py").write_text(WF)
    path = root / "examples/rel-verify.toml"
    path.write_text((root / "examples/flytebuild.toml").read_text() + TABLES.format(registry=registry.host))
    yield path
    path.unlink()
    shutil.rmtree(root / "examples/rel_nope")


def _verify(config: Path, user_python: str, tmp_path: Path, engine: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flytebuild.cli", "-c", str(config), "verify", f"--engine={engine}", "nope-wf"],
        cwd=config.parent.parent, capture_output=True, text=True, timeout=600,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(REPO / "src/python"), "FLYTEBUILD_PYTHON": user_python,
             "FLYTEBUILD_CACHE_DIR": str(tmp_path / "cache"), "XDG_CACHE_HOME": str(tmp_path / "xdg"),
             "PEX_ROOT": str(REPO / ".bootstrap/cache/named_caches/pex_root")},
    )


@pytest.mark.parametrize("engine", ["static", "docker"])
def test_missing_python_fails_verify(config, user_python, tmp_path, docker, engine):
    proc = _verify(config, user_python, tmp_path, engine, env={"DOCKER_HOST": docker.host})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("rel_nope.tasks.one"))
    assert row.split()[2] == engine, row
    assert "/nope/bin/python3" in row and "cannot start" in row, row
    if engine == "docker":
        assert "is the flyte_image's `python` right?" in row, row
    else:
        assert "is not a file in the image" in row, row
    assert "1 baked task(s) cannot run from their image. Fix: set the flyte_image's `python`" in proc.stderr
    assert "dependencies" not in proc.stderr, "the fix names what is wrong, not the usual suspect"
