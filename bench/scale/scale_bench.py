#!/usr/bin/env python3
"""flytebuild (Pants and CLI) side by side with `pyflyte register --copy auto` and `--copy all` on a generated
monorepo (bench/scale/generate.py), against one stand-in FlyteAdmin over real gRPC, in one run: every number of
issue 12's "Must show", with a pass/fail row per target.

    .bootstrap/venv/bin/python bench/scale/scale_bench.py [--projects 12 [48]] [--latency-ms 0 [20]] [--load]
        [--repeats 3] [--quick] [--format json] [--save FILE]

Per project count: one throwaway copy of the repo with the generated tree, one warm pantsd; per latency: a fresh
stand-in FlyteAdmin with that per-call latency (tests/support/flyteadmin), each tool registering into its own
project. Steps, per tool:

  first      the first deploy to this server (build-side caches of earlier rounds stay warm: they are not the
             server's)
  again      nothing changed (flytebuild's: the median of --repeats rounds)
  module     after a one-line edit of one project's module (scale/p01/m1.py)
  lib        after a one-line edit of the shared lib every task imports (scale/lib/common.py)

and plans (Pants `flyte-plan`, CLI `plan`): warm with nothing changed, after a one-module edit (a new one, so
nothing replays), and (Pants) right after a run that named another FlyteAdmin endpoint, with `./pants list` of
the same specs as the floor of any Pants command and `./pants dependencies` as the floor of one that reads the
dependency graph. The one-module edit (quiet and under load) and the flytebuild nothing-changed deploys are the
median of --repeats rounds, the plans of at least 5, each after a new edit of the module (or a new endpoint) and each
measuring every tool; the other steps are one sample
(read the ratios, and the load average printed with them). Entities registered, gRPC calls received and bytes
uploaded are counted on the stand-in (a step's largest count over its rounds).

At the first project count and latency only (they do not depend on the repository's size):

  --load     the one-module edit again with a busy-loop process on every core (os.cpu_count(), started before
             and stopped after the three tools' samples), and how much the ratio to `--copy auto` worsened
  dev        save → changed entities registered through `./pants --loop flyte-deploy` and `flytebuild dev`
  run        `./pants run` and `flytebuild run` of p01's workflow vs `pyflyte run` of it: unchanged, and right
             after an edit of a module it imports (median of --repeats)

Once per run: pantsd's memory (RSS of its process tree, /proc) with the plugin after `flyte-plan examples::` and
in a copy without the flytebuild backend after `list ::` (bench/scale/measures.py). Larger project counts run
the first latency's deploy steps and plans (plan after an edit at the largest ÷ the smallest count is a target).

`--quick` (a smoke run, tests/bench/test_scale_bench.py): 2 projects of tiny assets, 0 ms, no `--copy all`
and no lib edit, one sample, `--load` on with one CPU hog (nice 19), `--copy auto` at the edits only, no warm-up of the
local runs, pantsd's memory with the plugin taken in the bench's own copy: every target measured in two minutes,
numbers meaningless.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
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
import measures  # noqa: E402
import targets  # noqa: E402

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
# the local run: the workflow of the project MODULE belongs to
RUN_TARGET, RUN_CLI_NAME, RUN_FILE = "examples/scale/p01:wf", "p01-wf", "scale/p01/workflows.py"
RUN_INPUTS = ["--x", "2"]


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


def exported_pyflyte() -> tuple:
    """pyflyte and the interpreter of the examples' exported user environment (`make user-env`)."""
    pyflyte = sorted(glob.glob(str(REPO / "dist/export/python/virtualenvs/flyte/*/bin/pyflyte")))[-1]
    return pyflyte, str(Path(pyflyte).parent / "python")


def generated_repo(root: Path, projects: int, **options) -> dict:
    """A throwaway copy of this repository at `root` holding `projects` generated projects; their shape."""
    root.mkdir()
    copy_repo(root)
    return generate.generate(root, projects=projects, **options)


