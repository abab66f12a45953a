"""`flytebuild package <image>`: exactly the closure, reproducible, skipped when the tag exists, and the
same layers as `pants package` of the same flyte_image (real registry, real Pants)."""
import json
from pathlib import Path

import pytest

from tests.support.fixtures import forget_repository
from tests.support.layer_cache import layers, layers_xdg  # noqa: F401 - fixtures (one layer cache per process)

REPO = Path(__file__).resolve().parents[2]
# pex downloads the lockfile's wheels once; share the cache Pants already filled.
PEX_ROOT = {"PEX_ROOT": str(REPO / ".bootstrap/cache/named_caches/pex_root")}


@pytest.fixture(scope="module")
def repo(registry_repo):
    """The session's copy whose BUILD files and flytebuild.toml name the test registry (tests/support/fixtures.py)."""
    return registry_repo


@pytest.fixture(scope="module")
def xdg(layers_xdg) -> Path:
    """XDG_CACHE_HOME: its layer cache (`flytebuild/oci`) is the test process's (tests/support/layer_cache.py),
    filled by the first build and reused by the others. Builds from empty caches give the same digest on every front
    end: tests/e2e/test_equivalence.py (the CLI, Pants and Bazel, every example image) and tests/images/test_package.py
    (twice with Pants)."""
    return layers_xdg


def _package(cli, repo, cache, *args, command="package"):
    return cli("-c", "examples/flytebuild.toml", command, *args, cwd=repo.root, check=True,
               env={**PEX_ROOT, "XDG_CACHE_HOME": str(cache)})


def _labels(layout: Path) -> dict:
    index = json.loads((layout / "index.json").read_text())
    blob = lambda d: layout / "blobs" / "sha256" / d.split(":", 1)[1]  # noqa: E731
    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
    return json.loads(blob(manifest["config"]["digest"]).read_text())["config"]["Labels"]


def test_publish_pushes_skips_package_writes_oci_and_same_digest_as_pants(cli, repo, registry, xdg, layers,
                                                                          tmp_path):
    forget_repository(registry, "flytebuild/baked")  # the session's registry: another test may have pushed it
    first = _package(cli, repo, xdg, "baked-image", command="publish")
    summary = json.loads((repo.root / "dist/baked-image.image.json").read_text())
    assert summary["pushed"] is True and summary["ref"].startswith(f"{registry.host}/flytebuild/baked:")
    assert "pushed " + summary["ref"] in first.stdout
    names = [layer["name"] for layer in summary["layers"]]
    assert names[-2:] == ["scripts", "sources"] and any("flytekit" in n for n in names)

    again = _package(cli, repo, xdg, "baked-image", command="publish")
    assert "nothing built or pushed" in again.stdout
    assert json.loads((repo.root / "dist/baked-image.image.json").read_text())["digest"] == summary["digest"]

    # `package` (as `pants package`) writes an OCI layout by default: the same manifest, holding exactly the
    # closure, nothing pushed.
    out = tmp_path / "oci"
    _package(cli, repo, xdg, "baked-image", "--dist", str(out))
    oci = json.loads((out / "baked-image.image.json").read_text())
    assert oci["digest"] == summary["digest"] and (oci["output"], oci["pushed"]) == ("oci", False)
    plan = json.loads(cli("-c", "examples/flytebuild.toml", "plan", "--format=json", "baked-image",
                          cwd=repo.root, check=True).stdout)
    baked = sorted(p.split("/", 1)[1] for p in plan["images"][0]["sources"])  # source root stripped
    assert json.loads(_labels(out / "baked.oci")["org.flytebuild.source-files"]) == baked

    # The Pants adapter builds the same image from the same inputs: in the CLI's layer cache, a layer whose inputs
    # Pants gathered differently would be built anew (and differ).
    proc = repo.pants(f"--flyte-image-cache-dir={layers}", "--flyte-image-output=oci",
                      "package", "examples/baked:image")
    assert proc.returncode == 0, proc.stderr
    pants_summary = json.loads((repo.root / "dist/examples.baked/image.image.json").read_text())
    assert pants_summary["ref"] == summary["ref"]
    # Every layer identical (each wheel, the console scripts, the sources), and the config too: the same
    # manifest digest from both front ends.
    layers = lambda s: [(layer["name"], layer["digest"], layer["size"]) for layer in s["layers"]]  # noqa: E731
    assert layers(pants_summary) == layers(oci)
    assert pants_summary["digest"] == oci["digest"] == summary["digest"]


def test_deploy_pushes_images_first_and_tasks_name_the_content_tag(cli, repo, registry, user_python, xdg):
    """As `pants flyte-deploy`: the image is pushed before registering, and the task names its content tag (never a
    digest: a tag is trusted only with our fingerprint label, so `--no-push-images` then a push cannot conflict)."""
    from tests.support.flyteadmin.fixture import flyteadmin

    with flyteadmin(user_python) as admin:
        proc = _package(cli, repo, xdg, "baked-image")  # the layer cache warm
        ref = json.loads((repo.root / "dist/baked-image.image.json").read_text())
        proc = cli("-c", "examples/flytebuild.toml", "deploy", "baked-wf", "--endpoint", admin.endpoint, "--insecure",
                   "--format=json", cwd=repo.root, env={**PEX_ROOT, "XDG_CACHE_HOME": str(xdg)})
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout)
        (image,) = summary["images"]
        assert image["address"] == "baked-image" and image["digest"] == ref["digest"]
        task = next(i for i in admin.store.ids("task") if i["name"] == "baked.stats.summarize")
        stored = admin.store.get("task", task["project"], task["domain"], task["name"], task["version"])
        template = stored["closure"]["compiled_task"]["template"]
        assert template["container"]["image"] == image["ref"] and "@sha256:" not in json.dumps(stored)
