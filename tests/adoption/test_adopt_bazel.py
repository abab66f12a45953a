"""docs/adopt-bazel.md, run as written in an empty directory with Bazel 4.2.3 offline: the wheel itself is the
`@flytebuild` repository (http_archive of a file:// URL, type zip), the rules load from it, run the CLI from
it, write the workflow's plan and registration archive where the guide says, and `bazel run :<wf>.run` runs it
locally."""
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.adoption import docscript

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "adopt-bazel.md"


@pytest.mark.slow
def test_the_bazel_guide_from_an_empty_directory(tmp_path, wheel):
    subprocess.run(["bash", str(REPO / "tests/support/install_bazel.sh")], check=True)
    work = tmp_path / "ws"
    work.mkdir()
    # Bazel keeps its server and output tree under TEST_TMPDIR when set: this test's own, shut down after.
    env = {"TEST_TMPDIR": str(tmp_path / "bazel-root")}
    try:
        out = docscript.run(DOC, "test_adopt_bazel.py::test_the_bazel_guide_from_an_empty_directory", work,
                            {"WHEEL": str(wheel)}, env=env, timeout=2400)
    finally:
        for pid in (tmp_path / "bazel-root").glob("_bazel_*/*/server/server.pid.txt"):
            docscript.report_daemon_cpu(DOC, "the Bazel server", int(pid.read_text().strip()))
        subprocess.run(["bazel", "shutdown"], cwd=work, env={**os.environ, **env}, capture_output=True)
        subprocess.run(["chmod", "-R", "u+w", str(tmp_path)], capture_output=True)
    build, run = out[-2], out[-1]
    plan = json.loads((work / "bazel-bin/flows/pipeline.plan.json").read_text())
    (workflow,) = plan["workflows"]
    assert workflow["address"] == "//flows:pipeline" and workflow["tasks"][0]["name"] == "flows.tasks.double"
    archives = list((work / "bazel-bin/flows/pipeline.package").rglob("flyte-package.tgz"))
    assert len(archives) == 1 and any(n.endswith(".pb") for n in tarfile.open(archives[0]).getnames())
    assert "flyte-package.tgz" in build or "flows.pipeline" in build
    # `:pipeline.run`: the local run, with the typed input from the command line (2 * 4).
    assert ["o0", "int", "8"] in [ln.split() for ln in run.splitlines()], run
