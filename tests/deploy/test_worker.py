"""The real ./pants flyte-deploy with `[flyte].worker`: introspection and serialization answered by the warm worker
pantsd starts in the user's environment (flytekit imported once, a fresh fork per request), over the stand-in
FlyteAdmin. The sandboxed-process path (`--no-flyte-worker`) is the reference: same entities, same versions.

Each command runs with `-ldebug` (in this module's own repo copy and pantsd, so the options never change between
commands), which makes the rules say which requests the worker answered."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from flytebuild.service import worker as worker_client
from tests.deploy.conftest import Repo, by_status
from tests.support.flyteadmin.fixture import flyteadmin
from tests.support.repo_copy import PANTS_ENV, pants_repo_copy

pytestmark = pytest.mark.slow

SPECS = ("examples/mixed::",)
MODULE = "examples/mixed/fast_tasks.py"
WORKER_SAID = re.compile(r"flytebuild: (.+?): answered by the warm worker")
# What the rules log (util_rules/worker.py) when a request could not go through the worker.
NOT_USED = "running a sandboxed process"


class WorkerRepo(Repo):
    def run_deploy(self, admin, *options: str):
        proc, summary = self.deploy(admin, *SPECS, options=("-ldebug", *options), check=True)
        assert summary is not None and summary["counts"]["failed"] == 0, proc.stderr[-3000:]
        return summary, WORKER_SAID.findall(proc.stderr), proc.stderr


@pytest.fixture(scope="module")
def repo():
    # A short path, so the copy is quick to find; the worker's socket is in its workdir whatever the length (a
    # long path is bound by name and reached through /proc/self/fd), where these tests find and break it.
    root = Path(tempfile.mkdtemp(prefix="fbw"))
    repo = pants_repo_copy(root, repo_class=WorkerRepo)
    yield repo
    repo.kill_pantsd()
    worker_client.stop(str(worker_dir(repo.root)))  # a worker exits when its socket file goes
    shutil.rmtree(root, ignore_errors=True)


def worker_dir(root: Path) -> Path:
    return root / ".bootstrap/pants.d/flytebuild/worker"


def worker_pids(root: Path) -> list[int]:
    """The workers serving this copy's pantsd (each writes `<socket>.pid` while it serves)."""
    pids = []
    for pid_file in worker_dir(root).glob("*.sock.pid"):
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, OSError):
            continue
        pids.append(pid)
    return pids


def entities(summary: dict) -> dict:
    return {(e["kind"], e["name"]): e["version"] for e in summary["entities"]}


def edit(repo: Repo, n: int) -> None:
    repo.write(MODULE, repo.read(MODULE).split("\n_EDIT = ")[0] + f"\n_EDIT = {n}\n")


@pytest.fixture(scope="module")
def first(repo):
    """A first deploy (worker on: the default), which also creates the user environment's venv."""
    with flyteadmin() as admin:
        summary, _, _ = repo.run_deploy(admin)
    return summary


def test_an_edit_registers_exactly_the_changed_entities_through_the_worker(repo, first):
    with flyteadmin() as admin:
        repo.run_deploy(admin)
        edit(repo, 1)
        summary, answered, stderr = repo.run_deploy(admin)
        assert NOT_USED not in stderr
        # the workflows whose closure holds the module (both import mixed.workflows) were introspected and
        # serialized by the worker, which also ran the deploy (once), and no sandboxed process did any of it
        deploys = [a for a in answered if a.startswith("Register ")]
        assert set(answered) - set(deploys) == {
            "Introspect examples/mixed:container_wf, examples/mixed:wf",
            "Serialize examples/mixed:container_wf, examples/mixed:wf",
        }, answered
        assert len(deploys) == 1 and deploys[0].endswith(f"at {admin.endpoint}"), answered
        # one user-env pass: the introspection's fork (a runtime `session`) also serialized them
        assert ("Serialize examples/mixed:container_wf, examples/mixed:wf: answered by the warm worker (the "
                "introspection's session)") in stderr
        assert by_status(summary, "registered", "task") == {"mixed.fast_tasks.weights"}
        assert by_status(summary, "registered", "workflow") == {"mixed.workflows.wf"}
        assert "mixed.workflows.container_wf" in by_status(summary, "unchanged")
        # the same edit through sandboxed processes: the same entities, the same versions
        with flyteadmin() as reference:
            off, answered_off, _ = repo.run_deploy(reference, "--no-flyte-worker")
        assert answered_off == []
        assert entities(off) == entities(summary)