def worker_bench_tree(doc: str, prefix: str) -> tuple:
    """The warm-worker benches' shared start: their arguments, and a generated tree in a fresh temp directory.
    Returns (args, tmp, root, pyflyte, user_python)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    root = tmp / "repo"
    generated_repo(root, args.projects)
    return (args, tmp, root, *exported_pyflyte())


class Tools:
    """The commands of every tool on one generated tree (and, per latency, one stand-in FlyteAdmin)."""

    def __init__(self, root: Path, tmp: Path, n: int):
        self.root, self.tmp, self.n = root, tmp, n
        self.pyflyte, self.user_python = exported_pyflyte()
        # Python's default bytecode caching for every tool, as on a user's machine: with PYTHONDONTWRITEBYTECODE
        # inherited (some CI shells set it), the CLI, run from a source tree, compiled its modules again in every
        # command (0.11 s of a 0.5 s plan at 48 projects), while pyflyte's come compiled from their install.
        base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.pants_env = {**base, "PANTS_DYNAMIC_UI": "false", "NO_COLOR": "1"}
        self.user_env = {k: v for k, v in base.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        self.cli_env = {**self.user_env, "PYTHONPATH": str(root / "src/python"), "FLYTEBUILD_PYTHON": self.user_python,
                        "FLYTEBUILD_CACHE_DIR": str(tmp / f"cli-cache{n}")}
        self.pants = [root / "pants"]
        self.cli = [sys.executable, "-m", "flytebuild.cli", "-c", root / "scale.toml"]
        self.specs = ["examples/scale::"]

    def deploys(self, admin, config: Path) -> dict:
        root, pyflyte = self.root, self.pyflyte
        return {
            "pants": (self.pants + [f"--flyte-endpoint={admin.endpoint}", "--flyte-insecure", "flyte-deploy",
                                    "--no-push-images", *self.specs], root, self.pants_env),
            "cli": (self.cli + ["deploy", "--endpoint", admin.endpoint, "--insecure", "--no-push-images"], root,
                    self.cli_env),
            "auto": ([pyflyte, "--config", config, "register", "--project", PROJECTS["auto"], "--domain",
                      "development", "--copy", "auto", "scale"], root / "examples", self.user_env),
            "all": ([pyflyte, "--config", config, "register", "--project", PROJECTS["all"], "--domain",
                     "development", "--copy", "all", "scale"], root / "examples", self.user_env),
        }

    def loops(self, admin) -> dict:
        """Watch loops: (command, cwd, env, the line that ends a round)."""
        return {
            "pants": (self.pants + [f"--flyte-endpoint={admin.endpoint}", "--flyte-insecure", "--loop",
                                    "flyte-deploy", "--no-push-images", *self.specs], self.root, self.pants_env,
                      "bytes uploaded:"),
            "cli": (self.cli + ["dev", "--endpoint", admin.endpoint, "--insecure", "--no-push-images"], self.root,
                    self.cli_env, "flytebuild dev: watching"),
        }

    def runs(self) -> dict:
        """A local run of one project's workflow, by each tool."""
        return {
            "pants": (self.pants + ["run", RUN_TARGET, "--", *RUN_INPUTS], self.root, self.pants_env),
            "cli": (self.cli + ["run", RUN_CLI_NAME, *RUN_INPUTS], self.root, self.cli_env),
            "pyflyte": ([self.pyflyte, "run", RUN_FILE, "wf", *RUN_INPUTS], self.root / "examples", self.user_env),
        }


def registered_since(admin, mark) -> int:
    delta = admin.since(mark)
    return sum(delta["counters"].get(k, {}).get("created", 0) for k in KINDS)


