"""flyte-deploy pushes the tasks' flyte_image targets before registering, and pins each task to the pushed digest:
a real Debian registry with the Python base image (tests/images' support), the stand-in FlyteAdmin, real ./pants."""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import DOMAIN, PROJECT, Repo, by_status, stored_task

REPO = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


oci_support = _load("_flytebuild_oci_conftest_deploy", REPO / "tests/oci/conftest.py")
base_support = _load("_flytebuild_base_image_deploy", REPO / "tests/support/base_image.py")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    reg = oci_support.start_registry(tmp_path_factory.mktemp("registry"))
    base_support.push_base_image(reg.host, base_support.DEFAULT_REPOSITORY, cache_dir=tmp_path_factory.mktemp("c"))
    yield reg
    oci_support.stop_registry(reg)


@pytest.fixture(scope="module")
def image_repo(tmp_path_factory, registry):
    """A temp copy whose images push to (and pull their base from) the test registry."""
    subprocess.run([str(REPO / "pants"), "--version"], cwd=REPO, check=True, capture_output=True)
    root = tmp_path_factory.mktemp("deploy-images-repo")
    for name in ("pants", "pants.toml", "BUILD"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, root / name)
    for name in ("examples", "src"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for build in (root / "examples").rglob("BUILD"):
        build.write_text(build.read_text().replace("localhost:5000", registry.host))
    (root / ".bootstrap").mkdir()
    for name in ("venv", "pex.pex", "cache"):
        os.symlink(REPO / ".bootstrap" / name, root / ".bootstrap" / name)
    repo = Repo(root)
    yield repo
    repo.kill_pantsd()


def test_deploy_pushes_images_then_registers_tasks_pinned_by_digest(image_repo, registry, fresh_admin, tmp_path):
    cache = tmp_path / "image-cache"
    _, summary = image_repo.deploy(fresh_admin, "examples/baked:wf", push=True,
                                   options=(f"--flyte-image-cache-dir={cache}",))
    images = {i["address"]: i for i in summary["images"]}
    assert set(images) == {"examples/baked:image"}
    baked = images["examples/baked:image"]
    assert baked["pushed"] is True and baked["bytes_uploaded"] > 0
    assert baked["ref"].startswith(f"{registry.host}/flytebuild/baked:") and baked["digest"].startswith("sha256:")
    assert summary["counts"]["registered"] == len(summary["entities"])
    for e in summary["entities"]:
        if e["kind"] == "task":
            assert stored_task(fresh_admin, e["name"], e["version"])["container"]["image"] == \
                f"{baked['ref']}@{baked['digest']}"
    # again: the registry has the tag (nothing pushed), FlyteAdmin has every entity (nothing registered)
    _, again = image_repo.deploy(fresh_admin, "examples/baked:wf", push=True,
                                 options=(f"--flyte-image-cache-dir={cache}",))
    image = again["images"][0]
    assert image["pushed"] is False and image["bytes_uploaded"] == 0 and image["digest"] == baked["digest"]
    assert by_status(again, "registered") == set() and again["bytes_uploaded"] == 0
