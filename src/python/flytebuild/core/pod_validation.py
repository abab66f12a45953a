"""What runtime/validate_pod.py checks for a plan, and how its failures read (shared by adapters)."""
from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional

from flytebuild.core.model import WorkflowPlan
from flytebuild.core.pod_templates import PodTemplateError


def validation_entries(plan: WorkflowPlan) -> dict:
    """{key: {"file", "spec", "where"}} of every distinct template a plan carries."""
    entries = {}
    for t in plan.tasks:
        if t.pod_template is not None:
            entries[f"task:{t.name}"] = {
                "file": " + ".join(t.pod_template_files) or (t.source_file or t.module),
                "spec": json.loads(t.pod_template),
                "where": f"the pod template of task {t.name} ({t.pod_template_source})",
                "files": list(t.pod_template_files) or [t.source_file or t.module],
            }
    for n in plan.node_pod_templates:
        task = next((t for t in plan.tasks if t.name == n.task), None)
        files = list(task.pod_template_files) if task is not None else []
        entries[f"node:{n.workflow}:{n.node}"] = {
            "file": " + ".join(files + ["with_overrides"]),
            "spec": json.loads(n.pod_template),
            "where": f"the pod template of node {n.node} ({n.task}) in {n.workflow}, with_overrides(pod_template=...) included",
            "files": files,
        }
    return entries


def validation_error(entries: Mapping[str, Any], out: Mapping[str, Any], address: str) -> Optional[PodTemplateError]:
    """The first invalid template of runtime/validate_pod.py's batch result, as one error (or None).

    The same mistake usually shows in every task using the template: it is reported once, naming them.
    """
    problems: Dict[tuple, list] = {}
    for key, entry in sorted(entries.items(), key=lambda kv: (kv[0].startswith("node:"), kv[0])):
        error = (out.get("results") or {}).get(key, {}).get("error")
        if error:
            detail = "; ".join(
                f"`{e.get('path') or '(pod spec)'}`: {e.get('message')}" for e in error.get("errors") or []
            ) or str(error.get("message"))
            problems.setdefault((detail, tuple(entry["files"])), []).append(entry["where"])
    if not problems:
        return None
    (detail, files), wheres = next(iter(problems.items()))
    where = wheres[0] if len(wheres) == 1 else f"{wheres[0]} (and {len(wheres) - 1} more using it)"
    more = f" ({len(problems) - 1} other error(s) after this one)" if len(problems) > 1 else ""
    return PodTemplateError(
        f"{where} is not a valid Kubernetes V1PodSpec: {detail} (paths are inside the pod spec){more}",
        file=", ".join(files) or None,
        target=address,
        fix="correct the fields named above in the template file or its overlay",
    )
