"""Measurements scale_bench.py takes besides wall times: a CPU hog on every core, pantsd's memory with and
without the flytebuild backend, and save → registered through a watch loop. Standard library only."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support.background import Background  # noqa: E402
from tests.support.repo_copy import PANTS_ENV, copy_repo, kill_pantsd  # noqa: E402

# Without the backend, BUILD files still name flyte_* targets: a prelude defines them as no-ops, so the same
# BUILD files parse and `list ::` walks the same tree (python_sources and requirements stay real targets).
FLYTE_TARGET_TYPES = ("flyte_image", "flyte_workflow", "flyte_pod_template", "flyte_reference")
_PRELUDE = "".join(f"def {name}(**kwargs):\n    return None\n\n" for name in FLYTE_TARGET_TYPES)


@contextlib.contextmanager
def cpu_hogs(n: int, niceness: int = 0) -> Iterator[List[int]]:
    """`n` busy-loop processes (one per core: the "other builds" of a shared CI machine) for the block; the
    same for every tool measured inside it. Yields their pids. `niceness` 19: they take only CPU nothing else
    wants (the smoke run, next to other tests)."""
    hogs = [subprocess.Popen(["nice", "-n", str(niceness), sys.executable, "-c", "while True: pass"])
            for _ in range(n)]
    try:
        time.sleep(1.0)  # let the scheduler see them before the first sample
        yield [h.pid for h in hogs]
    finally:
        for h in hogs:
            h.kill()
        for h in hogs:
            h.wait(timeout=30)


def _children() -> Dict[int, List[int]]:
    tree: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _rss_kb(pid: int) -> int:
    return _kb(f"/proc/{pid}/status", "VmRSS")


def _pss_kb(pid: int) -> int:
    """RSS counts a page that forks share (the warm worker's and a fork's flytekit) once per process; PSS divides it
    among them."""
    return _kb(f"/proc/{pid}/smaps_rollup", "Pss")


def _kb(path: str, field: str) -> int:
    try:
        with open(path) as f:
            found = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
    except OSError:
        return 0
    return int(found.group(1)) if found else 0


def _tree(pid: int) -> List[int]:
    tree, todo, found = _children(), [pid], []
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(tree.get(p, ()))
    return found


def _naming(path: Path) -> List[int]:
    """Processes whose command line names a path inside `path` (a detached worker is no child of pantsd, but its
    runtime script or socket lives in the repo copy)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(a == str(path) or a.startswith(f"{path}/") for a in argv):
            found.append(int(entry))
    return found


def stop_processes_of(root: Path) -> None:
    """SIGTERM what still runs from a repo copy the bench made (a detached worker pantsd or the CLI started, whose
    socket may live outside the copy), before the copy is deleted."""
    for pid in _naming(root):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def pantsd_rss(root: Path) -> dict:
    """Resident memory of pantsd and every process below it, plus any other process running from the repo copy
    (a warm worker pantsd started detached): MB."""
    pantsd = set(_tree(pantsd_pid(root)))
    others = set(_naming(root)) - pantsd
    for pid in list(others):
        others.update(_tree(pid))
    mb = lambda pids, kb=_rss_kb: round(sum(kb(p) for p in pids) / 1024, 1)  # noqa: E731
    return {"rss_mb": mb(pantsd | others), "pantsd_tree_mb": mb(pantsd), "others_mb": mb(others - pantsd),
            "pss_mb": mb(pantsd | others, _pss_kb), "processes": len(pantsd | others)}


def pantsd_pid(root: Path) -> int:
    (pid_file,) = list(root.glob(".pids/*/pantsd/pid"))
    return int(pid_file.read_text().strip())


