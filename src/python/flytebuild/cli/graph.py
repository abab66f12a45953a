"""The CLI's stand-in for a build graph: closures from import analysis, pins from the lockfile.

Produces exactly the core model the Pants adapter produces (`Closure`, `ImageTarget`,
`WorkflowTarget`), so `core.plan` decides the same way for both.
"""
from __future__ import annotations

import functools
import glob
import os
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from blake3 import blake3

from flytebuild.cli.cache import ParsedImports, cache_path
from flytebuild.cli.config import ImageConfig, Project, WorkflowConfig
from flytebuild.cli.requirements import Requirements, load_requirements
from flytebuild.core import validate
from flytebuild.core.errors import FlytebuildError
from flytebuild.core.fingerprint import StatCache, digest_files
from flytebuild.core.imports import ImportGraph, ModuleIndex, index_modules, requirement_modules
from flytebuild.core.lockfile import requirement_name
from flytebuild.core.model import Closure, FileDigest, ImageTarget, PodTemplateTarget, WorkflowTarget
from flytebuild.core.pod_templates import PodTemplateError, PodTemplateSource, decode_text

_SKIP_DIRS = frozenset({"__pycache__", "node_modules"})


def walked(name: str) -> bool:
    """Whether a plan looks inside a directory of this name (a dependency directory's walk); `flytebuild dev`
    watches by the same rule, so it sees every edit a plan would."""
    return not name.startswith(".") and name not in _SKIP_DIRS



def _repo_cache_path(kind: str, root: str) -> Optional[str]:
    """A per-repo file in the user's cache dir; None when FLYTEBUILD_CACHE_DIR="" turns caches off (Bazel actions
    do: their inputs are already content-addressed)."""
    return cache_path(f"{kind}-{blake3(os.path.abspath(root).encode('utf-8')).hexdigest()[:16]}.json")


def _stat_cache(root: str) -> Optional[StatCache]:
    path = _repo_cache_path("stat", root)
    return StatCache(path) if path else None


