"""`pants flyte-render [--env=NAME] [--format=yaml|json]`: the final pod spec of every task.

What a reviewer sees is exactly what the tasks are serialized with: the `flyte_pod_template`
rendered with its values and the environment's overlay, the code's `@task(pod_template=...)` /
`with_overrides(pod_template=...)` merged on top, validated as a V1PodSpec, and the task's
image put into the primary container (flytekit adds the command and args at serialization).
"""
from __future__ import annotations

import copy
import json
from enum import Enum
from typing import Any, Dict, List, Optional

from pants.build_graph.address import ResolveError
from pants.engine.console import Console
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.internals.native_engine import IntrinsicError
from pants.engine.rules import Get, collect_rules, goal_rule
from pants.engine.target import InvalidFieldException, Targets
from pants.option.option_types import EnumOption, StrOption

from flytebuild.core.errors import FlytebuildError
from flytebuild.core.model import TaskPlan, WorkflowPlan
from flytebuild.core.plan import plan_image
from flytebuild.core.pod_templates import DEFAULT_PRIMARY_CONTAINER_NAME, to_yaml
from flytebuild.pants_backend.target_types import FlyteWorkflowTarget
from flytebuild.pants_backend.util_rules.planning import PlannedWorkflows, WorkflowPlansRequest


class RenderFormat(Enum):
    yaml = "yaml"
    json = "json"


class FlyteRenderSubsystem(GoalSubsystem):
    name = "flyte-render"
    help = (
        "Print the final Kubernetes pod spec of every task of the given flyte_workflow targets "
        "(pod template + environment overlay + code-level overrides, validated as V1PodSpec)."
    )

    env = StrOption(
        default=None,
        help="Environment whose overlays are applied (default: `[flyte].environment`).",
    )
    output_format = EnumOption(
        "--format", default=RenderFormat.yaml, help="`yaml` (one document per task) or `json`."
    )


class FlyteRender(Goal):
    subsystem_cls = FlyteRenderSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


def _image_of(plan: WorkflowPlan, task: TaskPlan, image_refs: Dict[str, str]) -> Optional[str]:
    if task.image_ref:
        return task.image_ref
    return image_refs.get(task.image_address or "")


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


def render_entries(plans: List[WorkflowPlan], image_refs: Dict[str, str]) -> List[Dict[str, Any]]:
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
                    "pod": final_pod(json.loads(t.pod_template), _image_of(wf, t, image_refs)),
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
                    "pod": final_pod(json.loads(n.pod_template), _image_of(wf, task, image_refs) if task else None),
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


@goal_rule
async def flyte_render(console: Console, subsystem: FlyteRenderSubsystem, targets: Targets) -> FlyteRender:
    workflows = sorted(t.address for t in targets if isinstance(t, FlyteWorkflowTarget))
    if not workflows:
        console.print_stderr("flyte-render: no flyte_workflow targets matched.")
        return FlyteRender(exit_code=1)
    try:
        planned = await Get(PlannedWorkflows, WorkflowPlansRequest(tuple(workflows), subsystem.env))
    except (FlytebuildError, ResolveError, IntrinsicError, InvalidFieldException) as e:
        console.print_stderr(f"flyte-render: {e}")
        return FlyteRender(exit_code=1)
    image_refs = {img.address: plan_image(img).ref for p in planned for img in p.images}
    entries = render_entries([p.plan for p in planned], image_refs)
    if subsystem.output_format == RenderFormat.json:
        console.print_stdout(json.dumps({"pods": entries}, sort_keys=True, indent=2, ensure_ascii=False))
    elif entries:
        console.print_stdout(render_yaml(entries), end="")
    else:
        console.print_stderr("flyte-render: no task of these workflows has a pod template.")
    return FlyteRender(exit_code=0)


def rules():
    return collect_rules()
