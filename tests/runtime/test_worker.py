"""The warm worker (runtime/worker.py) through its client (service/worker.py), in the real user environment: each
request is a fresh process for user code, concurrent requests each get their own, a blocking module hits the
timeout, a dead worker falls back to a subprocess, a new identity gets a new worker."""
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from flytebuild.service import worker
from flytebuild.service.runtime_package import fingerprint

REPO = Path(__file__).resolve().parents[2]
RUNTIME = str(REPO / "src/python/flytebuild/runtime")

_WF = """
from flytekit import task, workflow

COUNTER = []

@task
def {name}(x: int) -> int:
    return x

@workflow
def wf(x: int = 1) -> int:
    COUNTER.append(1)
    assert len(COUNTER) == 1, "state leaked from an earlier request"
    return {name}(x=x)
"""


@pytest.fixture
def tree(tmp_path, user_python):
    root = tmp_path / "repo"
    (root / "src/m").mkdir(parents=True)
    (root / "src/m/__init__.py").write_text("")
    (root / "src/m/wf.py").write_text(_WF.format(name="first"))
    # A socket directory of this test only: its worker is stopped at the end.
    env = worker.UserEnv(user_python, RUNTIME, f"test|{fingerprint()}", str(tmp_path / "w"), idle_timeout=60)
    environ = {**os.environ, "PYTHONPATH": str(root / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    yield root, env, environ
    worker.stop(env.socket_dir)


def _introspect(env, environ, root, *args, **kw):
    return worker.run(env, ["introspect", *args], environ=environ, cwd=str(root), text=True, **kw)


def _worker_pid(env, environ) -> int:
    return int(Path(worker.socket_path(env, environ) + ".pid").read_text())


def _task_names(result) -> list:
    assert result.returncode == 0, result.stderr
    return [t["name"] for t in json.loads(result.stdout)["tasks"]]


@pytest.mark.slow
def test_each_request_is_a_fresh_process_for_user_code(tree):
    root, env, environ = tree
    first = _introspect(env, environ, root, "m.wf:wf")
    assert first.warm
    assert _task_names(first) == ["m.wf.first"]
    pid = _worker_pid(env, environ)
    # The module ran its workflow body (COUNTER) in the first request; a fresh import starts from an empty list,
    # and an edit between two requests is seen.
    (root / "src/m/wf.py").write_text(_WF.format(name="second"))
    second = _introspect(env, environ, root, "m.wf:wf")
    assert second.warm and _worker_pid(env, environ) == pid
    assert _task_names(second) == ["m.wf.second"]
    # The same answer as a plain subprocess, byte for byte.
    cold = _introspect(env, environ, root, "m.wf:wf", warm=False)
    assert not cold.warm
    assert cold.stdout == second.stdout


@pytest.mark.slow
def test_concurrent_requests_each_get_their_own_process(tree):
    root, env, environ = tree
    for i in range(3):
        (root / f"src/m/w{i}.py").write_text(_WF.format(name=f"t{i}"))
    _introspect(env, environ, root, "m.wf:wf")  # warm
    results = {}

    def one(i):
        results[i] = _introspect(env, environ, root, f"m.w{i}:wf")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert {i: _task_names(r) for i, r in results.items()} == {i: [f"m.w{i}.t{i}"] for i in range(3)}
    assert all(r.warm for r in results.values())


def _stuck_module_and_warm_worker(root, env, environ) -> None:
    """m.stuck blocks at import, after writing its process id to <root>/pid."""
    (root / "src/m/stuck.py").write_text(f"import os, time\nopen({str(root / 'pid')!r}, 'w').write(str(os.getpid()))\n"
                                         "time.sleep(600)\n")
    _introspect(env, environ, root, "m.wf:wf")


@pytest.mark.slow
def test_a_blocking_module_is_killed_at_the_timeout(tree):
    root, env, environ = tree
    _stuck_module_and_warm_worker(root, env, environ)
    start = time.monotonic()
    with pytest.raises(worker.subprocess.TimeoutExpired):
        _introspect(env, environ, root, "m.stuck:wf", timeout=3)
    assert time.monotonic() - start < 30
    assert _gone(int((root / "pid").read_text()), 10)
    # The worker serves the next request.
    assert _introspect(env, environ, root, "m.wf:wf").warm


@pytest.mark.slow
def test_a_worker_killed_mid_request_falls_back_to_a_subprocess(tree):
    root, env, environ = tree
    (root / "src/m/slow.py").write_text("import time\ntime.sleep(3)\n" + _WF.format(name="slow"))
    _introspect(env, environ, root, "m.wf:wf")  # warm
    pid = _worker_pid(env, environ)
    # The worker and its supervisors (one process group); the runner dies with its supervisor.
    killer = threading.Timer(1.0, lambda: os.killpg(os.getpgid(pid), signal.SIGKILL))
    killer.start()
    result = _introspect(env, environ, root, "m.slow:wf")
    killer.join()
    assert not result.warm
    assert _task_names(result) == ["m.slow.slow"]
    # The next request starts a new worker.
    again = _introspect(env, environ, root, "m.wf:wf")
    assert again.warm and _worker_pid(env, environ) != pid


@pytest.mark.slow
def test_a_new_identity_gets_a_new_worker(tree):
    root, env, environ = tree
    _introspect(env, environ, root, "m.wf:wf")
    pid = _worker_pid(env, environ)
    newer = worker.UserEnv(env.python, env.runtime_dir, env.identity + "|changed runtime", env.socket_dir, 60)
    assert worker.socket_path(newer, environ) != worker.socket_path(env, environ)
    assert _introspect(newer, environ, root, "m.wf:wf").warm
    assert _worker_pid(newer, environ) != pid
    # An environment variable flytekit reads at import is part of the identity too.
    other = {**environ, "FLYTE_SDK_LOGGING_LEVEL": "10"}
    assert worker.socket_path(env, other) != worker.socket_path(env, environ)


@pytest.mark.slow
def test_files_sent_as_contents_and_outputs_returned(tree):
    """What Pants does: the request carries the sources, the answer the files the command wrote."""
    root, env, environ = tree
    files = {"src/m/__init__.py": b"", "src/m/wf.py": _WF.format(name="sent").encode(),
             "request.json": json.dumps({"entrypoint": "m.wf:wf", "target": "x:wf"}).encode()}
    sandbox_env = {**environ, "PYTHONPATH": "src"}
    for warm in (True, False):
        result = worker.run(env, ["introspect", "m.wf:wf"], environ=sandbox_env, files=files, text=True, warm=warm)
        assert result.warm is warm
        assert _task_names(result) == ["m.wf.sent"]
    script = textwrap.dedent("""
        import os
        os.makedirs("out/sub", exist_ok=True)
        open("out/sub/a.txt", "w").write(open("src/m/wf.py").read()[:4])
    """)
    files["src/m/writer.py"] = script.encode()
    # `introspect` of a module-level script that writes files: the answer is an error (no such attribute), the
    # files are what count.
    result = worker.run(env, ["introspect", "m.writer:nothing"], environ=sandbox_env, files=files, text=True,
                        outputs=["out"])
    assert result.warm
    assert result.outputs == {"out/sub/a.txt": b"\nfro"}


@pytest.mark.slow
def test_a_minimal_environment_is_served_warm(tree):
    """A Pants sandbox gives the command PYTHONPATH and little else; the worker started with it has LC_CTYPE set
    by CPython's locale coercion (PEP 538), as a fresh process would: not a difference."""
    root, env, _ = tree
    minimal = {"PYTHONPATH": "src"}
    for _ in range(2):
        result = worker.run(env, ["introspect", "m.wf:wf"], environ=minimal, cwd=str(root), text=True)
        assert result.warm and _task_names(result) == ["m.wf.first"]


def test_without_fallback_a_worker_problem_is_an_exception(tree):
    root, env, environ = tree
    broken = worker.UserEnv("/bin/false", env.runtime_dir, env.identity, env.socket_dir, 60)
    with pytest.raises(worker.WorkerUnavailable):
        worker.run(broken, ["introspect", "m.wf:wf"], environ=environ, cwd=str(root), fallback=False)


_CLIENT = """
import json, sys
from flytebuild.service import worker
env = worker.UserEnv(*json.loads(sys.argv[1]))
worker.run(env, ["introspect", "m.stuck:wf"], environ=json.loads(sys.argv[2]), cwd=sys.argv[3])
"""


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_ctrl_c_of_the_client_kills_the_command(tree):
    root, env, environ = tree
    _stuck_module_and_warm_worker(root, env, environ)
    args = [env.python, env.runtime_dir, env.identity, env.socket_dir, env.idle_timeout]
    client = subprocess.Popen([sys.executable, "-c", _CLIENT, json.dumps(args), json.dumps(environ), str(root)],
                              env={**os.environ, "PYTHONPATH": str(REPO / "src/python")})
    deadline = time.monotonic() + 60
    while not (root / "pid").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    runner = int((root / "pid").read_text())
    client.send_signal(signal.SIGINT)
    client.wait(30)
    assert _gone(runner, 10)


@pytest.mark.slow
def test_an_idle_worker_exits(tree):
    root, env, environ = tree
    short = worker.UserEnv(env.python, env.runtime_dir, env.identity + "|idle", env.socket_dir, idle_timeout=1)
    assert _introspect(short, environ, root, "m.wf:wf").warm
    pid = _worker_pid(short, environ)
    assert _gone(pid, 30)
    path = worker.socket_path(short, environ)
    assert not [p for p in os.listdir(env.socket_dir) if p.startswith(os.path.basename(path))]
    # stop(): the worker exits and removes its files too.
    assert _introspect(env, environ, root, "m.wf:wf").warm
    pid = _worker_pid(env, environ)
    assert worker.stop(env.socket_dir) == 1
    assert _gone(pid, 30)
    deadline = time.monotonic() + 10
    while os.listdir(env.socket_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert os.listdir(env.socket_dir) == []


@pytest.mark.slow
def test_a_worker_lost_after_starting_a_side_effecting_command_does_not_run_it_again(tree):
    """`run` (like `remote`, `deploy`) may have launched or registered something when the worker dies under it:
    a WorkerLost error, never a second run as a subprocess (introspect, which is pure, is replayed: above)."""
    root, env, environ = tree
    (root / "src/m/side.py").write_text(
        "import time\nopen('runs', 'a').write('ran\\n')\ntime.sleep(4)\n" + _WF.format(name="side"))
    (root / "request.json").write_text(json.dumps({"entrypoint": "m.side:wf"}))
    _introspect(env, environ, root, "m.wf:wf")  # warm
    pid = _worker_pid(env, environ)

    def kill_once_started():
        deadline = time.monotonic() + 60
        while not (root / "runs").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(os.getpgid(pid), signal.SIGKILL)

    killer = threading.Thread(target=kill_once_started)
    killer.start()
    with pytest.raises(worker.WorkerLost, match="may have partly run"):
        worker.run(env, ["run", "request.json"], environ=environ, cwd=str(root), text=True)
    killer.join()
    time.sleep(1)
    assert (root / "runs").read_text() == "ran\n"
    # popen's fallback refuses the same way; the error is a FlytebuildError (one paragraph in the CLI).
    assert issubclass(worker.WorkerLost, worker.FlytebuildError)


_INTERRUPTED = """
import os, sys, time
open("pid", "w").write(str(os.getpid()))
try:
    time.sleep(60)
except BaseException as e:  # flytekit's SIGINT handler (installed at its import) raises SystemExit
    sys.stderr.write(f"interrupted: {type(e).__name__}\\n")
    sys.stderr.flush()
    os._exit(130)
"""

_CTRL_C_CLIENT = """
import json, sys
from flytebuild.cli import userenv
from flytebuild.service import worker
env = worker.UserEnv(*json.loads(sys.argv[1]))
proc = worker.popen(env, ["introspect", "m.intr:wf"], environ=json.loads(sys.argv[2]), cwd=sys.argv[3],
                    warm=sys.argv[4] == "warm")
try:
    proc.wait()
except KeyboardInterrupt:
    userenv.interrupt(proc)
    print(proc.returncode)
    sys.exit(130)
"""


@pytest.mark.slow
def test_ctrl_c_interrupts_the_command_as_a_terminal_would(tree):
    """Ctrl-C (SIGINT to the client's process group): the command gets SIGINT too -- through the worker, whose
    runner has a session of its own -- and does what it does in a plain subprocess (the same one line, its exit
    status), warm as cold."""
    root, env, environ = tree
    (root / "src/m/intr.py").write_text(_INTERRUPTED)
    assert _introspect(env, environ, root, "m.wf:wf").warm
    args = [env.python, env.runtime_dir, env.identity, env.socket_dir, env.idle_timeout]
    lines = {}
    for mode in ("cold", "warm"):
        (root / "pid").unlink(missing_ok=True)
        client = subprocess.Popen(
            [sys.executable, "-c", _CTRL_C_CLIENT, json.dumps(args), json.dumps(environ), str(root), mode],
            env={**os.environ, "PYTHONPATH": str(REPO / "src/python")}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True)
        deadline = time.monotonic() + 60
        while not (root / "pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)
        os.killpg(client.pid, signal.SIGINT)
        out, err = client.communicate(timeout=30)
        assert client.returncode == 130, err
        assert out.split()[-1] == "130", out
        lines[mode] = [line for line in err.splitlines() if line.startswith("interrupted:")]
        assert len(lines[mode]) == 1 and "Traceback" not in err, err
        assert _gone(int((root / "pid").read_text()), 10)
    assert lines["warm"] == lines["cold"]


_PROBE = """
import os
import isodate
os.makedirs("out", exist_ok=True)
open("out/which", "w").write("root" if getattr(isodate, "FROM_ROOT", False) else "installed")
""" + _WF.format(name="probe")


@pytest.mark.slow
def test_pex_extra_sys_path_roots_come_after_site_packages_as_in_a_pants_sandbox(tree):
    """Pants runs the user's venv pex with the source roots in PEX_EXTRA_SYS_PATH, which the venv's .pth appends
    after site-packages: an installed distribution the worker did not import (isodate; flytekit imports
    jsonlines) wins over a root's module of the same name. The worker's runner must resolve it the same way (and
    still find the roots)."""
    root, env, environ = tree
    site = Path(env.python).absolute().parents[1]
    assert list(site.glob("lib/python*/site-packages/PEX_EXTRA_SYS_PATH.pth")), "not a pex venv"
    files = {"src/m/__init__.py": b"", "src/m/probe.py": _PROBE.encode(), "src/isodate.py": b"FROM_ROOT = True\n"}
    sandbox_env = {"PEX_EXTRA_SYS_PATH": "src"}
    answers = {}
    for warm in (False, True):
        result = worker.run(env, ["introspect", "m.probe:wf"], environ=sandbox_env, files=files, text=True,
                            warm=warm, outputs=["out"])
        assert result.warm is warm
        assert _task_names(result) == ["m.probe.probe"]
        answers[warm] = result.outputs["out/which"]
    assert answers == {False: b"installed", True: b"installed"}
    # PYTHONPATH (the CLI) still puts the roots first, as a plain interpreter does.
    result = worker.run(env, ["introspect", "m.probe:wf"], environ={"PYTHONPATH": "src"}, files=files, text=True,
                        outputs=["out"])
    assert result.warm and result.outputs["out/which"] == b"root"


@pytest.mark.slow
def test_outputs_are_the_same_warm_or_cold_and_nothing_leaves_the_request_dir(tree, tmp_path):
    root, env, environ = tree
    script = ("import os\nos.makedirs('out', exist_ok=True)\nopen('out/a.txt', 'w').write('a')\n"
              "open('b.txt', 'w').write('b')\n")
    files = {"src/m/__init__.py": b"", "src/m/writer.py": script.encode()}
    sandbox_env = {"PYTHONPATH": "src"}
    answers = [worker.run(env, ["introspect", "m.writer:nothing"], environ=sandbox_env, files=files,
                          outputs=["out", "b.txt"], warm=warm) for warm in (True, False)]
    assert [a.warm for a in answers] == [True, False]
    assert answers[0].outputs == answers[1].outputs == {"out/a.txt": b"a", "b.txt": b"b"}
    for warm in (True, False):
        with pytest.raises(ValueError, match="outside the request's directory"):
            worker.run(env, ["introspect", "m.writer:nothing"], environ=sandbox_env, files=files,
                       outputs=["../.."], warm=warm)
        with pytest.raises(ValueError, match="outside the request's directory"):
            worker.run(env, ["introspect", "m.writer:nothing"], environ=sandbox_env, warm=warm,
                       files={**files, f"../{tmp_path.name}-escaped": b"x"})  # the fresh dir is in TMPDIR
    assert not os.path.exists(os.path.join(tempfile.gettempdir(), f"{tmp_path.name}-escaped"))


@pytest.mark.slow
def test_a_cancelled_event_stops_the_command(tree):
    """What a Pants rule does on Ctrl-C (CancellableWork sets the event): the command is stopped (SIGINT, then
    SIGKILL) and Cancelled raised, with no subprocess run instead."""
    root, env, environ = tree
    (root / "src/m/intr.py").write_text(_INTERRUPTED)
    assert _introspect(env, environ, root, "m.wf:wf").warm
    cancelled = threading.Event()

    def cancel_once_started():
        deadline = time.monotonic() + 60
        while not (root / "pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        cancelled.set()

    canceller = threading.Thread(target=cancel_once_started)
    canceller.start()
    start = time.monotonic()
    with pytest.raises(worker.Cancelled):
        _introspect(env, environ, root, "m.intr:wf", cancelled=cancelled, fallback=False)
    canceller.join()
    assert time.monotonic() - start < 30
    assert _gone(int((root / "pid").read_text()), 10)
    # the worker serves the next request
    assert _introspect(env, environ, root, "m.wf:wf").warm


def test_an_environment_the_worker_refuses_is_not_asked_again(tree, monkeypatch):
    """A Python 3.8 user environment: the worker refuses to start (it needs 3.9), the command runs as a subprocess,
    and the next command does not try again (no second start)."""
    root, env, environ = tree
    py38 = Path(os.path.expanduser("~/.pyenv/versions/3.8.18/bin/python3.8"))
    if not py38.exists():
        pytest.skip("no CPython 3.8 on this machine")
    old = worker.UserEnv(str(py38), env.runtime_dir, env.identity + "|3.8", env.socket_dir, 60)
    path = worker.socket_path(old, environ)
    assert worker.connect(old, environ) is None
    assert "needs Python >= 3.9" in Path(path + ".refused").read_text()
    starts = []
    real_run = worker.subprocess.run
    monkeypatch.setattr(worker.subprocess, "run", lambda *a, **kw: starts.append(a) or real_run(*a, **kw))
    assert worker.connect(old, environ) is None
    assert starts == []
    worker.stop(env.socket_dir)
    assert not os.path.exists(path + ".refused")


@pytest.mark.slow
def test_a_session_given_its_requests_as_contents_serializes_as_a_fresh_fork_does(tree):
    """What Pants does for one user-env pass per edit (pants_backend/util_rules/worker.py): a `session` forked with
    the sources as contents answers the introspection, then, sent the serialization requests as contents on stdin,
    writes the same .pb files and the same summary as a fresh `serialize --batch` fork given the same files."""
    root, env, environ = tree
    sources = {"src/m/__init__.py": b"", "src/m/wf.py": _WF.format(name="sent").encode()}
    request = {"entrypoint": "m.wf:wf", "project": "p", "domain": "d", "default_image": "r/i:1",
               "tasks": {"m.wf.sent": {"mode": "baked", "image": "r/i:1", "version": "v1"}},
               "workflows": {"m.wf.wf": {"version": "v2"}}, "launch_plans": {"m.wf.wf": {"version": "v3"}}}
    requests = {"__flytebuild/request0.json": json.dumps(request).encode()}
    sandbox_env = {"PYTHONPATH": "src"}
    with tempfile.TemporaryFile() as stderr:
        proc = worker.start(env, ["session", "m.wf:wf"], environ=sandbox_env, files=sources, outputs=["session"],
                            stderr=stderr)
        line1 = worker.read_line(proc, time.monotonic() + 60)
        assert [t["name"] for t in json.loads(line1)["results"]["m.wf:wf"]["tasks"]] == ["m.wf.sent"]
        sent = {"serialize": [["__flytebuild/request0.json", "session/out/0"]],
                "files": {k: base64.b64encode(v).decode() for k, v in requests.items()}}
        proc.stdin.write(json.dumps(sent).encode() + b"\n")
        proc.stdin.close()
        line2 = worker.read_line(proc, time.monotonic() + 60)
        assert proc.wait(30) == 0 and not proc.lost
    fresh = worker.run(env, ["serialize", "--batch", "__flytebuild/request0.json", "out/0"], environ=sandbox_env,
                       files={**sources, **requests}, outputs=["out"], fallback=False)
    assert fresh.returncode == 0, fresh.stderr
    assert json.loads(line2)["results"]["session/out/0"] == json.loads(fresh.stdout)["results"]["out/0"]
    assert {k[len("session/"):]: v for k, v in proc.outputs.items()} == fresh.outputs
    assert len(fresh.outputs) == 3  # the task, the workflow, its launch plan


def test_a_session_line_refuses_files_outside_its_directory(tree):
    root, env, environ = tree
    with tempfile.TemporaryFile() as stderr:
        proc = worker.start(env, ["session"], environ={"PYTHONPATH": "src"}, files={}, stderr=stderr)
        worker.read_line(proc, time.monotonic() + 60)
        bad = {"serialize": [], "files": {"../escaped.json": base64.b64encode(b"{}").decode()}}
        proc.stdin.write(json.dumps(bad).encode() + b"\n")
        proc.stdin.close()
        assert json.loads(worker.read_line(proc, time.monotonic() + 60))["error"]["kind"] == "bad_request"
        assert proc.wait(30) == 2