class ProjectGraph:
    def __init__(self, project: Project, installed: Optional[Mapping[str, Sequence[str]]] = None) -> None:
        self.project = project
        self.requirements: Requirements = load_requirements(project.root, project.requirements_file, project.lockfile)
        self.index = index_modules(project.root, project.source_roots)
        self.parsed = ParsedImports(_repo_cache_path("imports", project.root))
        self.use_installed(installed)
        self._digests: Dict[str, str] = {}
        self._cache = _stat_cache(project.root)
        self._expanded: Dict[str, List[str]] = {}

    def use_installed(self, installed: Optional[Mapping[str, Sequence[str]]]) -> None:
        """Module → distribution names reported by the user's environment (see core.imports)."""
        self.imports = ImportGraph(
            self.index,
            requirement_modules(self.requirements.names, installed, dict(self.project.module_mapping)),
            parsed=self.parsed,
        )

    def save_caches(self) -> None:
        """Remember what this run parsed (the digest cache saves itself)."""
        parsed = getattr(self, "parsed", None)
        if parsed is not None:
            parsed.save()

    # --- files ---------------------------------------------------------------------------------

    def digests(self, paths: Iterable[str]) -> Tuple[FileDigest, ...]:
        paths = set(paths)  # read twice below: a generator would give an empty answer
        todo = sorted(p for p in paths if p not in self._digests)
        if todo:
            for d in digest_files(self.project.root, todo, cache=self._cache):
                self._digests[d.path] = d.digest
        # sorted by path before the values are made (paths are unique): comparing dataclasses is slow
        return tuple(FileDigest(p, self._digests[p]) for p in sorted(paths))

    def _expand(self, pattern: str, owner: str) -> List[str]:
        """A dependency entry: a file, a directory (its Python files, recursively) or a glob. Walked once per run:
        a shared lib every image lists would otherwise be walked once per image."""
        if pattern not in self._expanded:
            self._expanded[pattern] = self._walk(pattern, owner)
        return self._expanded[pattern]

    def _walk(self, pattern: str, owner: str) -> List[str]:
        root = self.project.root
        absolute = os.path.join(root, pattern) if pattern else root
        if any(c in pattern for c in "*?["):
            matches = [os.path.relpath(p, root) for p in glob.glob(absolute, recursive=True) if os.path.isfile(p)]
        elif os.path.isdir(absolute):
            matches = _python_files(absolute, root)
        elif os.path.isfile(absolute):
            matches = [os.path.relpath(absolute, root)]
        else:
            matches = []
        if not matches:
            raise FlytebuildError(
                f"{owner}: dependency `{pattern}` matches no files",
                file=self.project.config_file,
                fix="list existing files, directories or globs (relative to the configuration file)",
            )
        return sorted(m.replace(os.sep, "/") for m in matches)

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

    def _image_closure(self, image: ImageConfig, owner: str) -> Closure:
        paths = [p for d in image.dependencies for p in self._expand(d, owner)]
        return self.closure_of_files(paths, image.requirements)

    def image_target(self, image: ImageConfig) -> ImageTarget:
        owner = f"[images.{image.name}]"
        check_image_config(self.project, image)  # before the closure is resolved
        self.requirements.check(image.requirements, owner, self.project.config_file)
        closure = self._image_closure(image, owner)
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
                f"[workflows.{workflow.name}] entrypoint `{workflow.entrypoint}` is not `module:attr` or "
                "`file.py:attr`",
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

    def _text(self, path: str, owner: str, what: str) -> str:
        try:
            with open(os.path.join(self.project.root, path), "rb") as f:
                data = f.read()
        except OSError:
            raise PodTemplateError(
                f"the {what} file `{path}` does not exist",
                target=owner,
                file=self.project.config_file,
                fix="create it, or correct the path (relative to the configuration file)",
            ) from None
        return decode_text(data, path, owner)

    def pod_template_target(self, name: str, origin: str) -> PodTemplateTarget:
        config = self.project.pod_template(name)
        if config is None:
            known = ", ".join(p.name for p in self.project.pod_templates) or "none configured"
            raise FlytebuildError(
                f"{origin} names pod template `{name}`, which is not in [pod_templates]",
                file=self.project.config_file,
                fix=f"use one of: {known}",
            )
        return PodTemplateTarget(
            address=config.name,
            source=PodTemplateSource(config.source, self._text(config.source, config.name, "`source`")),
            overlays=tuple(
                sorted(
                    (env, PodTemplateSource(f, self._text(f, config.name, f"overlay `{env}`")))
                    for env, f in config.overlays
                )
            ),
            values=config.values,
            primary_container_name=config.primary_container_name,
        )

    def workflow_target(
        self, workflow: WorkflowConfig, entrypoint: str, environment: Optional[str] = None
    ) -> WorkflowTarget:
        origin = f"[workflows.{workflow.name}]"
        return WorkflowTarget(
            address=workflow.name,
            entrypoint=entrypoint,
            project=workflow.project,
            domain=workflow.domain,
            image=workflow.image,
            images=workflow.images,
            task_images=workflow.task_images,
            pod_template=self.pod_template_target(workflow.pod_template, f"{origin} pod_template")
            if workflow.pod_template
            else None,
            task_pod_templates=tuple(
                (task, self.pod_template_target(name, f"{origin} task_pod_templates"))
                for task, name in workflow.task_pod_templates
            ),
            environment=environment,  # None: the planner takes Settings.environment
            cache_key=workflow.cache_key,
            task_cache_keys=workflow.task_cache_keys,
        )


