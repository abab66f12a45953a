"""Plan a workflow: per task the image (and why), baked/fast/container mode, and versions.

Pure function of build-graph facts and the introspection; adapters gather, core decides.
"""
from __future__ import annotations

import functools
import re
from dataclasses import replace
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from flytebuild.core import fingerprint as fp
from flytebuild.core import pod_templates as pods
from flytebuild.core.errors import PlanError
from flytebuild.core.imagespec import spec_conflicts, spec_digest, spec_images, spec_key, uses_spec
from flytebuild.core.introspection import Introspection, Task, Workflow
from flytebuild.core.lockfile import canonical_name
from flytebuild.core.model import (
    Closure,
    EntityPlan,
    ExternalImage,
    FileDigest,
    ImagePlan,
    ImageTarget,
    NodePodTemplate,
    PodTemplateTarget,
    ReferencePlan,
    SpecImage,
    TaskPlan,
    WorkflowPlan,
    WorkflowTarget,
)
from flytebuild.core.settings import CACHE_KEY_POLICIES, Settings

Image = Union[ImageTarget, ExternalImage, SpecImage]

FLYTEKIT_DEFAULT_IMAGE = "cr.flyte.org/flyteorg/flytekit:py{python}-{version}"

# `{{.image.NAME.fqn}}:{{.image.NAME.version}}` — flytekit's image template.
_TEMPLATE = re.compile(r"\{\{\s*\.image\.([A-Za-z0-9_.-]+?)\.(?:fqn|version|image)\s*\}\}")


# ---------------------------------------------------------------------------------------------
# Images


def plan_image(image: ImageTarget) -> ImagePlan:
    fingerprint = fp.image_fingerprint(image)
    version = fp.version_of(fingerprint)
    warnings = []
    if "flytekit" not in {canonical_name(r) for r in image.requirements}:
        warnings.append("no flytekit requirement: tasks can run from it only as raw containers")
    return ImagePlan(
        address=image.address,
        name=image.image_name,
        fingerprint=fingerprint,
        version=version,
        ref=f"{image.repository_ref}:{version}",
        base=image.base,
        python=image.python,
        env=tuple(sorted(image.env)),
        sources=image.source_paths,
        requirements=tuple(sorted({canonical_name(r) for r in image.requirements})),
        pins=tuple(sorted(set(image.pins))),
        warnings=tuple(warnings),
    )


def _lookup(address: str, images: Mapping[str, ImageTarget]) -> Optional[ImageTarget]:
    # Adapters spell root-level addresses `//:name` and others `path:name`; accept both.
    for candidate in (address, address[2:] if address.startswith("//") else "//" + address):
        if candidate in images:
            return images[candidate]
    return None


