#!/usr/bin/env python3
"""Bazel plans of the examples after a one-module edit, with and without `flyte_settings(persistent_worker =
True)`, side by side in one run (docs/worker.md#bazel).

Two throwaway copies of tests/e2e/bazel_examples with the examples (as tests/e2e/test_equivalence.py lays them out),
each with its own Bazel server and output base: `plain` (the default sandboxed actions) and `worker` (the persistent
worker; built with --experimental_worker_allow_json_protocol --worker_sandboxing). After one warm-up build each,
every round writes new content to examples/shared/helpers.py in both copies and times `bazel build //examples/...`
(the plans of every workflow and image) in each, alternately, so both see the same machine load. Every round checks
that both copies produced the same plan files, byte for byte.

  .bootstrap/venv/bin/python bench/bazel_worker_bench.py [--repeats 5] [--format=json]
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

REPO = Path(__file__).resolve().parents[1]
EDITED = "examples/shared/helpers.py"
WORKER_FLAGS = ["--experimental_worker_allow_json_protocol", "--worker_sandboxing"]
# examples/ as the repository holds it (tests/e2e adds examples/specs from tests/images for the ImageSpec case)
TARGETS = ["//examples/...", "-//examples/specs/..."]
SETTINGS = '    name = "flyte_settings",\n'


def log(msg: str) -> None:
    print(f"bazel_worker_bench: {msg}", file=sys.stderr, flush=True)


def workspace(base: Path, worker: bool) -> Path:
    root = base / ("worker" if worker else "plain")
    shutil.copytree(REPO / "tests/e2e/bazel_examples", root)
    shutil.copytree(REPO / "tests/bazel/workspace/stand_ins", root / "stand_ins")
    shutil.copytree(REPO / "examples", root / "examples", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("BUILD", "*.toml", "refs"))
    workspace_file = root / "WORKSPACE"
    workspace_file.write_text(workspace_file.read_text().replace('path = "../../../src/python"',
                                                                 f'path = "{REPO}/src/python"'))
    if worker:
        settings = root / "BUILD.bazel"
        settings.write_text(settings.read_text().replace(SETTINGS, SETTINGS + "    persistent_worker = True,\n", 1))
    return root


def bazel_argv(root: Path, base: Path, *args: str) -> list:
    python = sorted(glob.glob(str(REPO / "dist/export/python/virtualenvs/flyte/*/bin/python")))
    if not python:
        raise SystemExit("bazel_worker_bench: no exported user env; run ./pants export --resolve=flyte")
    defines = {
        "FLYTE_PYTHON": python[-1],
        "FLYTEBUILD_PYTHON": str(REPO / ".bootstrap/venv/bin/python"),
        "FLYTEBUILD_PEX_ROOT": str(REPO / ".bootstrap/cache/named_caches/pex_root"),
        "FLYTEBUILD_IMAGE_CACHE": str(base / "cache"),
    }
    argv = ["bazel", f"--output_user_root={base / 'out' / root.name}", *args]
    argv += [f"--define={k}={v}" for k, v in defines.items()]
    return argv + (WORKER_FLAGS if root.name == "worker" else [])


def build(root: Path, base: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(bazel_argv(root, base, "build") + ["--", *TARGETS], cwd=root, capture_output=True,
                          text=True, timeout=900)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bazel_worker_bench: build in {root} failed:\n{proc.stderr[-3000:]}")
    return seconds


def plans(root: Path, base: Path) -> dict:
    """Every plan file of the build (the workspace's .bazelrc makes no bazel-bin symlink: ask Bazel)."""
    bin_dir = Path(subprocess.run(bazel_argv(root, base, "info") + ["bazel-bin"], cwd=root, capture_output=True,
                                  text=True, check=True, timeout=300).stdout.strip()) / "examples"
    found = {str(p.relative_to(bin_dir)): p.read_bytes() for p in sorted(bin_dir.rglob("*plan.json"))}
    if not found:
        raise SystemExit(f"bazel_worker_bench: no plan under {bin_dir}")
    return found


def edit(roots, round_: int) -> None:
    for root in roots:
        path = root / EDITED
        text = path.read_text().split("\n# bench edit")[0]
        path.write_text(f"{text}\n# bench edit {round_}\n")


def measure(base: Path, repeats: int) -> dict:
    roots = [workspace(base, False), workspace(base, True)]
    times = {root.name: [] for root in roots}
    try:
        for root in roots:
            log(f"warm-up build ({root.name})")
            build(root, base)
        for i in range(repeats):
            edit(roots, i)
            for root in roots if i % 2 == 0 else reversed(roots):
                times[root.name].append(build(root, base))
            if plans(roots[0], base) != plans(roots[1], base):
                raise SystemExit("bazel_worker_bench: the worker's plans differ from the plain actions' plans")
            log(f"round {i + 1}: plain {times['plain'][-1]:.2f} s, worker {times['worker'][-1]:.2f} s")
    finally:
        for root in roots:
            subprocess.run(["bazel", f"--output_user_root={base / 'out' / root.name}", "shutdown"], cwd=root,
                           capture_output=True, timeout=120)
            for sockets in (base / "out" / root.name).glob("*/flytebuild-workers"):
                subprocess.run([sys.executable, "-c", "import sys; from flytebuild.service.worker import stop; "
                                "stop(sys.argv[1])", str(sockets)], env={**os.environ, "PYTHONPATH": str(
                                    REPO / "src/python")}, capture_output=True)
    plain, worker = statistics.median(times["plain"]), statistics.median(times["worker"])
    return {"edited": EDITED, "repeats": repeats, "plain_s": times["plain"], "worker_s": times["worker"],
            "plain_median_s": round(plain, 2), "worker_median_s": round(worker, 2),
            "ratio": round(worker / plain, 2), "load_average": os.getloadavg()[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--format", choices=("table", "json"), default="table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bazel-worker-bench-") as tmp:
        try:
            result = measure(Path(tmp), args.repeats)
        finally:
            subprocess.run(["chmod", "-R", "u+w", tmp], capture_output=True)  # Bazel's output tree is read-only
    if args.format == "json":
        print(json.dumps(result, indent=2))
    else:
        print(f"bazel build //examples/... after an edit of {EDITED} (median of {args.repeats}):")
        print(f"  plain actions      {result['plain_median_s']:6.2f} s")
        print(f"  persistent worker  {result['worker_median_s']:6.2f} s   ({result['ratio']}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
