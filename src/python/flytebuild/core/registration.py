"""What runtime/serialize.py is asked to register, from a plan, and how the adapters (Pants and CLI) read what
runtime/serialize.py and runtime/deploy.py answer."""
from __future__ import annotations

import json
from typing import Mapping

from flytebuild.core.errors import FlytebuildError
from flytebuild.core.model import WorkflowPlan

REMOTE_PACKAGE_PATH = "{{ .remote_package_path }}"


class SerializationError(FlytebuildError):
    """runtime/serialize.py refused or failed for a workflow."""

    @classmethod
    def from_runtime(cls, target: str, entrypoint: str, error: Mapping) -> "SerializationError":
        """From serialize.py's `{"error": {...}}` payload (the inner mapping)."""
        kind = str(error.get("kind", "serialization_failed")).replace("_", " ")
        message = f"Cannot serialize {entrypoint}: {kind}: {error.get('message', '')}"
        if error.get("traceback"):
            message += "\n\n" + str(error["traceback"]).rstrip()
        return cls(
            message,
            target=target,
            file=error.get("file"),
            fix="fix the error above; if the workflow registers with pyflyte, report it as a flytebuild bug",
        )


class DeployError(FlytebuildError):
    """The deploy could not run (FlyteAdmin unreachable, bad configuration)."""


def deploy_summary(stdout: str, stderr: str) -> dict:
    """runtime/deploy.py's JSON summary; DeployError when it could not run (or printed no JSON: a crash)."""
    try:
        data = json.loads(stdout)
    except ValueError:
        data = {"error": {"kind": "internal", "message": stderr.strip()[-2000:] or "no output",
                          "fix": "this is a flytebuild bug; please report it"}}
    if "error" in data:
        err = data["error"]
        raise DeployError(str(err.get("message") or "deploy failed"), fix=err.get("fix") or None)
    return data


def serialize_request(plan: WorkflowPlan) -> dict:
    """The JSON request of the runtime's `serialize` command, from a plan (docs/runtime-contract.md).

    Tasks name their image by the plan's content tag; a deploy pins pushed digests afterwards
    (runtime/deploy.py `pin_images`), so the serialized bytes do not depend on what was pushed.
    """
    tasks = {}
    for t in plan.tasks:
        image = t.image_ref
        if not image and t.mode != "none":  # container-less tasks (Echo) run in propeller: no image
            raise SerializationError(
                f"Task `{t.name}` runs from image {t.image}, which has no reference to register",
                target=plan.address,
                fix="give the flyte_image a `registry` (or set [flyte].registry)",
            )
        tasks[t.name] = {
            "mode": t.mode,
            "image": image,
            "version": t.version,
            "cache_version": t.cache_version,
            "pod_template": t.pod_template_data,  # rendered flyte_pod_template (+ code), or None
        }
    any_fast = any(t.mode == "fast" for t in plan.tasks)
    return {
        "entrypoint": plan.entrypoint,
        "project": plan.project,
        "domain": plan.domain,
        "tasks": tasks,
        "workflows": {w.name: {"version": w.version} for w in plan.workflows},
        "launch_plans": {lp.name: {"version": lp.version} for lp in plan.launch_plans},
        # with_overrides(pod_template=...) merged on top of the node's task template
        "nodes": _node_pod_templates(plan),
        "bundle": {"uri": REMOTE_PACKAGE_PATH, "dest_dir": "."} if any_fast else None,
        "default_image": next(iter(sorted(set(t["image"] for t in tasks.values() if t["image"]))), None),
    }


def _node_pod_templates(plan: WorkflowPlan) -> dict:
    import json

    nodes: dict = {}
    for n in plan.node_pod_templates:
        nodes.setdefault(n.workflow, {})[n.node] = {"pod_template": json.loads(n.pod_template)}
    return nodes
