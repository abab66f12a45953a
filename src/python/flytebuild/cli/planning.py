"""Plan configured workflows and images: the CLI twin of pants_backend/util_rules/planning.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from flytebuild.cli import userenv
from flytebuild.cli.config import ImageConfig, Project, WorkflowConfig
from flytebuild.cli.graph import check_image_config, dist_name_problem, image_config_problems, project_graph
from flytebuild.core.errors import FlytebuildError
from flytebuild.core.introspection import parse_introspection
from flytebuild.core.model import Closure, ImagePlan, ImageTarget, WorkflowPlan
from flytebuild.core.plan import plan_image, plan_workflow
from flytebuild.core import validate


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


def plan_project(project: Project, names: Sequence[str] = (), environment: Optional[str] = None) -> ProjectPlan:
    workflows, listed = select(project, names)
    if not workflows and not listed:
        raise FlytebuildError(
            "No [workflows.*] or [images.*] are configured",
            file=project.config_file,
            fix="declare images and workflows (see examples/flytebuild.toml)",
        )
    validate.check_options(project.settings.default_base, project.settings.registry, "`default_base`", "`registry`",
                           file=project.config_file)
    # Field values are checked before any user code runs; images are checked when something needs them.
    for workflow in workflows:
        check_workflow_config(project, workflow)
    explicit = {w.image for w in workflows if w.image} | {v for w in workflows for _, v in w.images + w.task_images}
    if project.settings.default_image and project.image(project.settings.default_image):
        explicit.add(project.settings.default_image)
    for image in project.images:
        if image.name in explicit or image in listed:
            check_image_config(project, image)
    graph = project_graph(project)
    introspections: Dict[str, dict] = {}
    entrypoints = [(w.name, graph.module_entrypoint(w)) for w in workflows]
    results: Dict[str, dict] = {}
    if workflows:
        # Both queries run in the user's interpreter at once (the flytekit import dominates).
        installed_proc = userenv.start_installed_query(project.python, project.config_file)
        userenv.progress(f"flytebuild: introspecting {len(workflows)} workflow(s) with {project.python}")
        proc = userenv.start_introspection(
            project.python, project.config_file, project.root, project.source_roots,
            sorted({ep for _, ep in entrypoints}),
        )
        try:
            results = userenv.finish_introspection(proc, entrypoints, project.user_code_timeout)
        except BaseException:
            installed_proc.kill()
            installed_proc.wait()
            raise
        graph.use_installed(userenv.finish_installed_query(installed_proc, project.python))

    # An image with a bad field fails only the workflows whose code names it.
    parsed = {name: parse_introspection(results[entrypoint], target=name) for name, entrypoint in entrypoints}
    named_in_code = {t.image.name for intro in parsed.values() for t in intro.tasks if t.image.name}
    for image in project.images:
        if image.image_name in named_in_code:
            check_image_config(project, image)
    image_targets = {img.name: graph.image_target(img) for img in project.images if not image_config_problems(img)}
    plans: List[WorkflowPlan] = []
    closures: Dict[str, Closure] = {}
    for workflow, (_, entrypoint) in zip(workflows, entrypoints):
        data = results[entrypoint]
        intro = parsed[workflow.name]
        for path in sorted({t.source_file for t in intro.tasks if t.source_file}):
            if path not in closures:
                closures[path] = graph.closure_of_source_file(path)
        plans.append(
            plan_workflow(
                graph.workflow_target(workflow, entrypoint, environment),
                intro,
                {p: closures[p] for p in {t.source_file for t in intro.tasks if t.source_file}},
                image_targets,
                project.settings.with_environment(environment),
            )
        )
        introspections[workflow.name] = data
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
    )
