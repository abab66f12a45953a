"""What runtime/run.py and runtime/remote.py need from a plan (shared by the Pants and CLI adapters)."""
from __future__ import annotations

from flytebuild.core.model import WorkflowPlan
from flytebuild.core.settings import AdminSettings


def run_request_json(plan: WorkflowPlan) -> dict:
    """What runtime/run.py needs from the plan: per task the cache version and the image (ref + source)."""
    tasks = {}
    for t in plan.tasks:
        tasks[t.name] = {
            "cache_version": t.cache_version,
            "image": t.image_ref,
            "image_source": f"{t.image_source}: {t.image}" if t.image_address else t.image_source,
        }
    return {"entrypoint": plan.entrypoint, "target": plan.address, "tasks": tasks}


def remote_request_json(plan: WorkflowPlan, admin: AdminSettings) -> dict:
    """runtime/remote.py's request to launch what `plan` deployed (Pants `run --remote` and the CLI's)."""
    return {"admin": admin.request_json(), "target": plan.address, **remote_entity(plan)}


def reference_request_json(
    target: str, kind: str, name: str, version, project: str, domain: str, default_inputs, admin: AdminSettings
) -> dict:
    """runtime/remote.py's request to launch a registered entity a `flyte_reference` names."""
    return {
        "admin": admin.request_json(),
        "target": target,
        "entity": {"kind": kind, "project": project, "domain": domain, "name": name, "version": version},
        "default_inputs": dict(default_inputs or {}),
    }


def remote_entity(plan: WorkflowPlan) -> dict:
    """runtime/remote.py's `entity` (+ `default_inputs`, `entrypoint`) to launch what `plan` deployed: its root
    task, launch plan, or workflow (through its default launch plan, registered with it under the workflow's
    version); a reference declared in code is launched as registered, its declaration checked against it."""
    if plan.root_kind == "reference":
        ref = next(r for r in plan.references if r.name == plan.root_name)
        entity = {"kind": ref.kind, "project": ref.project, "domain": ref.domain, "name": ref.name,
                  "version": ref.version}
        return {"entity": entity, "default_inputs": {}, "entrypoint": plan.entrypoint}
    version = plan.task(plan.root_name).version if plan.root_kind == "task" else plan.version
    entity = {"kind": plan.root_kind, "project": plan.project, "domain": plan.domain, "name": plan.root_name,
              "version": version}
    return {"entity": entity, "default_inputs": {}}
