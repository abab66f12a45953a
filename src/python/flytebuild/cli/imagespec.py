"""The CLI's ImageSpec inputs: what `service.images` builds for the ImageSpecs in code that no `[images.*]`
answers (as util_rules/imagespec.py gathers them for Pants): the spec's packages (+ requirements file) resolved
by pex — a subset of the lockfile when every package is locked, else from the index — and exactly the closure of
the tasks using it, source roots stripped.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

from flytebuild.cli import images as cli_images
from flytebuild.cli import userenv
from flytebuild.cli.config import Project
from flytebuild.cli.graph import ProjectGraph
from flytebuild.cli.planning import ProjectPlan
from flytebuild.core.imagespec import SpecImage, check_buildable
from flytebuild.oci import engine
from flytebuild.oci.build import SourceFile, sources_from_roots
from flytebuild.service import images as service
from flytebuild.service import specs


def planned_specs(project: Project, result: ProjectPlan) -> List[tuple]:
    """(workflow address, SpecImage) for every ImageSpec the plan gives a task without an image target."""
    out = []
    for plan in result.workflows:
        spec_tasks = {t.name: t for t in plan.tasks if t.image_source == "code:ImageSpec"}
        for image in plan.spec_images:  # what to build is the plan's decision (core/imagespec.py)
            specs.check_planned(image, (spec_tasks[t].image_ref for t in image.tasks), plan.address)
            out.append((plan.address, image))
    return out


def _requirements(project: Project, graph: ProjectGraph, image: SpecImage, workflow: str) -> tuple:
    # The plan decided the list: packages + requirements file + flytekit (pinned) when the spec lacks it.
    reqs = list(image.requirements)
    if image.requirements_file and not os.path.isfile(os.path.join(project.root, image.requirements_file)):
        raise specs.missing_requirements_file(image, workflow)
    return reqs, specs.all_locked(reqs, graph.requirements.lock_text), specs.index_args(image)


def publish_spec(project: Project, graph: ProjectGraph, workflow: str, image: SpecImage, jobs: int,
                 output: str = "push", dist: Optional[str] = None):
    env = dict(os.environ)
    engine_up = bool(image.engine_fields) and engine.engine_available(env)
    check_buildable(image, target=workflow, file=None, engine=engine_up)
    job = service.spec_job(image, workflow, engine_up)
    registries = cli_images.registries(project)
    publisher = service.publisher_for(output, registries, jobs, Path(dist) if dist else None, docker_env=env)
    found = service.already_published(job, publisher, userenv.progress)
    if found is not None:
        return found
    reqs, in_lock, index = _requirements(project, graph, image, workflow)

    def inputs(tmp: Path):
        dists = cli_images.resolve_distributions(
            project, graph, reqs, str(tmp), f"ImageSpec {image.name}", use_lock=in_lock,
            python_version=None if in_lock else image.python_version, index_args=index,
        ) if reqs else ()
        placed = {s.path: s for s in sources_from_roots(image.source_paths, project.source_roots, project.root)}
        # Copied files also land where flytekit's builder puts them (/root/<entry>), where a container looks.
        for c in image.copies:
            placed[c.destination] = SourceFile(c.destination, (Path(project.root) / c.source).read_bytes())
        return dists, [placed[p] for p in sorted(placed)]

    return service.build_and_publish(job, inputs, publisher, registries, userenv.progress, docker_env=env)


def publish_specs(project: Project, graph: ProjectGraph, result: ProjectPlan, output: str = "push",
                  dist: Optional[str] = None) -> List[tuple]:
    """(workflow, SpecImage, PublishedImage) for every ImageSpec of the planned workflows; `output` as `package`'s
    (`oci` writes `<dist>/<spec name>.oci`)."""
    return [(wf, image, publish_spec(project, graph, wf, image, project.image_push_jobs, output, dist))
            for wf, image in planned_specs(project, result)]
