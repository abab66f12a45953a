"""`flytebuild.toml` (or `[tool.flytebuild]` in pyproject.toml): the CLI's build configuration.

It declares what Pants learns from BUILD files and `[flyte]`: source roots, the user's Python,
the requirements/lockfile, and `flyte_image` / `flyte_workflow` targets with the same fields.
Paths are relative to the directory of the file holding the configuration; `root` names the
repository root that plans and fingerprints are relative to (default: that same directory), so a
configuration kept in a subdirectory gives the same versions as Pants or Bazel on the same repo.
"""
from __future__ import annotations

import glob
import json
import os
import sys
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

from flytebuild.core import validate
from flytebuild.core.errors import DEFAULT_USER_CODE_TIMEOUT, FlytebuildError
from flytebuild.core.settings import (
    CACHE_KEY_POLICIES,
    DEFAULT_ADMIN_TIMEOUT,
    DEFAULT_BASE,
    DEFAULT_DOMAIN,
    DEFAULT_PROJECT,
    DEFAULT_REGISTRY,
    AdminSettings,
    Settings,
)
from flytebuild.oci.base_source import is_local, split_local


def _tomllib():
    # Imported on use: generated JSON configurations (the Bazel rules') need no TOML reader.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # 3.9/3.10: pyproject declares tomli for them
        import tomli as tomllib
    return tomllib


# core.settings' defaults, which the `[flyte]` subsystem uses too, so both agree.
DEFAULTS = {
    "default_base": DEFAULT_BASE,
    "registry": DEFAULT_REGISTRY,
    "project": DEFAULT_PROJECT,
    "domain": DEFAULT_DOMAIN,
}
DEFAULT_IMAGE_PYTHON = "/usr/bin/python3"  # flyte_image `python` field default


@dataclass(frozen=True)
class ImageConfig:
    name: str  # the target's address in plans
    image_name: str
    base: str
    registry: Optional[str]
    repository: str
    dependencies: Tuple[str, ...]  # first-party paths / globs, repo-relative
    requirements: Tuple[str, ...]
    env: Tuple[Tuple[str, str], ...]
    python: Optional[str]


