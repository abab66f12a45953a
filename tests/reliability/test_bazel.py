"""The Bazel rules (real Bazel 4.2.3, offline) refuse names that would escape the action's declared output and
bad image fields, with our one-paragraph message and no file written outside bazel-out."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.bazel.conftest import WORKSPACE, BazelWorkspace

REPO = Path(__file__).resolve().parents[2]

BUILD = '''load("@flytebuild//flytebuild:bazel/defs.bzl", "flyte_image")

flyte_image(name = "evil", image_name = "../evil", deps = ["//:flytekit"])

flyte_image(name = "bad_base", base = "http://exa mple:abc/x", deps = ["//:flytekit"])

# Bazel allows `/` in target names; the image name defaults to the target name
flyte_image(name = "sub/evil", deps = ["//:flytekit"])
'''


@pytest.fixture(scope="module")
def ws(tmp_path_factory, user_python):
    subprocess.run(["bash", str(REPO / "tests/support/install_bazel.sh")], check=True)
    base = tmp_path_factory.mktemp("bazel-reliability")
    root = base / "ws"
    shutil.copytree(WORKSPACE, root, symlinks=False)
    workspace = (root / "WORKSPACE").read_text()
    # the same rewrite tests/bazel/conftest.py makes: the rules come from this checkout
    (root / "WORKSPACE").write_text(workspace.replace('path = "../../../src/python"', f'path = "{REPO}/src/python"'))
    (root / "evil").mkdir()
    (root / "evil/BUILD.bazel").write_text(BUILD)
    ws = BazelWorkspace(root, base / "out", {
        "FLYTE_PYTHON": user_python,
        "FLYTEBUILD_PYTHON": str(REPO / ".bootstrap/venv/bin/python"),
        "FLYTEBUILD_PEX_ROOT": str(REPO / ".bootstrap/cache/named_caches/pex_root"),
        "FLYTEBUILD_IMAGE_CACHE": str(base / "cache"),
    })
    yield ws
    subprocess.run(["bazel", f"--output_user_root={ws.output_root}", "shutdown"], cwd=root, capture_output=True)
    subprocess.run(["chmod", "-R", "u+w", str(base)], capture_output=True)


@pytest.mark.parametrize("target,fragments", [
    ("//evil:evil", ("`image_name`", "'../evil'", "path separator")),
    ("//evil:bad_base", ("`base`", "'http://exa mple:abc/x'", "not a valid image reference")),
    ("//evil:sub/evil", ("`image_name`", "'sub/evil'", "path separator")),
])
def test_bazel_refuses_before_writing(ws, target, fragments):
    proc, _, _ = ws.bazel("build", target, "--output_groups=+oci", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text[-3000:]
    for fragment in fragments:
        assert fragment in text, text[-3000:]
    assert "Fix:" in text and "Traceback (most recent call last)" not in text, text[-3000:]
    escaped = [p for p in ws.output_root.parent.rglob("evil.oci*")] + [p for p in ws.root.rglob("evil.oci*")]
    assert escaped == [], escaped
