#!/usr/bin/env python3
"""`./pants flyte-deploy examples/baked:: examples/mixed::` side by side with `pyflyte register --copy all` (one
run, one stand-in FlyteAdmin over real gRPC: tests/support/flyteadmin).

Images are not pushed by either (pyflyte register builds none; flyte-deploy runs with --no-push-images): this
measures registration. Both register the same two projects (examples/baked, examples/mixed) to the same server, one
after the other, each in its own project so their entities never meet. Per tool and step: entities created on the
server, bytes uploaded to its object store, wall time.

  first        the first registration
  again        nothing changed
  edit         after a one-line edit of examples/shared/helpers.py (new content each repeat)

`edit` is the median of N repeats (a new edit each time); `first` and `again` are one sample each. Works in a
throwaway copy of the repo, as bench/plan_bench.py does.

  .bootstrap/venv/bin/python bench/deploy_bench.py [--repeats 3] [--format=json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

import plan_bench  # noqa: E402  (make_copy, kill_pantsd, find_pyflyte)

from tests.support.flyteadmin.fixture import flyteadmin  # noqa: E402  (stdlib only)

EDITED = "examples/shared/helpers.py"
KINDS = ("task", "workflow", "launch_plan")
PYFLYTE_PROJECT = "pyflyte"


def log(msg: str) -> None:
    print(f"deploy_bench: {msg}", file=sys.stderr, flush=True)


def run(cmd, cwd, env=None):
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(
            f"deploy_bench: {' '.join(map(str, cmd))} failed (rc {proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return dt, proc.stdout


def measure(admin, fn) -> dict:
    mark = admin.mark()
    dt = fn()
    delta = admin.since(mark)
    created = sum(delta["counters"].get(k, {}).get("created", 0) for k in KINDS)
    return {"wall_s": dt, "entities_registered": created, "bytes_uploaded": delta["bytes"], "uploads": delta["uploads"]}


def median_of(samples):
    return {k: statistics.median(s[k] for s in samples) for k in samples[0]} | {"samples": samples}


def bench(args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="fb-deploybench-"))
    root = None
    try:
        root = plan_bench.make_copy(tmp)
        pyflyte, _ = plan_bench.find_pyflyte(root)
        user_python = str(Path(pyflyte).parent / "python")
        pants_env = {**os.environ, "PANTS_DYNAMIC_UI": "false", "NO_COLOR": "1"}
        user_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        with flyteadmin(user_python, projects=("flytesnacks", PYFLYTE_PROJECT)) as admin:
            config = admin.write_config(tmp / "config.yaml")

            def flytebuild():
                return run(
                    [
                        str(root / "pants"),
                        f"--flyte-endpoint={admin.endpoint}",
                        "--flyte-insecure",
                        "flyte-deploy",
                        "--no-push-images",
                        "examples/baked::",
                        "examples/mixed::",
                    ],
                    root,
                    pants_env,
                )[0]

            def pyflyte_register():
                return run(
                    [
                        pyflyte,
                        "--config",
                        str(config),
                        "register",
                        "--project",
                        PYFLYTE_PROJECT,
                        "--domain",
                        "development",
                        "--copy",
                        "all",
                        "baked",
                        "mixed",
                    ],
                    root / "examples",
                    user_env,
                )[0]

            log("warming pantsd (flyte-plan)...")
            run([str(root / "pants"), "flyte-plan", "examples/baked::", "examples/mixed::"], root, pants_env)
            helpers = root / EDITED
            original = helpers.read_text()
            nonce = f"{os.getpid()}_{time.time_ns()}"
            results = {}
            for tool, fn in (("flytebuild", flytebuild), ("pyflyte", pyflyte_register)):
                log(f"{tool}: first, again, {args.repeats} edits...")
                first = measure(admin, fn)
                again = measure(admin, fn)
                edits = []
                for i in range(args.repeats):
                    helpers.write_text(original + f"\n_BENCH_EDIT = '{nonce}_{tool}_{i}'\n")
                    edits.append(measure(admin, fn))
                helpers.write_text(original)
                results[tool] = {"first": first, "again": again, "edit": median_of(edits)}
        return {
            "benchmark": "deploy",
            "repeats": args.repeats,
            "machine": {"cpus": os.cpu_count()},
            "pyflyte_command": "pyflyte register --copy all baked mixed (from examples/)",
            "flytebuild_command": "./pants flyte-deploy --no-push-images examples/baked:: examples/mixed:: "
            "(warm pantsd; pyflyte builds no image either)",
            "results": results,
        }
    finally:
        if root is not None:
            plan_bench.kill_pantsd(root, wait_s=10)
        shutil.rmtree(tmp, ignore_errors=True)


def render_table(res: dict) -> str:
    r = res["results"]
    lines = [
        f"flyte-deploy vs `pyflyte register --copy all`: examples/ (baked + mixed) to one stand-in FlyteAdmin; "
        f"edit = median of {res['repeats']}; {res['machine']['cpus']} CPUs",
        "",
        "| step | tool | entities registered | bytes uploaded | wall s | pyflyte ÷ this (time) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for step, label in (
        ("first", "first deploy"),
        ("again", "nothing changed"),
        ("edit", f"after a 1-line edit of `{EDITED}`"),
    ):
        base = r["pyflyte"][step]["wall_s"]
        for tool in ("pyflyte", "flytebuild"):
            m = r[tool][step]
            lines.append(
                f"| {label} | {tool} | {m['entities_registered']:g} | {m['bytes_uploaded']:,.0f} | "
                f"{m['wall_s']:.2f} | {base / m['wall_s']:.2f}x |"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--format", choices=("table", "json"), default="table")
    args = p.parse_args()
    res = bench(args)
    print(json.dumps(res, indent=2) if args.format == "json" else render_table(res))


if __name__ == "__main__":
    main()