class TargetGraph(ProjectGraph):
    """Closures from a build system's graph (the Bazel rules' aspect) instead of import analysis:
    a file's closure is the transitive closure of the targets owning it, as in Pants."""

    def __init__(self, project: Project, installed: Optional[Mapping[str, Sequence[str]]] = None) -> None:
        assert project.targets is not None
        self.project = project
        self.requirements = load_requirements(project.root, project.requirements_file, project.lockfile)
        self.targets = {t.label: t for t in project.targets}
        self.owners: Dict[str, List[str]] = {}
        for t in project.targets:
            for src in t.srcs:
                self.owners.setdefault(src, []).append(t.label)
        modules: Dict[str, Tuple[str, ...]] = {}
        module_of: Dict[str, str] = {}
        for path in sorted(self.owners):
            module = _module_name(path, project.source_roots)
            if module:
                module_of[path] = module
                modules[module] = tuple(sorted({*modules.get(module, ()), path}))
        self.index = ModuleIndex(os.path.abspath(project.root), project.source_roots, modules, module_of)
        self._digests: Dict[str, str] = {}
        self._cache = _stat_cache(project.root)
        self._memo: Dict[str, Tuple[frozenset, frozenset]] = {}

    def use_installed(self, installed: Optional[Mapping[str, Sequence[str]]]) -> None:
        pass  # requirements are edges of the graph; nothing to map

    def _transitive(self, label: str, owner: str) -> Tuple[frozenset, frozenset]:
        if label in self._memo:
            return self._memo[label]
        files: set = set()
        requirements: set = set()
        stack, seen = [label], set()
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            target = self.targets.get(current)
            if target is None:
                raise FlytebuildError(
                    f"{owner} depends on {current}, which the build graph does not describe",
                    file=self.project.config_file,
                    fix="this is a bug of the build-system rules that wrote the file; please report it",
                )
            files.update(target.srcs)
            requirements.update(requirement_name(r) for r in target.requirements)
            stack.extend(target.deps)
        self._memo[label] = (frozenset(files), frozenset(requirements))
        return self._memo[label]

    def _closure_of_labels(self, labels: Iterable[str], owner: str, extra: Iterable[str] = ()) -> Closure:
        files: set = set()
        requirements = {requirement_name(r) for r in extra}
        for label in labels:
            f, r = self._transitive(label, owner)
            files |= f
            requirements |= r
        self.requirements.check(requirements, owner, self.project.config_file)
        names = sorted(requirements)
        return Closure(sources=self.digests(files), requirements=tuple(names), pins=self.requirements.pins(names))

    def closure_of_source_file(self, path: str) -> Closure:
        owners = self.owners.get(path)
        if not owners:
            return Closure()
        return self._closure_of_labels(sorted(owners), path)

    def _image_closure(self, image: ImageConfig, owner: str) -> Closure:
        return self._closure_of_labels(image.dependencies, image.name, image.requirements)


def _module_name(path: str, source_roots: Sequence[str]) -> Optional[str]:
    """`a/b/c.py` under source root `a` → `b.c` (the longest matching root wins)."""
    if not path.endswith((".py", ".pyi")):
        return None
    for root in sorted(source_roots, key=len, reverse=True):
        if root and not path.startswith(root + "/"):
            continue
        rel = path[len(root) + 1 :] if root else path
        parts = rel.rsplit(".", 1)[0].split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts and all(p.isidentifier() for p in parts):
            return ".".join(parts)
        return None
    return None


def _python_files(directory: str, root: str) -> List[str]:
    """The Python files under `directory`, relative to `root`: relpath once per directory (per file it costs more
    than the walk)."""
    out: List[str] = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if walked(d))
        rel = os.path.relpath(dirpath, root)
        out += [f if rel == os.curdir else os.path.join(rel, f) for f in filenames if f.endswith((".py", ".pyi"))]
    return out


def project_graph(project: Project) -> ProjectGraph:
    return TargetGraph(project) if project.targets is not None else ProjectGraph(project)


def image_config_problems(image: ImageConfig) -> List[validate.Problem]:
    return list(_image_config_problems(image))


@functools.lru_cache(maxsize=None)
def _image_config_problems(image: ImageConfig) -> Tuple[validate.Problem, ...]:
    # memoized (the table is a frozen value): planning checks an image once per workflow that names it
    problems = validate.image_problems(
        image_name=image.image_name, base=image.base, registry=image.registry, repository=image.repository,
        python=image.python, env=image.env, repository_defaulted=image.repository == image.image_name,
    )
    reason = dist_name_problem(image.name)
    if reason:
        problems.insert(0, validate.Problem("name", image.name, reason, "use a plain table name such as [images.app]"))
    return tuple(problems)


def dist_name_problem(name: str):
    """Target names become `<dist>/<dist_name>/` (a Bazel label `//demo:wf` becomes `demo.wf`)."""
    from flytebuild.cli.registration import dist_name

    return validate.name_problem(dist_name(name))


def check_image_config(project: Project, image: ImageConfig) -> None:
    """A flytebuild.toml [images.NAME] table, worded for that file."""
    def describe(field: str) -> str:
        # as check_workflow_config words a bad table name: quoted, as TOML needs it
        return f'the table name [images."{image.name}"]' if field == "name" else f"`{field}` in [images.{image.name}]"

    validate.raise_problems(image_config_problems(image), image.name, describe, project.config_file, "image")
