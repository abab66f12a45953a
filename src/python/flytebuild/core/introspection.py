"""Parse the answer of the runtime's `introspect` command (docs/runtime-contract.md) into frozen dataclasses.

Unknown keys are ignored so the runtime can add facts without breaking older cores. JSON-valued
fields (interfaces, configs, workflow structure) stay as plain JSON values: they are only ever
fingerprinted canonically or rendered, never mutated.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple, Union

from flytebuild.core.errors import IntrospectionError

JSON = Any  # a JSON value: dict / list / str / int / float / bool / None


@dataclass(frozen=True)
class ImageUse:
    """The image a task declares in code."""

    kind: str  # none | string | template | image_spec
    value: Optional[str] = None
    name: Optional[str] = None
    spec: Optional[Mapping[str, JSON]] = None


@dataclass(frozen=True)
class CacheSettings:
    enabled: bool = False
    version: Optional[str] = None
    serialize: bool = False
    ignored_inputs: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Interface:
    inputs: Mapping[str, JSON]
    outputs: Mapping[str, JSON]

    def to_json(self) -> JSON:
        return {"inputs": dict(self.inputs), "outputs": dict(self.outputs)}


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # python | container | map | other
    task_type: str
    module: str
    source_file: Optional[str]
    image: ImageUse
    cache: CacheSettings
    interface: Interface
    input_defaults: Mapping[str, JSON]
    config: Mapping[str, JSON]
    has_container: bool = True  # False: flytekit registers it without container or pod (Echo)


@dataclass(frozen=True)
class Node:
    id: str
    entity_kind: str  # task | workflow | launch_plan | reference | branch | gate | other
    entity: Optional[str]
    upstream: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Workflow:
    name: str
    module: str
    source_file: Optional[str]
    interface: Interface
    nodes: Tuple[Node, ...]
    structure: Mapping[str, JSON]


@dataclass(frozen=True)
class LaunchPlan:
    name: str
    workflow: str
    fixed_inputs: Mapping[str, JSON]
    default_inputs: Mapping[str, JSON]
    config: Mapping[str, JSON]


@dataclass(frozen=True)
class Reference:
    kind: str  # task | workflow | launch_plan
    name: str
    project: str
    domain: str
    version: str
    interface: Interface


@dataclass(frozen=True)
class Root:
    kind: str  # workflow | launch_plan | task
    name: str


@dataclass(frozen=True)
class Introspection:
    entrypoint: str
    root: Root
    tasks: Tuple[Task, ...]
    workflows: Tuple[Workflow, ...]
    launch_plans: Tuple[LaunchPlan, ...]
    references: Tuple[Reference, ...]
    python_version: Optional[str] = None  # of the user's environment, e.g. "3.11"
    flytekit_version: Optional[str] = None


def parse_introspection(
    data: Union[Mapping[str, JSON], str, bytes],
    *,
    target: Optional[str] = None,
) -> Introspection:
    """Parse the runtime's stdout (text or already-decoded JSON).

    Raises IntrospectionError for the runtime's error form and for malformed output, so a
    runtime/core mismatch reads as one clear paragraph rather than a KeyError.
    """
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError as e:
            raise IntrospectionError(
                "introspection_failed", f"introspection output is not JSON ({e})", target=target
            ) from None
    if not isinstance(data, Mapping):
        raise IntrospectionError(
            "introspection_failed", "introspection output is not a JSON object", target=target
        )
    if "error" in data:
        error = data["error"] if isinstance(data["error"], Mapping) else {"message": str(data["error"])}
        raise IntrospectionError.from_runtime(target, _opt_str(data.get("entrypoint")), error)
    try:
        root = data["root"]
        return Introspection(
            entrypoint=str(data.get("entrypoint") or ""),
            root=Root(kind=str(root["kind"]), name=str(root["name"])),
            tasks=tuple(sorted((_task(t) for t in data.get("tasks") or ()), key=lambda t: t.name)),
            workflows=tuple(
                sorted((_workflow(w) for w in data.get("workflows") or ()), key=lambda w: w.name)
            ),
            launch_plans=tuple(
                sorted((_launch_plan(lp) for lp in data.get("launch_plans") or ()), key=lambda lp: lp.name)
            ),
            python_version=_opt_str(_mapping(data.get("environment")).get("python")),
            flytekit_version=_opt_str(_mapping(data.get("environment")).get("flytekit")),
            references=tuple(
                sorted((_reference(r) for r in data.get("references") or ()), key=lambda r: (r.kind, r.name))
            ),
        )
    except (KeyError, TypeError, AttributeError) as e:
        raise IntrospectionError(
            "introspection_failed",
            f"introspection output is malformed (missing or invalid {e}); the runtime and core "
            "versions of flytebuild disagree",
            target=target,
        ) from None


def _opt_str(value: JSON) -> Optional[str]:
    return None if value is None else str(value)


def _mapping(value: JSON) -> Mapping[str, JSON]:
    return dict(value) if value else {}


def _interface(value: JSON) -> Interface:
    value = value or {}
    return Interface(inputs=_mapping(value.get("inputs")), outputs=_mapping(value.get("outputs")))


def _image(value: JSON) -> ImageUse:
    if not value:
        return ImageUse(kind="none")
    spec = value.get("spec")
    return ImageUse(
        kind=str(value.get("kind") or "none"),
        value=_opt_str(value.get("value")),
        name=_opt_str(value.get("name")),
        spec=dict(spec) if spec else None,
    )


def _cache(value: JSON) -> CacheSettings:
    value = value or {}
    return CacheSettings(
        enabled=bool(value.get("enabled")),
        version=_opt_str(value.get("version")),
        serialize=bool(value.get("serialize")),
        ignored_inputs=tuple(sorted(str(i) for i in value.get("ignored_inputs") or ())),
    )


def _task(value: JSON) -> Task:
    return Task(
        name=str(value["name"]),
        kind=str(value.get("kind") or "other"),
        task_type=str(value.get("task_type") or ""),
        module=str(value.get("module") or ""),
        source_file=_opt_str(value.get("source_file")),
        image=_image(value.get("image")),
        cache=_cache(value.get("cache")),
        interface=_interface(value.get("interface")),
        input_defaults=_mapping(value.get("input_defaults")),
        config=_mapping(value.get("config")),
        has_container=bool(value.get("has_container", True)),
    )


def _node(value: JSON) -> Node:
    return Node(
        id=str(value["id"]),
        entity_kind=str(value.get("entity_kind") or "other"),
        entity=_opt_str(value.get("entity")),
        upstream=tuple(str(u) for u in value.get("upstream") or ()),
    )


def _workflow(value: JSON) -> Workflow:
    return Workflow(
        name=str(value["name"]),
        module=str(value.get("module") or ""),
        source_file=_opt_str(value.get("source_file")),
        interface=_interface(value.get("interface")),
        nodes=tuple(_node(n) for n in value.get("nodes") or ()),
        structure=_mapping(value.get("structure")),
    )


def _launch_plan(value: JSON) -> LaunchPlan:
    return LaunchPlan(
        name=str(value["name"]),
        workflow=str(value["workflow"]),
        fixed_inputs=_mapping(value.get("fixed_inputs")),
        default_inputs=_mapping(value.get("default_inputs")),
        config=_mapping(value.get("config")),
    )


def _reference(value: JSON) -> Reference:
    return Reference(
        kind=str(value["kind"]),
        name=str(value["name"]),
        project=str(value.get("project") or ""),
        domain=str(value.get("domain") or ""),
        version=str(value["version"]),
        interface=_interface(value.get("interface")),
    )
