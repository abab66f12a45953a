"""The CLI's stand-in for a build graph: closures from import analysis, pins from the lockfile.

Produces exactly the core model the Pants adapter produces (`Closure`, `ImageTarget`,
`WorkflowTarget`), so `core.plan` decides the same way for both.
"""
from __future__ import annotations

import glob
import os
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from blake3 import blake3

from flytebuild.cli.config import ImageConfig, Project, WorkflowConfig
from flytebuild.cli.requirements import Requirements, load_requirements
from flytebuild.core.errors import FlytebuildError
from flytebuild.core.fingerprint import StatCache, digest_files
from flytebuild.core.imports import ImportGraph, index_modules, requirement_modules
from flytebuild.core.lockfile import requirement_name
from flytebuild.core.model import Closure, FileDigest, ImageTarget, PodTemplateTarget, WorkflowTarget
from flytebuild.core.pod_templates import PodTemplateError, PodTemplateSource

_SKIP_DIRS = {"__pycache__", "node_modules"}


def _stat_cache(root: str) -> Optional[StatCache]:
    """Per-repo digest cache in the user's cache dir; FLYTEBUILD_CACHE_DIR="" turns it off
    (Bazel actions do: their inputs are already content-addressed)."""
    base = os.environ.get("FLYTEBUILD_CACHE_DIR")
    if base is None:
        base = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "flytebuild")
    if not base:
        return None
    key = blake3(os.path.abspath(root).encode("utf-8")).hexdigest()[:16]
    return StatCache(os.path.join(base, f"stat-{key}.json"))