def test_worker_off_gives_the_same_results(repo, first):
    edit(repo, 2)
    with flyteadmin() as on_admin, flyteadmin() as off_admin:
        off, answered_off, _ = repo.run_deploy(off_admin, "--no-flyte-worker")
        on, _, _ = repo.run_deploy(on_admin)
        assert answered_off == []
        assert entities(on) == entities(off)
        for kind, name in entities(on):
            if kind == "task":
                version = entities(on)[(kind, name)]
                got = on_admin.store.get("task", "flytesnacks", "development", name, version)
                want = off_admin.store.get("task", "flytesnacks", "development", name, version)
                assert got["closure"]["compiled_task"] == want["closure"]["compiled_task"], name


def test_two_concurrent_goals_each_get_their_own_answer(repo, first):
    edit(repo, 3)
    with flyteadmin() as a, flyteadmin() as b, flyteadmin() as reference:
        results = {}

        def run(name, admin):
            results[name] = repo.run_deploy(admin)

        threads = [threading.Thread(target=run, args=(n, adm)) for n, adm in (("a", a), ("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        off, _, _ = repo.run_deploy(reference, "--no-flyte-worker")
        assert entities(results["a"][0]) == entities(results["b"][0]) == entities(off)
        assert by_status(results["a"][0], "registered") == by_status(off, "registered")


def test_a_killed_worker_falls_back_with_the_same_answer(repo, first):
    with flyteadmin() as admin:
        repo.run_deploy(admin)
        pids = worker_pids(repo.root)
        assert pids, "the deploy left no worker running"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        edit(repo, 4)
        summary, _, _ = repo.run_deploy(admin)
        with flyteadmin() as reference:
            off, _, _ = repo.run_deploy(reference, "--no-flyte-worker")
        assert entities(summary) == entities(off)
        assert by_status(summary, "registered", "task") == {"mixed.fast_tasks.weights"}


def test_an_unusable_worker_falls_back_to_the_sandboxed_process(repo, first):
    sockets = worker_dir(repo.root)
    sockets.mkdir(parents=True, exist_ok=True)
    worker_client.stop(str(sockets))  # the running worker exits
    sockets.chmod(0o777)  # a directory others can write to: the client refuses to start one there
    try:
        edit(repo, 5)
        with flyteadmin() as admin, flyteadmin() as reference:
            summary, answered, stderr = repo.run_deploy(admin)
            off, _, _ = repo.run_deploy(reference, "--no-flyte-worker")
        assert answered == []
        assert entities(summary) == entities(off)
        assert by_status(summary, "registered", "task") == by_status(off, "registered", "task")
    finally:
        sockets.chmod(0o700)


def worker_children(root: Path) -> list[int]:
    """The supervisors the workers forked for requests in flight (each runs one command)."""
    found = []
    for pid in worker_pids(root):
        try:
            found += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            continue
    return found


def test_another_endpoint_plans_nothing_again(repo):
    """A plan is the same whichever FlyteAdmin it goes to (core/settings.py `Settings.planning`): after a plan, runs
    that name other endpoints (as `flyte-deploy --flyte-endpoint=...` does after a `flyte-plan` that names none)
    plan no workflow again and print the same plan. The project (which plans do depend on) is new to this test, so
    the first run plans both workflows; with `-ldebug` (this module's pantsd logs at debug) the rule says which
    workflows it planned. Pants 2.17 now and then runs a planning node again although nothing changed
    (docs/performance.md, "What a nothing-changed deploy still redoes in pantsd"), so a workflow may be named twice,
    and one of the three endpoint runs may plan: planning on every endpoint change is what this test rejects.
    The introspection rule, which reads the user-code options (util_rules/user_env.py `UserCodeSetup`) and not the
    endpoint, does not run again either (it would answer from its caches, but its body would run)."""
    options = ("-ldebug", "--flyte-project=endpoint-test", "flyte-plan", *SPECS)
    planned = re.compile(r"flytebuild: (planning|introspection of) ([^\s,]+)")
    first = repo.pants(*options, check=True)
    assert set(planned.findall(first.stderr)) == {("planning", "examples/mixed:container_wf"),
                                                  ("planning", "examples/mixed:wf"),
                                                  ("introspection of", "examples/mixed:container_wf")}
    replanned = []
    for endpoint in ("127.0.0.1:9", "127.0.0.1:8", "127.0.0.1:7"):
        other = repo.pants(f"--flyte-endpoint={endpoint}", "--flyte-insecure", *options, check=True)
        assert other.stdout == first.stdout, endpoint
        replanned.append(planned.findall(other.stderr))
    assert sum(1 for names in replanned if names) <= 1, replanned


def test_a_plan_leaves_no_session_parked_behind(repo, first):
    """flyte-plan serializes nothing: the introspection's `session` fork, parked for a serialization, is closed when
    the goal ends instead of holding its memory (the user's modules imported) until it expires."""
    edit(repo, 6)
    proc = repo.pants("-ldebug", "flyte-plan", *SPECS, check=True)
    assert "Introspect examples/mixed:container_wf, examples/mixed:wf" in WORKER_SAID.findall(proc.stderr)
    assert worker_pids(repo.root)
    deadline = time.monotonic() + 3  # closing one waits up to 1 s for it to exit; unclosed, it stays 30 s
    while worker_children(repo.root) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert worker_children(repo.root) == []


def test_a_worker_lost_during_the_deploy_is_an_error_never_a_second_deploy(repo, first):
    """The deploy is a fork of the worker; killed after it started (it asked FlyteAdmin), it is not run again,
    neither by the worker nor as a sandboxed process: one clear paragraph, and a re-run converges."""
    with flyteadmin(latency_ms=1500) as slow:  # another server: the ledger vouches for nothing, the deploy asks
        result = {}
        deploy = threading.Thread(target=lambda: result.update(
            zip(("proc", "summary"), repo.deploy(slow, *SPECS, options=("-ldebug",), check=False))))
        deploy.start()
        deadline = time.monotonic() + 300
        while not (sum(slow.store.rpcs().values()) and worker_children(repo.root)):
            assert deploy.is_alive() and time.monotonic() < deadline, result.get("proc")
            time.sleep(0.05)
        for pid in worker_children(repo.root):  # the deploy's supervisor (nothing else is in flight)
            os.kill(pid, signal.SIGKILL)
        deploy.join(300)
        proc = result["proc"]
        assert proc.returncode != 0 and result["summary"] is None
        assert "the warm worker died while running `deploy`; it may have partly run" in proc.stderr, proc.stderr
        assert "--no-flyte-worker" in proc.stderr and "Traceback" not in proc.stderr
        asked = slow.store.rpcs()
        assert asked.get("GetProject", 0) == 1, asked  # one deploy started; a second would ask again
        slow.set_latency(0)  # the same server (and what it stored), no longer slow: the re-run need not wait
        summary, _, _ = repo.run_deploy(slow)
        assert summary["counts"]["failed"] == summary["counts"]["blocked"] == 0
        assert summary["counts"]["registered"] + summary["counts"]["unchanged"] == len(summary["entities"])
        assert slow.store.rpcs().get("GetProject", 0) == 2


SLEEPY = '''import os
import time

from flytekit import task, workflow

with open({marker!r}, "w") as f:
    f.write(str(os.getpid()))
time.sleep(120)


@task
def t() -> int:
    return 1


@workflow
def wf() -> int:
    return t()
'''


def test_ctrl_c_stops_an_introspection_hanging_in_the_worker(repo, tmp_path):
    """A worker request is first awaited in the rule without its waiter process (user_env.py `_GRACE`): a module
    that hangs at import still makes it get one, so Ctrl-C stops the import as it stops a sandboxed process."""
    marker = tmp_path / "importing.pid"
    repo.write("examples/sleepy/__init__.py", "")
    repo.write("examples/sleepy/wf.py", SLEEPY.format(marker=str(marker)))
    repo.write("examples/sleepy/BUILD", 'python_sources()\n\nflyte_workflow(name="wf", entrypoint="wf.py:wf")\n')
    try:
        proc = subprocess.Popen([str(repo.root / "pants"), "flyte-plan", "examples/sleepy:wf"], cwd=repo.root,
                                env={**os.environ, **PANTS_ENV}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0][-3000:]
            time.sleep(0.05)
        pid = int(marker.read_text())
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C
        signalled = time.monotonic()
        output = proc.communicate(timeout=60)[0]
        assert proc.returncode != 0 and time.monotonic() - signalled < 30, output[-3000:]
        deadline = time.monotonic() + 15  # SIGINT, then SIGKILL after the worker's 5 s grace
        while _alive(pid):
            assert time.monotonic() < deadline, f"the import (pid {pid}) still runs after Ctrl-C"
            time.sleep(0.1)
    finally:
        shutil.rmtree(repo.root / "examples/sleepy", ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for its parent has stopped running
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"
