#!/usr/bin/env python3
"""A local run of `examples/typed:wf`, side by side with `pyflyte run` of the same workflow (one run, ratios).

Works in a throwaway copy of the repo (as bench/plan_bench.py does). Measures, median of N:

  pyflyte run        `pyflyte run typed/workflows.py wf --cfg ...` from examples/ with the exported user env:
                     what a user runs without flytebuild (reference)
  run.py             `python runtime/__main__.py run request.json --cfg ...`: flytebuild's runtime alone, same env
  pants run, warm    `./pants run examples/typed:wf -- --cfg ...` after a warm-up (plan, pex and sources cached)
  pants list         `./pants list examples::`, warm: the floor of any Pants command here

HOME points at a fresh temp dir for every sample, so flytekit's local cache never serves a result.

  .bootstrap/venv/bin/python bench/run_bench.py [--repeats 5] [--format=json]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plan_bench import kill_pantsd, make_copy  # noqa: E402  (same throwaway copy)

REPO = Path(__file__).resolve().parents[1]
INPUTS = ["--cfg", '{"scale": 2, "offset": 1}', "--n", "4"]


def log(msg: str) -> None:
    print(f"run_bench: {msg}", file=sys.stderr, flush=True)


def timed(cmd, cwd, env_extra=None) -> float:
    with tempfile.TemporaryDirectory(prefix="run-bench-home-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "FLYTE"))}
        env.update({"PANTS_DYNAMIC_UI": "false", "NO_COLOR": "1", "HOME": home, **(env_extra or {})})
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
        dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"run_bench: {' '.join(map(str, cmd))} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return dt


def measure(repeats: int) -> dict:
    users = sorted(glob.glob(str(REPO / "dist/export/python/virtualenvs/flyte/*/bin/python")))
    if not users:
        raise SystemExit("run_bench: no exported user env; run `./pants export --resolve=flyte`")
    python = users[-1]
    pyflyte = str(Path(python).parent / "pyflyte")
    with tempfile.TemporaryDirectory(prefix="run-bench-") as tmp:
        root = make_copy(Path(tmp))
        request = Path(tmp) / "request.json"
        request.write_text(json.dumps({"entrypoint": "typed.workflows:wf", "target": "examples/typed:wf"}))
        runs = {
            "pyflyte run": ([pyflyte, "run", "typed/workflows.py", "wf", *INPUTS], root / "examples", {}),
            "run.py": (
                [python, str(root / "src/python/flytebuild/runtime/__main__.py"), "run", str(request), *INPUTS],
                root,
                {"PYTHONPATH": "examples"},
            ),
            "pants run, warm": ([str(root / "pants"), "run", "examples/typed:wf", "--", *INPUTS], root, {}),
            "pants list": ([str(root / "pants"), "list", "examples::"], root, {}),
        }
        try:
            log("warm-up (pantsd start, plan, pex)...")
            timed(runs["pants run, warm"][0], root)
            samples = {name: [] for name in runs}
            for i in range(repeats):
                for name, (cmd, cwd, extra) in runs.items():
                    samples[name].append(timed(cmd, cwd, extra))
                log(f"round {i + 1}/{repeats} done")
        finally:
            kill_pantsd(root)
    base = statistics.median(samples["pyflyte run"])
    return {
        "repeats": repeats,
        "rows": [
            {
                "command": name,
                "median_s": round(statistics.median(v), 3),
                "pyflyte_over_this": round(base / statistics.median(v), 2),
            }
            for name, v in samples.items()
        ],
    }


def render_table(data: dict) -> str:
    lines = ["| command | median s | pyflyte ÷ this |", "|---|---:|---:|"]
    lines += [f"| {r['command']} | {r['median_s']:.2f} | {r['pyflyte_over_this']:.2f}x |" for r in data["rows"]]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--format", choices=("table", "json"), default="table")
    args = ap.parse_args()
    data = measure(args.repeats)
    print(json.dumps(data, indent=2) if args.format == "json" else render_table(data))


if __name__ == "__main__":
    main()
