"""The wheel is the one install artifact: every front end (Pants backend, CLI, runtime, Bazel rules) and the
starter configuration are inside, the version is the one of flytebuild/__init__.py, the build reproduces,
and its `blake3` range resolves next to Pants 2.17.1's own pins."""
import glob
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from flytebuild import __version__

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "python" / "flytebuild"


def test_the_wheel_holds_every_front_end_and_the_starter_config(built_dist, wheel):
    assert wheel.name == f"flytebuild-{__version__}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(["git", "ls-files", "src/python/flytebuild"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    shipped = {f[len("src/python/"):] for f in tracked if (REPO / f).exists()}
    assert shipped <= names, sorted(shipped - names)
    for required in ("flytebuild/BUILD.bazel", "flytebuild/bazel/defs.bzl", "flytebuild/templates/flytebuild.toml",
                     "flytebuild/pants_backend/register.py", "flytebuild/cli/main.py", "flytebuild/runtime/run.py"):
        assert required in names
    info = f"flytebuild-{__version__}.dist-info"
    metadata = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    assert f"Version: {__version__}" in metadata and "License: Apache-2.0" in metadata
    assert "Requires-Dist: blake3<2,>=0.3" in metadata
    assert "flytebuild = flytebuild.cli.main:main" in zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    assert any(n.startswith(f"{info}/") and n.endswith("LICENSE") for n in names)
    (sdist,) = built_dist.glob(f"flytebuild-{__version__}.tar.gz")
    members = tarfile.open(sdist).getnames()
    for f in ("LICENSE", "CHANGELOG.md", "pyproject.toml", "src/python/flytebuild/bazel/defs.bzl"):
        assert f"flytebuild-{__version__}/{f}" in members


def test_the_wheel_build_reproduces_and_leaves_the_tree_clean(wheel, tmp_path):
    subprocess.run(["bash", str(REPO / "bin/build-dist"), str(tmp_path)], check=True, capture_output=True)
    assert (tmp_path / wheel.name).read_bytes() == wheel.read_bytes()
    assert not (REPO / "build").exists() and not glob.glob(str(REPO / "src/python/*.egg-info"))


def test_version_is_written_once():
    assert 'dynamic = ["version"]' in (REPO / "pyproject.toml").read_text()
    assert f"## {__version__}" in (REPO / "CHANGELOG.md").read_text()
    proc = subprocess.run([sys.executable, "-c", "from flytebuild.cli.main import main; main(['--version'])"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src/python")})
    assert proc.stdout.strip() == f"flytebuild {__version__}"
    from flytebuild.pants_backend.subsystems.flyte import FlyteSubsystem

    assert f"flytebuild {__version__}" in FlyteSubsystem.help


@pytest.mark.slow
def test_blake3_resolves_next_to_pants_pins(wheel, tmp_path):
    """pip, as a user installing Pants and the plugin side by side, finds a blake3 inside our range that
    Pants 2.17.1's typing-extensions==4.3.0 allows (1.0.10 would need >= 4.6)."""
    py39 = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9")) + ["/usr/bin/python3.9"])
    py39 = next((p for p in py39 if os.path.exists(p)), None) or "python3.9"
    report = tmp_path / "report.json"
    # The interpreter's own pip (a venv's is the same one, from ensurepip); --ignore-installed: the answer is
    # that of an empty venv, without making one (measured: 7 s of CPU for the same report).
    subprocess.run([py39, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed", "--report", str(report),
                    "pantsbuild.pants==2.17.1", str(wheel)], check=True, capture_output=True)
    chosen = {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"]
              for i in json.loads(report.read_text())["install"]}
    assert chosen["typing-extensions"] == "4.3.0"
    major, minor, patch = (int(x) for x in chosen["blake3"].split(".")[:3])
    assert (0, 3, 0) <= (major, minor, patch) < (2, 0, 0) and (major, minor, patch) != (1, 0, 10)
