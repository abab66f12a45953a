"""A runtime session (introspection, then serialization over stdin/stdout) whose warm worker dies mid-answer is
replayed as a plain subprocess: the answer and the stderr are the replay's only, and the dead run's pipes are
closed."""
import os
import signal
import threading
import time

import pytest

from flytebuild.cli import userenv
from flytebuild.service import worker

_MODULE = """
import sys, time
from flytekit import task, workflow
sys.stderr.write("importing slow\\n")
sys.stderr.flush()
time.sleep(3)

@task
def t(x: int) -> int:
    return x

@workflow
def wf(x: int = 1) -> int:
    return t(x=x)
"""


@pytest.mark.slow
def test_a_session_replayed_after_the_worker_died_has_the_replays_stderr_only(tmp_path, monkeypatch, user_python):
    root = tmp_path / "repo"
    (root / "src/m").mkdir(parents=True)
    (root / "src/m/__init__.py").write_text("")
    (root / "src/m/slow.py").write_text(_MODULE)
    monkeypatch.setenv("FLYTEBUILD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FLYTEBUILD_WORKER", raising=False)
    env = userenv.worker_env(user_python)
    assert env is not None
    try:
        warm = userenv.run_runtime(user_python, "introspect", ["m.slow:wf"], str(root), ["src"], str(root))
        assert warm.warm and warm.returncode == 0, warm.stderr
        environ = userenv.user_env(str(root), ["src"])
        pid = int(open(worker.socket_path(env, environ) + ".pid").read())
        session = userenv.start_session(user_python, str(root / "flytebuild.toml"), str(root), ["src"],
                                        ["m.slow:wf"])
        dead = session.proc
        assert isinstance(dead, worker.WorkerProcess)
        killer = threading.Timer(1.5, lambda: os.killpg(os.getpgid(pid), signal.SIGKILL))
        killer.start()
        start = time.monotonic()
        answers = userenv.finish_session_introspection(session, [("slow", "m.slow:wf")], timeout=120)
        killer.join()
        assert time.monotonic() - start > 3
        assert session.proc is not dead and not isinstance(session.proc, worker.WorkerProcess)
        assert dead.stdout.closed and dead.stdin.closed
        assert "m.slow:wf" in answers
        assert session.stderr().count("importing slow") == 1, session.stderr()
        session.close()
    finally:
        worker.stop(env.socket_dir)