def bench_projects(n: int, latencies, tmp: Path, opts: argparse.Namespace, extras: bool) -> dict:
    """Deploy steps per latency; with `extras` (the first project count): under load, watch loops, local runs."""
    root = tmp / f"repo{n}"
    shape = generated_repo(root, n, asset_kb=opts.asset_kb)
    tools = Tools(root, tmp, n)
    deploy_tools = [t for t in TOOLS if t != "all" or not opts.quick]
    # --quick: `--copy auto` is the yardstick of the one-module edit only (no target reads its first or
    # nothing-changed deploy); pants and the CLI deploy first to fill their ledgers.
    first_tools = [t for t in deploy_tools if t != "auto" or not opts.quick]
    edits = Edits(root)
    try:
        log(f"{n} projects: starting pantsd (./pants list)...")
        timed(tools.pants + ["list", *tools.specs], root, tools.pants_env)
        out = {"shape": shape, "latency": {}}
        for i, latency in enumerate(latencies):
            with flyteadmin(tools.user_python, projects=tuple(PROJECTS.values()), latency_ms=latency) as admin:
                commands = tools.deploys(admin, admin.write_config(tmp / f"config{n}-{latency}.yaml"))

                def measure(tool: str) -> dict:
                    mark = admin.mark()
                    load = loadavg()
                    dt = timed(*commands[tool])
                    delta = admin.since(mark)
                    return {"wall_s": round(dt, 3), "load": load, "rpcs": delta["rpcs"], "bytes": delta["bytes"],
                            "registered": registered_since(admin, mark)}

                def module_edits(tools_: list) -> dict:
                    # One sample is one scheduler hiccup away from a different verdict: the median of `repeats`
                    # rounds, each a new edit measured by every tool; counts are the worst round's.
                    rounds = []
                    for _ in range(opts.repeats):
                        edits.edit(MODULE)
                        rounds.append({tool: measure(tool) for tool in tools_})
                    return {tool: median_of([r[tool] for r in rounds]) for tool in tools_}

                steps = {}
                log(f"{n} projects, {latency} ms: first deploys and nothing-changed...")
                for step in ("first", "again"):
                    steps[step] = {tool: measure(tool) for tool in first_tools}
                # The nothing-changed target is flytebuild's alone (against `./pants list`): its median of
                # `repeats` rounds, as the edits', since the first command after a large deploy can be a slow one.
                for tool in ("pants", "cli"):
                    steps["again"][tool] = median_of(
                        [steps["again"][tool], *(measure(tool) for _ in range(opts.repeats - 1))])
                log(f"{n} projects, {latency} ms: module edit ({opts.repeats} rounds)...")
                steps["module"] = module_edits(deploy_tools)
                if not opts.quick:
                    log(f"{n} projects, {latency} ms: lib edit...")
                    edits.edit(LIB)
                    steps["lib"] = {tool: measure(tool) for tool in deploy_tools}
                out["latency"][str(latency)] = steps
                if extras and i == 0 and opts.load:
                    # The smoke run (a test, next to other tests) only proves the mechanism: one hog.
                    hogs = 1 if opts.quick else os.cpu_count() or 1
                    log(f"{n} projects, {latency} ms: one-module edit under load ({hogs} CPU hogs)...")
                    with measures.cpu_hogs(hogs, niceness=19 if opts.quick else 0):
                        loaded = module_edits(["pants", "cli", "auto"])
                    quiet = steps["module"]
                    ratio = {t: round(loaded[t]["wall_s"] / loaded["auto"]["wall_s"], 3) for t in ("pants", "cli")}
                    before = {t: round(quiet[t]["wall_s"] / quiet["auto"]["wall_s"], 3) for t in ("pants", "cli")}
                    out["load"] = {"hogs": hogs, "latency": latency, "module": loaded, "ratio": ratio,
                                   "quiet_ratio": before,
                                   "worsening_pct": {t: round(100 * (ratio[t] / before[t] - 1), 1) for t in ratio}}
                if extras and i == 0:
                    out["dev"] = {}
                    for tool, (cmd, cwd, env, ready) in tools.loops(admin).items():
                        log(f"{n} projects, {latency} ms: save → registered through the {tool} watch loop...")
                        expected = steps["module"][tool]["registered"]
                        mark = admin.mark()
                        out["dev"][tool] = measures.save_to_registered(
                            cmd, cwd, env, ready, lambda: edits.edit(MODULE), lambda: registered_since(admin, mark),
                            expected)
                edits.undo()
        if extras:
            out["run"] = bench_runs(tools, edits, opts.repeats, warm_up=not opts.quick)
        log(f"{n} projects: plans...")
        plans = {}

        def sample(command: list, env=tools.pants_env) -> dict:
            load = loadavg()
            return {"wall_s": round(timed(command, root, env), 3), "load": load}

        def plan(kind: str) -> dict:
            if kind == "pants":
                return sample(tools.pants + ["flyte-plan", *tools.specs])
            return sample(tools.cli + ["plan"], tools.cli_env)

        # A plan takes ~0.3 s, so one slow sample among three moves the 48 ÷ 12 ratio by 0.4 (1.43x against 1.08x
        # over five rounds, same code): at least five rounds each.
        plan_rounds = opts.repeats if opts.quick else max(opts.repeats, 5)

        def plans_of(edit: bool) -> dict:
            rounds = []
            for _ in range(plan_rounds):
                if edit:
                    edits.edit(MODULE)
                rounds.append({k: plan(k) for k in ("pants", "cli")})
            return {k: median_of([r[k] for r in rounds]) for k in ("pants", "cli")}

        # Pants' own floors, warm: `list` reads the targets; `dependencies` also re-checks the dependency graph, as
        # Pants does for every goal that reads it (its options come from the run's SessionValues, so each run
        # re-validates every node it reaches: a cost that grows with the repository, whatever changed).
        for floor in ("list", "dependencies"):
            command = tools.pants + [floor, *tools.specs]
            timed(command, root, tools.pants_env)  # a first run computes what the plans did not
            plans[floor] = median_of([sample(command) for _ in range(plan_rounds)])
        plans["warm"] = plans_of(edit=False)
        # Each right after a run that named another FlyteAdmin (as `flyte-deploy --flyte-endpoint=...` does after a
        # `flyte-plan` that names none): a plan is the same for every cluster, so nothing is planned again. Before the
        # edits, which change the tree.
        plans["endpoint"] = {"pants": median_of([
            sample(tools.pants + [f"--flyte-endpoint=127.0.0.1:{9000 + i}", "--flyte-insecure", "flyte-plan",
                                  *tools.specs])
            for i in range(plan_rounds)])}
        plans["edit"] = plans_of(edit=True)
        edits.undo()
        out["plans"] = plans
        if extras and opts.quick:
            # The smoke run measures pantsd with the plugin in this copy's pantsd, warm already, rather than in a
            # fresh copy (a cold pantsd more); the numbers of a smoke run mean nothing anyway.
            log(f"{n} projects: pantsd memory with the plugin, in this copy: ./pants {' '.join(measures.WITH_PLUGIN)}")
            out["memory_with_plugin"] = measures.rss_after(root, *measures.WITH_PLUGIN)
        return out
    finally:
        edits.undo()
        kill_pantsd(root, wait_s=10)
        measures.stop_processes_of(root)


