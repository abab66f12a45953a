#!/usr/bin/env python3
"""flytebuild (Pants and CLI) side by side with `pyflyte register --copy auto` and `--copy all` on a generated
monorepo (bench/scale/generate.py), against one stand-in FlyteAdmin over real gRPC, in one run.

    .bootstrap/venv/bin/python bench/scale/scale_bench.py [--projects 12 [48]] [--latency-ms 0 [20]] [--format json]

Per project count: one throwaway copy of the repo with the generated tree, one warm pantsd; per latency: a fresh
stand-in FlyteAdmin with that per-call latency (tests/support/flyteadmin), each tool registering into its own
project. Steps, per tool:

  first      the first deploy to this server (build-side caches of earlier rounds stay warm: they are not the
             server's)
  again      nothing changed
  module     after a one-line edit of one project's module (scale/p01/m1.py)
  lib        after a one-line edit of the shared lib every task imports (scale/lib/common.py)

and plans (Pants `flyte-plan`, CLI `plan`): warm with nothing changed, and after a one-module edit (a new one, so
nothing replays), with `./pants list` of the same specs as the floor of any Pants command. Each row is one sample
(the machine is shared: read the ratios, and the load average printed with them). Entities registered, gRPC calls
received and bytes uploaded are counted on the stand-in.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import generate  # noqa: E402

from tests.support.flyteadmin.fixture import flyteadmin  # noqa: E402  (stdlib only)
from tests.support.repo_copy import copy_repo, kill_pantsd  # noqa: E402

KINDS = ("task", "workflow", "launch_plan")
PROJECTS = {"pants": "flytesnacks", "cli": "flytebuild-cli", "auto": "pyflyte-auto", "all": "pyflyte-all"}
TOOLS = ("pants", "cli", "auto", "all")
LABELS = {
    "pants": "`./pants flyte-deploy --no-push-images examples/scale::` (warm pantsd)",
    "cli": "`flytebuild -c scale.toml deploy --no-push-images`",
    "auto": "`pyflyte register --copy auto scale`",
    "all": "`pyflyte register --copy all scale`",
}
MODULE = "examples/scale/p01/m1.py"
LIB = "examples/scale/lib/common.py"


def log(msg: str) -> None:
    print(f"scale_bench: {msg}", file=sys.stderr, flush=True)


def timed(cmd, cwd, env) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"scale_bench: {' '.join(map(str, cmd))} failed (rc {proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return dt


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


class Edits:
    """One-line edits with new content each time (so no cache can answer), undone at the end."""

    def __init__(self, root: Path):
        self.root = root
        self.original = {}
        self.n = 0

    def edit(self, rel: str) -> None:
        path = self.root / rel
        self.original.setdefault(rel, path.read_text())
        self.n += 1
        path.write_text(self.original[rel] + f"\n_BENCH_EDIT = '{os.getpid()}_{time.time_ns()}_{self.n}'\n")

    def undo(self) -> None:
        for rel, text in self.original.items():
            (self.root / rel).write_text(text)
        self.original.clear()


def bench_projects(n: int, latencies, tmp: Path) -> dict:
    root = tmp / f"repo{n}"
    root.mkdir()
    copy_repo(root)
    shape = generate.generate(root, projects=n)
    pyflyte = sorted(glob.glob(str(REPO / "dist/export/python/virtualenvs/flyte/*/bin/pyflyte")))[-1]
    user_python = str(Path(pyflyte).parent / "python")
    pants_env = {**os.environ, "PANTS_DYNAMIC_UI": "false", "NO_COLOR": "1"}
    user_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    cli_env = {**user_env, "PYTHONPATH": str(root / "src/python"), "FLYTEBUILD_PYTHON": user_python,
               "FLYTEBUILD_CACHE_DIR": str(tmp / f"cli-cache{n}")}
    pants = [root / "pants"]
    cli = [sys.executable, "-m", "flytebuild.cli", "-c", root / "scale.toml"]
    specs = ["examples/scale::"]
    edits = Edits(root)
    try:
        log(f"{n} projects: starting pantsd (./pants list)...")
        timed(pants + ["list", *specs], root, pants_env)
        out = {"shape": shape, "latency": {}}
        for latency in latencies:
            with flyteadmin(user_python, projects=tuple(PROJECTS.values()), latency_ms=latency) as admin:
                config = admin.write_config(tmp / f"config{n}-{latency}.yaml")
                commands = {
                    "pants": (pants + [f"--flyte-endpoint={admin.endpoint}", "--flyte-insecure", "flyte-deploy",
                                       "--no-push-images", *specs], root, pants_env),
                    "cli": (cli + ["deploy", "--endpoint", admin.endpoint, "--insecure", "--no-push-images"], root,
                            cli_env),
                    "auto": ([pyflyte, "--config", config, "register", "--project", PROJECTS["auto"], "--domain",
                              "development", "--copy", "auto", "scale"], root / "examples", user_env),
                    "all": ([pyflyte, "--config", config, "register", "--project", PROJECTS["all"], "--domain",
                             "development", "--copy", "all", "scale"], root / "examples", user_env),
                }

                def measure(tool: str) -> dict:
                    mark = admin.mark()
                    load = loadavg()
                    dt = timed(*commands[tool])
                    delta = admin.since(mark)
                    return {"wall_s": round(dt, 3), "load": load, "rpcs": delta["rpcs"], "bytes": delta["bytes"],
                            "registered": sum(delta["counters"].get(k, {}).get("created", 0) for k in KINDS)}

                steps = {}
                log(f"{n} projects, {latency} ms: first deploys and nothing-changed...")
                for step in ("first", "again"):
                    steps[step] = {tool: measure(tool) for tool in TOOLS}
                for step, rel in (("module", MODULE), ("lib", LIB)):
                    log(f"{n} projects, {latency} ms: {step} edit...")
                    edits.edit(rel)
                    steps[step] = {tool: measure(tool) for tool in TOOLS}
                edits.undo()
                out["latency"][str(latency)] = steps
        log(f"{n} projects: plans...")
        plans = {}

        def plan(kind: str) -> dict:
            load = loadavg()
            if kind == "pants":
                return {"wall_s": round(timed(pants + ["flyte-plan", *specs], root, pants_env), 3), "load": load}
            return {"wall_s": round(timed(cli + ["plan"], root, cli_env), 3), "load": load}

        plans["list"] = {"wall_s": round(timed(pants + ["list", *specs], root, pants_env), 3), "load": loadavg()}
        plans["warm"] = {k: plan(k) for k in ("pants", "cli")}
        edits.edit(MODULE)
        plans["edit"] = {k: plan(k) for k in ("pants", "cli")}
        edits.undo()
        out["plans"] = plans
        return out
    finally:
        edits.undo()
        kill_pantsd(root, wait_s=10)


def render(res: dict) -> str:
    lines = []
    for n, r in res["projects"].items():
        shape = r["shape"]
        lines += [
            f"### {n} projects ({shape['tasks']} tasks, {shape['entities_per_project'] * int(n)} entities for "
            f"flytebuild, {shape['asset_bytes'] / 1e6:.1f} MB of assets)",
            "",
            "| latency | step | tool | wall s | ÷ `--copy auto` | registered | gRPC calls | bytes up | load |",
            "|---:|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for latency, steps in r["latency"].items():
            for step, by_tool in steps.items():
                base = by_tool["auto"]["wall_s"]
                for tool in TOOLS:
                    m = by_tool[tool]
                    lines.append(f"| {latency} ms | {step} | {tool} | {m['wall_s']:.2f} | {m['wall_s'] / base:.2f}x | "
                                 f"{m['registered']} | {m['rpcs']} | {m['bytes']:,} | {m['load']} |")
        p = r["plans"]
        lines += [
            "",
            "| plan | Pants `flyte-plan` s | CLI `plan` s | `./pants list` s | load |",
            "|---|---:|---:|---:|---:|",
            f"| nothing changed | {p['warm']['pants']['wall_s']:.2f} | {p['warm']['cli']['wall_s']:.2f} | "
            f"{p['list']['wall_s']:.2f} | {p['warm']['pants']['load']} |",
            f"| after a one-module edit | {p['edit']['pants']['wall_s']:.2f} | {p['edit']['cli']['wall_s']:.2f} | | "
            f"{p['edit']['pants']['load']} |",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--projects", type=int, nargs="+", default=[12])
    ap.add_argument("--latency-ms", type=float, nargs="+", default=[0, 20])
    ap.add_argument("--format", choices=("table", "json"), default="table")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fb-scalebench-"))
    started = time.time()
    try:
        res = {"command": " ".join(["bench/scale/scale_bench.py", *sys.argv[1:]]), "cpus": os.cpu_count(),
               "tools": LABELS, "projects": {}}
        for n in args.projects:
            res["projects"][str(n)] = bench_projects(n, [int(x) if x == int(x) else x for x in args.latency_ms], tmp)
        res["total_s"] = round(time.time() - started, 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(res, indent=2) if args.format == "json" else render(res))


if __name__ == "__main__":
    main()
