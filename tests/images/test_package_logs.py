"""What `./pants package <flyte_image>` prints: a line per layer only for work done (built, uploaded), one line
per image for what was reused (layer cache, registry), and nothing per layer when the tag is already there."""
from __future__ import annotations

import re

from tests.images.test_package import IMAGE, package, summary

HELPERS = "examples/shared/helpers.py"


def layer_lines(stderr: str) -> list[str]:
    return [l for l in stderr.splitlines() if f"{IMAGE}: layer " in l]


def test_package_logs_work_per_layer_and_reuse_per_image(repo, registry, tmp_path):
    cache = tmp_path / "c"
    original = repo.read(HELPERS)
    try:
        # Sources no other test of the session's registry has pushed: a tag of this test's own.
        repo.write(HELPERS, original + "\n# test_package_logs: first build\n")
        first = package(repo, cache)  # from a clean layer cache: every layer is built and uploaded
        lines = layer_lines(first.stderr)
        built = [l for l in lines if " built (" in l]
        uploaded = [l for l in lines if " uploaded (" in l]
        assert len(built) == len(summary(repo)["layers"]) and uploaded, first.stderr[-3000:]
        assert not [l for l in lines if " cached (" in l or " exists (" in l]

        repo.write(HELPERS, original + "\n# test_package_logs: a change to the sources only\n")
        second = package(repo, cache)
        lines = layer_lines(second.stderr)
        # Only the layers rebuilt every time (scripts, sources) and the one that changed (sources) are told.
        assert {re.search(r"layer (\S+)", l).group(1) for l in lines} <= {"scripts", "sources"}, lines
        assert [l for l in lines if " uploaded (" in l and "layer sources " in l], second.stderr[-3000:]
        reused = [l for l in second.stderr.splitlines() if re.search(
            rf"{re.escape(IMAGE)}: \d+ layers? from the layer cache, \d+ layers? already in the registry$", l)]
        assert len(reused) == 1, second.stderr[-3000:]

        third = package(repo, cache)  # tag in the registry: one line, none per layer
        assert layer_lines(third.stderr) == [] and "nothing built or pushed" in third.stderr
        assert "from the layer cache" not in third.stderr
    finally:
        repo.write(HELPERS, original)
