"""Plan configured workflows and images: the CLI twin of pants_backend/util_rules/planning.py."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from flytebuild.cli import userenv
from flytebuild.cli.cache import cache_path
from flytebuild.cli.config import ImageConfig, Project, WorkflowConfig
from flytebuild.cli.graph import check_image_config, dist_name_problem, image_config_problems, project_graph
from flytebuild.core import validate
from flytebuild.core.errors import FlytebuildError
from flytebuild.core.imagespec import requirement_lines, spec_lookups
from flytebuild.core.introspection import parse_introspection
from flytebuild.core.model import Closure, ImagePlan, ImageTarget, WorkflowPlan
from flytebuild.core.plan import plan_image, plan_workflow, with_cross_workflow_warnings
from flytebuild.core.result_cache import ResultCache, result_key


def check_workflow_config(project: Project, workflow: WorkflowConfig) -> None:
    describe = lambda f: f"`{f}` in [workflows.{workflow.name}]"  # noqa: E731
    reason = dist_name_problem(workflow.name)
    if reason:
        validate.raise_problems([validate.Problem("name", workflow.name, reason,
                                                  "use a plain table name such as [workflows.my-wf]")],
                                workflow.name, lambda f: f'the table name [workflows."{workflow.name}"]',
                                project.config_file, "workflow")
    validate.check_workflow(workflow.name, project=workflow.project or project.settings.project,
                            domain=workflow.domain or project.settings.domain, describe=describe,
                            file=project.config_file,
                            project_from="" if workflow.project else "the top-level `project`",
                            domain_from="" if workflow.domain else "the top-level `domain`")


@dataclass(frozen=True)
class ProjectPlan:
    images: Tuple[ImagePlan, ...]
    workflows: Tuple[WorkflowPlan, ...]
    image_targets: Tuple[ImageTarget, ...]
    # per workflow: the introspection JSON (for deploy/run) and the task closures used
    introspections: Tuple[Tuple[str, dict], ...] = ()
    closures: Tuple[Tuple[str, Closure], ...] = ()
    # per workflow: a key over everything importing its entrypoint can see (environment, import closure), for
    # core/result_cache.py; absent when the environment cannot be identified without starting it
    input_keys: Tuple[Tuple[str, str], ...] = ()
    # (workflow, error paragraph) of the workflows that could not be planned (plan_project(isolate=True))
    errors: Tuple[Tuple[str, str], ...] = ()
    # the user-env process that introspected, waiting to serialize (plan_project(serialize_next=True)); not data
    session: Optional[userenv.Session] = field(default=None, compare=False, repr=False)


def select(project: Project, names: Sequence[str]) -> Tuple[List[WorkflowConfig], List[ImageConfig]]:
    """Targets named on the command line (all of them when none are)."""
    if not names:
        return list(project.workflows), list(project.images)
    workflows, images, unknown = [], [], []
    for name in names:
        wf = next((w for w in project.workflows if w.name == name), None)
        img = project.image(name)
        if wf:
            workflows.append(wf)
        elif img:
            images.append(img)
        else:
            unknown.append(name)
    if unknown:
        known = ", ".join(sorted([w.name for w in project.workflows] + [i.name for i in project.images]))
        raise FlytebuildError(
            f"No workflow or image named {', '.join(unknown)} in {project.config_file}",
            file=project.config_file,
            fix=f"use one of: {known}",
        )
    return workflows, images


def plan_project(
    project: Project,
    names: Sequence[str] = (),
    environment: Optional[str] = None,
    isolate: bool = False,
    serialize_next: bool = False,
) -> ProjectPlan:
    """`isolate`: a workflow that cannot be planned is reported in `errors` and the others are planned (plan and
    package); otherwise its error is raised. `serialize_next`: the command serializes the plan next (deploy,
    package): introspect in a runtime `session` process that stays, so serialization runs in the same interpreter
    (one flytekit import per command)."""
    workflows, listed = select(project, names)
    if not workflows and not listed:
        raise FlytebuildError(
            "No [workflows.*] or [images.*] are configured",
            file=project.config_file,
            fix='declare [workflows.NAME] (entrypoint = "path/to/file.py:wf") and [images.NAME], '
            "or run `flytebuild init --force`",
        )
    validate.check_options(
        project.settings.default_base,
        project.settings.registry,
        "`default_base`",
        "`registry`",
        file=project.config_file,
    )
    # Field values (the workflow's, and those of the images it names) are checked before any user code runs; a
    # workflow with a bad one fails alone when isolating, as any other planning error does.
    early_errors: List[Tuple[str, str]] = []
    checked = []
    for workflow in workflows:
        try:
            check_workflow_config(project, workflow)
            for name in sorted({workflow.image or "", *(v for _, v in workflow.images + workflow.task_images)}):
                image = project.image(name) if name else None
                if image is not None:
                    check_image_config(project, image)
        except FlytebuildError as e:
            if not isolate:
                raise
            early_errors.append((workflow.name, str(e)))
            continue
        checked.append(workflow)
    workflows = checked
    default = project.image(project.settings.default_image) if project.settings.default_image else None
    for image in [*listed, *([default] if default is not None else [])]:
        check_image_config(project, image)
    graph = project_graph(project)
    introspections: Dict[str, dict] = {}
    input_keys: Dict[str, str] = {}
    entrypoints = [(w.name, graph.module_entrypoint(w)) for w in workflows]
    results: Dict[str, dict] = {}
    session: Optional[userenv.Session] = None
    if workflows:
        # Per workflow, the answer is kept under a key of everything its import can see (core/result_cache.py):
        # with nothing changed no user-env process starts (flytekit is imported zero times); after an edit only
        # the workflows whose import closure changed are introspected, together, in one process.
        cache = ResultCache(cache_path("results"))
        env = userenv.env_identity(project.python)
        runtime = userenv.runtime_fingerprint()
        inputs = (
            {
                ep: result_key("inputs", env, list(project.source_roots), _import_closure(graph, ep))
                for _, ep in entrypoints
            }
            if env
            else {}
        )
        input_keys = {name: inputs[ep] for name, ep in entrypoints if ep in inputs}
        keys = {ep: result_key("introspect", ep, key, runtime) for ep, key in inputs.items()}
        for ep, key in keys.items():
            cached = cache.get(key)
            if cached is not None:
                results[ep] = json.loads(cached)
        installed_key = result_key("installed", env) if env else None
        installed_text = cache.get(installed_key) if installed_key else None
        missing = [(name, ep) for name, ep in entrypoints if ep not in results]
        # Both queries run in the user's interpreter at once (the flytekit import dominates).
        installed_proc = None
        if installed_text is None:
            installed_proc = userenv.start_installed_query(project.python, project.config_file)
        if missing:
            userenv.progress(f"flytebuild: introspecting {len(missing)} workflow(s) with {project.python}")
            start = userenv.start_session if serialize_next else userenv.start_introspection
            proc = start(
                project.python,
                project.config_file,
                project.root,
                project.source_roots,
                sorted({ep for _, ep in missing}),
            )
            try:
                if serialize_next:
                    session = proc
                    fresh = userenv.finish_session_introspection(session, missing, project.user_code_timeout)
                else:
                    fresh = userenv.finish_introspection(proc, missing, project.user_code_timeout)
            except BaseException:
                if session is not None:
                    session.close()
                if installed_proc is not None:
                    installed_proc.kill()
                    installed_proc.wait()
                raise
            for ep, data in fresh.items():
                results[ep] = data
                if ep in keys and "error" not in data:
                    cache.put(keys[ep], json.dumps(data, sort_keys=True))
        if installed_proc is not None:
            installed = userenv.finish_installed_query(installed_proc, project.python)
            if installed_key:
                cache.put(installed_key, json.dumps({k: list(v) for k, v in installed.items()}, sort_keys=True))
        else:
            installed = {k: tuple(v) for k, v in json.loads(installed_text).items()}
        graph.use_installed(installed)

    image_targets = {img.name: graph.image_target(img) for img in project.images if not image_config_problems(img)}
    plans: List[WorkflowPlan] = []
    closures: Dict[str, Closure] = {}
    errors: List[Tuple[str, str]] = list(early_errors)
    for workflow, (_, entrypoint) in zip(workflows, entrypoints):
        try:
            # An image with a bad field fails only the workflows whose code names it.
            intro = parse_introspection(results[entrypoint], target=workflow.name)
            named = {t.image.name for t in intro.tasks if t.image.name}
            for image in project.images:
                if image.image_name in named:
                    check_image_config(project, image)
            plans.append(
                _plan_one(project, graph, workflow, entrypoint, intro, image_targets, closures, environment)
            )
        except FlytebuildError as e:
            if not isolate:
                raise
            errors.append((workflow.name, str(e)))  # one bad workflow does not hide the others
            continue
        introspections[workflow.name] = results[entrypoint]
    plans = with_cross_workflow_warnings(plans)
    graph.save_caches()
    # Every rendered pod template is checked as a Kubernetes V1PodSpec in the user's environment
    # before anything uses the plan (one process for all workflows).
    userenv.validate_pod_templates(project, plans)
    used = {t.image_address for p in plans for t in p.tasks if t.image_address}
    chosen = sorted(used | {i.name for i in listed} | ({i.name for i in project.images} if not names else set()))
    return ProjectPlan(
        images=tuple(plan_image(image_targets[n]) for n in chosen),
        workflows=tuple(sorted(plans, key=lambda p: p.address)),
        image_targets=tuple(image_targets[n] for n in chosen),
        introspections=tuple(sorted(introspections.items())),
        closures=tuple(sorted(closures.items())),
        input_keys=tuple(sorted(input_keys.items())),
        errors=tuple(errors),
        session=session,
    )


def _plan_one(project, graph, workflow, entrypoint, intro, image_targets, closures, environment) -> WorkflowPlan:
    # What the ImageSpecs in code name (as the Pants adapter reads them): copy candidates that exist, with
    # their digests and (for modules) closures, and the lines of their requirements files.
    candidates, requirement_paths = spec_lookups(intro.tasks)
    root = Path(project.root)
    spec_files = {f.path: f for f in graph.digests(p for p in candidates if (root / p).is_file())}
    requirement_files = {
        p: requirement_lines((root / p).read_text()) for p in requirement_paths if (root / p).is_file()
    }
    needed = {t.source_file for t in intro.tasks if t.source_file} | {p for p in spec_files if p.endswith(".py")}
    for path in sorted(needed):
        if path not in closures:
            closures[path] = graph.closure_of_source_file(path)
    return plan_workflow(
        graph.workflow_target(workflow, entrypoint, environment),
        intro,
        {p: closures[p] for p in needed},
        image_targets,
        project.settings.with_environment(environment),
        spec_files=spec_files,
        requirement_files=requirement_files,
    )


def _import_closure(graph, entrypoint: str) -> list:
    """(path, digest) of every first-party file importing `entrypoint` runs: its module's import closure and
    the packages' `__init__.py` on the way."""
    module = entrypoint.split(":", 1)[0]
    if graph.project.targets is not None:
        # A build system's graph (the Bazel rules): no import analysis here; every file it declared is what the
        # import can see (a conservative key: any edit re-introspects).
        return [[d.path, d.digest] for d in graph.digests(sorted({s for t in graph.project.targets for s in t.srcs}))]
    found = graph.imports.closure(graph.index.provider(module)).files
    files = set(found)
    for path in found:
        parent = os.path.dirname(path)
        while parent:
            init = f"{parent}/__init__.py"
            if init in graph.index.module_of:
                files.add(init)
            parent = os.path.dirname(parent)
    return [[d.path, d.digest] for d in graph.digests(sorted(files))]
