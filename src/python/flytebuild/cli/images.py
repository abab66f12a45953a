"""The CLI's image inputs: what `service.images` builds and publishes (the same function as Pants').

- requirements: a PACKED pex of the image's declared requirements, resolved by `pex` from the
  configured lockfile (as Pants does for a resolve), for the user's interpreter; each
  `.deps/<wheel>` (an installed-wheel zip) becomes one layer through `oci.build.assemble`;
- sources: exactly the image's closure, at their import paths (source roots stripped);
- tag: the image's content version (`ImagePlan.ref`); with the tag already in the registry
  nothing is built or pushed (service.images.already_published).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence, Tuple

from flytebuild.cli import userenv
from flytebuild.cli.config import Project
from flytebuild.cli.graph import ProjectGraph
from flytebuild.core.errors import FlytebuildError
from flytebuild.core.model import ImageTarget
from flytebuild.core.plan import plan_image
from flytebuild.oci.build import Distribution, distributions_in, sources_from_roots
from flytebuild.service import images as service
from flytebuild.service.images import OUTPUTS, PublishedImage  # noqa: F401  (the CLI's names for them)
from flytebuild.service.paths import inside


def cache_dir(project: Project) -> Path:
    if project.image_cache_dir:
        return Path(project.image_cache_dir)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "flytebuild" / "oci"


def registries(project: Project) -> service.Registries:
    return service.Registries(cache_dir(project), service.docker_config_path(dict(os.environ)), Path(project.root))


def _error(name: str, err: object) -> FlytebuildError:
    return FlytebuildError(f"Cannot build image {name}: {err}", target=name)


def _distributions(project: Project, graph: ProjectGraph, image: ImageTarget, tmp: str) -> Tuple[Distribution, ...]:
    """Installed-wheel zips of the image's requirements, from a PACKED pex."""
    if not image.requirements:
        return ()
    declared = dict(graph.requirements.declared)
    return resolve_distributions(project, graph, [declared[name] for name in image.requirements], tmp,
                                 image.address, use_lock=True)


def resolve_distributions(
    project: Project, graph: ProjectGraph, requirements: Sequence[str], tmp: str, owner: str, *, use_lock: bool,
    python_version: Optional[str] = None, index_args: Sequence[str] = (),
) -> Tuple[Distribution, ...]:
    """A PACKED pex of `requirements` (from the lockfile when `use_lock` and there is one, else from the index)
    for the user's interpreter (or any CPython `python_version`): its `.deps/<wheel>` zips."""
    argv = [sys.executable, "-m", "pex", "--layout", "packed", "-o", os.path.join(tmp, "requirements.pex"),
            "--no-emit-warnings", "--resolver-version", "pip-2020-resolver"]
    if python_version:
        argv += ["--interpreter-constraint", f"CPython=={python_version}.*"]
    else:
        argv += ["--python", userenv.check_python(project.python, project.config_file)]
    if use_lock and graph.requirements.lock_text is not None:
        # pex reads the lock itself; Pants' `//` header is not JSON.
        lock = os.path.join(tmp, "lock.json")
        with open(lock, "w", encoding="utf-8") as f:
            f.write("\n".join(l for l in graph.requirements.lock_text.splitlines() if not l.lstrip().startswith("//")))
        argv += ["--lock", lock]
    else:
        argv += list(index_args)
    argv += list(requirements)
    userenv.progress(f"flytebuild: resolving {len(requirements)} requirement(s) of {owner} with pex")
    env = {**os.environ, "PIP_CONFIG_FILE": "/dev/null"}  # a global pip constraints file breaks pex's pip
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    except OSError as e:
        raise _error(owner, f"cannot run pex: {e}") from None
    if proc.returncode != 0:
        if "No module named pex" in proc.stderr:
            raise FlytebuildError("Building images needs `pex` next to flytebuild", target=owner, fix="pip install pex")
        raise _error(owner, f"pex could not resolve its requirements:\n{proc.stderr.strip()[-2000:]}")
    return tuple(
        Distribution(d.name, d.path, hashlib.sha256(d.path.read_bytes()).hexdigest())
        for d in distributions_in(os.path.join(tmp, "requirements.pex", ".deps"))
    )


def publish_image(
    project: Project, graph: ProjectGraph, image: ImageTarget, output: str, dist_dir: str, jobs: int
) -> PublishedImage:
    job = service.image_job(plan_image(image))
    regs = registries(project)
    publisher = service.publisher_for(output, regs, jobs, Path(dist_dir) if dist_dir else None)
    found = service.already_published(job, publisher, userenv.progress)
    if found is not None:
        return found

    def inputs(tmp: Path):
        return (_distributions(project, graph, image, str(tmp)),
                sources_from_roots(image.source_paths, project.source_roots, project.root))

    try:
        user_python = userenv.python_version(userenv.check_python(project.python, project.config_file)) \
            if image.requirements and project.python else None
        return service.build_and_publish(job, inputs, publisher, regs, userenv.progress, user_python=user_python,
                                         warn=userenv.warn)
    except subprocess.SubprocessError as e:
        raise _error(image.address, e) from None


def write_summary(published: PublishedImage, dist_dir: str) -> str:
    """`<dist>/<name>.image.json`: ref, manifest digest, layers (what `pants package` writes)."""
    from flytebuild.cli.registration import dist_name

    path = inside(dist_dir, f"{dist_name(published.address)}.image.json", target=published.address,
                  field="name", value=published.address)
    os.makedirs(dist_dir, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(published.summary(), indent=2, sort_keys=True) + "\n")
    return str(path)


def describe(published: PublishedImage) -> str:
    return published.describe()
