"""The CLI's ImageSpec inputs: what `service.images` builds for the ImageSpecs in code that no `[images.*]`
answers (as util_rules/imagespec.py gathers them for Pants): the spec's packages (+ requirements file) resolved
by pex — a subset of the lockfile when every package is locked, else from the index — and exactly the closure of
the tasks using it, source roots stripped.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List

from flytebuild.cli import images as cli_images
from flytebuild.cli import userenv
from flytebuild.cli.config import Project
from flytebuild.cli.graph import ProjectGraph
from flytebuild.cli.planning import ProjectPlan
from flytebuild.core.errors import FlytebuildError
from flytebuild.core.imagespec import SpecImage, check_buildable, spec_images
from flytebuild.core.introspection import parse_introspection
from flytebuild.core.lockfile import canonical_name, locked_pins, requirement_name
from flytebuild.oci import engine
from flytebuild.oci.build import sources_from_roots
from flytebuild.service import images as service


def planned_specs(project: Project, result: ProjectPlan) -> List[tuple]:
    """(workflow address, SpecImage) for every ImageSpec the plan gives a task without an image target."""
    intros: Dict[str, dict] = dict(result.introspections)
    closures = dict(result.closures)
    out = []
    for plan in result.workflows:
        spec_tasks = {t.name: t for t in plan.tasks if t.image_source == "code:ImageSpec"}
        if not spec_tasks or plan.address not in intros:
            continue
        intro = parse_introspection(intros[plan.address], target=plan.address)
        tasks = [t for t in intro.tasks if t.name in spec_tasks]
        settings = project.settings
        for image in spec_images(tasks, closures, settings.default_base, settings.registry).values():
            planned = {spec_tasks[t].image_ref for t in image.tasks}
            if planned != {image.ref}:  # the plan and the build must name the same tag
                raise FlytebuildError(
                    f"ImageSpec `{image.name}`: planned as {', '.join(sorted(filter(None, planned)))} but would "
                    f"be built as {image.ref}", target=plan.address, fix="report this as a flytebuild bug")
            out.append((plan.address, image))
    return out


def _requirements(project: Project, graph: ProjectGraph, image: SpecImage, workflow: str) -> tuple:
    reqs = list(image.packages)
    if image.requirements_file:
        path = os.path.join(project.root, image.requirements_file)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            raise FlytebuildError(
                f"ImageSpec `{image.name}` names requirements file `{image.requirements_file}`, which does not exist",
                target=workflow,
                fix="fix ImageSpec(requirements=...) (a path relative to the repository root or the module)",
            ) from None
        for line in text.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith(("#", "-")):
                reqs.append(line)
    names = {canonical_name(requirement_name(r)) for r in reqs}
    lock = graph.requirements.lock_text
    locked = set()
    if lock is not None and names:
        locked = {canonical_name(p.split("==", 1)[0]) for p in locked_pins(lock, names, strict=False)}
    in_lock = bool(names) and names <= locked
    index = ([f"--index-url={image.pip_index}"] if image.pip_index else [])
    index += [f"--index-url={u}" for u in image.pip_extra_index_url]
    return reqs, in_lock, index


def publish_spec(project: Project, graph: ProjectGraph, workflow: str, image: SpecImage, jobs: int):
    env = dict(os.environ)
    engine_up = bool(image.engine_fields) and engine.engine_available(env)
    check_buildable(image, target=workflow, file=None, engine=engine_up)
    job = service.spec_job(image, workflow, engine_up)
    registries = cli_images.registries(project)
    publisher = service.RegistryPublisher(registries, jobs)
    found = service.already_published(job, publisher, userenv.progress)
    if found is not None:
        return found
    reqs, in_lock, index = _requirements(project, graph, image, workflow)

    def inputs(tmp: Path):
        dists = cli_images.resolve_distributions(
            project, graph, reqs, str(tmp), f"ImageSpec {image.name}", use_lock=in_lock,
            python_version=None if in_lock else image.python_version, index_args=index,
        ) if reqs else ()
        return dists, sources_from_roots(image.source_paths, project.source_roots, project.root)

    return service.build_and_publish(job, inputs, publisher, registries, userenv.progress, docker_env=env)


def publish_specs(project: Project, graph: ProjectGraph, result: ProjectPlan) -> List[tuple]:
    """(workflow, SpecImage, PublishedImage) for every ImageSpec of the planned workflows."""
    return [(wf, image, publish_spec(project, graph, wf, image, project.image_push_jobs))
            for wf, image in planned_specs(project, result)]
