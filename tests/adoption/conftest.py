"""The adoption tests' one shared input: the wheel and sdist `bin/build-dist` builds from this checkout
(once per session); and a real registry for the images they push."""
import subprocess
from pathlib import Path

import pytest

from tests.oci.conftest import start_registry, stop_registry
from tests.support.fixtures import once_per_run

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def built_dist(tmp_path_factory) -> Path:
    """A directory holding flytebuild-<version>-py3-none-any.whl and flytebuild-<version>.tar.gz."""
    def build(out: Path) -> None:
        subprocess.run(["bash", str(REPO / "bin/build-dist"), str(out)], check=True, capture_output=True, text=True)

    return once_per_run(tmp_path_factory, "wheels", build)  # one build for all pytest-xdist workers


@pytest.fixture(scope="session")
def wheel(built_dist) -> Path:
    (found,) = built_dist.glob("flytebuild-*-py3-none-any.whl")
    return found


@pytest.fixture(scope="module")
def adoption_registry(tmp_path_factory):
    subprocess.run(["bash", str(REPO / "tests/support/install_registry.sh")], check=True)
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    stop_registry(reg)
