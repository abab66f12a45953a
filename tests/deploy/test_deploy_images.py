"""flyte-deploy pushes the tasks' flyte_image targets before registering; tasks name the content tag (never a digest,
so `--no-push-images` registers the same entities), and the registry holds that tag at the pushed digest:
a real Debian registry with the Python base image (tests/images' support), the stand-in FlyteAdmin, real ./pants."""
import pytest

from tests.deploy.conftest import DOMAIN, PROJECT, Repo, by_status, stored_task
from tests.support.base_registry import registry  # noqa: F401 - fixture
from tests.support.repo_copy import pants_repo_copy


@pytest.fixture(scope="module")
def image_repo(tmp_path_factory, registry):
    """A temp copy whose images push to (and pull their base from) the test registry."""
    repo = pants_repo_copy(tmp_path_factory.mktemp("deploy-images-repo"), registry.host, repo_class=Repo)
    yield repo
    repo.kill_pantsd()


def test_deploy_pushes_images_then_registers_tasks_by_content_tag(image_repo, registry, fresh_admin, tmp_path):
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
            assert stored_task(fresh_admin, e["name"], e["version"])["container"]["image"] == baked["ref"]
    # again: the registry has the tag (nothing pushed), FlyteAdmin has every entity (nothing registered)
    _, again = image_repo.deploy(fresh_admin, "examples/baked:wf", push=True,
                                 options=(f"--flyte-image-cache-dir={cache}",))
    image = again["images"][0]
    assert image["pushed"] is False and image["bytes_uploaded"] == 0 and image["digest"] == baked["digest"]
    assert by_status(again, "registered") == set() and again["bytes_uploaded"] == 0
