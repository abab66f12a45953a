"""bench/scale/scale_bench.py --quick: the whole bench (every step, the CPU hogs, both watch loops, local runs,
pantsd memory with and without the backend) on 2 small projects, so it cannot rot. Times on a shared machine mean
nothing: the test checks that every target was measured, and the targets that are counts (entities registered,
gRPC calls) pass."""
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# docs/performance.md: the smoke run, and the lead's full run on a quiet machine
QUICK = ".bootstrap/venv/bin/python bench/scale/scale_bench.py --quick"
FULL = ".bootstrap/venv/bin/python bench/scale/scale_bench.py --projects 12 48 --latency-ms 0 20 --load --save bench/out/scale.json"  # noqa: E501


def test_the_full_run_is_every_target_at_both_sizes():
    sys.path.insert(0, str(REPO / "bench/scale"))
    import scale_bench

    args = scale_bench.parse_args(shlex.split(FULL)[2:])
    assert args.projects == [12, 48] and args.latency_ms == [0, 20] and args.load and not args.quick
    assert args.repeats == 3 and args.asset_kb == 700 and args.save == "bench/out/scale.json"


@pytest.mark.slow
def test_quick_bench_measures_every_target(tmp_path):
    proc = subprocess.run([sys.executable, *shlex.split(QUICK)[1:], "--format=json"], cwd=REPO, capture_output=True,
                          text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.loads(proc.stdout)
    rows = {r["target"]: r for r in res["targets"]}
    kinds = ["one-module edit: `flyte-deploy` ÷", "one-module edit: `flytebuild deploy` ÷", "under load",
             "gRPC calls (warm ledger)", "≤ `./pants list`", "`flytebuild plan` with nothing changed",
             "`./pants run` ÷ `pyflyte run`, unchanged", "`flytebuild run` ÷ `pyflyte run`, after an edit",
             "`./pants --loop flyte-deploy` save", "`flytebuild dev` save", "pantsd RSS"]
    for kind in kinds:
        assert any(kind in target for target in rows), (kind, sorted(rows))
    assert all(isinstance(r["measured"], (int, float)) and isinstance(r["pass"], bool) for r in rows.values())
    counted = [r for t, r in rows.items() if "gRPC calls" in t or "registers only" in t or "save →" in t]
    assert len(counted) == 6 and all(r["pass"] for r in counted), counted
    memory = res["memory"]
    assert memory["with_plugin"]["rss_mb"] > 100 and memory["without_plugin"]["rss_mb"] > 100
    assert res["projects"]["2"]["load"]["hogs"] >= 1
    # the plan table's row of plans made right after a run that named another FlyteAdmin endpoint
    assert res["projects"]["2"]["plans"]["endpoint"]["pants"]["wall_s"] > 0
