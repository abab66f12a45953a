"""cli/bazel_worker.py driven as Bazel 4.2.3 drives it, without Bazel: JSON work requests written back to back with
no newline (what Bazel 4.2.3 sends; a line reader waits forever), one JSON response line each on stdout and
nothing else there, the refusal outside a worker sandbox, a restart when flytebuild's sources change, and the
`@file` form another strategy runs (tests/bazel/test_worker.py builds with Bazel itself)."""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

from flytebuild import __version__

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src/python"


def _start(cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC), "FLYTEBUILD_CACHE_DIR": ""}
    return subprocess.Popen([sys.executable, "-m", "flytebuild.cli.bazel_worker", "--persistent_worker"], cwd=cwd,
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _request(proc: subprocess.Popen, request_id: int, arguments: list, inputs: tuple = ()) -> None:
    """As Bazel 4.2.3 writes it: the object and no newline."""
    proc.stdin.write(json.dumps({"arguments": arguments, "inputs": list(inputs), "requestId": request_id},
                                separators=(",", ":")).encode())
    proc.stdin.flush()


def _response(proc: subprocess.Popen, timeout: float = 60) -> dict:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no response from the worker"
    return json.loads(proc.stdout.readline())


def _sandbox(tmp_path: Path) -> Path:
    """Bazel 4.2.3's sandboxed worker directory: <output_base>/bazel-workers/worker-<id>-<mnemonic>/<workspace>."""
    cwd = tmp_path / "output_base/bazel-workers/worker-1-FlytePlan/ws"
    cwd.mkdir(parents=True)
    return cwd


def _finish(proc: subprocess.Popen) -> str:
    proc.stdin.close()
    assert proc.wait(30) == 0
    rest = proc.stdout.read()
    assert rest == b"", rest  # stdout held the responses only
    return proc.stderr.read().decode()


def test_back_to_back_requests_without_newlines_get_one_json_line_each(tmp_path):
    proc = _start(_sandbox(tmp_path))
    try:
        _request(proc, 1, ["--version"])
        _request(proc, 2, ["no-such-command"])
        first, second = _response(proc), _response(proc)
    finally:
        err = _finish(proc)
    assert first == {"exitCode": 0, "output": f"flytebuild {__version__}\n", "requestId": 1}, err
    assert second["requestId"] == 2 and second["exitCode"] == 2
    assert "invalid choice: 'no-such-command'" in second["output"]


def test_outside_a_worker_sandbox_every_request_is_refused_with_the_flag_to_add(tmp_path):
    execroot = tmp_path / "output_base/execroot/ws"
    execroot.mkdir(parents=True)
    proc = _start(execroot)
    try:
        _request(proc, 7, ["--version"])
        answer = _response(proc)
    finally:
        _finish(proc)
    assert answer["exitCode"] == 1 and answer["requestId"] == 7
    assert "build with `--worker_sandboxing`" in answer["output"] and "persistent_worker = False" in answer["output"]


def test_changed_flytebuild_sources_are_run_fresh_then_the_worker_restarts(tmp_path):
    cwd = _sandbox(tmp_path)
    package = os.path.relpath(SRC / "flytebuild", cwd)
    proc = _start(cwd)
    try:
        _request(proc, 1, ["--version"], [{"path": f"{package}/cli/main.py", "digest": "old"}])
        assert _response(proc)["exitCode"] == 0
        _request(proc, 2, ["--version"], [{"path": f"{package}/cli/main.py", "digest": "new"}])
        assert _response(proc) == {"exitCode": 0, "output": f"flytebuild {__version__}\n", "requestId": 2}
        _request(proc, 3, ["--version"], [{"path": f"{package}/cli/main.py", "digest": "new"}])
        assert _response(proc)["requestId"] == 3  # the restarted worker answers on the same pipes
    finally:
        err = _finish(proc)
    assert err.count("flytebuild's sources changed; restarting") == 1, err


def test_another_strategy_runs_the_wrapper_on_the_param_file(tmp_path):
    params = tmp_path / "plan-0.params"
    params.write_text("--version\n")
    proc = subprocess.run([sys.executable, "-m", "flytebuild.cli.bazel_worker", f"@{params}"], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(SRC)})
    assert (proc.returncode, proc.stdout) == (0, f"flytebuild {__version__}\n"), proc.stderr


def test_a_large_request_arriving_in_pieces_is_one_request_and_a_malformed_one_stops_the_worker(tmp_path):
    """A request with thousands of inputs (a vendored venv) spans many reads, some cut right after an inner "}";
    a request that no read can complete ends the worker with a message, never a silent wait."""
    proc = _start(_sandbox(tmp_path))
    inputs = [{"path": f"external/venv/site-packages/pkg{i}/mod.py", "digest": f"{i:064x}"} for i in range(3000)]
    text = json.dumps({"arguments": ["--version"], "inputs": inputs, "requestId": 7}, separators=(",", ":")).encode()
    assert len(text) > 4 * (1 << 16)
    cut = text.index(b"}", len(text) // 2) + 1  # a piece that ends with an inner object's "}"
    try:
        for piece in (text[:cut], text[cut:]):
            proc.stdin.write(piece)
            proc.stdin.flush()
        assert _response(proc) == {"exitCode": 0, "output": f"flytebuild {__version__}\n", "requestId": 7}
        proc.stdin.write(b'{"arguments" ["--version"],"requestId":8}')
        proc.stdin.flush()
        assert proc.wait(30) != 0
    finally:
        proc.kill()
    assert b"malformed work request" in proc.stderr.read()
    assert proc.stdout.read() == b""
