"""`./pants package <flyte_image>` end to end: real Pants in a temp copy of the repo, the real
registry with the Debian Python base pushed to it, a real Docker engine running the result."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("_flytebuild_e2e_conftest", REPO / "tests" / "e2e" / "conftest.py")
e2e = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = e2e
_spec.loader.exec_module(e2e)  # type: ignore[union-attr]

IMAGE = "examples/baked:image"
SUMMARY = "dist/examples.baked/image.image.json"


@pytest.fixture(scope="module")
def repo(tmp_path_factory, registry, python_base):
    """A temp copy whose images push to (and pull their base from) the test registry."""
    subprocess.run([str(REPO / "pants"), "--version"], cwd=REPO, check=True, capture_output=True)
    root = tmp_path_factory.mktemp("repo")
    for name in ("pants", "pants.toml", "BUILD"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, root / name)
    for name in ("examples", "src"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".bootstrap").mkdir()
    for name in ("venv", "pex.pex", "cache"):
        (root / ".bootstrap" / name).symlink_to(REPO / ".bootstrap" / name)
    for build in (root / "examples").rglob("BUILD"):
        build.write_text(build.read_text().replace("localhost:5000", registry.host))
    r = e2e.PantsRepo(root)
    yield r
    r.kill_pantsd()


def package(repo, cache: Path, *args: str, check: bool = True):
    proc = repo.pants(f"--flyte-image-cache-dir={cache}", *args, "package", IMAGE)
    if check:
        assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    return proc


def summary(repo) -> dict:
    return json.loads(repo.read(SUMMARY))


def drop_tag(registry, ref: str) -> None:
    """Delete the tag (as a registry GC'd image would be), so the next package builds and pushes again."""
    from flytebuild.oci import RegistryClient
    from flytebuild.oci.registry import Reference

    r = Reference.parse(ref)
    client = RegistryClient(registry.host)
    desc = client.head_manifest(r.repository, r.tag)
    client.request("DELETE", f"/v2/{r.repository}/manifests/{desc.digest}", repo=r.repository, actions="*",
                   ok=(202,)).close()


def test_package_twice_from_clean_caches_is_identical_then_skips(repo, registry, tmp_path):
    first = package(repo, tmp_path / "c1")
    s1 = summary(repo)
    assert s1["pushed"] is True and s1["ref"].startswith(f"{registry.host}/flytebuild/baked:")
    names = [l["name"] for l in s1["layers"]]
    assert names[-2:] == ["scripts", "sources"] and any(n.startswith("flytekit==") for n in names)
    assert "pushed " + s1["ref"] in first.stderr

    # Same tag in the registry: nothing is built or pushed.
    again = package(repo, tmp_path / "c1")
    s2 = summary(repo)
    assert s2["pushed"] is False and s2["bytes_uploaded"] == 0 and s2["digest"] == s1["digest"]
    assert "nothing built or pushed" in again.stderr

    # Built again from clean caches (tag gone): byte-identical manifest.
    drop_tag(registry, s1["ref"])
    package(repo, tmp_path / "c2")
    s3 = summary(repo)
    assert s3["pushed"] is True and s3["digest"] == s1["digest"]
