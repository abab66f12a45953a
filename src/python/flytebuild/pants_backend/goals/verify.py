"""`pants flyte-verify <specs>`: is every baked task really runnable from its image?

For each baked task of the matched flyte_workflows, its image (published first: content-tagged,
so an existing tag is not rebuilt) is checked:
- with a Docker engine: the image is pulled and run once (`--network none`); inside it every task
  module is imported and `pyflyte-execute` must be on PATH;
- without one: statically, from the image config's labels (the baked files and distributions
  recorded at build time), fetched from the registry without pulling any layer.
This answers "the baked image missed the workflow file" before anything is registered.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from enum import Enum
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from pants.build_graph.address import ResolveError
from pants.engine.console import Console
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.internals.native_engine import IntrinsicError
from pants.engine.rules import Get, collect_rules, goal_rule
from pants.engine.target import InvalidFieldException, Targets
from pants.option.global_options import NamedCachesDirOption
from pants.option.option_types import EnumOption

from flytebuild.core.errors import FlytebuildError
from flytebuild.core.lockfile import canonical_name
from flytebuild.core.model import TaskPlan
from flytebuild.core.plan import plan_image
from flytebuild.core.report import _table
from flytebuild.oci import RegistryClient, RegistryError
from flytebuild.oci.build import LABEL_DISTRIBUTIONS, LABEL_SOURCE_FILES
from flytebuild.oci.registry import Reference
from flytebuild.pants_backend.subsystems.flyte import FlyteSubsystem
from flytebuild.pants_backend.target_types import FlyteWorkflowTarget
from flytebuild.pants_backend.util_rules.images import PublishedImages, PublishImagesRequest, _cache_dir
from flytebuild.pants_backend.util_rules.planning import PlannedWorkflows, WorkflowPlansRequest
from flytebuild.pants_backend.util_rules.user_env import runtime_script


class VerifyFormat(Enum):
    table = "table"
    json = "json"


class VerifyEngine(Enum):
    auto = "auto"  # Docker when an engine answers, else static
    docker = "docker"
    static = "static"


class FlyteVerifySubsystem(GoalSubsystem):
    name = "flyte-verify"
    help = (
        "Check that every baked task of the matched flyte_workflows can run from its image: its "
        "modules import inside the image and pyflyte-execute is on PATH (run in Docker when an "
        "engine is present, else checked statically from the image's source manifest label). "
        "Images are published first (content-tagged: an existing tag is not rebuilt)."
    )

    output_format = EnumOption("--format", default=VerifyFormat.table, help="`table` or `json`.")
    engine = EnumOption("--engine", default=VerifyEngine.auto, help="`auto`, `docker` or `static`.")


class FlyteVerify(Goal):
    subsystem_cls = FlyteVerifySubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


@dataclass(frozen=True)
class TaskCheck:
    task: str
    module: str
    image: str  # ref
    method: str  # docker | static
    problems: Tuple[str, ...]


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
        if not any(src == f or src.endswith("/" + f) for f in files):
            problems.append(f"file {src} not in the image")
    for req in task.requirements:
        if canonical_name(req) not in dists:
            problems.append(f"requirement {req} not in the image")
    return problems


def _docker_env(env: Mapping[str, str]) -> Dict[str, str]:
    return {k: v for k, v in {**os.environ, **env}.items() if v}


def _engine_available(env: Mapping[str, str]) -> bool:
    docker = shutil.which("docker", path=env.get("PATH"))
    if not docker:
        return False
    try:
        return subprocess.run([docker, "info"], env=_docker_env(env), capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _run_in_image(ref: str, modules: Sequence[str], env: Mapping[str, str]) -> Tuple[Optional[dict], str]:
    script = runtime_script("verify_image.py")
    denv = _docker_env(env)
    docker = shutil.which("docker", path=env.get("PATH")) or "docker"
    pull = subprocess.run([docker, "pull", "-q", ref], env=denv, capture_output=True, text=True)
    if pull.returncode != 0:
        return None, f"docker pull {ref} failed: {pull.stderr.strip()}"
    proc = subprocess.run(
        [docker, "run", "--rm", "-i", "--network", "none", "--entrypoint", "python3", ref, "-", *modules],
        input=script.decode(), env=denv, capture_output=True, text=True, timeout=600,
    )
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1]), ""
    except (ValueError, IndexError):
        return None, f"running python3 in {ref} failed: {(proc.stderr or proc.stdout).strip()[-500:]}"


@goal_rule
async def flyte_verify(
    console: Console, subsystem: FlyteVerifySubsystem, targets: Targets, flyte: FlyteSubsystem,
    named_caches: NamedCachesDirOption,
) -> FlyteVerify:
    workflows = sorted(t.address for t in targets if isinstance(t, FlyteWorkflowTarget))
    if not workflows:
        console.print_stderr("flyte-verify: no flyte_workflow targets matched.")
        return FlyteVerify(exit_code=1)
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(["DOCKER_HOST", "DOCKER_CONFIG", "PATH", "HOME"]))
    try:
        planned = await Get(PlannedWorkflows, WorkflowPlansRequest(tuple(workflows)))
        baked = [t for p in planned for t in p.plan.tasks if t.mode == "baked" and t.image_address]
        image_addresses = tuple(sorted({t.image_address for t in baked if t.image_address}))
        published = await Get(PublishedImages, PublishImagesRequest(image_addresses))
    except (FlytebuildError, ResolveError, IntrinsicError, InvalidFieldException) as e:
        console.print_stderr(f"flyte-verify: {e}")
        return FlyteVerify(exit_code=1)

    engine = subsystem.engine
    use_docker = engine == VerifyEngine.docker or (engine == VerifyEngine.auto and _engine_available(env))
    if engine == VerifyEngine.docker and not _engine_available(env):
        console.print_stderr("flyte-verify: no Docker engine answers (`docker info` failed). Fix: start Docker "
                             "(DOCKER_HOST), or use --flyte-verify-engine=static.")
        return FlyteVerify(exit_code=1)

    ref_of = {img.address: img.ref for img in published.images}
    by_image: Dict[str, List[TaskPlan]] = {}
    for t in baked:
        by_image.setdefault(ref_of.get(t.image_address, "") or ref_of.get(t.image_address.lstrip("/"), ""), []).append(t)

    checks: List[TaskCheck] = []
    for ref, tasks in sorted(by_image.items()):
        if use_docker:
            result, err = _run_in_image(ref, sorted({t.module for t in tasks}), env)
            for t in sorted(tasks, key=lambda t: t.name):
                problems = [err] if result is None else []
                if result is not None:
                    if not result.get("pyflyte_execute"):
                        problems.append("pyflyte-execute not on PATH")
                    if result["modules"].get(t.module):
                        problems.append(f"import {t.module}: {result['modules'][t.module]}")
                checks.append(TaskCheck(t.name, t.module, ref, "docker", tuple(problems)))
        else:
            r = Reference.parse(ref)
            try:
                client = RegistryClient(r.registry, cache_dir=_cache_dir(flyte, named_caches))
                labels = (client.pull(r).config.get("config") or {}).get("Labels") or {}
            except RegistryError as e:
                console.print_stderr(f"flyte-verify: {e}")
                return FlyteVerify(exit_code=1)
            for t in sorted(tasks, key=lambda t: t.name):
                checks.append(TaskCheck(t.name, t.module, ref, "static", tuple(static_problems(t, labels))))

    failed = [c for c in checks if c.problems]
    if subsystem.output_format == VerifyFormat.json:
        console.print_stdout(json.dumps({"ok": not failed, "tasks": [
            {"task": c.task, "module": c.module, "image": c.image, "method": c.method, "problems": list(c.problems)}
            for c in checks]}, indent=2, sort_keys=True))
    else:
        rows = [[c.task, c.image, c.method, "ok" if not c.problems else "; ".join(c.problems)] for c in checks]
        lines = _table(["TASK", "IMAGE", "CHECK", "RESULT"], rows, indent="") if rows else ["no baked tasks"]
        console.print_stdout("\n".join(lines))
    if failed:
        console.print_stderr(f"flyte-verify: {len(failed)} baked task(s) cannot run from their image. Fix: add "
                             f"the missing files/requirements to the flyte_image's dependencies.")
    return FlyteVerify(exit_code=1 if failed else 0)


def rules():
    return collect_rules()