class ProjectGraph:
    def __init__(self, project: Project, installed: Optional[Mapping[str, Sequence[str]]] = None) -> None:
        self.project = project
        self.requirements: Requirements = load_requirements(project.root, project.requirements_file, project.lockfile)
        self.index = index_modules(project.root, project.source_roots)
        self.use_installed(installed)
        self._digests: Dict[str, str] = {}
        self._cache = _stat_cache(project.root)

    def use_installed(self, installed: Optional[Mapping[str, Sequence[str]]]) -> None:
        """Module → distribution names reported by the user's environment (see core.imports)."""
        self.imports = ImportGraph(
            self.index,
            requirement_modules(self.requirements.names, installed, dict(self.project.module_mapping)),
        )

    # --- files ---------------------------------------------------------------------------------

    def digests(self, paths: Iterable[str]) -> Tuple[FileDigest, ...]:
        todo = sorted({p for p in paths if p not in self._digests})
        if todo:
            for d in digest_files(self.project.root, todo, cache=self._cache):
                self._digests[d.path] = d.digest
        return tuple(sorted(FileDigest(p, self._digests[p]) for p in set(paths)))

    def _expand(self, pattern: str, owner: str) -> List[str]:
        """A dependency entry: a file, a directory (its Python files, recursively) or a glob."""
        root = self.project.root
        absolute = os.path.join(root, pattern) if pattern else root
        if any(c in pattern for c in "*?["):
            matches = [p for p in glob.glob(absolute, recursive=True) if os.path.isfile(p)]
        elif os.path.isdir(absolute):
            matches = []
            for dirpath, dirnames, filenames in os.walk(absolute):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS)
                matches += [os.path.join(dirpath, f) for f in filenames if f.endswith((".py", ".pyi"))]
        elif os.path.isfile(absolute):
            matches = [absolute]
        else:
            matches = []
        if not matches:
            raise FlytebuildError(
                f"{owner}: dependency `{pattern}` matches no files",
                file=self.project.config_file,
                fix="list existing files, directories or globs (relative to the configuration file)",
            )
        return sorted(os.path.relpath(m, root).replace(os.sep, "/") for m in matches)

    # --- closures ------------------------------------------------------------------------------

    def closure_of_files(self, paths: Iterable[str], extra_requirements: Iterable[str] = ()) -> Closure:
        paths = sorted(set(paths))
        python = [p for p in paths if p.endswith((".py", ".pyi"))]
        found = self.imports.closure(python)
        names = sorted(set(found.requirements) | {requirement_name(r) for r in extra_requirements})
        files = sorted(set(found.files) | (set(paths) - set(python)))
        return Closure(sources=self.digests(files), requirements=tuple(names), pins=self.requirements.pins(names))

    def closure_of_source_file(self, path: str) -> Closure:
        """What the module defining a task needs (Pants: the closure of the file's owner)."""
        if path not in self.index.module_of:
            return Closure()
        return self.closure_of_files([path])

    def image_target(self, image: ImageConfig) -> ImageTarget:
        owner = f"[images.{image.name}]"
        self.requirements.check(image.requirements, owner, self.project.config_file)
        paths = [p for d in image.dependencies for p in self._expand(d, owner)]
        closure = self.closure_of_files(paths, image.requirements)
        return ImageTarget(
            address=image.name,
            image_name=image.image_name,
            base=image.base,
            registry=image.registry,
            repository=image.repository,
            env=image.env,
            python=image.python,
            sources=closure.sources,
            requirements=closure.requirements,
            pins=closure.pins,
        )

    # --- workflows -----------------------------------------------------------------------------

    def module_entrypoint(self, workflow: WorkflowConfig) -> str:
        """`path/to/file.py:attr` (relative to the configuration) → `package.module:attr`, as
        Pants resolves entry points; `module:attr` is kept."""
        spec, sep, attr = workflow.entrypoint.rpartition(":")
        if not sep or not spec or not attr:
            raise FlytebuildError(
                f"[workflows.{workflow.name}] entrypoint `{workflow.entrypoint}` is not `module:attr` or `file.py:attr`",
                file=self.project.config_file,
                fix='write it as "package.module:workflow" or "path/to/file.py:workflow"',
            )
        if not spec.endswith(".py"):
            return workflow.entrypoint
        path = self.project.repo_path(spec)
        module = self.index.module_of.get(path)
        if module is None:
            raise FlytebuildError(
                f"[workflows.{workflow.name}] entrypoint file `{spec}` ({path}) is not a Python module under "
                f"the source roots ({', '.join(r or '.' for r in self.project.source_roots)})",
                file=self.project.config_file,
                fix="check the path (relative to the configuration file) and `source_roots`",
            )
        return f"{module}:{attr}"

    def workflow_target(self, workflow: WorkflowConfig, entrypoint: str) -> WorkflowTarget:
        return WorkflowTarget(
            address=workflow.name,
            entrypoint=entrypoint,
            project=workflow.project,
            domain=workflow.domain,
            image=workflow.image,
            images=workflow.images,
            task_images=workflow.task_images,
            pod_template=self.pod_template_target(workflow.pod_template) if workflow.pod_template else None,
            task_pod_templates=tuple(
                (task, self.pod_template_target(name)) for task, name in workflow.task_pod_templates
            ),
            environment=self.project.environment,
            cache_key=workflow.cache_key,
            task_cache_keys=workflow.task_cache_keys,
        )

    def pod_template_target(self, name: str) -> PodTemplateTarget:
        """A `[pod_templates.NAME]` with its files read (the Pants twin: util_rules/pod_templates.py)."""
        config = next(t for t in self.project.pod_templates if t.name == name)

        def read(path: str, what: str) -> PodTemplateSource:
            try:
                with open(os.path.join(self.project.root, path), encoding="utf-8") as f:
                    return PodTemplateSource(path, f.read())
            except (OSError, UnicodeDecodeError) as e:
                raise PodTemplateError(
                    f"cannot read the {what} file {path}: {getattr(e, 'strerror', None) or e}",
                    target=name,
                    file=self.project.config_file,
                    fix="create it, or correct the path (relative to the configuration file)",
                ) from None

        return PodTemplateTarget(
            address=name,
            source=read(config.source, "`source`"),
            overlays=tuple((env, read(path, f"`{env}` overlay")) for env, path in config.overlays),
            values=config.values,
            primary_container_name=config.primary_container_name,
        )

