"""Verifying baked tasks against their images, for every front end (core/verify.py decides and reports).

- static: the image config's labels (files and distributions recorded at build time), fetched from the
  registry without pulling a layer (oci.verify.image_labels);
- docker: the image pulled and run once (`--network none`) with runtime/verify_image.py piped on stdin, so
  nothing is added to the image (oci.engine.run_script).
"""
from __future__ import annotations

import functools
import json
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

from flytebuild.core.errors import FlytebuildError
from flytebuild.core.lockfile import canonical_name
from flytebuild.core.model import TaskPlan
from flytebuild.core.verify import NO_ENGINE, check_images, failure_message, render_verify, tasks_by_image
from flytebuild.oci import engine
from flytebuild.oci.build import LABEL_DISTRIBUTIONS, LABEL_PYTHON, LABEL_SOURCE_FILES
from flytebuild.oci.registry import RegistryError
from flytebuild.oci.verify import image_labels, python_problem

engine_available = engine.engine_available


def _module_files(module: str) -> Tuple[str, str]:
    base = module.replace(".", "/")
    return f"{base}.py", f"{base}/__init__.py"


def static_problems(task: TaskPlan, labels: Mapping[str, str]) -> List[str]:
    """What the image's labels say is missing for `task` (files at import paths, distributions)."""
    try:
        files = set(json.loads(labels.get(LABEL_SOURCE_FILES, "[]")))
        dists = {canonical_name(d.split("==")[0]) for d in json.loads(labels.get(LABEL_DISTRIBUTIONS, "[]"))}
    except ValueError:
        return ["the image's flytebuild labels are unreadable: rebuild it with `pants package`"]
    problems = []
    if not files and LABEL_SOURCE_FILES not in labels:
        return ["the image has no flytebuild source manifest label (not built by flytebuild)"]
    if not any(f in files for f in _module_files(task.module)):
        problems.append(f"module {task.module} not in the image")
    for src in task.sources:
        # task sources keep their source root (src/python/a/b.py); the image holds a/b.py
        if not any(src == f or src.endswith("/" + f) for f in files):
            problems.append(f"file {src} not in the image")
    for req in task.requirements:
        if canonical_name(req) not in dists:
            problems.append(f"requirement {req} not in the image")
    return problems


def run_in_image(ref: str, modules: Sequence[str], env: Mapping[str, str]) -> Tuple[Optional[dict], str]:
    """Pull `ref`, import `modules` inside it with the image's own interpreter (the one pyflyte-execute's
    shebang names), then start `pyflyte-execute --help` through the image's entrypoint, as the registered
    task's container will: (the script's JSON answer, "") or (None, why not)."""
    script = pkgutil.get_data("flytebuild.runtime", "verify_image.py")
    assert script is not None
    try:
        python = image_labels(ref, None).get(LABEL_PYTHON) or "python3"
    except RegistryError:
        python = "python3"  # the registry is the engine's business here; docker pull reports it
    out, why = engine.run_script(ref, script, list(modules), env, entrypoint=python)
    if out is None:
        return None, (f"the image's python {python} cannot start (is the flyte_image's `python` right?): {why}"
                      if python != "python3" else why)
    try:
        answer = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, f"running {python} in {ref} failed: {(why or out).strip()[-500:]}"
    code, output = engine.run_command(ref, ["pyflyte-execute", "--help"], env)
    if code != 0:
        answer["command_error"] = (f"`pyflyte-execute --help` does not start from the image's entrypoint "
                                   f"(exit {code}): {output}")
    return answer, ""


def static_check(cache_dir: Optional[Path]) -> Callable[[str, TaskPlan], List[str]]:
    """core.verify.check_images' `static_problems`: labels fetched once per image."""
    labels = functools.lru_cache(maxsize=None)(lambda ref: image_labels(ref, cache_dir))
    python = functools.lru_cache(maxsize=None)(lambda ref: python_problem(ref, cache_dir))

    def check(ref: str, task: TaskPlan) -> List[str]:
        problem = python(ref)
        return ([problem] if problem else []) + static_problems(task, labels(ref))

    return check


def docker_check(env: Mapping[str, str]) -> Callable[[str, Sequence[str]], Tuple[Optional[dict], str]]:
    """core.verify.check_images' `run_in_image`, with the caller's Docker environment."""
    return lambda ref, modules: run_in_image(ref, modules, env)


@dataclass(frozen=True)
class VerifyOutcome:
    report: str  # core.verify.render_verify in the asked format
    failure: Optional[str]  # core.verify.failure_message; None when every baked task passed


def verify(
    baked: Sequence[TaskPlan],
    ref_of: Mapping[str, str],
    mode: str,
    env: Mapping[str, str],
    cache_dir: Optional[Path],
    output_format: str,
    engine_fix: str,
    progress: Optional[Callable[[str], None]] = None,
) -> VerifyOutcome:
    """The whole check after images are published, for every front end: `mode` is auto | docker | static;
    `engine_fix` is the front end's words for "no engine" (its flag names differ)."""
    engine_up = mode != "static" and engine_available(env)
    if mode == "docker" and not engine_up:
        raise FlytebuildError(NO_ENGINE, fix=engine_fix)
    in_docker = docker_check(env)

    def run(ref: str, modules: Sequence[str]) -> Tuple[Optional[dict], str]:
        if progress is not None:
            progress(f"importing {len(modules)} module(s) inside {ref} (docker run)")
        return in_docker(ref, modules)

    try:
        checks = check_images(tasks_by_image(baked, ref_of), engine_up, run, static_check(cache_dir))
    except RegistryError as e:
        raise FlytebuildError(str(e)) from None
    return VerifyOutcome(render_verify(checks, output_format), failure_message(checks))
