"""A throwaway copy of tests/bazel/workspace built by Debian's Bazel 4.2.3 offline (tests/support/
install_bazel.sh), with its own output root; the Bazel server is shut down after the module."""
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

# registry, python_base: the session's real registry with the Debian Python base (tests/support/fixtures.py).

REPO = Path(__file__).resolve().parents[2]
WORKSPACE = REPO / "tests" / "bazel" / "workspace"


class BazelWorkspace:
    def __init__(self, root: Path, output_root: Path, defines: dict):
        self.root = root
        self.output_root = output_root
        self.defines = defines
        self.logs = 0
        self._bin = None

    def bazel(self, *args: str, check: bool = True):
        """(process, executed spawns, seconds): the spawns come from Bazel's execution log."""
        self.logs += 1
        log = self.output_root / f"exec{self.logs}.json"
        command, rest = args[0], list(args[1:])
        argv = ["bazel", f"--output_user_root={self.output_root}", command]
        if command in ("build", "run"):
            argv += [f"--define={k}={v}" for k, v in self.defines.items()]
            argv += [f"--execution_log_json_file={log}"]
        start = time.monotonic()
        proc = subprocess.run(argv + rest, cwd=self.root, capture_output=True, text=True, timeout=900)
        seconds = time.monotonic() - start
        if check and proc.returncode != 0:
            raise AssertionError(f"bazel {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc, _spawns(log), seconds

    def bin(self, rel: str) -> Path:
        # `bazel info bazel-bin` once: the directory depends on the output root and the configuration (the same for
        # every build of a workspace here), and each `info` is a round trip to the server.
        if self._bin is None:
            self._bin = Path(subprocess.run(["bazel", f"--output_user_root={self.output_root}", "info", "bazel-bin"],
                                            cwd=self.root, capture_output=True, text=True, check=True).stdout.strip())
        return self._bin / rel

    def write(self, rel: str, text: str) -> None:
        (self.root / rel).write_text(text)


def execution_log(log: Path) -> list:
    """The entries of a `--execution_log_json_file` (concatenated JSON objects): one per spawn Bazel ran."""
    if not log.exists():
        return []
    text, found, decoder, i = log.read_text(), [], json.JSONDecoder(), 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return found
        entry, i = decoder.raw_decode(text, i)
        found.append(entry)


def _spawns(log: Path) -> list:
    """Mnemonic and outputs of every spawn Bazel ran (cache hits never show up)."""
    return [(e.get("mnemonic"), sorted(o["path"] for o in e.get("actualOutputs", []))) for e in execution_log(log)]


@pytest.fixture(scope="module")
def bazel_ws(tmp_path_factory, user_python, registry, python_base):
    subprocess.run(["bash", str(REPO / "tests/support/install_bazel.sh")], check=True)
    base = tmp_path_factory.mktemp("bazel")
    root = base / "ws"
    shutil.copytree(WORKSPACE, root, symlinks=False)  # the lockfile/BUILD symlinks become files
    (root / "WORKSPACE").write_text(
        (root / "WORKSPACE").read_text().replace('path = "../../../src/python"', f'path = "{REPO}/src/python"')
    )
    for build in (root / "BUILD.bazel", root / "demo/BUILD.bazel"):
        build.write_text(build.read_text().replace("localhost:5000", registry.host))
    ws = BazelWorkspace(
        root,
        base / "out",
        {
            "FLYTE_PYTHON": user_python,
            "FLYTEBUILD_PYTHON": str(REPO / ".bootstrap/venv/bin/python"),
            # pex downloads the lockfile's wheels once; share the cache Pants already filled.
            "FLYTEBUILD_PEX_ROOT": str(REPO / ".bootstrap/cache/named_caches/pex_root"),
            "FLYTEBUILD_IMAGE_CACHE": str(base / "cache"),
        },
    )
    yield ws
    subprocess.run(["bazel", f"--output_user_root={ws.output_root}", "shutdown"], cwd=root, capture_output=True)
    # Bazel makes its output tree read-only; let pytest clean it up.
    subprocess.run(["chmod", "-R", "u+w", str(base)], capture_output=True)
