"""bench/scale/targets.py: issue 12's bounds applied to a scale_bench result (a small hand-made one here; the
real bench's smoke run is tests/bench/test_scale_bench.py)."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench" / "scale"))

import targets  # noqa: E402


def _tool(wall, registered=15, rpcs=31, bytes_=0):
    return {"wall_s": wall, "registered": registered, "rpcs": rpcs, "bytes": bytes_, "load": 0.1}


def _project(module_pants, plan_edit, latencies=("0", "20"), dependencies=0.5):
    steps = {lat: {"again": {"pants": _tool(1.0, 0, 0), "cli": _tool(0.3, 0, 0), "auto": _tool(3.0, 0, 721)},
                   "module": {"pants": _tool(module_pants), "cli": _tool(1.0, 16), "auto": _tool(4.0, 180, 181,
                                                                                               2000)}}
             for lat in latencies}
    return {"shape": {"entities_per_project": 15}, "latency": steps,
            "plans": {"list": {"wall_s": 0.6}, "dependencies": {"wall_s": dependencies},
                      "warm": {"pants": {"wall_s": 1.0}, "cli": {"wall_s": 0.9}},
                      "edit": {"pants": {"wall_s": plan_edit}, "cli": {"wall_s": plan_edit}}}}


def test_bounds_follow_the_issue():
    res = {"projects": {"12": _project(2.0, 2.0), "48": _project(2.0, 2.8, latencies=("0",), dependencies=0.7)},
           "memory": {"with_plugin": {"rss_mb": 500.0}, "without_plugin": {"rss_mb": 400.0}, "delta_mb": 100.0}}
    rows = {r["target"]: r for r in targets.evaluate(res)}
    edit = "one-module edit: `flyte-deploy` ÷ `--copy auto`"
    # 2.0 ÷ 4.0 = 0.5x: within 0.7x at 0 ms, not within 0.4x at 20 ms nor at 48 projects
    assert rows[f"12 projects, 0 ms, {edit}"]["pass"] is True
    assert rows[f"12 projects, 20 ms, {edit}"]["pass"] is False
    assert rows[f"48 projects, 0 ms, {edit}"]["pass"] is False and rows[f"48 projects, 0 ms, {edit}"]["bound"] == 0.4
    only = [r for t, r in rows.items() if "registers only" in t]
    # the CLI registered 16 where the project has 15: a failure, whatever the time
    assert sorted((r["measured"], r["pass"]) for r in only if r["measured"] == 16) == [(16, False)] * 3
    assert all(r["pass"] for t, r in rows.items() if "gRPC calls" in t)
    # `flyte-deploy` 1.0 s with nothing changed vs `./pants list` 0.6 s + 0.5 s
    assert rows["12 projects, nothing changed: `flyte-deploy` ≤ `./pants list` (0.60 s) + 0.5 s"]["pass"] is True
    # Pants' own floor is named beside the plugin's ratio (0.7 ÷ 0.5): shown, never counted as a pass
    plan = rows["plan after a one-module edit, 48 ÷ 12 projects: `flyte-plan` (`./pants dependencies` grew 1.40x)"]
    assert plan["measured"] == 1.4 and plan["pass"] is False
    assert next(r for t, r in rows.items() if t.startswith("pantsd RSS"))["pass"] is True
    assert "| FAIL |" in targets.render(list(rows.values())) and "= 15 entities" in targets.render(only)
