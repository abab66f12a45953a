"""Render plans for people (an aligned table) and for machines (deterministic JSON)."""
from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Dict, List, Sequence

from flytebuild.core.model import ImagePlan, SpecImage, TaskPlan, WorkflowPlan

SHORT = 12  # version characters shown in the table; the JSON carries them in full


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> List[str]:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]

    def line(cells: Sequence[str]) -> str:
        return (indent + "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _mode(task: TaskPlan) -> str:
    if task.mode != "fast" or not (task.missing_sources or task.missing_requirements):
        return task.mode
    missing = []
    if task.missing_sources:
        missing.append(f"{len(task.missing_sources)} file{'s' * (len(task.missing_sources) != 1)}")
    if task.missing_requirements:
        n = len(task.missing_requirements)
        missing.append(f"{n} req{'s' * (n != 1)}")
    return f"fast ({', '.join(missing)} not in image)"


def _cache(task: TaskPlan) -> str:
    """`cache_version (policy)` for cached tasks: what Flyte and local runs key the cache on."""
    if task.cache_version is None:
        return ""
    return f"{task.cache_version} ({task.cache_key})"


def render_table(images: Sequence[ImagePlan], workflows: Sequence[WorkflowPlan]) -> str:
    out: List[str] = []
    if images:
        out.append("Images")
        rows = [
            [i.address, i.name, i.version[:SHORT], str(len(i.sources)), str(len(i.requirements)), "; ".join(i.warnings)]
            for i in sorted(images, key=lambda i: i.address)
        ]
        out += _table(["IMAGE", "NAME", "VERSION", "FILES", "REQS", "WARNINGS"], rows)
    for wf in sorted(workflows, key=lambda w: w.address):
        if out:
            out.append("")
        out.append(
            f"{wf.address}  {wf.entrypoint}  {wf.root_kind} {wf.root_name}  "
            f"version {wf.version[:SHORT]}  ({wf.project}/{wf.domain})"
        )
        rows = []
        for t in sorted(wf.tasks, key=lambda t: t.name):
            warnings = list(t.warnings) or [""]
            rows.append([t.name, f"{t.image} ({t.image_source})", _mode(t), t.version[:SHORT], _cache(t), warnings[0]])
            # Further warnings get a line of their own under the first, so columns stay aligned.
            rows += [["", "", "", "", "", w] for w in warnings[1:]]
        for e in [*wf.workflows, *wf.launch_plans]:
            rows.append([e.name, "", e.kind.replace("_", " "), e.version[:SHORT], "", ""])
        for r in wf.references:
            # A reference runs as registered (no image of ours); its version is the user's, never shortened.
            kind = r.kind.replace("_", " ")
            rows.append([r.name, "-", f"reference {kind} ({r.project}/{r.domain})", r.version, "", ""])
        out += _table(["ENTITY", "IMAGE", "MODE", "VERSION", "CACHE", "WARNINGS"], rows)
        out += [f"  warning: {w}" for w in wf.warnings]
    return "\n".join(out) + "\n" if out else ""


def _json_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def image_json(image: ImagePlan) -> Dict[str, Any]:
    data = _json_value(asdict(image))
    data["env"] = {k: v for k, v in image.env}
    return data


def workflow_json(wf: WorkflowPlan) -> Dict[str, Any]:
    entities = lambda items: [  # noqa: E731
        {"name": e.name, "fingerprint": e.fingerprint, "version": e.version, "children": list(e.children)}
        for e in sorted(items, key=lambda e: e.name)
    ]
    return {
        "address": wf.address,
        "entrypoint": wf.entrypoint,
        "project": wf.project,
        "domain": wf.domain,
        "root": {"kind": wf.root_kind, "name": wf.root_name},
        "version": wf.version,
        "tasks": [_task_json(t) for t in sorted(wf.tasks, key=lambda t: t.name)],
        # every workflow entity of the plan, the root included when it is a workflow
        "sub_workflows": entities(wf.workflows),
        "launch_plans": entities(wf.launch_plans),
        "references": [
            _json_value(asdict(r)) for r in sorted(wf.references, key=lambda r: (r.kind, r.name))
        ],
        "warnings": list(wf.warnings),
        "environment": wf.environment,
        "spec_images": [_spec_image_json(i) for i in wf.spec_images],
        "node_pod_templates": [
            {"workflow": n.workflow, "node": n.node, "task": n.task, "pod_template": json.loads(n.pod_template)}
            for n in wf.node_pod_templates
        ],
    }


def _spec_image_json(image: SpecImage) -> Dict[str, Any]:
    """What flytebuild builds for an ImageSpec: the plan's decision, as publishers consume it."""
    return {
        "name": image.name,
        "ref": image.ref,
        "version": image.version,
        "base": image.base,
        "requirements": list(image.requirements),
        "sources": list(image.source_paths),
        "copies": [{"source": c.source, "destination": c.destination} for c in image.copies],
        "env": {k: v for k, v in image.env},
        "tasks": list(image.tasks),
        "engine_fields": [f for f, _ in image.engine_fields],
    }


def _task_json(task: TaskPlan) -> Dict[str, Any]:
    data = _json_value(asdict(task))
    data["pod_template"] = task.pod_template_data  # the structure, not its canonical text
    return data


def render_json(images: Sequence[ImagePlan], workflows: Sequence[WorkflowPlan]) -> str:
    data = {
        "images": [image_json(i) for i in sorted(images, key=lambda i: i.address)],
        "workflows": [workflow_json(w) for w in sorted(workflows, key=lambda w: w.address)],
    }
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
