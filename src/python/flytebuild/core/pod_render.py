"""The final pod spec of every task, as `flyte-render` shows it (shared by the Pants and CLI adapters).

What a reviewer sees is exactly what the tasks are serialized with: the pod template rendered with
its values and the environment's overlay, the code's overrides merged on top, and the task's image
put into the primary container (flytekit adds the command and args at serialization).
"""
from __future__ import annotations

import copy
import json
from typing import Any, Dict, List, Optional

from flytebuild.core.model import WorkflowPlan
from flytebuild.core.pod_templates import DEFAULT_PRIMARY_CONTAINER_NAME, to_yaml


def final_pod(template: Dict[str, Any], image: Optional[str]) -> Dict[str, Any]:
    """The template as the pod will carry it: the task's image in the primary container."""
    doc = copy.deepcopy(template)
    name = doc.get("primary_container_name") or DEFAULT_PRIMARY_CONTAINER_NAME
    containers = doc.setdefault("pod_spec", {}).setdefault("containers", [])
    primary = next((c for c in containers if c.get("name") == name), None)
    if primary is None:
        primary = {"name": name}
        containers.append(primary)
    if image:
        primary["image"] = image
    return doc


def render_entries(plans: List[WorkflowPlan]) -> List[Dict[str, Any]]:
    entries = []
    for wf in sorted(plans, key=lambda p: p.address):
        for t in sorted(wf.tasks, key=lambda t: t.name):
            if t.pod_template is None:
                continue
            entries.append(
                {
                    "workflow": wf.address,
                    "environment": wf.environment,
                    "task": t.name,
                    "node": None,
                    "source": t.pod_template_source,
                    "files": list(t.pod_template_files),
                    "pod": final_pod(json.loads(t.pod_template), t.image_ref),
                }
            )
        tasks = {t.name: t for t in wf.tasks}
        for n in wf.node_pod_templates:
            task = tasks.get(n.task)
            entries.append(
                {
                    "workflow": wf.address,
                    "environment": wf.environment,
                    "task": n.task,
                    "node": f"{n.workflow}/{n.node}",
                    "source": ((task.pod_template_source + " + ") if task and task.pod_template_source else "")
                    + "with_overrides",
                    "files": list(task.pod_template_files) if task else [],
                    "pod": final_pod(json.loads(n.pod_template), task.image_ref if task else None),
                }
            )
    return entries


def render_yaml(entries: List[Dict[str, Any]]) -> str:
    docs = []
    for e in entries:
        where = f"node {e['node']} (task {e['task']})" if e["node"] else f"task {e['task']}"
        header = [
            f"# {e['workflow']}  {where}",
            f"# from {e['source']}" + (f"  [{', '.join(e['files'])}]" if e["files"] else ""),
            f"# environment: {e['environment'] or '(none: no overlay)'}",
        ]
        docs.append("\n".join(header) + "\n" + to_yaml(e["pod"]))
    return "---\n".join(docs)
