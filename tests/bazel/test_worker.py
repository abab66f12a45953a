"""`flyte_settings(persistent_worker = True)` built for real by Bazel 4.2.3 (docs/worker.md#bazel): the plan and
package actions run in one JSON persistent worker, which forks the user's code from a warm worker of the user's
environment; every output is byte for byte the one of the plain (sandboxed) actions, after an edit too, and a
user's import error reads the same."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from flytebuild.service import worker
from tests.bazel.conftest import execution_log

# what docs/worker.md#bazel tells users to add to their .bazelrc (harmless for the plain actions)
BAZELRC = "build --experimental_worker_allow_json_protocol\nbuild --worker_sandboxing\n"
WORKER_FLAGS = ("--worker_verbose",)
TARGETS = ("//demo:wf", "--output_groups=+package")
SETTINGS = '    name = "flyte_settings",\n'


def _runners(ws) -> dict:
    """mnemonic → runners of the last build's spawns (Bazel's execution log; cache hits are not spawns)."""
    found: dict = {}
    for entry in execution_log(ws.output_root / f"exec{ws.logs}.json"):
        found.setdefault(entry.get("mnemonic"), []).append(entry.get("runner"))
    return found


def _outputs(ws) -> dict:
    """The plan and the registration archive's files, as bytes."""
    (package,) = ws.bin("demo/wf.package").iterdir()
    return {"plan": ws.bin("demo/wf.plan.json").read_bytes(),
            **{p.name: p.read_bytes() for p in sorted(package.iterdir())}}


def _set_worker(ws, build: str, on: bool) -> None:
    ws.write("BUILD.bazel", build.replace(SETTINGS, SETTINGS + "    persistent_worker = True,\n") if on else build)


def _cli_message(stderr: str) -> str:
    """The CLI's own lines of a failed action: from its `flytebuild:` line to Bazel's verdict, without the sandbox's
    debug lines and Bazel's progress lines (`[2 / 2] checking cached actions`, printed when a build is slow)."""
    lines = stderr[stderr.index("flytebuild: "):].splitlines()
    kept = []
    for line in lines:
        if line.startswith(("Target //", "FAILED:", "INFO:")):
            break
        if not re.match(r"^\d+\.\d+: src/main/tools/|^\[[\d,]+ / [\d,]+\] ", line):
            kept.append(line.rstrip())  # what Bazel's progress output leaves at a line's end
    return "\n".join(kept).strip()


def test_plan_and_package_in_a_persistent_worker_equal_the_plain_actions(bazel_ws):
    ws = bazel_ws
    build, bazelrc = (ws.root / "BUILD.bazel").read_text(), (ws.root / ".bazelrc").read_text()
    train = ws.root / "demo/train.py"
    original = train.read_text()
    ws.write(".bazelrc", bazelrc + BAZELRC)
    ws.bazel("build", *TARGETS)
    plain = _outputs(ws)
    try:
        _set_worker(ws, build, True)
        proc, _, _ = ws.bazel("build", *WORKER_FLAGS, *TARGETS)
        runners = _runners(ws)
        assert runners["FlytePlan"] == ["worker"] and runners["FlytePackage"] == ["worker"], runners
        assert _outputs(ws) == plain
        assert "Created new sandboxed FlytePlan worker" in proc.stderr

        # An edit: the same Bazel worker plans it (no new one), the user's code forked from the warm worker.
        train.write_text(original.replace("return mean(xs)", "return float(mean(xs))"))
        proc, _, _ = ws.bazel("build", *WORKER_FLAGS, *TARGETS)
        assert _runners(ws)["FlytePlan"] == ["worker"]
        assert "Created new sandboxed FlytePlan worker" not in proc.stderr, proc.stderr
        edited = _outputs(ws)
        assert json.loads(edited["plan"]) != json.loads(plain["plan"])  # the edit changed fit's version
        (socket,) = ws.output_root.glob("*/flytebuild-workers/w-*.sock")
        os.kill(int(Path(f"{socket}.pid").read_text().split()[0]), 0)  # the user-environment worker is up

        # The same inputs through the plain actions (never run on these inputs: spawns, not cache hits).
        _set_worker(ws, build, False)
        ws.bazel("build", *TARGETS)
        assert set(_runners(ws)["FlytePlan"]) != {"worker"}
        assert _outputs(ws) == edited

        # A user's import error: the same message, worker or not. The module exists in the workspace but is in no
        # `deps`: the plain action's sandbox does not have it, and neither has the worker's (--worker_sandboxing).
        extra = ws.root / "demo/extra.py"
        extra.write_text("X = 1\n")
        train.write_text(original + "\nimport demo.extra\n")
        plain_error, _, _ = ws.bazel("build", "//demo:wf", check=False)
        _set_worker(ws, build, True)
        worker_error, _, _ = ws.bazel("build", *WORKER_FLAGS, "//demo:wf", check=False)
        assert plain_error.returncode == worker_error.returncode == 1
        message = _cli_message(worker_error.stderr)
        assert "No module named 'demo.extra'" in message and "(target //demo:wf, file demo/train.py)" in message
        assert message == _cli_message(plain_error.stderr)

        # Without --worker_sandboxing the worker would see demo/extra.py: it refuses, naming the flag.
        ws.write(".bazelrc", bazelrc + BAZELRC.split("\n")[0] + "\n")
        unsandboxed, _, _ = ws.bazel("build", "//demo:wf", check=False)
        assert unsandboxed.returncode == 1 and "build with `--worker_sandboxing`" in unsandboxed.stderr
    finally:
        train.write_text(original)
        (ws.root / "demo/extra.py").unlink(missing_ok=True)
        ws.write("BUILD.bazel", build)
        ws.write(".bazelrc", bazelrc)
        for directory in ws.output_root.glob("*/flytebuild-workers"):
            worker.stop(str(directory))