class _ImageChooser:
    """Image choice per task, first match wins (recorded as `image_source`)."""

    def __init__(
        self,
        target: WorkflowTarget,
        images: Mapping[str, ImageTarget],
        default_image: Optional[str],
        python_version: Optional[str],
        flytekit_version: Optional[str],
    ) -> None:
        self.target = target
        self.images = images
        self.default_image = default_image
        self.python_version = python_version
        self.flytekit_version = flytekit_version
        self.named = dict(target.images)
        self.task_images = dict(target.task_images)
        self.spec_images: Mapping[str, SpecImage] = {}

    def _address(self, address: str, field: str) -> ImageTarget:
        image = _lookup(address, self.images)
        if image is None:
            raise PlanError(
                f"The image `{address}` given in `{field}` is not a known flyte_image target",
                target=self.target.address,
                fix=f"point `{field}` of {self.target.address} at a flyte_image target (or check its spelling)",
            )
        return image

    def _by_name(self, name: str) -> Optional[ImageTarget]:
        if name in self.named:
            return self._address(self.named[name], f"images[{name!r}]")
        matches = sorted(
            (img for img in self.images.values() if img.image_name == name), key=lambda i: i.address
        )
        # The same target may be reachable under two spellings of its address.
        unique = {m.address.lstrip("/"): m for m in matches}
        if len(unique) > 1:
            raise PlanError(
                f"Image name `{name}` used in code matches several flyte_image targets "
                f"({', '.join(sorted(unique))})",
                target=self.target.address,
                fix=f'map it in images={{"{name}": "<address>"}} on {self.target.address}',
            )
        return next(iter(unique.values()), None)

    def answer_spec(self, task: Task) -> Tuple[Optional[ImageTarget], List[str]]:
        """The flyte_image standing for a task's ImageSpec, if any: the one `images=` maps its name to, else the
        one whose image_name is its name, unless the spec asks for something that target would silently drop
        (then the spec is built from its own content)."""
        name, spec = task.image.name, task.image.spec or {}
        if not name:
            return None, []
        if name in self.named:
            image = self._address(self.named[name], f"images[{name!r}]")
            reasons = spec_conflicts(spec, image)
            return image, ([
                f"ImageSpec `{name}` of task {task.name} is mapped to {image.address} by images=, which replaces "
                f"what the spec asks for: {'; '.join(reasons)}"
            ] if reasons else [])
        image = self._by_name(name)
        if image is None:
            return None, []
        reasons = spec_conflicts(spec, image)
        if reasons:
            return None, [
                f"flyte_image {image.address} has image_name `{name}`, but the ImageSpec of task {task.name} "
                f"asks for something else ({'; '.join(reasons)}): flytebuild builds the spec from its own fields; "
                f'map it with images={{"{name}": "{image.address}"}} to use the flyte_image anyway'
            ]
        return image, []

    def choose(self, task: Task) -> Tuple[Image, str, List[str]]:
        use = task.image
        kind, name = use.kind, use.name
        if kind == "string" and use.value:
            match = _TEMPLATE.search(use.value)
            if match:  # a template the runtime did not classify
                kind, name = "template", match.group(1)
        if kind == "template" and name and name != "default":
            image = self._by_name(name)
            if image is None:
                raise PlanError(
                    f"Task `{task.name}` uses image `{name}` in code, and no flyte_image has image_name `{name}`",
                    target=self.target.address,
                    file=task.source_file,
                    fix=f'add flyte_image(image_name="{name}") or map it in images={{"{name}": "<address>"}} '
                    f"on {self.target.address}",
                )
            return image, "code", []
        if kind == "image_spec" and name:
            image, warnings = self.answer_spec(task)
            if image is not None:
                return image, "code", warnings
            built = self.spec_images.get(spec_key(use.spec)) if use.spec else None
            if built is not None:
                # An image node of the plan, built by flytebuild: the content tag is known now.
                if not built.sources and not built.copies and task.kind != "container":
                    warnings.append(
                        f"ImageSpec {name} sets neither source_root nor copy: its image holds no code, "
                        "so the task's code ships in a bundle"
                    )
                return built, "code:ImageSpec", warnings
            ref = use.value or _image_spec_ref(name, use.spec)
            spec = fp.canonical_json(use.spec).decode("utf-8") if use.spec else None
            return (
                ExternalImage(ref, spec),
                "code:ImageSpec",
                [
                    f"ImageSpec {name} has no flyte_image target; its contents are not known to "
                    f"the build graph — add flyte_image(image_name={name!r})"
                ],
            )
        if kind == "string" and use.value:
            return ExternalImage(use.value), "code", []
        # No image in code (or the `default` template): the build configuration decides.
        mapped = self.task_images.get(task.name) or self.task_images.get(_short(task.name))
        if mapped:
            return self._address(mapped, f"task_images[{task.name!r}]"), "task_images", []
        if self.target.image:
            return self._address(self.target.image, "image"), "workflow", []
        if self.default_image:
            image = _lookup(self.default_image, self.images)
            if image is not None:
                return image, "default_image", []
            if self.default_image.startswith("//"):
                raise PlanError(
                    f"[flyte] default_image `{self.default_image}` is not a known flyte_image target",
                    target=self.target.address,
                    fix="set [flyte].default_image to a flyte_image address or an image reference",
                )
            # Anything else is a reference to an image we do not build (e.g. `ghcr.io/org/img:tag`).
            return ExternalImage(self.default_image), "default_image", []
        ref = FLYTEKIT_DEFAULT_IMAGE.format(
            python=self.python_version or "3.11", version=self.flytekit_version or "latest"
        )
        return (
            ExternalImage(ref),
            "flytekit_default",
            [f"no image configured: using {ref}; set image= on {self.target.address} or [flyte] default_image"],
        )


