"""`./pants flyte-deploy` with and without the warm worker (`[flyte].worker`), measured quickly (docs/performance.md):
on a generated tree (generate.py), warm pantsd, after a one-module edit (a new one before every command, so no
cache answers), side by side with `pyflyte register --copy auto scale`, each against its own stand-in FlyteAdmin
(0 ms latency), `--repeats` times in turn; then, with nothing changed, `flyte-deploy` and `./pants list` of the same
specs. scale_bench.py is the full side-by-side bench; this one isolates what the worker changes for Pants.

    .bootstrap/venv/bin/python bench/scale/pants_worker.py --projects 12 --repeats 3
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

from scale_bench import MODULE, PROJECTS, Edits, loadavg, registered_since, timed, worker_bench_tree  # noqa: E402

from tests.support.flyteadmin.fixture import flyteadmin  # noqa: E402  (stdlib only)
from tests.support.repo_copy import kill_pantsd  # noqa: E402

SPECS = ["examples/scale::"]
TOOLS = {
    "warm": "`./pants flyte-deploy --no-push-images examples/scale::` (warm worker, the default)",
    "cold": "the same with `--no-flyte-worker` (sandboxed processes)",
    "auto": "`pyflyte register --copy auto scale`",
}


def main() -> None:
    # a short prefix: the worker's socket stays in the copy's workdir
    args, tmp, root, pyflyte, user_python = worker_bench_tree(__doc__, "fbpw")
    user_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    pants_env = {**os.environ, "PANTS_DYNAMIC_UI": "false", "NO_COLOR": "1"}
    pants = [root / "pants"]
    edits = Edits(root)
    rows = []
    try:
        timed(pants + ["list", *SPECS], root, pants_env)  # pantsd's start
        with flyteadmin(user_python, projects=(PROJECTS["pants"],)) as warm, flyteadmin(
                user_python, projects=(PROJECTS["pants"],)) as cold, flyteadmin(
                user_python, projects=(PROJECTS["auto"],)) as auto:
            admins = {"warm": warm, "cold": cold, "auto": auto}

            def deploy(admin, *flags):
                return (pants + [f"--flyte-endpoint={admin.endpoint}", "--flyte-insecure", *flags, "flyte-deploy",
                                 "--no-push-images", *SPECS], root, pants_env)

            commands = {
                "warm": deploy(warm),
                "cold": deploy(cold, "--no-flyte-worker"),
                "auto": ([pyflyte, "--config", auto.write_config(tmp / "config.yaml"), "register", "--project",
                          PROJECTS["auto"], "--domain", "development", "--copy", "auto", "scale"], root / "examples",
                         user_env),
            }
            for tool in TOOLS:
                timed(*commands[tool])  # the first deploy (and, for `warm`, the worker's start)

            def sample(tool: str, step: str, repeat: int) -> None:
                mark = admins[tool].mark() if tool in admins else None
                load = loadavg()
                wall = timed(*commands[tool])
                counted = mark is not None
                rows.append({"step": step, "repeat": repeat, "tool": tool, "wall_s": round(wall, 2),
                             "rpcs": admins[tool].since(mark)["rpcs"] if counted else "",
                             "registered": registered_since(admins[tool], mark) if counted else "", "load": load})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

            for repeat in range(args.repeats):
                for tool in TOOLS:
                    edits.edit(MODULE)  # a new edit per command: the per-workflow result cache cannot answer
                    sample(tool, "edit", repeat)
            edits.undo()
            timed(*commands["warm"])
            commands["list"] = (pants + ["list", *SPECS], root, pants_env)
            for repeat in range(args.repeats):
                sample("warm", "again", repeat)
                sample("list", "again", repeat)
    finally:
        edits.undo()
        kill_pantsd(root, wait_s=10)
        sys.path.insert(0, str(root / "src/python"))
        from flytebuild.service import worker

        worker.stop(str(root / ".bootstrap/pants.d/flytebuild/worker"))
        shutil.rmtree(tmp, ignore_errors=True)
    labels = {**TOOLS, "list": "`./pants list examples/scale::`"}
    print("| step | repeat | command | wall s | ÷ `--copy auto` | registered | gRPC calls | load |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for row in rows:
        auto_wall = next((r["wall_s"] for r in rows if r["step"] == "edit" and r["repeat"] == row["repeat"]
                          and r["tool"] == "auto"), None)
        ratio = f"{row['wall_s'] / auto_wall:.2f}x" if row["step"] == "edit" and auto_wall else ""
        print(f"| {row['step']} | {row['repeat'] + 1} | {labels[row['tool']]} | {row['wall_s']:.2f} | {ratio} | "
              f"{row['registered']} | {row['rpcs']} | {row['load']} |")


if __name__ == "__main__":
    main()
