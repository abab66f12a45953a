"""The model adapters hand to core (build-graph facts) and the plans core hands back.

Everything is a frozen dataclass of tuples and strings, so values are hashable (Pants caches
rule outputs by value) and identical inputs compare equal on every machine.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple, Union

from flytebuild.core.pod_templates import PodTemplateSource


@dataclass(frozen=True, order=True)
class FileDigest:
    """One first-party file: repo-relative path (forward slashes) and blake3 hex of its bytes."""

    path: str
    digest: str


@dataclass(frozen=True)
class Closure:
    """What the module defining a task needs: first-party files and third-party requirements.

    `requirements` are canonical project names (PEP 503); `pins` are the locked `name==version`
    of those requirements and of everything they pull in.
    """

    sources: Tuple[FileDigest, ...] = ()
    requirements: Tuple[str, ...] = ()
    pins: Tuple[str, ...] = ()

    @property
    def source_paths(self) -> Tuple[str, ...]:
        return tuple(sorted({s.path for s in self.sources}))


@dataclass(frozen=True)
class ImageTarget:
    """A `flyte_image` target: what is baked into the image and where it is pushed."""

    address: str
    image_name: str
    base: str
    registry: Optional[str] = None
    repository: Optional[str] = None
    env: Tuple[Tuple[str, str], ...] = ()
    python: Optional[str] = None
    sources: Tuple[FileDigest, ...] = ()
    requirements: Tuple[str, ...] = ()
    pins: Tuple[str, ...] = ()

    @property
    def source_paths(self) -> Tuple[str, ...]:
        return tuple(sorted({s.path for s in self.sources}))

    @property
    def repository_ref(self) -> str:
        """`registry/repository` without a tag (the tag is the image's version)."""
        repository = self.repository or self.image_name
        return f"{self.registry.rstrip('/')}/{repository}" if self.registry else repository


@dataclass(frozen=True)
class ExternalImage:
    """An image the build graph does not build, so its contents are unknown.

    `spec` holds the canonical JSON of an ImageSpec found in code without a `flyte_image`
    target (flytekit builds it itself); it is part of the fingerprint because flytekit's tag
    follows the spec.
    """

    ref: str
    spec_json: Optional[str] = None


@dataclass(frozen=True, order=True)
class CopiedFile:
    """A file an ImageSpec's `copy` lists, placed where flytekit's builder puts it (`/root/<entry>`)."""

    source: str  # repo-relative path
    destination: str  # path under the image's working directory (/root), as flytekit gives it
    digest: str


@dataclass(frozen=True)
class SpecImage:
    """An ImageSpec in code that no flyte_image answers: an image node of the plan, built by flytebuild.

    Its identity is the spec's content (`spec_json`), so unnamed specs (flytekit names them all
    `flytekit`) stay distinct. Everything a publisher needs is decided here: base, requirements
    (flytekit added when the spec does not name it, pinned from the lockfile when locked), the
    first-party files baked at their import paths (`sources`) and the copied files at flytekit's
    destinations (`copies`).
    """

    name: str
    registry: Optional[str]
    ref: str  # registry/name:version (content tag)
    fingerprint: str
    version: str
    base: Optional[str]  # None: [flyte].default_base unset and no base_image
    nested_base: bool  # base_image is itself an ImageSpec
    python_version: Optional[str]
    python_exec: Optional[str]
    env: Tuple[Tuple[str, str], ...]
    packages: Tuple[str, ...]  # as the spec lists them
    requirements_file: Optional[str]  # repo-relative
    pip_extra_index_url: Tuple[str, ...]
    pip_index: Optional[str]
    engine_fields: Tuple[Tuple[str, str], ...]  # (field, canonical JSON value): need an engine
    sources: Tuple[FileDigest, ...]  # first-party files baked at their import paths
    pins: Tuple[str, ...]
    tasks: Tuple[str, ...]
    spec_json: str  # canonical JSON of the spec as found in code
    requirements: Tuple[str, ...] = ()  # what to install: packages + requirements file + flytekit pin
    copies: Tuple[CopiedFile, ...] = ()
    warnings: Tuple[str, ...] = ()

    @property
    def source_paths(self) -> Tuple[str, ...]:
        return tuple(sorted({s.path for s in self.sources}))

    @property
    def requirement_names(self) -> Tuple[str, ...]:
        from flytebuild.core.lockfile import canonical_name, requirement_name

        return tuple(sorted({canonical_name(requirement_name(r)) for r in self.requirements}))


Image = Union[ImageTarget, ExternalImage]


@dataclass(frozen=True)
class PodTemplateTarget:
    """A `flyte_pod_template` target: its files' text, `${var}` values and per-env overlays."""

    address: str
    source: PodTemplateSource
    overlays: Tuple[Tuple[str, PodTemplateSource], ...] = ()  # (environment, overlay file)
    values: Tuple[Tuple[str, str], ...] = ()
    primary_container_name: Optional[str] = None


@dataclass(frozen=True)
class WorkflowTarget:
    """A `flyte_workflow` target. Image fields hold image target addresses."""

    address: str
    entrypoint: str
    project: str  # "" = Settings.project (the planner fills what is unset)
    domain: str  # "" = Settings.domain
    image: Optional[str] = None
    images: Tuple[Tuple[str, str], ...] = ()  # (image_name used in code, image address)
    task_images: Tuple[Tuple[str, str], ...] = ()  # (task name, image address)
    pod_template: Optional[PodTemplateTarget] = None  # for all its tasks
    task_pod_templates: Tuple[Tuple[str, PodTemplateTarget], ...] = ()  # (task name, template)
    environment: Optional[str] = None  # picks the pod templates' overlay; None = Settings.environment
    cache_key: Optional[str] = None  # interface | code: what the cache_version follows; None = Settings.cache_key
    task_cache_keys: Tuple[Tuple[str, str], ...] = ()  # (task name, policy)


# ---------------------------------------------------------------------------------------------
# Plans (results)


@dataclass(frozen=True)
class TaskPlan:
    name: str
    module: str
    kind: str  # python | container | map | other
    task_type: str
    source_file: Optional[str]
    image: str  # display: the image target's address, or the external reference
    image_name: Optional[str]  # the flyte_image's image_name, or the name used in code
    image_source: str  # code | code:ImageSpec | task_images | workflow | default_image | flytekit_default
    image_address: Optional[str]  # set when the image is a flyte_image target
    # the reference tasks run from: a flyte_image's content tag (= ImagePlan.ref) or the external ref
    image_ref: Optional[str]
    image_fingerprint: str
    mode: str  # baked | fast | container | none (no container: Echo and other propeller-run tasks)
    fingerprint: str
    version: str
    sources: Tuple[str, ...]  # repo-relative paths of the first-party closure
    requirements: Tuple[str, ...]
    missing_sources: Tuple[str, ...]  # closure files not baked into the image (fast only)
    missing_requirements: Tuple[str, ...]  # closure requirements not in the image (fast only)
    cache_version: Optional[str]  # interface-aware cache version; None when caching is off
    warnings: Tuple[str, ...] = ()
    # Canonical JSON of the final pod template (`{labels, annotations, primary_container_name,
    # pod_spec}`): the serialize request's per-task "pod_template". None when the task has none.
    pod_template: Optional[str] = None
    pod_template_source: Optional[str] = None  # e.g. "examples/mixed:pod (workflow) + code"
    pod_template_files: Tuple[str, ...] = ()  # the template file and the overlay applied
    cache_key: str = "interface"  # the policy that made cache_version
    # blake3 of the ImageSpec's content when the task's image was declared by an ImageSpec
    image_spec: Optional[str] = None

    @property
    def pod_template_data(self) -> Optional[Dict[str, Any]]:
        import json

        return None if self.pod_template is None else json.loads(self.pod_template)


@dataclass(frozen=True)
class EntityPlan:
    """A workflow or launch plan: its content fingerprint and the children it was derived from.

    `children` are `kind:name` keys of the entities its fingerprint covers.
    """

    name: str
    kind: str  # workflow | launch_plan
    fingerprint: str
    version: str
    children: Tuple[str, ...] = ()


@dataclass(frozen=True)
class ReferencePlan:
    kind: str
    name: str
    project: str
    domain: str
    version: str


@dataclass(frozen=True)
class NodePodTemplate:
    """A workflow node's `with_overrides(pod_template=...)` merged on top of its task's template:
    what the node's overrides carry (canonical JSON, as TaskPlan.pod_template)."""

    workflow: str
    node: str
    task: str
    pod_template: str


@dataclass(frozen=True)
class WorkflowPlan:
    address: str
    entrypoint: str
    project: str
    domain: str
    root_kind: str
    root_name: str
    version: str
    tasks: Tuple[TaskPlan, ...]
    workflows: Tuple[EntityPlan, ...]
    launch_plans: Tuple[EntityPlan, ...]
    references: Tuple[ReferencePlan, ...]
    warnings: Tuple[str, ...] = ()
    node_pod_templates: Tuple[NodePodTemplate, ...] = ()
    environment: Optional[str] = None  # the pod templates' overlay that was applied
    # ImageSpecs in code that no flyte_image answers: what publishers build (tags = tasks' image_ref)
    spec_images: Tuple[SpecImage, ...] = ()

    @property
    def workflow_versions(self) -> Dict[str, str]:
        return {w.name: w.version for w in self.workflows}

    @property
    def launch_plan_versions(self) -> Dict[str, str]:
        return {lp.name: lp.version for lp in self.launch_plans}

    @property
    def task_versions(self) -> Dict[str, str]:
        return {t.name: t.version for t in self.tasks}

    def task(self, name: str) -> TaskPlan:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)


@dataclass(frozen=True)
class ImagePlan:
    address: str
    name: str
    fingerprint: str
    version: str
    ref: str  # registry/repository:version — the content-addressed tag
    base: str
    python: Optional[str]
    env: Tuple[Tuple[str, str], ...]
    sources: Tuple[str, ...]
    requirements: Tuple[str, ...]
    pins: Tuple[str, ...]
    warnings: Tuple[str, ...] = field(default=())