def median_of(samples: list) -> dict:
    """Rounds of one measurement: the median wall time (and every sample's), the highest count of each counter
    (a round that registered or uploaded more must show)."""
    out = dict(max(samples, key=lambda m: m.get("registered", 0)))
    out["wall_s"] = round(statistics.median(m["wall_s"] for m in samples), 3)
    for key in ("rpcs", "bytes", "registered"):
        if key in samples[0]:
            out[key] = max(m[key] for m in samples)
    if len(samples) > 1:
        out["samples_s"] = [m["wall_s"] for m in samples]
    return out


def bench_runs(tools: Tools, edits: Edits, repeats: int, warm_up: bool = True) -> dict:
    """A local run of one project's workflow: unchanged (after a warm-up of each tool), and right after an edit of
    a module it imports (a new edit before every sample). Median of `repeats` samples; ratios ÷ `pyflyte run`."""
    runs = tools.runs()
    if warm_up:
        log(f"{tools.n} projects: local runs (warm-up)...")
        for cmd in runs.values():
            timed(*cmd)
    out = {}
    for step in ("unchanged", "edit"):
        log(f"{tools.n} projects: local runs, {step}...")
        samples = {tool: [] for tool in runs}
        for _ in range(repeats):
            for tool, cmd in runs.items():
                if step == "edit":
                    edits.edit(MODULE)
                samples[tool].append(timed(*cmd))
        med = {tool: round(statistics.median(v), 3) for tool, v in samples.items()}
        out[step] = {"wall_s": med, "load": loadavg(),
                     "ratio": {t: round(med[t] / med["pyflyte"], 3) for t in ("pants", "cli")}}
    edits.undo()
    return out


