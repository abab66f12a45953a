"""The warm worker, measured quickly (docs/worker.md): on a generated tree (generate.py), after a one-module edit,
`flytebuild -c scale.toml deploy --no-push-images` with the warm worker, the same with FLYTEBUILD_WORKER=0, and
`pyflyte register --copy auto scale`, each against its own stand-in FlyteAdmin (0 ms latency), `--repeats`
times in turn. scale_bench.py is the full side-by-side bench; this one isolates what the worker changes.

    .bootstrap/venv/bin/python bench/scale/warm_worker.py --projects 12 --repeats 3
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from scale_bench import MODULE, PROJECTS, Edits, loadavg, timed, worker_bench_tree  # noqa: E402

from tests.support.flyteadmin.fixture import flyteadmin  # noqa: E402  (stdlib only)

CLI_PROJECT = (PROJECTS["cli"],)  # the project scale.toml deploys to
TOOLS = {
    "warm": "`flytebuild -c scale.toml deploy --no-push-images` (warm worker)",
    "cold": "the same with FLYTEBUILD_WORKER=0",
    "auto": "`pyflyte register --copy auto scale`",
}


def main() -> None:
    args, tmp, root, pyflyte, user_python = worker_bench_tree(__doc__, "flytebuild-warm-worker-")
    user_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    cli_env = {**user_env, "PYTHONPATH": str(root / "src/python"), "FLYTEBUILD_PYTHON": user_python}
    cli = [sys.executable, "-m", "flytebuild.cli", "-c", root / "scale.toml"]
    edits = Edits(root)
    rows = []
    try:
        with flyteadmin(user_python, projects=CLI_PROJECT) as warm, flyteadmin(
                user_python, projects=CLI_PROJECT) as cold, flyteadmin(user_python, projects=("pyflyte-auto",)) as auto:
            admins = {"warm": warm, "cold": cold, "auto": auto}
            commands = {
                "warm": (cli + ["deploy", "--endpoint", warm.endpoint, "--insecure", "--no-push-images"], root,
                         {**cli_env, "FLYTEBUILD_CACHE_DIR": str(tmp / "cache-warm")}),
                "cold": (cli + ["deploy", "--endpoint", cold.endpoint, "--insecure", "--no-push-images"], root,
                         {**cli_env, "FLYTEBUILD_CACHE_DIR": str(tmp / "cache-cold"), "FLYTEBUILD_WORKER": "0"}),
                "auto": ([pyflyte, "--config", auto.write_config(tmp / "config.yaml"), "register", "--project",
                          "pyflyte-auto", "--domain", "development", "--copy", "auto", "scale"], root / "examples",
                         user_env),
            }
            for tool in TOOLS:
                timed(*commands[tool])  # the first deploy (and, for `warm`, the worker's start)
            for repeat in range(args.repeats):
                edits.edit(MODULE)
                for tool in TOOLS:
                    mark = admins[tool].mark()
                    load = loadavg()
                    wall = timed(*commands[tool])
                    rpcs = admins[tool].since(mark)["rpcs"]
                    rows.append({"repeat": repeat, "tool": tool, "wall_s": round(wall, 2), "rpcs": rpcs,
                                 "load": load})
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    finally:
        edits.undo()
        sys.path.insert(0, str(root / "src/python"))
        from flytebuild.service import worker

        worker.stop(str(tmp / "cache-warm" / "workers"))
        shutil.rmtree(tmp, ignore_errors=True)
    print("| repeat | tool | wall s | ÷ `--copy auto` | gRPC calls | load |")
    print("|---:|---|---:|---:|---:|---:|")
    for row in rows:
        auto_wall = next(r["wall_s"] for r in rows if r["repeat"] == row["repeat"] and r["tool"] == "auto")
        print(f"| {row['repeat'] + 1} | {TOOLS[row['tool']]} | {row['wall_s']:.2f} | "
              f"{row['wall_s'] / auto_wall:.2f}x | {row['rpcs']} | {row['load']} |")


if __name__ == "__main__":
    main()