def unmatched_spec_tasks(target: WorkflowTarget, intro: Introspection, images: Mapping[str, ImageTarget]) -> List[Task]:
    """Tasks whose ImageSpec in code no flyte_image answers (by name or `images=`, without conflict): flytebuild
    builds those, raw containers included."""
    chooser = _ImageChooser(target, images, None, None, None)
    return [
        t
        for t in intro.tasks
        if uses_spec(t) and t.has_container and t.image.name and chooser.answer_spec(t)[0] is None
    ]


def _short(task_name: str) -> str:
    return task_name.rsplit(".", 1)[-1]


def _image_spec_ref(name: str, spec: Optional[Mapping]) -> str:
    registry = (spec or {}).get("registry")
    return f"{str(registry).rstrip('/')}/{name}" if registry else name


# ---------------------------------------------------------------------------------------------
# Tasks


class _TaskSettings:
    """Per-task pod template and cache-key policy from the workflow target (task mapping first,
    by full or short task name, then the workflow-wide setting)."""

    def __init__(self, target: WorkflowTarget, images: Mapping[str, ImageTarget]) -> None:
        self.target = target
        self.task_templates = dict(target.task_pod_templates)
        self.task_cache_keys = dict(target.task_cache_keys)
        self._images = images

    @functools.cached_property
    def image_refs(self) -> Dict[str, str]:
        """`${images.NAME}`: every flyte_image the workflow knows, by image_name. Only a pod template asks: built
        on first use, so a project's plan does not grow with workflows x images."""
        return {
            img.image_name: f"{img.repository_ref}:{fp.version_of(fp.image_fingerprint(img))}"
            for img in sorted(self._images.values(), key=lambda i: i.address)
        }

    def cache_key(self, task: Task) -> str:
        policy = self.task_cache_keys.get(task.name) or self.task_cache_keys.get(_short(task.name))
        policy = policy or self.target.cache_key
        if policy not in CACHE_KEY_POLICIES:
            raise PlanError(
                f"cache_key `{policy}` for task `{task.name}` is not a known policy",
                target=self.target.address,
                fix=f"use one of {', '.join(CACHE_KEY_POLICIES)}",
            )
        return policy

    def template_target(self, task: Task) -> Tuple[Optional[PodTemplateTarget], str]:
        mapped = self.task_templates.get(task.name) or self.task_templates.get(_short(task.name))
        if mapped is not None:
            return mapped, "task_pod_templates"
        return self.target.pod_template, "workflow"

    def pod_template(
        self, task: Task, image: Image, image_fp: str, code_fp: Optional[str]
    ) -> Tuple[Optional[Dict], Optional[str], Tuple[str, ...]]:
        """(final template, where it came from, files) for one task."""
        tmpl, origin = self.template_target(task)
        rendered, files, sources = None, (), []
        if tmpl is not None:
            is_target = isinstance(image, ImageTarget)
            builtins = pods.builtin_values(
                project=self.target.project,
                domain=self.target.domain,
                environment=self.target.environment,
                workflow=self.target.address,
                task=task.name,
                image=f"{image.repository_ref}:{fp.version_of(image_fp)}" if is_target else image.ref,
                image_name=image.image_name if is_target else task.image.name,
                image_version=fp.version_of(image_fp),
                image_fingerprint=image_fp,
                code_fingerprint=code_fp,
                images=self.image_refs,
            )
            rendered, files = pods.render_target(
                tmpl.source,
                dict(tmpl.overlays),
                dict(tmpl.values),
                builtins,
                self.target.environment,
                primary_container_name=tmpl.primary_container_name,
                target=tmpl.address,
            )
            sources.append(f"{tmpl.address} ({origin})")
        code = task.config.get("pod_template") if isinstance(task.config, Mapping) else None
        if isinstance(code, Mapping) and code.get("pod_spec") is not None:
            sources.append("code")
            where = task.source_file or task.module
            final = pods.with_code_template(
                rendered, code, path=f"{where}: pod_template of task {task.name}", target=self.target.address
            )
        else:
            final = rendered
        return final, (" + ".join(sources) or None), files