@dataclass(frozen=True)
class WorkflowConfig:
    name: str
    entrypoint: str  # as written
    project: str
    domain: str
    image: Optional[str]
    images: Tuple[Tuple[str, str], ...]
    task_images: Tuple[Tuple[str, str], ...]
    pod_template: Optional[str] = None  # a [pod_templates.*] name
    task_pod_templates: Tuple[Tuple[str, str], ...] = ()
    cache_key: str = "interface"
    task_cache_keys: Tuple[Tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PodTemplateConfig:
    name: str
    source: str  # repo-relative
    overlays: Tuple[Tuple[str, str], ...]  # (environment, repo-relative file)
    values: Tuple[Tuple[str, str], ...]
    primary_container_name: Optional[str]


@dataclass(frozen=True)
class ReferenceConfig:
    """A `flyte_reference`: an entity registered on the cluster, run with `flytebuild run`."""

    name: str
    kind: str  # task | workflow | launch_plan
    entity_name: str
    version: Optional[str]  # None: the latest registered
    project: str
    domain: str
    default_inputs: Tuple[Tuple[str, str], ...]


@dataclass(frozen=True)
class TargetFacts:
    """A build-graph node handed over by a build system (the Bazel rules' aspect)."""

    label: str
    srcs: Tuple[str, ...]  # repo-relative
    deps: Tuple[str, ...]  # labels
    requirements: Tuple[str, ...]


@dataclass(frozen=True)
class Project:
    config_file: str  # absolute
    directory: str  # absolute: config paths are relative to it
    root: str  # absolute: plan paths are relative to it
    source_roots: Tuple[str, ...]  # repo-relative
    python: Optional[str]  # the user's interpreter (absolute or a command on PATH)
    requirements_file: Optional[str]  # repo-relative
    lockfile: Optional[str]  # repo-relative
    module_mapping: Tuple[Tuple[str, Tuple[str, ...]], ...]
    settings: Settings  # project/domain/registry/default base+image/environment/admin: built here only
    images: Tuple[ImageConfig, ...]
    workflows: Tuple[WorkflowConfig, ...]
    # package's [flyte] image options
    image_cache_dir: Optional[str] = None  # absolute
    image_push_jobs: int = 4
    # A build graph from a build system: closures come from it instead of import analysis, and
    # image `dependencies` are its labels.
    targets: Optional[Tuple[TargetFacts, ...]] = None
    pod_templates: Tuple[PodTemplateConfig, ...] = ()
    references: Tuple[ReferenceConfig, ...] = ()
    # seconds a process running the user's code may take (FLYTEBUILD_USER_CODE_TIMEOUT wins)
    user_code_timeout: int = DEFAULT_USER_CODE_TIMEOUT

    def reference(self, name: str) -> Optional[ReferenceConfig]:
        return next((r for r in self.references if r.name == name), None)

    def pod_template(self, name: str) -> Optional[PodTemplateConfig]:
        return next((p for p in self.pod_templates if p.name == name), None)

    def repo_path(self, config_path: str) -> str:
        """A path written in the configuration, as a repo-relative path."""
        absolute = os.path.normpath(os.path.join(self.directory, config_path))
        rel = os.path.relpath(absolute, self.root)
        if rel == ".." or rel.startswith(".." + os.sep):
            raise FlytebuildError(
                f"`{config_path}` lies outside the repository root {self.root}",
                file=self.config_file,
                fix="keep sources under `root`, or move `root` up",
            )
        return "" if rel == "." else rel.replace(os.sep, "/")

    def image(self, name: str) -> Optional[ImageConfig]:
        return next((i for i in self.images if i.name == name), None)


def find_config(start: str) -> str:
    """The nearest flytebuild.toml, or pyproject.toml with `[tool.flytebuild]`, at or above `start`."""
    directory = os.path.abspath(start)
    while True:
        candidate = os.path.join(directory, "flytebuild.toml")
        if os.path.isfile(candidate):
            return candidate
        candidate = os.path.join(directory, "pyproject.toml")
        if os.path.isfile(candidate) and "flytebuild" in (_read_toml(candidate).get("tool") or {}):
            return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            raise FlytebuildError(
                f"No flytebuild.toml (or pyproject.toml with [tool.flytebuild]) in {os.path.abspath(start)} "
                "or any parent directory",
                fix="run `flytebuild init` in your project to write one, or pass --config",
            )
        directory = parent


def _read_toml(path: str) -> Dict[str, Any]:
    try:
        with open(path, "rb") as f:
            if path.endswith(".json"):
                return json.load(f)
            tomllib = _tomllib()
            try:
                return tomllib.load(f)
            except tomllib.TOMLDecodeError as e:
                raise FlytebuildError(f"{path} is not valid TOML: {e}", file=path, fix="fix the TOML syntax") from None
    except OSError as e:
        raise FlytebuildError(f"Cannot read {path}: {e.strerror}", file=path) from None
    except ValueError as e:
        raise FlytebuildError(f"{path} is not valid JSON: {e}", file=path) from None


_TOP_KEYS = {
    "root", "source_roots", "python", "requirements", "lockfile", "module_mapping", "default_image",
    "default_base", "registry", "project", "domain", "images", "workflows",
    "endpoint", "insecure", "config", "admin_timeout", "ledger", "image_cache_dir", "image_push_jobs",
    "relative_to_root", "targets", "pod_templates", "environment", "references", "user_code_timeout",
}
_REFERENCE_KEYS = {"kind", "entity_name", "version", "project", "domain", "default_inputs"}
_POD_TEMPLATE_KEYS = {"source", "overlays", "values", "primary_container_name"}
_TARGET_KEYS = {"srcs", "deps", "requirements"}
_IMAGE_KEYS = {"image_name", "base", "registry", "repository", "dependencies", "requirements", "env", "python"}
_WORKFLOW_KEYS = {
    "entrypoint", "image", "images", "task_images", "project", "domain", "pod_template", "task_pod_templates",
    "cache_key",
}


class _Reader:
    """Typed access to one table, with errors that name the file and the key."""

    def __init__(self, data: Mapping[str, Any], where: str, file: str, allowed: set) -> None:
        self.data, self.where, self.file = data, where, file
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise FlytebuildError(
                f"Unknown key{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))} in {where}",
                file=file,
                fix=f"use only {', '.join(sorted(allowed))}",
            )

    def _bad(self, key: str, expected: str) -> FlytebuildError:
        return FlytebuildError(
            f"`{key}` in {self.where} must be {expected}, not {type(self.data[key]).__name__}",
            file=self.file,
            fix=f"write `{key}` as {expected}",
        )

    def str(self, key: str, default: Optional[str] = None) -> Optional[str]:
        value = self.data.get(key, default)
        if value is not None and not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def strs(self, key: str) -> Tuple[str, ...]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._bad(key, "a list of strings")
        return tuple(value)

    def str_map(self, key: str) -> Tuple[Tuple[str, str], ...]:
        value = self.data.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self._bad(key, "a table of strings")
        return tuple(sorted(value.items()))

    def bool(self, key: str) -> Optional[bool]:
        value = self.data.get(key)
        if value is not None and not isinstance(value, bool):
            raise self._bad(key, "true or false")
        return value

    def int(self, key: str, default: int) -> int:
        value = self.data.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise self._bad(key, "a positive integer")
        return value

    def tables(self, key: str) -> Dict[str, Mapping[str, Any]]:
        value = self.data.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise self._bad(key, "a table of tables")
        return value


def load_project(path: str) -> Project:
    path = os.path.abspath(path)
    data = _read_toml(path)
    where = "flytebuild.toml"
    if os.path.basename(path) == "pyproject.toml" or "tool" in data:
        data = (data.get("tool") or {}).get("flytebuild")
        where = "[tool.flytebuild]"
        if not isinstance(data, dict):
            raise FlytebuildError(
                f"{path} has no [tool.flytebuild] table", file=path, fix="add [tool.flytebuild] or use flytebuild.toml"
            )
    top = _Reader(data, where, path, _TOP_KEYS)
    directory = os.path.dirname(path)
    root = os.path.normpath(os.path.join(directory, top.str("root") or "."))
    if not os.path.isdir(root):
        raise FlytebuildError(f"`root` {root} is not a directory", file=path, fix="point `root` at the repository root")
    if top.bool("relative_to_root"):
        directory = root  # generated files (Bazel) write every path relative to the root
    targets = None
    if "targets" in top.data:
        targets = []
        for label, table in sorted(top.tables("targets").items()):
            t = _Reader(table, f"targets[{label!r}]", path, _TARGET_KEYS)
            targets.append(TargetFacts(label, t.strs("srcs"), t.strs("deps"), t.strs("requirements")))
        targets = tuple(targets)
    partial = Project(
        config_file=path, directory=directory, root=root, source_roots=(), python=None,
        requirements_file=None, lockfile=None, module_mapping=(), settings=Settings(), images=(), workflows=(),
    )
    repo = partial.repo_path

    mapping = top.data.get("module_mapping", {})
    if not isinstance(mapping, dict) or not all(
        isinstance(v, list) and all(isinstance(m, str) for m in v) for v in mapping.values()
    ):
        raise top._bad("module_mapping", 'a table of module lists (`PyYAML = ["yaml"]`)')

    defaults = {k: top.str(k, v) for k, v in DEFAULTS.items()}

    def base(value: str) -> str:
        # oci:/docker-archive: paths are written relative to this file; plans hold them relative to the
        # root (as Pants does to the build root), so versions do not depend on where the checkout is.
        if not is_local(value):
            return value
        transport, where, tag = split_local(value)
        rel = repo(where) if not os.path.isabs(os.path.expanduser(where)) else where
        return f"{transport}{rel or '.'}" + (f":{tag}" if tag else "")

    defaults["default_base"] = base(defaults["default_base"])
    images = []
    for name, table in sorted(top.tables("images").items()):
        img = _Reader(table, f"[images.{name}]", path, _IMAGE_KEYS)
        image_name = img.str("image_name") or name
        images.append(
            ImageConfig(
                name=name,
                image_name=image_name,
                base=base(img.str("base") or defaults["default_base"]),
                registry=img.str("registry") or defaults["registry"],
                repository=img.str("repository") or image_name,
                dependencies=img.strs("dependencies") if targets is not None
                else tuple(_repo_glob(repo, d) for d in img.strs("dependencies")),
                requirements=img.strs("requirements"),
                env=img.str_map("env"),
                python=img.str("python", DEFAULT_IMAGE_PYTHON),
            )
        )
    workflows = []
    for name, table in sorted(top.tables("workflows").items()):
        wf = _Reader(table, f"[workflows.{name}]", path, _WORKFLOW_KEYS)
        entrypoint = wf.str("entrypoint")
        if not entrypoint:
            raise FlytebuildError(
                f"[workflows.{name}] has no `entrypoint`",
                file=path,
                fix='set entrypoint = "package.module:workflow" (or "path/to/file.py:workflow")',
            )
        cache_key = wf.data.get("cache_key", "interface")
        per_task = cache_key if isinstance(cache_key, dict) else {}
        per_task_ok = bool(per_task) and all(v in CACHE_KEY_POLICIES for v in per_task.values())
        if not (cache_key in CACHE_KEY_POLICIES or per_task_ok):
            raise FlytebuildError(
                f"`cache_key` in [workflows.{name}] is {cache_key!r}",
                file=path,
                fix='use "interface" or "code", or a table of task name to one of them',
            )
        workflows.append(
            WorkflowConfig(
                name=name,
                entrypoint=entrypoint,
                project=wf.str("project") or defaults["project"],
                domain=wf.str("domain") or defaults["domain"],
                image=wf.str("image"),
                images=wf.str_map("images"),
                task_images=wf.str_map("task_images"),
                pod_template=wf.str("pod_template"),
                task_pod_templates=wf.str_map("task_pod_templates"),
                cache_key=cache_key if isinstance(cache_key, str) else "interface",
                task_cache_keys=tuple(sorted(per_task.items())),
            )
        )
    pod_templates = []
    for name, table in sorted(top.tables("pod_templates").items()):
        pt = _Reader(table, f"[pod_templates.{name}]", path, _POD_TEMPLATE_KEYS)
        source = pt.str("source")
        if not source:
            raise FlytebuildError(
                f"[pod_templates.{name}] has no `source`", file=path, fix='set source = "path/to/pod.yaml"'
            )
        pod_templates.append(
            PodTemplateConfig(
                name=name,
                source=repo(source),
                overlays=tuple((env, repo(f)) for env, f in pt.str_map("overlays")),
                values=pt.str_map("values"),
                primary_container_name=pt.str("primary_container_name"),
            )
        )
    references = []
    for name, table in sorted(top.tables("references").items()):
        ref = _Reader(table, f"[references.{name}]", path, _REFERENCE_KEYS)
        kind, entity_name = ref.str("kind"), ref.str("entity_name")
        project, domain = ref.str("project") or defaults["project"], ref.str("domain") or defaults["domain"]
        # The checks (and words) Pants gives a flyte_reference, here at load time: a bad id never reaches FlyteAdmin.
        validate.check_reference(name, kind=kind, entity_name=entity_name, project=project, domain=domain,
                                 describe=lambda f, name=name: f"`{f}` in [references.{name}]", file=path)
        references.append(
            ReferenceConfig(
                name=name,
                kind=kind,
                entity_name=entity_name,
                version=ref.str("version"),
                project=project,
                domain=domain,
                default_inputs=ref.str_map("default_inputs"),
            )
        )
    known_templates = {t.name for t in pod_templates}
    for w in workflows:
        for ref in [w.pod_template] + [v for _, v in w.task_pod_templates]:
            if ref is not None and ref not in known_templates:
                raise FlytebuildError(
                    f"[workflows.{w.name}] names pod template `{ref}`, which is not configured",
                    file=path,
                    fix=f"add [pod_templates.{ref}] or use one of: {', '.join(sorted(known_templates)) or 'none'}",
                )
    names = {i.name for i in images}
    clash = sorted(
        (names & {w.name for w in workflows}) | ({r.name for r in references} & (names | {w.name for w in workflows}))
    )
    if clash:
        raise FlytebuildError(
            f"{', '.join(clash)} names more than one target (image, workflow, reference)",
            file=path,
            fix="give targets distinct names",
        )
    requirements_file = top.str("requirements")
    lockfile = top.str("lockfile")
    return Project(
        config_file=path,
        directory=directory,
        root=root,
        source_roots=tuple(repo(r) for r in (top.strs("source_roots") or (".",))),
        python=_python(top.str("python"), directory, path),
        requirements_file=repo(requirements_file) if requirements_file else None,
        lockfile=repo(lockfile) if lockfile else None,
        module_mapping=tuple(sorted((k, tuple(v)) for k, v in mapping.items())),
        settings=Settings(
            project=defaults["project"],
            domain=defaults["domain"],
            registry=defaults["registry"],
            default_base=defaults["default_base"],
            default_image=top.str("default_image"),
            # FLYTEBUILD_ENVIRONMENT wins over the configuration (as --flyte-environment does)
            environment=os.environ.get("FLYTEBUILD_ENVIRONMENT") or top.str("environment"),
            admin=AdminSettings(
                endpoint=top.str("endpoint"),
                insecure=top.bool("insecure"),  # unset: the flytekit config decides, TLS without one
                config=os.path.join(directory, os.path.expanduser(top.str("config"))) if top.str("config") else None,
                timeout=top.int("admin_timeout", DEFAULT_ADMIN_TIMEOUT),
                ledger=top.bool("ledger") is not False,
            ),
        ),
        images=tuple(images),
        workflows=tuple(workflows),
        image_cache_dir=os.path.join(directory, os.path.expanduser(top.str("image_cache_dir")))
        if top.str("image_cache_dir")
        else None,
        image_push_jobs=top.int("image_push_jobs", 4),
        targets=targets,
        pod_templates=tuple(pod_templates),
        references=tuple(references),
        user_code_timeout=_timeout(top.int("user_code_timeout", DEFAULT_USER_CODE_TIMEOUT), path),
    )


def _timeout(configured: int, config_file: str) -> int:
    value = os.environ.get("FLYTEBUILD_USER_CODE_TIMEOUT")
    if value is None:
        return configured
    if not value.isdigit() or int(value) <= 0:
        raise FlytebuildError(f"FLYTEBUILD_USER_CODE_TIMEOUT is {value!r}", file=config_file,
                              fix="set it to a positive number of seconds, or unset it")
    return int(value)


def _repo_glob(repo, pattern: str) -> str:
    # Globs keep their wildcards; only the directory part has to be inside the root.
    return repo(pattern.rstrip("/")) if pattern not in (".", "./") else repo(".")


def _python(value: Optional[str], directory: str, config_file: str) -> Optional[str]:
    """The user's interpreter: a path (globs allowed, e.g. a Pants export) or a command on PATH."""
    override = os.environ.get("FLYTEBUILD_PYTHON")
    if override:
        if os.sep not in override and "/" not in override:
            return override  # a command, found on PATH when run
        path = os.path.abspath(os.path.expanduser(override))  # relative to where the CLI was started
        if not os.path.exists(path):
            raise FlytebuildError(
                f"FLYTEBUILD_PYTHON={override!r} is not an existing interpreter",
                fix="set FLYTEBUILD_PYTHON to your environment's interpreter (e.g. .venv/bin/python), or unset it "
                f"to use `python` from {config_file}",
            )
        return path
    if not value:
        return None
    if os.sep not in value and "/" not in value:
        return value  # a command, found on PATH when run
    pattern = os.path.join(directory, os.path.expanduser(value))
    matches = sorted(glob.glob(pattern)) if any(c in value for c in "*?[") else [pattern]
    if len(matches) != 1 or not os.path.exists(matches[0]):
        found = f" (matches: {', '.join(matches)})" if len(matches) > 1 else ""
        raise FlytebuildError(
            f"`python = {value!r}` does not name exactly one existing interpreter{found}",
            file=config_file,
            fix="point `python` at your environment's interpreter (e.g. .venv/bin/python), or set FLYTEBUILD_PYTHON",
        )
    return os.path.abspath(matches[0])