def _pants(root: Path, *args: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([str(root / "pants"), *args], cwd=root, env={**os.environ, **PANTS_ENV},
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"scale_bench: ./pants {' '.join(args)} in {root} failed:\n{proc.stdout[-2000:]}\n"
                         f"{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def without_backend(root: Path) -> None:
    """Turn a repo copy's flytebuild backend off, keeping its BUILD files parseable (the prelude above)."""
    toml = root / "pants.toml"
    text = toml.read_text()
    if '"flytebuild.pants_backend",' not in text:
        raise SystemExit("scale_bench: pants.toml no longer lists \"flytebuild.pants_backend\", as the memory "
                         "bench expects; update bench/scale/measures.py")
    text = text.replace('  "flytebuild.pants_backend",\n', "").replace('"flytebuild.pants_backend",', "")
    (root / "flyte_targets.prelude").write_text(_PRELUDE)
    toml.write_text(text.replace("[GLOBAL]\n", '[GLOBAL]\nbuild_file_prelude_globs = ["flyte_targets.prelude"]\n', 1))


WITH_PLUGIN = ("flyte-plan", "examples::")


def rss_after(root: Path, *args: str) -> dict:
    """`./pants ARGS` in the copy at `root`, then its pantsd's memory (pantsd_rss) once pantsd has settled."""
    wall = _pants(root, *args)
    time.sleep(1.0)  # let pantsd finish what it does after answering
    return {"command": f"./pants {' '.join(args)}", **pantsd_rss(root), "wall_s": round(wall, 2)}


def pantsd_memory(tmp: Path, log: Callable[[str], None], rounds: int = 1, with_plugin: Optional[dict] = None) -> dict:
    """pantsd (process tree RSS, plus processes running from the copy) with the plugin after `flyte-plan
    examples::`, and of the same repo without the backend after `list ::`: each in a fresh copy with its own pantsd,
    one after the other; what runs from the copy is stopped and the copy deleted afterwards. With `rounds` > 1,
    each side is the round of median RSS: a fresh pantsd's RSS varies by tens of MB from one start to the next.
    `with_plugin` given (an rss_after(..., *WITH_PLUGIN) sample another copy's pantsd took): that side is not
    measured again (the smoke run's shortcut: it spares one cold pantsd)."""
    samples: dict = {"with_plugin": [] if with_plugin is None else [with_plugin], "without_plugin": []}
    for i in range(rounds):
        for name, args, strip in (("with_plugin", WITH_PLUGIN, False), ("without_plugin", ("list", "::"), True)):
            if name == "with_plugin" and with_plugin is not None:
                continue
            root = tmp / f"mem-{name}-{i}"
            root.mkdir()
            copy_repo(root)
            if strip:
                without_backend(root)
            try:
                log(f"pantsd memory, {name.replace('_', ' ')} ({i + 1}/{rounds}): ./pants {' '.join(args)}...")
                samples[name].append(rss_after(root, *args))
            finally:
                kill_pantsd(root, wait_s=10)
                stop_processes_of(root)
                shutil.rmtree(root, ignore_errors=True)
    out = {}
    for name, taken in samples.items():
        out[name] = dict(sorted(taken, key=lambda m: m["rss_mb"])[len(taken) // 2])
        if len(taken) > 1:
            out[name]["samples_mb"] = [m["rss_mb"] for m in taken]
    out["delta_mb"] = round(out["with_plugin"]["rss_mb"] - out["without_plugin"]["rss_mb"], 1)
    return out


def save_to_registered(cmd, cwd, env, ready: str, edit: Callable[[], None], registered: Callable[[], int],
                       expected: int, timeout: float = 900) -> dict:
    """Start a watch loop (`cmd`), wait for its first round to end (a line containing `ready`), save (`edit`),
    and time until the stand-in holds `expected` more registrations (`registered()` counts them); then wait for
    the round to end and stop the loop with Ctrl-C."""
    loop = Background(cmd, cwd, env)
    try:
        loop.until(ready, timeout=timeout)
        before = registered()
        t0 = time.perf_counter()
        edit()
        deadline = t0 + timeout
        while registered() - before < expected:
            if time.perf_counter() > deadline or loop.proc.poll() is not None:
                raise SystemExit(f"scale_bench: {cmd[0]}'s loop registered {registered() - before} of {expected} "
                                 "entities after the save:\n" + "\n".join(loop.seen[-40:]))
            time.sleep(0.05)
        dt = time.perf_counter() - t0
        loop.until(ready, timeout=timeout)
        return {"save_to_registered_s": round(dt, 3), "registered": registered() - before}
    finally:
        try:
            loop.interrupt()
        except AssertionError:
            pass
        loop.kill()