def _image_fp(image: Image) -> str:
    return image.fingerprint if isinstance(image, SpecImage) else fp.any_image_fingerprint(image)


def _image_contents(image: Image) -> Optional[Tuple[set, set]]:
    """(first-party files, requirement names) an image holds; None when the build graph does not know (external).

    One rule for every kind of image: a task is baked iff its closure and requirements are in here."""
    if isinstance(image, ImageTarget):
        return set(image.source_paths), {canonical_name(r) for r in image.requirements}
    if isinstance(image, SpecImage):
        return set(image.source_paths), set(image.requirement_names)
    return None


def _no_flytekit_error(task: Task, image: Image, target: str) -> PlanError:
    if isinstance(image, ImageTarget):
        fix = (
            f'add flytekit to the dependencies of {image.address} (e.g. "<requirements target>#flytekit"), '
            "or give the task an image that has it"
        )
    else:
        fix = "add flytekit to the ImageSpec's packages"
    return PlanError(
        f"Task `{task.name}` runs Python code (pyflyte-execute) from image {_display(image)}, which has no flytekit: "
        "the registered task could not start",
        target=target,
        file=task.source_file,
        fix=fix,
    )


# Packages flytekit imports lazily for a type in a task's interface: the build graph never sees an import of
# them, so a closure-only environment (an image, a pex) lacks them unless they are declared.
LAZY_REQUIREMENTS = (("pandas.", "pyarrow", "pandas DataFrames are converted to and from parquet through pyarrow"),)


