"""What runtime/run.py needs from a plan (shared by the Pants and CLI adapters)."""
from __future__ import annotations

from typing import Tuple

from flytebuild.core.model import ImageTarget, WorkflowPlan
from flytebuild.core.plan import plan_image


def run_request_json(plan: WorkflowPlan, images: Tuple[ImageTarget, ...]) -> dict:
    """What runtime/run.py needs from the plan: per task the cache version and the image (ref + source)."""
    refs = {img.address: plan_image(img).ref for img in images}
    tasks = {}
    for t in plan.tasks:
        image = refs.get(t.image_address) if t.image_address else t.image_ref
        tasks[t.name] = {
            "cache_version": t.cache_version,
            "image": image,
            "image_source": f"{t.image_source}: {t.image}" if t.image_address else t.image_source,
        }
    return {"entrypoint": plan.entrypoint, "target": plan.address, "tasks": tasks}
