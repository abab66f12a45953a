"""flyte-deploy pushes the tasks' flyte_image targets before registering; tasks name the content tag (never a digest,
so `--no-push-images` registers the same entities), and the registry holds that tag at the pushed digest:
a real Debian registry with the Python base image (tests/images' support), the stand-in FlyteAdmin, real ./pants."""
import pytest

from tests.deploy.conftest import Repo, by_status, stored_task
from tests.support.base_registry import registry  # noqa: F401 - fixture
from tests.support.fixtures import forget_repository
from tests.support.layer_cache import layers  # noqa: F401 - fixture (one layer cache per test process)


@pytest.fixture(scope="module")
def image_repo(registry_repo):
    """The session's copy whose images push to (and pull their base from) the test registry (`registry_repo`,
    tests/support/fixtures.py), with deploy helpers."""
    return Repo(registry_repo.root)


def test_deploy_pushes_images_then_registers_tasks_by_content_tag(image_repo, registry, fresh_admin, layers):
    forget_repository(registry, "flytebuild/baked")  # the session's registry: tests/cli pushed this image too
    cache = layers
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
            assert stored_task(fresh_admin, e["name"], e["version"])["container"]["image"] == baked["ref"]
    # again: the registry has the tag (nothing pushed), FlyteAdmin has every entity (nothing registered)
    _, again = image_repo.deploy(fresh_admin, "examples/baked:wf", push=True,
                                 options=(f"--flyte-image-cache-dir={cache}",))
    image = again["images"][0]
    assert image["pushed"] is False and image["bytes_uploaded"] == 0 and image["digest"] == baked["digest"]
    assert by_status(again, "registered") == set() and again["bytes_uploaded"] == 0
