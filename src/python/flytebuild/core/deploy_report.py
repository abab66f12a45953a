"""Render a deploy summary (runtime/deploy.py's JSON) for people and for machines."""
from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Sequence

from flytebuild.core.bundle import BundleWarning
from flytebuild.core.report import SHORT

STATUSES = ("registered", "unchanged", "failed", "blocked")
_KIND = {"task": "task", "workflow": "workflow", "launch_plan": "launch plan"}


def counts(summary: Mapping[str, Any]) -> Dict[str, int]:
    found = {s: 0 for s in STATUSES}
    for e in summary.get("entities", ()):
        found[e["status"]] = found.get(e["status"], 0) + 1
    return found


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def render_deploy_table(
    summary: Mapping[str, Any], warnings: Sequence[BundleWarning] = (), hide_unchanged: bool = False
) -> str:
    """`hide_unchanged`: rows only for what a deploy did (the dev loop's view); the tally still counts them."""
    dry = bool(summary.get("dry_run"))
    rows: List[List[str]] = []
    for e in summary.get("entities", ()):
        status = e["status"]
        if hide_unchanged and status == "unchanged":
            continue
        if dry and status == "registered":
            status = "would register"
        rows.append([_KIND.get(e["kind"], e["kind"]), e["name"], e["version"][:SHORT], status, e.get("message") or ""])
    headers = ["KIND", "ENTITY", "VERSION", "STATUS", "MESSAGE"]
    widths = [max(len(c) for c in col) for col in zip(headers, *rows)] if rows else [len(h) for h in headers]
    lines = [f"FlyteAdmin {summary.get('endpoint')}" + ("  (dry run: nothing registered or uploaded)" if dry else "")]
    for cells in [headers, *rows]:
        lines.append(("  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths))).rstrip())
    c = counts(summary)
    verb = "would register" if dry else "registered"
    tally = f"{c['registered']} {verb}, {c['unchanged']} unchanged, {c['failed']} failed"
    if c.get("blocked"):
        tally += f", {c['blocked']} blocked"
    lines.append(tally)
    bundle = summary.get("bundle")
    if bundle is None:
        lines.append("code bundle: none (no fast task)")
    else:
        if bundle.get("uploaded"):
            state = f"uploaded to {bundle.get('native_url')}"
        elif bundle.get("present"):
            state = f"already at {bundle.get('native_url')}"
        elif bundle.get("native_url") and dry:
            state = f"would upload to {bundle.get('native_url')}"
        else:
            state = "not needed (no fast task to register)"
        lines.append(f"code bundle: {bundle['name']} ({_size(bundle['size'])}), {state}")
    images = summary.get("images") or []
    if images:
        pushed = [i for i in images if i.get("pushed")]
        image_bytes = sum(int(i.get("bytes_uploaded") or 0) for i in images)
        lines.append(f"images: {len(pushed)} pushed ({image_bytes} bytes), {len(images) - len(pushed)} already in "
                     f"the registry; tasks pinned by digest")
        for i in images:
            lines.append(
                f"  {i['address']}  {i['ref']}@{i['digest'][:19]}  {'pushed' if i.get('pushed') else 'present'}"
            )
    lines.append(f"bytes uploaded: {summary.get('bytes_uploaded', 0)}")
    for w in warnings:
        lines.append(f"warning: {w.task}: {w.message}")
    return "\n".join(lines)


def render_deploy_json(summary: Mapping[str, Any], warnings: Sequence[BundleWarning] = ()) -> str:
    data = dict(summary)
    data["counts"] = counts(summary)
    data["warnings"] = [{"task": w.task, "message": w.message} for w in warnings]
    return json.dumps(data, indent=2, sort_keys=True)
