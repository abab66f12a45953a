"""What `flyte-verify` / `flytebuild verify` decide and print, shared by every adapter.

Which tasks are checked (baked tasks with a flyte_image), how they are grouped per pushed image,
what the in-image run's answer means per task, and the table/JSON report. The I/O (registry,
`docker run`) lives in oci/verify.py and is handed in as callables, so this stays pure.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from flytebuild.core.model import TaskPlan, WorkflowPlan
from flytebuild.core.report import _table

NO_ENGINE = "no Docker engine answers (`docker info` failed)"


@dataclass(frozen=True)
class TaskCheck:
    task: str
    module: str
    image: str  # ref
    method: str  # docker | static
    problems: Tuple[str, ...]


# (answer of runtime/verify_image.py, or None and why the run failed)
RunResult = Tuple[Optional[dict], str]


def baked_tasks(plans: Sequence[WorkflowPlan]) -> List[TaskPlan]:
    """Only baked tasks run from their image's own files; fast tasks bring a code bundle. Whatever declared the
    image (a flyte_image, or an ImageSpec in code that flytebuild builds: `image_ref`)."""
    return [t for p in plans for t in p.tasks if t.mode == "baked" and (t.image_address or t.image_ref)]


def image_addresses(tasks: Sequence[TaskPlan]) -> Tuple[str, ...]:
    return tuple(sorted({t.image_address for t in tasks if t.image_address}))


def tasks_by_image(tasks: Sequence[TaskPlan], ref_of: Mapping[str, str]) -> Dict[str, List[TaskPlan]]:
    """Tasks grouped by the pushed ref of their image (one run or label fetch per image)."""
    by_image: Dict[str, List[TaskPlan]] = {}
    for t in tasks:
        address = t.image_address or ""
        ref = ref_of.get(address, "") or ref_of.get(address.lstrip("/"), "") if address else (t.image_ref or "")
        by_image.setdefault(ref, []).append(t)
    return by_image


def docker_problems(task: TaskPlan, result: RunResult) -> Tuple[str, ...]:
    answer, error = result
    if answer is None:
        return (error,)
    problems = []
    if not answer.get("pyflyte_execute"):
        problems.append("pyflyte-execute not on PATH")
    if answer.get("command_error"):
        problems.append(str(answer["command_error"]))
    failure = (answer.get("modules") or {}).get(task.module)
    if failure:
        problems.append(f"import {task.module}: {failure}")
    return tuple(problems)


def check_images(
    by_image: Mapping[str, Sequence[TaskPlan]],
    use_docker: bool,
    run_in_image: Callable[[str, Sequence[str]], RunResult],
    static_problems: Callable[[str, TaskPlan], Sequence[str]],
) -> List[TaskCheck]:
    """One check per task, images in ref order, tasks by name. `run_in_image(ref, modules)` runs
    the image once for all its modules; `static_problems(ref, task)` reads the image's labels."""
    checks: List[TaskCheck] = []
    for ref, tasks in sorted(by_image.items()):
        ordered = sorted(tasks, key=lambda t: t.name)
        if use_docker:
            result = run_in_image(ref, sorted({t.module for t in tasks}))
            checks += [TaskCheck(t.name, t.module, ref, "docker", docker_problems(t, result)) for t in ordered]
        else:
            checks += [TaskCheck(t.name, t.module, ref, "static", tuple(static_problems(ref, t))) for t in ordered]
    return checks


def render_verify(checks: Sequence[TaskCheck], output_format: str) -> str:
    """The report on stdout (no trailing newline): an aligned table, or JSON for machines."""
    if output_format == "json":
        failed = any(c.problems for c in checks)
        return json.dumps({"ok": not failed, "tasks": [
            {"task": c.task, "module": c.module, "image": c.image, "method": c.method, "problems": list(c.problems)}
            for c in checks]}, indent=2, sort_keys=True)
    rows = [[c.task, c.image, c.method, "ok" if not c.problems else "; ".join(c.problems)] for c in checks]
    lines = _table(["TASK", "IMAGE", "CHECK", "RESULT"], rows, indent="") if rows else ["no baked tasks"]
    return "\n".join(lines)


def failure_message(checks: Sequence[TaskCheck]) -> Optional[str]:
    """The stderr line when some task cannot run from its image (None when all pass)."""
    failed = [c for c in checks if c.problems]
    if not failed:
        return None
    # service/verify.py words an interpreter the image lacks "the image's python ..." in both modes
    wrong_python = [p.startswith("the image's python") for c in failed for p in c.problems]
    fixes = []
    if any(wrong_python):
        fixes.append("set the flyte_image's `python` to the interpreter's path inside the image")
    if not all(wrong_python):
        fixes.append("add the missing files/requirements to the flyte_image's dependencies")
    return f"{len(failed)} baked task(s) cannot run from their image. Fix: {'; '.join(fixes)}."
