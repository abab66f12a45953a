"""docs/adopt-cli.md, run as written in an empty directory: a fresh venv gets flytekit and the built wheel,
`flytebuild init` configures a plain flytekit project, `lock` pins it, the image is built on an offline
base from an OCI layout, packaged, the workflow runs locally and is deployed (twice: the second registers
nothing) to the stand-in FlyteAdmin over real gRPC, its image pushed to a real registry."""
import json
import urllib.request
from pathlib import Path

import pytest

from flytebuild import __version__
from tests.adoption import docscript
from tests.support.flyteadmin.fixture import flyteadmin

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "adopt-cli.md"


@pytest.mark.slow
def test_the_cli_guide_from_an_empty_directory(tmp_path, wheel, adoption_registry, user_python):
    project = tmp_path / "project"
    project.mkdir()
    cache = tmp_path / "xdg"
    with flyteadmin(user_python) as admin:
        out = docscript.run(
            DOC, "test_adopt_cli.py::test_the_cli_guide_from_an_empty_directory", project,
            {"WHEEL": str(wheel), "REGISTRY": adoption_registry.host, "ENDPOINT": admin.endpoint},
            env={"XDG_CACHE_HOME": str(cache)},
        )
        values, install, base, init, lock, local, deploy = out
        assert f"flytebuild {__version__}" in install
        assert "OCI layout base.oci" in base and "Python 3.11" in base

        # init: found the workflow and the venv, pinned flytekit, wrote a working configuration
        config = (project / "flytebuild.toml").read_text()
        assert '[workflows.pipeline]\nentrypoint = "myflows/workflows.py:pipeline"\nimage = "app"' in config
        assert 'python = ".venv/bin/python"' in config and 'default_base = "oci:base.oci"' in config
        assert (project / "requirements.txt").read_text() == "flytekit==1.16.31\n"

        # lock: a pex lockfile, switched on
        assert 'lockfile = "flytebuild.lock"' in (project / "flytebuild.toml").read_text()
        lock_doc = json.loads((project / "flytebuild.lock").read_text())
        locked = {r["project_name"] for r in lock_doc["locked_resolves"][0]["locked_requirements"]}
        assert {"flytekit", "python-dateutil", "grpcio"} <= locked
        assert "warning" not in local  # locked: no unpinned-requirements warning

        # plan: both tasks baked into the image; package: the layout and the archive; run: the answer
        assert local.count(" baked ") == 2 and "no code bundle" in local
        layout = json.loads((project / "dist/app.oci/index.json").read_text())
        assert layout["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"].startswith(
            f"{adoption_registry.host}/app:")
        assert (project / "dist/pipeline/flyte-package.tgz").is_file()
        assert '"result: 10"' in local

        # deploy: image pushed, entities registered; then nothing new
        tasks = {i["name"] for i in admin.store.ids("task")}
        assert {"myflows.tasks.double", "myflows.tasks.describe"} <= tasks
        assert admin.store.counters()["task"]["created"] == 2
        image = json.loads((project / "dist/app.image.json").read_text())["ref"]
        tag = image.rsplit(":", 1)[1]
        req = urllib.request.Request(f"http://{adoption_registry.host}/v2/app/manifests/{tag}", method="HEAD",
                                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        with urllib.request.urlopen(req) as rsp:
            assert rsp.status == 200
    # the layer cache is where the guide says
    assert any((cache / "flytebuild").rglob("*")), "nothing in $XDG_CACHE_HOME/flytebuild"
