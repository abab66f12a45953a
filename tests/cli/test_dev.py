"""`flytebuild dev`: the watch loop, run as a user runs it (a subprocess, Ctrl-C to stop) against the stand-in
FlyteAdmin: the first round deploys everything, a save registers only what it changed, a save that changes no
content (a `touch`) deploys nothing, and Ctrl-C exits cleanly."""
import os
import sys
import textwrap
import time

import pytest

from tests.support.background import Background
from tests.support.flyteadmin.fixture import flyteadmin

from .test_incremental import _FILES

KINDS = ("task", "workflow", "launch_plan")


@pytest.fixture
def dev_project(tmp_path):
    root = tmp_path / "proj"
    for rel, text in _FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    yield root
    # a warm user-env worker the loop started (docs/worker.md) exits when its socket goes
    for sock in (tmp_path / "cache").rglob("w-*.sock"):
        sock.unlink()


def _dev_command(admin) -> list:
    return [sys.executable, "-m", "flytebuild.cli", "dev", "--no-push-images", "--endpoint", admin.endpoint,
            "--insecure", "--interval", "0.1"]


def _created(delta) -> dict:
    return {k: delta["counters"].get(k, {}).get("created", 0) for k in KINDS}


def test_dev_deploys_then_registers_each_save_and_stops_on_ctrl_c(dev_project, cli, user_python, tmp_path):
    with flyteadmin(user_python) as admin:
        env = {**cli.env, "FLYTEBUILD_CACHE_DIR": str(tmp_path / "cache")}
        loop = Background(_dev_command(admin), dev_project, env)
        try:
            first = loop.until("flytebuild dev: watching")
            assert any("6 registered, 0 unchanged, 0 failed" in line for line in first), first
            assert _created(admin.since({"counters": {}, "uploads": 0, "bytes": 0, "rpcs": 0})) == {
                "task": 2, "workflow": 2, "launch_plan": 2}

            # a save of b: b's task, workflow and default launch plan, nothing of a
            mark = admin.mark()
            b = dev_project / "src/proj/b.py"
            b.write_text(b.read_text().replace("double(x) + 1", "double(x) + 2"))
            round_ = loop.until("flytebuild dev: watching")
            assert any(line == "flytebuild dev: changed: src/proj/b.py" for line in round_), round_
            rows = [line.replace("launch plan", "launch_plan").split() for line in round_ if line.startswith("  ")]
            assert sorted((r[0], r[1]) for r in rows if r[-1] == "registered") == [
                ("launch_plan", "proj.b.wf"), ("task", "proj.b.two"), ("workflow", "proj.b.wf")], round_
            assert any("3 registered, 3 unchanged, 0 failed" in line for line in round_), round_
            assert _created(admin.since(mark)) == {"task": 1, "workflow": 1, "launch_plan": 1}

            # same content, new mtime: nothing deployed, nothing asked
            mark = admin.mark()
            os.utime(b, None)
            assert loop.drain(1.5) == []
            assert admin.since(mark)["rpcs"] == 0

            assert loop.interrupt() == 0
            assert "flytebuild dev: stopped" in loop.until("stopped", timeout=10)
        finally:
            loop.kill()


def test_dev_reports_a_broken_save_and_keeps_watching(dev_project, cli, user_python, tmp_path):
    with flyteadmin(user_python) as admin:
        env = {**cli.env, "FLYTEBUILD_CACHE_DIR": str(tmp_path / "cache")}
        loop = Background(_dev_command(admin), dev_project, env)
        try:
            loop.until("flytebuild dev: watching")
            a = dev_project / "src/proj/a.py"
            good = a.read_text()
            a.write_text(good + "\nthis is not python\n")
            broken = loop.until("flytebuild dev: watching")
            assert any("save a fix to deploy again" in line for line in broken), broken
            # the user's traceback (their file, their line), never ours
            assert any('File "src/proj/a.py", line' in line for line in broken), broken
            assert not any("flytebuild/cli" in line or "flytebuild/service" in line for line in broken), broken
            mark = admin.mark()
            a.write_text(good.replace("return double(x)", "return double(x) + 3"))
            fixed = loop.until("flytebuild dev: watching")
            assert any("3 registered, 3 unchanged, 0 failed" in line for line in fixed), fixed
            assert _created(admin.since(mark)) == {"task": 1, "workflow": 1, "launch_plan": 1}
        finally:
            loop.interrupt()


def test_ctrl_c_during_a_deploy_exits_130_and_says_what_is_kept(dev_project, cli, user_python, tmp_path):
    # 1 s per gRPC answer: the first round is still registering when Ctrl-C comes
    with flyteadmin(user_python, latency_ms=1000) as admin:
        env = {**cli.env, "FLYTEBUILD_CACHE_DIR": str(tmp_path / "cache")}
        loop = Background(_dev_command(admin), dev_project, env)
        try:
            deadline = time.monotonic() + 300
            while not admin.store.rpcs() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert admin.store.rpcs(), "the first round never reached FlyteAdmin"
            assert loop.interrupt() == 130
            out = "\n".join(loop.drain(1.0) + loop.seen)
            assert "flytebuild dev: stopped during a deploy; what was registered is kept" in out, out
            assert "watching" not in out and "Traceback" not in out, out
        finally:
            loop.kill()


def test_dev_watches_every_directory_a_plan_reads(dev_project):
    """A package named like a build output (`build/`, `dist/`, `venv/`) under a source root is a plan's input
    (cli/graph.py walks it), so `flytebuild dev` watches it too: one rule for both; hidden dirs and caches are
    skipped by both."""
    from flytebuild.cli.config import find_config, load_project
    from flytebuild.cli.dev import watched_files
    from flytebuild.cli.graph import walked

    for name in ("build", "dist", "venv"):
        (dev_project / "src/proj" / name).mkdir()
        (dev_project / "src/proj" / name / "__init__.py").write_text("X = 1\n")
    (dev_project / "src/proj/.hidden").mkdir()
    (dev_project / "src/proj/.hidden/m.py").write_text("")
    (dev_project / "src/proj/__pycache__").mkdir(exist_ok=True)
    (dev_project / "src/proj/__pycache__/m.py").write_text("")
    watched = {os.path.relpath(p, dev_project) for p in watched_files(load_project(find_config(str(dev_project))))}
    for name in ("build", "dist", "venv"):
        assert f"src/proj/{name}/__init__.py" in watched and walked(name)
    assert "src/proj/.hidden/m.py" not in watched and not walked(".hidden")
    assert "src/proj/__pycache__/m.py" not in watched and not walked("__pycache__")