def _type_names(value: object) -> List[str]:
    out: List[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k in ("type", "name", "class", "python_type", "qualname") and isinstance(v, str):
                out.append(v)
            out.extend(_type_names(v))
    elif isinstance(value, list):
        for v in value:
            out.extend(_type_names(v))
    elif isinstance(value, str):
        out.append(value)
    return out


@functools.lru_cache(maxsize=4096)
def _closure_names(closure: Closure) -> frozenset:
    """Canonical names a closure requires or pins (memoized: the tasks of one module share the closure)."""
    return frozenset({canonical_name(r) for r in closure.requirements} | {
        canonical_name(p.split("==", 1)[0]) for p in closure.pins
    })


def lazy_requirement_error(task: Task, closure: Closure, target: str) -> Optional[PlanError]:
    names = _type_names(task.interface.to_json())
    have = _closure_names(closure)
    for marker, requirement, why in LAZY_REQUIREMENTS:
        if requirement in have or not any(marker in n for n in names):
            continue
        owner = task.source_file or task.module
        return PlanError(
            f"Task `{task.name}` has a {marker.rstrip('.')} type in its interface, and {why}, which flytekit imports "
            f"only when it converts the value: `{requirement}` is not in the task's closure, so its image and "
            "environment would lack it",
            target=target,
            file=task.source_file,
            fix=f"add `{requirement}` to your requirements (and lockfile) and "
            f'dependencies=["<requirements target>#{requirement}"] to the python_source of {owner}',
        )
    return None


def _plan_task(
    task: Task,
    chooser: _ImageChooser,
    closures: Mapping[str, Closure],
    settings: _TaskSettings,
) -> TaskPlan:
    closure = Closure()
    warnings: List[str] = []
    if not task.has_container:
        return _plan_containerless(task, settings)
    image, source, image_warnings = chooser.choose(task)
    warnings.extend(image_warnings)
    image_fp = _image_fp(image)
    is_target = isinstance(image, ImageTarget)

    if task.source_file is not None:
        if task.source_file in closures:
            closure = closures[task.source_file]
        elif task.kind != "container":
            warnings.append(f"no build-graph closure for {task.source_file}: its code is not tracked")

    sources: Tuple[str, ...] = ()
    requirements: Tuple[str, ...] = ()
    missing_sources: Tuple[str, ...] = ()
    missing_requirements: Tuple[str, ...] = ()
    if task.kind == "container":
        # A raw container runs its image's command: nothing to bake, nothing to bundle, and its
        # Python module's content is not part of what runs.
        mode = "container"
        if task.image.kind == "none" or (task.image.kind == "template" and task.image.name == "default"):
            warnings.append(f"container task has no image in code: falls back to {source} image {_display(image)}")
        code_fp = image_fp  # what runs is the image's command
    else:
        lazy = lazy_requirement_error(task, closure, chooser.target.address)
        if lazy is not None:
            raise lazy
        sources = closure.source_paths
        requirements = tuple(sorted({canonical_name(r) for r in closure.requirements}))
        contents = _image_contents(image)
        baked_sources, baked_reqs = contents if contents is not None else (set(), set())
        if contents is not None and "flytekit" not in baked_reqs:
            raise _no_flytekit_error(task, image, chooser.target.address)
        missing_sources = tuple(p for p in sources if p not in baked_sources)
        missing_requirements = tuple(r for r in requirements if r not in baked_reqs)
        mode = "baked" if contents is not None and not missing_sources and not missing_requirements else "fast"
        if mode == "fast" and contents is not None and missing_requirements:
            warnings.append(
                f"requirements not in image {_display(image)}: {', '.join(missing_requirements)} "
                "(fast-register ships code only)"
            )
        code_fp = fp.closure_value_fingerprint(closure)

    pod_template, pod_source, pod_files = settings.pod_template(task, image, image_fp, code_fp)
    task_fp = fp.task_fingerprint(task, None if task.kind == "container" else closure, image_fp, pod_template)
    cache_key = settings.cache_key(task)

    if task.cache.enabled and not task.interface.outputs:
        warnings.append(CACHE_NO_OUTPUTS_WARNING)

    return TaskPlan(
        name=task.name,
        module=task.module,
        kind=task.kind,
        task_type=task.task_type,
        source_file=task.source_file,
        image=_display(image),
        image_name=image.image_name if is_target else task.image.name,
        image_source=source,
        image_address=image.address if is_target else None,
        # finished for every task, so no front end recomputes it: a flyte_image's content tag
        image_ref=f"{image.repository_ref}:{fp.version_of(image_fp)}" if is_target else image.ref,
        image_fingerprint=image_fp,
        mode=mode,
        fingerprint=task_fp,
        version=fp.version_of(task_fp),
        sources=sources,
        requirements=requirements,
        missing_sources=missing_sources,
        missing_requirements=missing_requirements,
        cache_version=fp.cache_version(task, code_fp if cache_key == "code" else None),
        warnings=tuple(warnings),
        pod_template=None if pod_template is None else pods.canonical_json(pod_template),
        pod_template_source=pod_source,
        pod_template_files=pod_files,
        cache_key=cache_key,
        image_spec=spec_digest(task.image.spec) if uses_spec(task) else None,
    )


def _plan_containerless(task: Task, settings: _TaskSettings) -> TaskPlan:
    """Echo and other tasks propeller runs itself: no image, no bundle, a version that no image changes."""
    task_fp = fp.task_fingerprint(task, None, "", None)
    cache_key = settings.cache_key(task)
    return TaskPlan(
        name=task.name,
        module=task.module,
        kind=task.kind,
        task_type=task.task_type,
        source_file=task.source_file,
        image="-",
        image_name=None,
        image_source="none",
        image_address=None,
        image_ref=None,
        image_fingerprint="",
        mode="none",
        fingerprint=task_fp,
        version=fp.version_of(task_fp),
        sources=(),
        requirements=(),
        missing_sources=(),
        missing_requirements=(),
        cache_version=fp.cache_version(task, None),
        warnings=(),
        cache_key=cache_key,
    )


def _display(image: Image) -> str:
    return image.address if isinstance(image, ImageTarget) else image.ref


# ---------------------------------------------------------------------------------------------
# Workflows and launch plans


def with_defaults(target: WorkflowTarget, settings: Settings) -> WorkflowTarget:
    """The target with what it leaves unset taken from the settings (front ends pass fields as written)."""
    return replace(
        target,
        project=target.project or settings.project,
        domain=target.domain or settings.domain,
        environment=target.environment if target.environment is not None else settings.environment,
        cache_key=target.cache_key or settings.cache_key,
    )


def _node_refs(workflow: Workflow) -> List[Tuple[str, str]]:
    """(entity_kind, entity) of every node, including nodes nested in the structure.

    Branch nodes carry their cases' nodes inside `structure`; any dict there with both
    `entity_kind` and `entity` is a node whose entity the workflow depends on.
    """
    found = {(n.entity_kind, n.entity) for n in workflow.nodes if n.entity}

    def walk(value: object) -> None:
        if isinstance(value, dict):
            kind, entity = value.get("entity_kind"), value.get("entity")
            if isinstance(kind, str) and isinstance(entity, str):
                found.add((kind, entity))
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(workflow.structure)
    return sorted(found)


def plan_workflow(
    target: WorkflowTarget,
    intro: Introspection,
    closures: Mapping[str, Closure],
    images: Mapping[str, ImageTarget],
    settings: Settings,
    spec_files: Optional[Mapping[str, FileDigest]] = None,
    requirement_files: Optional[Mapping[str, Sequence[str]]] = None,
) -> WorkflowPlan:
    """`spec_files` / `requirement_files`: what `imagespec.spec_lookups(intro.tasks)` asks adapters to read (the
    ImageSpecs' copy candidates that exist, with their digests, and the lines of their requirements files);
    `closures` also holds the closures of copied Python files."""
    target = with_defaults(target, settings)
    chooser = _ImageChooser(target, images, settings.default_image, intro.python_version, intro.flytekit_version)
    chooser.spec_images = spec_images(
        unmatched_spec_tasks(target, intro, images),
        closures,
        settings.default_base,
        settings.registry,
        files=spec_files,
        requirement_files=requirement_files,
        flytekit_version=intro.flytekit_version,
        target=target.address,
    )
    settings = _TaskSettings(target, images)
    tasks = tuple(_plan_task(t, chooser, closures, settings) for t in intro.tasks)
    warnings: List[str] = list(shared_name_warnings(tasks))
    task_names = {t.name for t in intro.tasks} | {_short(t.name) for t in intro.tasks}
    for name, _ in target.task_images:
        if name not in task_names:
            warnings.append(f"task_images names `{name}`, which is not a task of this workflow")
    for field_name, mapping in (
        ("task_pod_templates", target.task_pod_templates),
        ("cache_key", target.task_cache_keys),
    ):
        for name, _ in mapping:
            if name not in task_names:
                warnings.append(f"{field_name} names `{name}`, which is not a task of this workflow")
    node_templates = _node_pod_templates(target, intro, tasks)

    # versions of every entity by `kind:name`; references carry their declared version.
    versions: Dict[str, str] = {f"task:{t.name}": t.version for t in tasks}
    references = {}
    for ref in intro.references:
        versions[f"reference:{ref.name}"] = ref.version
        references.setdefault(ref.name, ref)
    workflows = {w.name: w for w in intro.workflows}
    launch_plans = {lp.name: lp for lp in intro.launch_plans}

    def resolve(kind: str, name: str, owner: str) -> str:
        if kind in ("task", "workflow", "launch_plan"):
            local = {"task": {t.name for t in tasks}, "workflow": workflows, "launch_plan": launch_plans}[kind]
            if name in local:
                return f"{kind}:{name}"
        if name in references and kind in ("reference", references[name].kind):
            return f"reference:{name}"
        raise PlanError(
            f"Introspection of {intro.entrypoint} is inconsistent: `{owner}` uses {kind} `{name}`, "
            "which the introspection does not describe",
            target=target.address,
            fix="this is a flytebuild runtime bug; please report it with the workflow's code",
        )

    # Dependency graph over workflows and launch plans (tasks and references are leaves).
    deps: Dict[str, List[str]] = {}
    for w in intro.workflows:
        deps[f"workflow:{w.name}"] = [
            resolve(kind, entity, w.name)
            for kind, entity in _node_refs(w)
            if kind in ("task", "workflow", "launch_plan", "reference")
        ]
    for lp in intro.launch_plans:
        deps[f"launch_plan:{lp.name}"] = [resolve("workflow", lp.workflow, lp.name)]

    entity_plans: Dict[str, EntityPlan] = {}
    for key in _topological(deps, target.address):
        kind, name = key.split(":", 1)
        children = sorted(set(deps[key]))
        if kind == "workflow":
            w = workflows[name]
            fingerprint = fp.workflow_fingerprint(
                w.name, w.interface.to_json(), dict(w.structure), {c: versions[c] for c in children}
            )
        else:
            lp = launch_plans[name]
            fingerprint = fp.launch_plan_fingerprint(
                lp.name, versions[children[0]], lp.fixed_inputs, lp.default_inputs, lp.config
            )
        versions[key] = fp.version_of(fingerprint)
        entity_plans[key] = EntityPlan(name, kind, fingerprint, versions[key], tuple(children))

    root_kind, root_name = intro.root.kind, intro.root.name
    root_key = f"{root_kind}:{root_name}"
    if root_key not in versions and root_name in references:
        root_key = f"reference:{root_name}"
    if root_key not in versions:
        raise PlanError(
            f"Introspection of {intro.entrypoint} names root {root_kind} `{root_name}` but does not describe it",
            target=target.address,
            fix="this is a flytebuild runtime bug; please report it with the workflow's code",
        )

    return WorkflowPlan(
        address=target.address,
        entrypoint=target.entrypoint or intro.entrypoint,
        project=target.project,
        domain=target.domain,
        root_kind=root_kind,
        root_name=root_name,
        version=versions[root_key],
        tasks=tasks,
        workflows=tuple(p for k, p in sorted(entity_plans.items()) if p.kind == "workflow"),
        launch_plans=tuple(p for k, p in sorted(entity_plans.items()) if p.kind == "launch_plan"),
        references=tuple(ReferencePlan(r.kind, r.name, r.project, r.domain, r.version) for r in intro.references),
        warnings=tuple(warnings),
        node_pod_templates=node_templates,
        environment=target.environment,
        spec_images=tuple(sorted(chooser.spec_images.values(), key=lambda i: (i.name, i.ref))),
    )


def shared_name_warnings(tasks: Sequence[TaskPlan], others: Sequence[TaskPlan] = ()) -> List[str]:
    """One warning per flyte_image that answers ImageSpecs of different content by name: mapping one name must
    never change tasks of unrelated packages silently. `others` are tasks of other workflows (cross-workflow)."""
    by_image: Dict[str, Dict[str, List[TaskPlan]]] = {}
    for t in list(tasks) + list(others):
        if t.image_spec and t.image_address and t.image_source == "code":
            by_image.setdefault(t.image_address, {}).setdefault(t.image_spec, []).append(t)
    out = []
    mine = {t.name for t in tasks}
    for address, specs in sorted(by_image.items()):
        if len(specs) < 2 or not any(t.name in mine for users in specs.values() for t in users):
            continue
        groups = "; ".join(
            f"{', '.join(sorted({t.name for t in users}))} "
            f"(package {', '.join(sorted({t.module.rsplit('.', 1)[0] for t in users}))})"
            for users in sorted(specs.values(), key=lambda users: min(t.name for t in users))
        )
        out.append(
            f"flyte_image {address} answers {len(specs)} ImageSpecs with different content under one name: {groups}; "
            "give the specs distinct names, or map each with images= on its workflow"
        )
    return out


def with_cross_workflow_warnings(plans: Sequence[WorkflowPlan]) -> List[WorkflowPlan]:
    """Plans with `shared_name_warnings` computed over all of them (one flyte-plan/package run)."""
    import dataclasses

    # Only tasks of a flyte_image answering an ImageSpec can share a name: without that filter this grows with
    # workflows x tasks (every plan against every other plan's tasks).
    answered = [(q.address, t) for q in plans for t in q.tasks if t.image_spec and t.image_address]
    out = []
    for p in plans:
        others = [t for address, t in answered if address != p.address]
        extra = [w for w in shared_name_warnings(p.tasks, others) if w not in p.warnings]
        out.append(dataclasses.replace(p, warnings=tuple(p.warnings) + tuple(extra)) if extra else p)
    return out


# Flyte's backend does not cache a task whose interface has no outputs (flytekit maintainers:
# "in prod there is no cache on tasks with no outputs"), while flytekit 1.16's LocalTaskCache
# stores the empty output map and skips the next local run.
CACHE_NO_OUTPUTS_WARNING = (
    "cache=True but no outputs: flytekit's local cache skips re-runs, Flyte's backend never caches "
    "a task without outputs"
)


def _node_pod_templates(
    target: WorkflowTarget, intro: Introspection, tasks: Sequence[TaskPlan]
) -> Tuple[NodePodTemplate, ...]:
    """`with_overrides(pod_template=...)` on task nodes, merged on top of the task's template."""
    by_name = {t.name: t for t in tasks}
    out = []
    for wf in intro.workflows:
        for node_id, task_name, override in pods.code_templates_in(wf.structure):
            task = by_name.get(task_name)
            base = task.pod_template_data if task is not None else None
            path = f"{wf.source_file or wf.module}: with_overrides(pod_template=...) on node {node_id} of {wf.name}"
            merged = pods.with_code_template(base, override, path=path, target=target.address)
            if merged is not None:
                out.append(NodePodTemplate(wf.name, node_id, task_name, pods.canonical_json(merged)))
    return tuple(sorted(out, key=lambda n: (n.workflow, n.node)))


def _topological(deps: Mapping[str, Sequence[str]], address: str) -> List[str]:
    """Children before parents, deterministic; a cycle raises PlanError naming it."""
    order: List[str] = []
    state: Dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in sorted(deps):
        if state.get(start) == 2:
            continue
        path: List[str] = [start]
        stack = [(start, iter(sorted(set(deps[start]))))]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node] = 2
                order.append(node)
                continue
            if child not in deps or state.get(child) == 2:
                continue  # a leaf (task, reference) or already ordered
            if state.get(child) == 1:
                cycle = path[path.index(child) :] + [child]
                raise PlanError(
                    f"Workflow entities form a cycle: {' -> '.join(cycle)}",
                    target=address,
                    fix="break the cycle; a workflow cannot (transitively) contain itself",
                )
            state[child] = 1
            path.append(child)
            stack.append((child, iter(sorted(set(deps[child])))))
    return order
