#!/usr/bin/env python3
"""`./pants flyte-plan examples::` wall time, side by side with `pyflyte package` (one run, ratios).

Works in a throwaway copy of the repo (pants, pants.toml, examples, src; `.bootstrap/{venv,pex.pex,
cache}` symlinked from the checkout, as tests/e2e/conftest.py does), so the checkout and its
pantsd are never touched. Measures, median of N:

  plan cold      first run in the copy: pantsd start + plugin load (one sample, informational)
  plan warm      no change, after one warm-up run
  plan edit      right after a one-line edit of examples/shared/helpers.py (new content each time)
  plan revert    right after undoing that edit (content seen before: Pants replays cached results)
  pants list     `./pants list examples::`, warm: the floor of any Pants command here
  pyflyte        `pyflyte -k baked -k mixed package --image ... -o X --force` from examples/, with
                 the exported user env (dist/export/python/virtualenvs/flyte/*/bin/pyflyte):
                 what a user runs to list/serialize the same workflows without flytebuild

Checks that the edit changes the versions of exactly the tasks whose closure holds helpers.py.

  .bootstrap/venv/bin/python bench/plan_bench.py [--repeats 5] [--format=json]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.support.repo_copy import PANTS_ENV, copy_repo, kill_pantsd  # noqa: E402  (stdlib only)

EDITED = "examples/shared/helpers.py"
PYFLYTE_ARGS = ["-k", "baked", "-k", "mixed", "package", "--image", "localhost:5000/x:1"]


def log(msg: str) -> None:
    print(f"plan_bench: {msg}", file=sys.stderr, flush=True)


def make_copy(tmp: Path) -> Path:
    root = tmp / "repo"
    root.mkdir()
    return copy_repo(root)


def run_timed(cmd, cwd, timeout=600):
    env = {**os.environ, **PANTS_ENV}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(
            f"plan_bench: {' '.join(map(str, cmd))} failed (rc {proc.returncode}) in {cwd}:\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return dt, proc.stdout


def plan(root: Path):
    dt, out = run_timed([str(root / "pants"), "flyte-plan", "--format=json", "examples::"], root)
    return dt, json.loads(out)


def task_versions(plan_json: dict) -> dict:
    out = {}
    for wf in plan_json["workflows"]:
        for t in wf["tasks"]:
            out[f"{wf['address']} {t['name']}"] = t["version"]
    return out


def find_pyflyte(root: Path):
    hits = sorted(glob.glob(str(REPO / "dist/export/python/virtualenvs/flyte/*/bin/pyflyte")))
    if hits:
        return hits[-1], "checkout's export"
    log("no exported user env in the checkout: running `./pants export --resolve=flyte` in the copy")
    run_timed([str(root / "pants"), "export", "--resolve=flyte"], root, timeout=900)
    hits = sorted(glob.glob(str(root / "dist/export/python/virtualenvs/flyte/*/bin/pyflyte")))
    if not hits:
        raise SystemExit("plan_bench: `pants export --resolve=flyte` produced no bin/pyflyte")
    return hits[-1], "exported in the copy"


def row(name, desc, samples, base=None):
    med = statistics.median(samples)
    r = {"name": name, "description": desc, "median_s": med, "min_s": min(samples),
         "max_s": max(samples), "samples_s": samples}
    if base is not None:
        r["pyflyte_over_this"] = base / med
    return r


def run(args) -> dict:
    if not (REPO / ".bootstrap/venv/bin/pants").exists():
        log("bootstrapping Pants in the checkout (once)")
        run_timed([str(REPO / "pants"), "--version"], REPO, timeout=1800)
    tmp = Path(tempfile.mkdtemp(prefix="fb-planbench-"))
    root = None
    try:
        root = make_copy(tmp)
        log(f"copy at {root}; cold start (pantsd + plugin)...")
        cold, first = plan(root)
        before = task_versions(first)
        log(f"cold {cold:.1f}s; warm runs...")
        plan(root)  # warm-up
        warm = [plan(root)[0] for _ in range(args.repeats)]
        # Floor: the cheapest warm Pants command over the same specs (client + pantsd round trip).
        lst = [run_timed([str(root / "pants"), "list", "examples::"], root)[0] for _ in range(args.repeats)]

        edits, reverts = [], []
        changed_sets = set()
        helpers = root / EDITED
        original = helpers.read_text()
        # A nonce per edit: Pants' process cache (the store is shared and persistent) would
        # otherwise replay the introspection of an edit seen in an earlier bench run.
        nonce = f"{os.getpid()}_{time.time_ns()}"
        for i in range(args.repeats):
            helpers.write_text(original + f"\n_BENCH_EDIT = '{nonce}_{i}'\n")
            dt, out = plan(root)
            edits.append(dt)
            now = task_versions(out)
            changed_sets.add(tuple(sorted(k for k in now if now[k] != before.get(k))))
            # Undo the edit: content Pants has seen before, so every process result is cached.
            helpers.write_text(original)
            dt, out = plan(root)
            reverts.append(dt)
            if task_versions(out) != before:
                raise SystemExit("plan_bench: reverting the edit did not restore the versions")

        pyflyte, pyflyte_from = find_pyflyte(root)
        out_tgz = str(tmp / "pkg.tgz")
        cmd = [pyflyte, *PYFLYTE_ARGS, "-o", out_tgz, "--force"]
        log("pyflyte package runs...")
        run_timed(cmd, root / "examples")  # warm-up (.pyc, page cache)
        pyf = [run_timed(cmd, root / "examples")[0] for _ in range(args.repeats)]
        pyf_med = statistics.median(pyf)

        changed = sorted(changed_sets)
        rows = [
            row("pyflyte_package", "pyflyte -k baked -k mixed package (exported user env), from examples/", pyf),
            row("plan_warm", "./pants flyte-plan examples::, warm pantsd, nothing changed", warm, pyf_med),
            row("plan_edit", f"./pants flyte-plan examples::, after a new 1-line edit of {EDITED}", edits, pyf_med),
            row(
                "plan_revert",
                "./pants flyte-plan examples::, after undoing that edit (cached results)",
                reverts,
                pyf_med,
            ),
            row("pants_list_floor", "./pants list examples:: (warm; floor of any Pants command)", lst, pyf_med),
            row(
                "plan_cold", "./pants flyte-plan examples::, first run in a fresh copy (pantsd start)", [cold], pyf_med
            ),
        ]
        return {
            "benchmark": "plan",
            "repeats": args.repeats,
            "pyflyte": {"path": pyflyte, "from": pyflyte_from, "args": PYFLYTE_ARGS},
            "edit_changed_tasks": changed[0] if len(changed) == 1 else changed,
            "edit_changes_consistent": len(changed) == 1,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "notes": "page cache warm; Pants local store/named caches shared with the checkout "
            "(so 'cold' is a new pantsd on a warm store, not a first-ever build)",
            "rows": rows,
        }
    finally:
        if root is not None:
            kill_pantsd(root, wait_s=10)  # a clean shutdown before the copy is removed
        shutil.rmtree(tmp, ignore_errors=True)


def render_table(res: dict) -> str:
    lines = [
        f"flyte-plan vs pyflyte: examples/ (baked + mixed); median of {res['repeats']}; {res['machine']['cpus']} CPUs",
        "",
        "| command | median s | min–max s | pyflyte ÷ this |",
        "|---|---:|---:|---:|",
    ]
    for r in res["rows"]:
        ratio = f"{r['pyflyte_over_this']:.2f}x" if "pyflyte_over_this" in r else "1.00x (reference)"
        span = f"{r['min_s']:.2f}–{r['max_s']:.2f}" if len(r["samples_s"]) > 1 else "(1 run)"
        lines.append(f"| {r['description']} | {r['median_s']:.2f} | {span} | {ratio} |")
    lines.append("")
    ch = res["edit_changed_tasks"]
    lines.append(
        "Tasks whose version changed on each helpers.py edit: "
        + (", ".join(ch) if res["edit_changes_consistent"] else f"INCONSISTENT: {ch}")
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--format", choices=["table", "json"], default="table")
    args = p.parse_args(argv)
    res = run(args)
    print(json.dumps(res, indent=2) if args.format == "json" else render_table(res))
    return 0 if res["edit_changes_consistent"] else 1


if __name__ == "__main__":
    sys.exit(main())