def render(res: dict) -> str:
    lines = [f"`{res['command']}` at {res.get('commit') or '?'}, {res.get('date', '')}, {res['cpus']} CPUs, "
             f"{res.get('total_s', '?')} s.", "", "#### Targets (issue 12, Must show)", "",
             targets.render(res["targets"]), ""]
    for n, r in res["projects"].items():
        shape = r["shape"]
        lines += [
            f"### {n} projects ({shape['tasks']} tasks, {shape['entities_per_project'] * int(n)} entities for "
            f"flytebuild, {shape['asset_bytes'] / 1e6:.1f} MB of assets)",
            "",
            "| latency | step | tool | wall s | ÷ `--copy auto` | registered | gRPC calls | bytes up | load |",
            "|---:|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        rounds = [(lat, step, by_tool) for lat, steps in r["latency"].items() for step, by_tool in steps.items()]
        if r.get("load"):
            rounds.append((r["load"]["latency"], f"module, {r['load']['hogs']} CPU hogs", r["load"]["module"]))
        for latency, step, by_tool in rounds:
            base = by_tool.get("auto", {}).get("wall_s")  # --quick measures `--copy auto` at the edits only
            for tool in TOOLS:
                m = by_tool.get(tool)
                if m:
                    ratio = f"{m['wall_s'] / base:.2f}x" if base else "—"
                    lines.append(f"| {latency} ms | {step} | {tool} | {m['wall_s']:.2f} | {ratio} | "
                                 f"{m['registered']} | {m['rpcs']} | {m['bytes']:,} | {m['load']} |")
        p = r["plans"]
        lines += [
            "",
            "| plan | Pants `flyte-plan` s | CLI `plan` s | `./pants list` s | `./pants dependencies` s | load |",
            "|---|---:|---:|---:|---:|---:|",
            f"| nothing changed | {p['warm']['pants']['wall_s']:.2f} | {p['warm']['cli']['wall_s']:.2f} | "
            f"{p['list']['wall_s']:.2f} | {p['dependencies']['wall_s']:.2f} | {p['warm']['pants']['load']} |",
            f"| after a one-module edit | {p['edit']['pants']['wall_s']:.2f} | {p['edit']['cli']['wall_s']:.2f} | | "
            f"| {p['edit']['pants']['load']} |",
            f"| what the edit adds | {p['edit']['pants']['wall_s'] - p['warm']['pants']['wall_s']:.2f} | "
            f"{p['edit']['cli']['wall_s'] - p['warm']['cli']['wall_s']:.2f} | | | |",
            f"| after a run that named another FlyteAdmin | {p['endpoint']['pants']['wall_s']:.2f} | | | "
            f"| {p['endpoint']['pants']['load']} |",
            "",
        ]
        if r.get("load"):
            ld = r["load"]
            lines += ["| one-module edit ÷ `--copy auto` | quiet | loaded | worsening |", "|---|---:|---:|---:|"]
            lines += [f"| {tool} | {ld['quiet_ratio'][tool]:.2f}x | {ld['ratio'][tool]:.2f}x | "
                      f"{ld['worsening_pct'][tool]:+.1f}% |" for tool in ld["ratio"]]
            lines.append("")
        if r.get("run"):
            run = r["run"]
            lines += [f"| local run of `{RUN_TARGET}` | `pyflyte run` s | `./pants run` s | `flytebuild run` s | "
                      "÷ pyflyte (pants, cli) | load |", "|---|---:|---:|---:|---|---:|"]
            for step, label in (("unchanged", "unchanged"), ("edit", "after an edit")):
                w, ratio = run[step]["wall_s"], run[step]["ratio"]
                lines.append(f"| {label} | {w['pyflyte']:.2f} | {w['pants']:.2f} | {w['cli']:.2f} | "
                             f"{ratio['pants']:.2f}x, {ratio['cli']:.2f}x | {run[step]['load']} |")
            lines.append("")
        if r.get("dev"):
            lines += ["| watch loop, one-module save | save → registered s | registered |", "|---|---:|---:|"]
            for tool, label in (("pants", "`./pants --loop flyte-deploy`"), ("cli", "`flytebuild dev`")):
                d = r["dev"][tool]
                lines.append(f"| {label} | {d['save_to_registered_s']:.2f} | {d['registered']} |")
            lines.append("")
    memory = res.get("memory")
    if memory:
        lines += ["| pantsd | RSS MB | pantsd's process tree | other processes of the copy | PSS MB | after |",
                  "|---|---:|---:|---:|---:|---|"]
        for key, label in (("with_plugin", "with the flytebuild backend"), ("without_plugin", "without it")):
            m = memory[key]
            lines.append(f"| {label} | {m['rss_mb']:.0f} | {m['pantsd_tree_mb']:.0f} | {m['others_mb']:.0f} | "
                         f"{m.get('pss_mb', 0):.0f} | `{m['command']}` |")
        lines.append("")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--projects", type=int, nargs="+", default=None, help="project counts (default 12)")
    ap.add_argument("--latency-ms", type=float, nargs="+", default=None, help="stand-in latencies (default 0 20)")
    ap.add_argument("--load", action="store_true",
                    help="also the one-module edit with a CPU-bound process on every core (first count, latency)")
    ap.add_argument("--repeats", type=int, default=None, help="samples per local run (median; default 3)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 2 small projects, 0 ms, no `--copy all` or lib-edit step, 1 sample; with --load")
    ap.add_argument("--asset-kb", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--format", choices=("table", "json"), default="table")
    ap.add_argument("--save", metavar="FILE", help="also write the result as JSON to FILE")
    args = ap.parse_args(argv)
    if args.quick:
        args.load = True
    args.projects = args.projects or ([2] if args.quick else [12])
    args.latency_ms = args.latency_ms or ([0] if args.quick else [0, 20])
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.asset_kb = args.asset_kb or (16 if args.quick else 700)
    return args


def main() -> None:
    args = parse_args()
    latencies = [int(x) if x == int(x) else x for x in args.latency_ms]
    tmp = Path(tempfile.mkdtemp(prefix="fb-scalebench-"))
    started = time.time()
    try:
        res = {"command": " ".join(["bench/scale/scale_bench.py", *sys.argv[1:]]), "cpus": os.cpu_count(),
               "commit": _commit(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "tools": LABELS, "projects": {}}
        for i, n in enumerate(args.projects):
            # larger project counts: the first latency only, without the extras (they do not depend on size)
            res["projects"][str(n)] = bench_projects(n, latencies if i == 0 else latencies[:1], tmp, args, i == 0)
        first = res["projects"][str(args.projects[0])]
        res["memory"] = measures.pantsd_memory(tmp, log, args.repeats, first.pop("memory_with_plugin", None))
        res["targets"] = targets.evaluate(res)
        res["total_s"] = round(time.time() - started, 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.save:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        Path(args.save).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2) if args.format == "json" else render(res))


def _commit() -> str:
    proc = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip()


if __name__ == "__main__":
    main()
