"""docs/adopt-pants.md, run as written in an empty directory: a fresh Pants 2.17.1 loads flytebuild from the
built wheel through `[GLOBAL].plugins` and a local find-links directory (so pip/pex must find a blake3 that
fits Pants' pins), `tailor` writes the Flyte targets, the repo's own resolve is locked, and a workflow under
its own source root plans (both tasks baked), packages (image as an OCI layout on a base from an OCI layout)
and runs."""
import glob
import json
import os
import signal
import tarfile
from pathlib import Path

import pytest

from flytebuild import __version__
from tests.adoption import docscript

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "adopt-pants.md"


def _pyenv_versions() -> str:
    """pyenv shims only answer for the selected versions: select the 3.11 and 3.9 the guide calls."""
    found = sorted(os.path.basename(p) for p in glob.glob(os.path.expanduser("~/.pyenv/versions/3.*")))
    picks = [next((v for v in reversed(found) if v.startswith(m)), None) for m in ("3.11.", "3.9.")]
    return ":".join(v for v in picks if v)


@pytest.mark.slow
def test_the_pants_guide_from_an_empty_directory(tmp_path, wheel):
    work = tmp_path / "repo"
    work.mkdir()
    env = {
        "PANTS_CA_CERTS_PATH": os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt",
        # A fresh store per run: Pants caches the plugin resolve by its argv, not by the wheel's bytes, so a
        # shared store would hand back the plugin of an earlier build of the same version.
        "PANTS_LOCAL_STORE_DIR": str(tmp_path / "lmdb"),
        # Downloaded wheels are content-addressed: share the ones the repo's own Pants fetched.
        "PANTS_NAMED_CACHES_DIR": str(REPO / ".bootstrap/cache/named_caches"),
    }
    if os.path.isdir(os.path.expanduser("~/.pyenv")):
        env["PYENV_VERSION"] = _pyenv_versions()
    try:
        out = docscript.run(DOC, "test_adopt_pants.py::test_the_pants_guide_from_an_empty_directory", work,
                            {"WHEEL": str(wheel), "export PEX_PEX": str(REPO / ".bootstrap/pex.pex")}, env=env,
                            timeout=3000)
    finally:
        for pid in work.glob(".pids/*/pantsd/pid"):
            try:
                docscript.report_daemon_cpu(DOC, "pantsd", int(pid.read_text().strip()))
                os.kill(int(pid.read_text().strip()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
    values, install, requirements, tailor, lock, base, flows = out

    # tailor: the Flyte targets, next to Pants' own
    build = (work / "src/myflows/BUILD").read_text()
    assert "python_sources()" in build and 'entrypoint="workflows.py:pipeline"' in build
    assert 'flyte_image(\n    name="image"' in build and '"./workflows.py"' in build
    assert "python_requirements(" in (work / "3rdparty/BUILD").read_text()

    # the repo's own resolve and lockfile
    assert '"flytekit"' in (work / "3rdparty/flows.lock").read_text()

    # plan: both tasks baked into the repo's image; package: its OCI layout on the OCI-layout base, the archive
    assert flows.count(" baked ") == 2 and "src/myflows:image" in flows
    (record,) = (work / "dist").rglob("image.image.json")
    image = json.loads(record.read_text())
    layout = record.parent / "image.oci"
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text())
    base_index = json.loads((work / "base.oci/index.json").read_text())
    base_manifest = json.loads((work / "base.oci/blobs/sha256" / base_index["manifests"][0]["digest"][7:]).read_text())
    assert manifest["layers"][0]["digest"] == base_manifest["layers"][0]["digest"]  # built on the layout's base
    assert image["digest"] == index["manifests"][0]["digest"]
    (archive,) = (work / "dist").rglob("flyte-package.tgz")
    assert any(n.endswith(".pb") for n in tarfile.open(archive).getnames())

    # run: locally, the answer
    assert '"result: 10"' in flows
    # the plugin Pants loaded is this wheel's version
    assert f"Settings for Flyte targets (flytebuild {__version__})." in tailor
