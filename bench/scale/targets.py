"""Issue 12's "Must show" bounds, evaluated on one scale_bench.py result: one row per target with the measured
value, the bound and pass/fail. A target whose measurement was not taken in this run (e.g. 48 projects in a
`--quick` run) is left out, never passed."""
from __future__ import annotations

from typing import List, Optional

FRONT_ENDS = ("pants", "cli")
NAMES = {"pants": "`flyte-deploy`", "cli": "`flytebuild deploy`"}


def _row(target: str, measured: Optional[float], bound: float, unit: str, ok: Optional[bool] = None) -> dict:
    """`ok` given: an exact count (shown as `= bound`); otherwise the target is `measured ≤ bound`."""
    op = "≤" if ok is None else "="
    if ok is None:
        ok = measured is not None and measured <= bound
    return {"target": target, "measured": measured, "op": op, "bound": bound, "unit": unit, "pass": bool(ok)}


def _ratio(by_tool: dict, tool: str) -> float:
    return round(by_tool[tool]["wall_s"] / by_tool["auto"]["wall_s"], 3)


def evaluate(res: dict) -> List[dict]:
    rows: List[dict] = []
    counts = sorted(res["projects"], key=int)
    for n in counts:
        r = res["projects"][n]
        per_project = r["shape"]["entities_per_project"]
        for latency, steps in r["latency"].items():
            module = steps.get("module")
            if not module:
                continue
            bound = 0.7 if float(latency) == 0 else 0.4
            if int(n) >= 48:
                bound = 0.4
            for tool in FRONT_ENDS:
                rows.append(_row(f"{n} projects, {latency} ms, one-module edit: {NAMES[tool]} ÷ `--copy auto`",
                                 _ratio(module, tool), bound, "x"))
                m = module[tool]
                rows.append(_row(f"{n} projects, {latency} ms, one-module edit: {NAMES[tool]} registers only the "
                                 f"changed project ({per_project} entities, 0 bytes)", m["registered"], per_project,
                                 "entities", ok=m["registered"] == per_project and m["bytes"] == 0))
            again = steps.get("again")
            if again:
                for tool in FRONT_ENDS:
                    rows.append(_row(f"{n} projects, {latency} ms, nothing changed: {NAMES[tool]} gRPC calls "
                                     "(warm ledger)", again[tool]["rpcs"], 0, "calls"))
                if float(latency) == 0 and r.get("plans"):
                    floor = r["plans"]["list"]["wall_s"]
                    rows.append(_row(f"{n} projects, nothing changed: `flyte-deploy` ≤ `./pants list` "
                                     f"({floor:.2f} s) + 0.5 s", again["pants"]["wall_s"], round(floor + 0.5, 3),
                                     "s"))
        loaded = r.get("load")
        if loaded:
            for tool in FRONT_ENDS:
                rows.append(_row(f"{n} projects, under load ({loaded['hogs']} CPU hogs): one-module edit ratio of "
                                 f"{NAMES[tool]} worsens by", loaded["worsening_pct"][tool], 25, "%"))
        plans = r.get("plans")
        if plans:
            rows.append(_row(f"{n} projects: `flytebuild plan` with nothing changed", plans["warm"]["cli"]["wall_s"],
                             1.0, "s"))
        run = r.get("run")
        if run:
            for step, bound in (("unchanged", 1.1), ("edit", 1.3)):
                for tool, name in (("pants", "`./pants run`"), ("cli", "`flytebuild run`")):
                    rows.append(_row(f"{n} projects: {name} ÷ `pyflyte run`, "
                                     f"{'unchanged' if step == 'unchanged' else 'after an edit'}",
                                     run[step]["ratio"][tool], bound, "x"))
        dev = r.get("dev")
        if dev:
            for tool, name in (("pants", "`./pants --loop flyte-deploy`"), ("cli", "`flytebuild dev`")):
                d = dev[tool]
                rows.append(_row(f"{n} projects: {name} save → changed entities registered "
                                 f"({d['save_to_registered_s']:.2f} s)", d["registered"], per_project, "entities",
                                 ok=d["registered"] == per_project))
    if len(counts) > 1:
        small, large = res["projects"][counts[0]], res["projects"][counts[-1]]
        # Pants' own `dependencies` on the same specs is the floor of a Pants plan, and it grows with the repository
        # too: shown beside the plugin's ratio so a reader sees how much of the growth is Pants'.
        floor = ""
        if "dependencies" in small["plans"] and "dependencies" in large["plans"]:
            grown = large["plans"]["dependencies"]["wall_s"] / small["plans"]["dependencies"]["wall_s"]
            floor = f" (`./pants dependencies` grew {grown:.2f}x)"
        for tool, name in (("pants", f"`flyte-plan`{floor}"), ("cli", "`flytebuild plan`")):
            ratio = round(large["plans"]["edit"][tool]["wall_s"] / small["plans"]["edit"][tool]["wall_s"], 3)
            rows.append(_row(f"plan after a one-module edit, {counts[-1]} ÷ {counts[0]} projects: {name}", ratio,
                             1.3, "x"))
    memory = res.get("memory")
    if memory:
        rows.append(_row(f"pantsd RSS with the plugin after `flyte-plan examples::` "
                         f"({memory['with_plugin']['rss_mb']:.0f} MB) minus without it after `list ::` "
                         f"({memory['without_plugin']['rss_mb']:.0f} MB)", memory["delta_mb"], 150, "MB"))
    return rows


def render(rows: List[dict]) -> str:
    lines = ["| target | measured | bound | pass |", "|---|---:|---:|---|"]
    for r in rows:
        measured = "—" if r["measured"] is None else f"{r['measured']:g} {r['unit']}"
        lines.append(f"| {r['target']} | {measured} | {r.get('op', '≤')} {r['bound']:g} {r['unit']} | "
                     f"{'PASS' if r['pass'] else 'FAIL'} |")
    return "\n".join(lines)
