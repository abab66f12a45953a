"""Introspect a flytekit entrypoint and print its entities as one JSON object (docs/runtime-contract.md, introspect).

Usage:  python <runtime>/__main__.py introspect <module.path:attr | path/to/file.py:attr>
        python <runtime>/__main__.py introspect --batch <entrypoint> [<entrypoint> ...]

Runs in the USER's environment (CPython + flytekit), as part of the runtime package (stdlib + flytekit only, no
import of `flytebuild`). Run it with cwd = repo root (or a sandbox laid out like it) and the source roots on
PYTHONPATH.

Output is deterministic: keys sorted, lists sorted by name, no ids/addresses, paths relative to cwd.
Exit 0 with the result on stdout; exit 2 with {"error": {...}} on stdout for user errors.
Everything user code (or flytekit) prints goes to stderr.
"""
from __future__ import annotations

import dataclasses
import datetime
import enum
import functools
import json
import math
import re
import sys
import types
import typing

from .answers import IntrospectError, json_stdout
from .entrypoint import (
    exc_message,
    is_user_file,
    load_entrypoint,
    module_file,
    relpath,
    result_or_error,
    user_traceback,
)

_IMAGE_TEMPLATE = re.compile(r"\{\{\s*\.images?\.([A-Za-z0-9_-]+)", re.IGNORECASE)
_IMAGE_SPEC_FIELDS = (
    # The contract's fields, plus the other ImageSpec fields that change what gets built. `platform` and
    # `builder` are left out on purpose: flytekit fills them from the machine / installed plugins.
    "apt_packages",
    "base_image",
    "commands",
    "conda_channels",
    "conda_packages",
    "copy",
    "cuda",
    "cudnn",
    "entrypoint",
    "env",
    "name",
    "packages",
    "pip_extra_args",
    "pip_extra_index_url",
    "pip_index",
    "python_exec",
    "python_version",
    "registry",
    "requirements",
    "runtime_packages",
    "source_copy_mode",
    "source_root",
    "tag_format",
)


class NotJsonable(Exception):
    pass


class OrderedFields(dict):
    """A dict whose key order is meaningful (dataclass / pydantic fields): dumped in insertion order."""


def dumps(v: typing.Any, indent: int = 2, level: int = 0) -> str:
    """json.dumps with sorted keys, except OrderedFields which keep their (source) order."""
    pad, inner = " " * (indent * level), " " * (indent * (level + 1))
    if isinstance(v, dict):
        if not v:
            return "{}"
        keys = list(v) if isinstance(v, OrderedFields) else sorted(v)
        items = [f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {dumps(v[k], indent, level + 1)}" for k in keys]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(v, (list, tuple)):
        if not v:
            return "[]"
        items = [f"{inner}{dumps(x, indent, level + 1)}" for x in v]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(v, ensure_ascii=False)


# ----------------------------------------------------------------------------------------------------------------
# JSON helpers


def jsonable(v: typing.Any) -> typing.Any:
    """Python value -> deterministic JSON value, or raise NotJsonable."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, enum.Enum):
        return jsonable(v.value)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        if math.isfinite(v):
            return v
        return str(v)
    if isinstance(v, datetime.timedelta):
        return v.total_seconds()
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, (set, frozenset)):
        return sorted((jsonable(x) for x in v), key=lambda x: json.dumps(x, sort_keys=True))
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if isinstance(k, enum.Enum):
                k = k.value
            if not isinstance(k, (str, int, float, bool)):
                raise NotJsonable(type(k))
            out[str(k)] = jsonable(x)
        return out
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: jsonable(getattr(v, f.name)) for f in dataclasses.fields(v)}
    dump = getattr(v, "model_dump", None)  # pydantic v2
    if callable(dump) and not isinstance(v, type):
        try:
            return jsonable(dump(mode="json"))
        except NotJsonable:
            raise
        except Exception:
            raise NotJsonable(type(v))
    raise NotJsonable(type(v))


def jsonable_or_none(v: typing.Any) -> typing.Any:
    try:
        return jsonable(v)
    except NotJsonable:
        return None


def qualname(tp: typing.Any) -> str:
    mod = getattr(tp, "__module__", None)
    name = getattr(tp, "__qualname__", None) or getattr(tp, "__name__", None)
    if name is None:
        return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(tp))
    return f"{mod}.{name}" if mod and mod != "builtins" else name


def proto_dict(model: typing.Any) -> typing.Any:
    """flytekit model (FlyteIdlEntity) or protobuf message -> JSON dict."""
    if model is None:
        return None
    from google.protobuf.json_format import MessageToDict

    msg = model.to_flyte_idl() if hasattr(model, "to_flyte_idl") else model
    return MessageToDict(msg, preserving_proto_field_name=True)


def _timeout_seconds(t: typing.Any) -> typing.Any:
    if t is None:
        return None
    if isinstance(t, datetime.timedelta):
        return t.total_seconds()
    return jsonable_or_none(t)


# ----------------------------------------------------------------------------------------------------------------
# type schemas


def type_schema(tp: typing.Any, seen: typing.Tuple[str, ...] = ()) -> dict:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        inner = type_schema(args[0], seen)
        notes = [_annotation_str(a) for a in args[1:]]
        notes = [n for n in notes if n]
        if notes:
            inner = dict(inner, annotations=notes)
        return inner
    if tp is None or tp is type(None):
        return {"type": "none"}
    simple = {
        int: "int",
        float: "float",
        str: "str",
        bool: "bool",
        bytes: "bytes",
        datetime.datetime: "datetime",
        datetime.timedelta: "timedelta",
        datetime.date: "date",
    }
    if isinstance(tp, type) and tp in simple:
        return {"type": simple[tp]}
    union_types = [typing.Union]
    try:
        import types as _types

        union_types.append(_types.UnionType)
    except AttributeError:  # pragma: no cover - python < 3.10
        pass
    if origin in union_types or isinstance(tp, tuple(t for t in union_types if isinstance(t, type))):
        variants = list(args)
        has_none = type(None) in variants
        rest = [v for v in variants if v is not type(None)]
        if len(rest) == 1:
            body = type_schema(rest[0], seen)
        else:
            body = {"type": "union", "variants": [type_schema(v, seen) for v in rest]}
        return {"type": "optional", "of": body} if has_none else body
    if origin in (list, typing.List) or tp in (list, typing.List):
        return {"type": "list", "item": type_schema(args[0], seen) if args else _any()}
    if origin in (dict, typing.Dict) or tp in (dict, typing.Dict):
        if len(args) == 2:
            return {"type": "dict", "key": type_schema(args[0], seen), "value": type_schema(args[1], seen)}
        return {"type": "dict", "key": _any(), "value": _any()}
    if isinstance(tp, type):
        special = _flyte_special(tp)
        if special is not None:
            return special
        if issubclass(tp, enum.Enum):
            return {"type": "enum", "name": qualname(tp), "values": [jsonable_or_none(m.value) for m in tp]}
        if dataclasses.is_dataclass(tp):
            name = qualname(tp)
            if name in seen:
                return {"type": "ref", "name": name}
            hints = _hints(tp)
            fields = OrderedFields()
            for f in dataclasses.fields(tp):
                fields[f.name] = type_schema(hints.get(f.name, f.type), seen + (name,))
            return {"type": "dataclass", "name": name, "fields": fields}
        pyd = _pydantic_schema(tp, seen)
        if pyd is not None:
            return pyd
    return {"type": "python", "name": qualname(tp) if not origin else _generic_name(tp)}


def _any() -> dict:
    return {"type": "python", "name": "typing.Any"}


def _generic_name(tp: typing.Any) -> str:
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(tp))


def _annotation_str(a: typing.Any) -> typing.Optional[str]:
    if isinstance(a, (str, int, float, bool)):
        return str(a)
    if isinstance(a, type):
        return qualname(a)
    if dataclasses.is_dataclass(a):
        try:
            return f"{qualname(type(a))}{json.dumps(jsonable(a), sort_keys=True)}"
        except NotJsonable:
            return qualname(type(a))
    if isinstance(a, dict):
        try:
            return json.dumps(jsonable(a), sort_keys=True)
        except NotJsonable:
            return None
    return qualname(type(a))


def _hints(tp: type) -> dict:
    try:
        return typing.get_type_hints(tp, include_extras=True)
    except Exception:
        return {}


def _flyte_special(tp: type) -> typing.Optional[dict]:
    try:
        from flytekit.types.directory import FlyteDirectory
        from flytekit.types.file import FlyteFile
        from flytekit.types.structured import StructuredDataset
    except Exception:  # pragma: no cover
        return None
    for base, kind in ((FlyteFile, "file"), (FlyteDirectory, "directory")):
        if issubclass(tp, base):
            out = {"type": kind}
            fmt = _safe_call(getattr(tp, "extension", None))
            if fmt:
                out["format"] = str(fmt)
            return out
    if issubclass(tp, StructuredDataset):
        return {"type": "structured_dataset"}
    return None


def _safe_call(fn: typing.Any) -> typing.Any:
    if not callable(fn):
        return None
    try:
        return fn()
    except Exception:
        return None


def _pydantic_schema(tp: type, seen: typing.Tuple[str, ...]) -> typing.Optional[dict]:
    base = None
    for modname in ("pydantic", "pydantic.v1"):
        mod = sys.modules.get(modname)
        if mod is not None and isinstance(getattr(mod, "BaseModel", None), type):
            if issubclass(tp, mod.BaseModel):
                base = mod
                break
    if base is None:
        return None
    name = qualname(tp)
    if name in seen:
        return {"type": "ref", "name": name}
    fields = OrderedFields()
    model_fields = getattr(tp, "model_fields", None)
    if isinstance(model_fields, dict):  # v2
        for fname, info in model_fields.items():
            fields[fname] = type_schema(info.annotation, seen + (name,))
    else:  # v1
        hints = _hints(tp)
        for fname in getattr(tp, "__fields__", {}):
            fields[fname] = type_schema(hints.get(fname, typing.Any), seen + (name,))
    return {"type": "pydantic", "name": name, "fields": fields}


def interface_json(python_interface: typing.Any) -> dict:
    if python_interface is None:
        return {"inputs": {}, "outputs": {}}
    return {
        "inputs": {k: type_schema(v) for k, v in python_interface.inputs.items()},
        "outputs": {k: type_schema(v) for k, v in python_interface.outputs.items()},
    }


def input_defaults(python_interface: typing.Any) -> dict:
    if python_interface is None:
        return {}
    out = {}
    for k, (_, default) in python_interface.inputs_with_defaults.items():
        out[k] = jsonable_or_none(default)
    return out


# ----------------------------------------------------------------------------------------------------------------
# images and config


def image_json(img: typing.Any) -> dict:
    from flytekit.image_spec.image_spec import ImageSpec

    if img is None or img == "":
        return {"kind": "none", "value": None, "name": None, "spec": None}
    if isinstance(img, ImageSpec):
        return {"kind": "image_spec", "value": None, "name": img.name, "spec": image_spec_json(img)}
    if isinstance(img, str):
        m = _IMAGE_TEMPLATE.search(img)
        if m:
            return {"kind": "template", "value": img, "name": m.group(1), "spec": None}
        return {"kind": "string", "value": img, "name": None, "spec": None}
    return {"kind": "string", "value": str(img), "name": None, "spec": None}


def image_spec_json(spec: typing.Any) -> dict:
    from flytekit.image_spec.image_spec import ImageSpec

    out = {}
    for f in _IMAGE_SPEC_FIELDS:
        v = getattr(spec, f, None)
        if isinstance(v, ImageSpec):
            v = image_spec_json(v)
        elif f in ("source_root", "requirements") and isinstance(v, str):
            v = relpath(v) or v
        elif f == "copy" and isinstance(v, list):
            v = [relpath(x) or x if isinstance(x, str) else jsonable_or_none(x) for x in v]
        elif isinstance(v, enum.Enum):
            v = v.name
        else:
            v = jsonable_or_none(v)
        out[f] = v
    return out


def resources_json(res: typing.Any) -> typing.Any:
    """flytekit ResourceSpec / Resources -> JSON."""
    if res is None:
        return None
    if hasattr(res, "requests") and hasattr(res, "limits") and not hasattr(res, "to_flyte_idl"):
        return {"requests": resources_json(res.requests), "limits": resources_json(res.limits)}
    if dataclasses.is_dataclass(res):
        return {k: v for k, v in jsonable_or_none(res).items() if v is not None}
    if hasattr(res, "to_flyte_idl"):
        return proto_dict(res)
    return jsonable_or_none(res)


def pod_template_json(pt: typing.Any) -> typing.Any:
    if pt is None:
        return None
    spec = pt.pod_spec
    if spec is not None and not isinstance(spec, dict):
        try:
            from kubernetes.client import ApiClient

            spec = ApiClient().sanitize_for_serialization(spec)
        except Exception:
            to_dict = getattr(spec, "to_dict", None)
            spec = to_dict() if callable(to_dict) else None
    return {
        "pod_spec": jsonable_or_none(spec),
        "primary_container_name": pt.primary_container_name,
        "labels": jsonable_or_none(pt.labels),
        "annotations": jsonable_or_none(pt.annotations),
    }


def pod_plugin_template(tc: typing.Any) -> typing.Any:
    """flytekitplugins-pod's `Pod(pod_spec=..., primary_container_name=...)` task config as a pod template."""
    if tc is None or type(tc).__name__ != "Pod" or not hasattr(tc, "pod_spec"):
        return None
    pt = types.SimpleNamespace(pod_spec=tc.pod_spec, primary_container_name=getattr(tc, "primary_container_name", None),
                               labels=getattr(tc, "labels", None), annotations=getattr(tc, "annotations", None))
    return pod_template_json(pt)


def has_container(t: typing.Any) -> bool:
    """False for tasks flytekit registers without a container or pod (Echo): they run in propeller, no image."""
    settings = serialization_settings()
    try:
        return t.get_container(settings) is not None or t.get_k8s_pod(settings) is not None
    except Exception:
        return True  # a task that needs more than our fixed settings to build its container has one


def secrets_json(task: typing.Any) -> typing.List[dict]:
    ctx = getattr(task, "security_context", None)
    secrets = getattr(ctx, "secrets", None) or []
    out = []
    for s in secrets:
        d = {}
        for f in ("group", "key", "group_version", "mount_requirement", "env_var"):
            v = getattr(s, f, None)
            d[f] = v.name if isinstance(v, enum.Enum) else jsonable_or_none(v)
        out.append(d)
    return sorted(out, key=lambda d: json.dumps(d, sort_keys=True))


_SETTINGS = None


def serialization_settings() -> typing.Any:
    """Fixed settings so that get_custom/get_config/... are deterministic and machine-independent."""
    global _SETTINGS
    if _SETTINGS is None:
        from flytekit.configuration import Image, ImageConfig, SerializationSettings

        img = Image(name="default", fqn="flytebuild/introspect", tag="0")
        _SETTINGS = SerializationSettings(image_config=ImageConfig(default_image=img, images=[img]))
    return _SETTINGS


def _call_json(fn: typing.Callable[[], typing.Any]) -> typing.Any:
    try:
        v = fn()
    except Exception as e:
        return {"unavailable": type(e).__name__}
    if v is None:
        return None
    if hasattr(v, "to_flyte_idl") or hasattr(v, "DESCRIPTOR"):
        return proto_dict(v)
    return jsonable_or_none(v)


def task_config_json(tc: typing.Any) -> typing.Any:
    if tc is None:
        return None
    try:
        return {"type": qualname(type(tc)), "value": jsonable(tc)}
    except NotJsonable:
        return {"type": qualname(type(tc)), "value": None}


def base_task_config(t: typing.Any) -> dict:
    md = t.metadata
    settings = serialization_settings()
    cfg = {
        "retries": md.retries,
        "timeout": _timeout_seconds(md.timeout),
        "interruptible": md.interruptible,
        "deprecated": md.deprecated or None,
        "pod_template_name": md.pod_template_name,
        "generates_deck": md.generates_deck,
        "is_eager": md.is_eager,
        "labels": jsonable_or_none(md.labels),
        "annotations": jsonable_or_none(md.annotations),
        "task_type_version": t.task_type_version,
        "environment": jsonable_or_none(getattr(t, "environment", None) or {}),
        "secret_requests": secrets_json(t),
        "resources": resources_json(getattr(t, "resources", None)),
        "pod_template": pod_template_json(getattr(t, "pod_template", None)),
        "task_config": task_config_json(getattr(t, "task_config", None)),
        "custom": _call_json(lambda: t.get_custom(settings)),
        "extended_resources": _call_json(lambda: t.get_extended_resources(settings)),
    }
    accel = getattr(t, "accelerator", None)
    if accel is not None:
        cfg["accelerator"] = _call_json(lambda: accel.to_flyte_idl())
    if getattr(t, "shared_memory", None) is not None:
        cfg["shared_memory"] = jsonable_or_none(t.shared_memory)
    if hasattr(t, "enable_deck"):
        cfg["enable_deck"] = bool(t.enable_deck)
    return cfg


# ----------------------------------------------------------------------------------------------------------------
# the walk


class Walker:
    def __init__(self) -> None:
        import flytekit  # noqa: F401 - fail early, inside the error handler

        self.tasks: typing.Dict[str, dict] = {}
        self.workflows: typing.Dict[str, dict] = {}
        self.launch_plans: typing.Dict[str, dict] = {}
        self.references: typing.Dict[typing.Tuple[str, str], dict] = {}
        self._visiting: typing.Set[int] = set()

    # ------------------------------------------------------------------ classification
    def classify(self, e: typing.Any) -> typing.Tuple[str, typing.Optional[str]]:
        """(entity kind for nodes, name). Kinds: task, workflow, launch_plan, reference, branch, gate, other."""
        from flytekit.core.base_task import Task
        from flytekit.core.condition import BranchNode
        from flytekit.core.gate import Gate
        from flytekit.core.launch_plan import LaunchPlan
        from flytekit.core.reference_entity import ReferenceEntity
        from flytekit.core.workflow import WorkflowBase

        if isinstance(e, ReferenceEntity):
            return "reference", e.name
        if is_remote_entity(e):
            return "reference", e.id.name
        if isinstance(e, Task):
            return "task", e.name
        if isinstance(e, WorkflowBase):
            return "workflow", e.name
        if isinstance(e, LaunchPlan):
            return "launch_plan", e.name
        if isinstance(e, BranchNode):
            return "branch", e.name
        if isinstance(e, Gate):
            return "gate", e.name
        array_target = array_node_target(e)
        if array_target is not None:
            return self.classify(array_target)
        return "other", getattr(e, "name", None) if isinstance(getattr(e, "name", None), str) else None

    def visit(self, e: typing.Any) -> None:
        if id(e) in self._visiting:
            return
        self._visiting.add(id(e))
        kind, name = self.classify(e)
        if kind == "reference":
            ref = reference_json(e)
            self.references.setdefault((ref["name"], ref["kind"]), ref)
        elif kind == "task":
            if name not in self.tasks:
                self.tasks[name] = {}  # placeholder against cycles
                self.tasks[name] = self.task_json(e)
                for hint in getattr(e, "node_dependency_hints", None) or []:  # @dynamic(node_dependency_hints=...)
                    self.visit(hint)
        elif kind == "workflow":
            if name not in self.workflows:
                self.workflows[name] = {}
                self.workflows[name] = self.workflow_json(e)
        elif kind == "launch_plan":
            if name not in self.launch_plans:
                self.launch_plans[name] = launch_plan_json(e)
                self.visit(e.workflow)
        elif kind == "branch":
            for n in branch_nodes(e):
                self.visit_node(n)
        array_target = array_node_target(e)
        if array_target is not None:
            self.visit(array_target)

    def visit_node(self, node: typing.Any) -> None:
        if node is not None and node.flyte_entity is not None:
            self.visit(node.flyte_entity)

    # ------------------------------------------------------------------ tasks
    def task_json(self, t: typing.Any) -> dict:
        from flytekit.core.array_node_map_task import ArrayNodeMapTask
        from flytekit.core.container_task import ContainerTask
        from flytekit.core.python_auto_container import PythonAutoContainerTask

        try:
            from flytekit.core.legacy_map_task import MapPythonTask
        except Exception:  # pragma: no cover
            MapPythonTask = ()  # type: ignore

        md = t.metadata
        config = base_task_config(t)
        if isinstance(t, ArrayNodeMapTask) or (MapPythonTask and isinstance(t, MapPythonTask)):
            kind = "map"
            inner = t.python_function_task if isinstance(t, ArrayNodeMapTask) else t.run_task
            module, source = task_location(inner)
            image = image_json(getattr(inner, "container_image", None))
            inner_cfg = base_task_config(inner)
            config.update(
                {
                    "concurrency": getattr(t, "concurrency", None),
                    "min_successes": getattr(t, "min_successes", None),
                    "min_success_ratio": getattr(t, "min_success_ratio", None),
                    "run_all_sub_nodes": getattr(t, "run_all_sub_nodes", None),
                    "bound_inputs": sorted(getattr(t, "bound_inputs", None) or []),
                    "bound_inputs_values": jsonable_or_none(getattr(t, "_bound_inputs_values", None) or {}),
                    "execution_mode": _array_enum("ExecutionMode", getattr(t, "execution_mode", None)),
                    "mapped_task": {
                        "name": inner.name,
                        "task_type": inner.task_type,
                        "interface": interface_json(inner.python_interface),
                        "config": inner_cfg,
                    },
                }
            )
            # What runs is the mapped task's container: its resources/env/pod template are what matter.
            for k in ("resources", "environment", "pod_template", "secret_requests", "extended_resources"):
                config[k] = inner_cfg.get(k)
            # (sub_node_metadata is set by with_overrides on the node: reported in the workflow structure)
        elif isinstance(t, ContainerTask):
            kind = "container"
            module, source = task_location(t)
            image = image_json(getattr(t, "_image", None))
            config.update(
                {
                    "command": jsonable_or_none(getattr(t, "_cmd", None)),
                    "args": jsonable_or_none(getattr(t, "_args", None)),
                    "input_data_dir": getattr(t, "_input_data_dir", None),
                    "output_data_dir": getattr(t, "_output_data_dir", None),
                    "metadata_format": _enum_name(getattr(t, "_md_format", None)),
                    "io_strategy": _enum_name(getattr(t, "_io_strategy", None)),
                }
            )
        elif isinstance(t, PythonAutoContainerTask):
            kind = "python"
            module, source = task_location(t)
            image = image_json(t.container_image)
            mode = getattr(t, "execution_mode", None)
            if mode is not None:
                config["execution_mode"] = _enum_name(mode)
            resolver = getattr(t, "task_resolver", None)
            if resolver is not None:
                config["task_resolver"] = _safe(lambda: resolver.location)
        else:
            kind = "other"
            module, source = task_location(t)
            image = image_json(getattr(t, "container_image", None))
        plugin_pod = pod_plugin_template(getattr(t, "task_config", None))
        if plugin_pod is not None and not config.get("pod_template"):
            # flytekitplugins-pod's Pod(pod_spec=...) is the task's own pod spec: planned like a PodTemplate in code.
            config["pod_template"] = plugin_pod
        return {
            "name": t.name,
            "kind": kind,
            "task_type": t.task_type,
            "module": module,
            "source_file": source,
            "image": image,
            "cache": {
                "enabled": bool(md.cache),
                "version": md.cache_version or None,
                "serialize": bool(md.cache_serialize),
                "ignored_inputs": sorted(md.cache_ignore_input_vars or ()),
            },
            "interface": interface_json(t.python_interface),
            "input_defaults": input_defaults(t.python_interface),
            "config": config,
            # Python, map and raw container tasks always run in a container; only other task types may not.
            "has_container": True if kind != "other" else has_container(t),
        }

    # ------------------------------------------------------------------ workflows
    def workflow_json(self, wf: typing.Any) -> dict:
        nodes = list(wf.nodes)  # compiles the workflow
        for n in nodes:
            self.visit_node(n)
        on_failure = getattr(wf, "on_failure", None)
        if on_failure is not None:
            self.visit(on_failure)
        failure_node = getattr(wf, "failure_node", None)
        if failure_node is not None:
            self.visit_node(failure_node)
        module, source = workflow_location(wf)
        summary = []
        for n in nodes:
            kind, name = self.classify(n.flyte_entity)
            summary.append(
                {"id": n.id, "entity_kind": kind, "entity": name, "upstream": sorted(u.id for u in n.upstream_nodes)}
            )
        md = getattr(wf, "workflow_metadata", None)
        mdd = getattr(wf, "workflow_metadata_defaults", None)
        structure = {
            "nodes": [self.node_structure(n) for n in nodes],
            "outputs": _bindings_json(wf.output_bindings),
            "failure_policy": _enum_name(getattr(md, "on_failure", None)),
            "interruptible": getattr(mdd, "interruptible", None),
            "on_failure": None,
        }
        if on_failure is not None or failure_node is not None:
            kind, name = self.classify(on_failure) if on_failure is not None else (None, None)
            structure["on_failure"] = {
                "entity_kind": kind,
                "entity": name,
                "node": self.node_structure(failure_node) if failure_node is not None else None,
            }
        options = getattr(wf, "default_options", None)
        if options is not None:
            structure["default_options"] = options_json(options)
        return {
            "name": wf.name,
            "module": module,
            "source_file": source,
            "interface": interface_json(wf.python_interface),
            "input_defaults": input_defaults(wf.python_interface),
            "nodes": summary,
            "structure": structure,
        }

    def node_structure(self, n: typing.Any) -> dict:
        from flytekit.core.array_node_map_task import ArrayNodeMapTask
        from flytekit.core.condition import BranchNode
        from flytekit.core.gate import Gate

        e = n.flyte_entity
        kind, name = self.classify(e)
        out = {
            "id": n.id,
            "entity_kind": kind,
            "entity": name,
            "upstream": sorted(u.id for u in n.upstream_nodes),
            "inputs": _bindings_json(n.bindings),
            "metadata": _node_metadata_json(n.metadata),
            "overrides": _node_overrides(n),
        }
        if isinstance(e, ArrayNodeMapTask):
            out["array"] = {"sub_node_metadata": _node_metadata_json(e.sub_node_metadata)}
        elif array_node_target(e) is not None:
            out["array"] = {
                "concurrency": getattr(e, "concurrency", None),
                "min_successes": getattr(e, "min_successes", None),
                "min_success_ratio": getattr(e, "min_success_ratio", None),
                "run_all_sub_nodes": getattr(e, "run_all_sub_nodes", None),
                "bound_inputs": sorted(getattr(e, "bound_inputs", None) or []),
                "execution_mode": _array_enum("ExecutionMode", getattr(e, "execution_mode", None)),
                "data_mode": _array_enum("DataMode", getattr(e, "data_mode", None)),
            }
        elif isinstance(e, BranchNode):
            block = e._ifelse_block
            cases = [block.case] + list(block.other or [])
            out["branch"] = {
                "cases": [
                    {"condition": proto_dict(c.condition), "then": self.node_structure(c.then_node)} for c in cases
                ],
                "else": self.node_structure(block.else_node) if block.else_node is not None else None,
                "error": proto_dict(block.error) if block.error is not None else None,
            }
        elif isinstance(e, Gate):
            out["gate"] = {
                "sleep": _timeout_seconds(getattr(e, "sleep_duration", None)),
                "timeout": _timeout_seconds(getattr(e, "_timeout", None)),
                "kind": "sleep" if getattr(e, "sleep_duration", None) else (
                    "input" if getattr(e, "input_type", None) is not None else "approve"),
                "input_type": type_schema(e.input_type) if getattr(e, "input_type", None) is not None else None,
            }
        return out


def branch_nodes(b: typing.Any) -> typing.List[typing.Any]:
    block = b._ifelse_block
    nodes = [block.case.then_node] + [c.then_node for c in (block.other or [])]
    if block.else_node is not None:
        nodes.append(block.else_node)
    return [n for n in nodes if n is not None]


def array_node_target(e: typing.Any) -> typing.Any:
    try:
        from flytekit.core.array_node import ArrayNode
    except Exception:  # pragma: no cover
        return None
    if isinstance(e, ArrayNode):
        return e.target
    return None


def is_remote_entity(e: typing.Any) -> bool:
    mod = type(e).__module__ or ""
    return mod.startswith("flytekit.remote") and hasattr(e, "id") and hasattr(e.id, "project")


def _enum_name(v: typing.Any) -> typing.Any:
    if v is None:
        return None
    if isinstance(v, enum.Enum):
        return v.name
    return jsonable_or_none(v)


def _enum_or_int(v: typing.Any) -> typing.Any:
    if isinstance(v, enum.Enum):
        return v.name
    return jsonable_or_none(v)


def _array_enum(enum_name: str, v: typing.Any) -> typing.Any:
    """flyteidl ArrayNode.ExecutionMode / DataMode int -> its name."""
    if v is None:
        return None
    try:
        from flyteidl.core import workflow_pb2

        return getattr(workflow_pb2.ArrayNode, enum_name).Name(v)
    except Exception:
        return _enum_or_int(v)


def _safe(fn: typing.Callable[[], typing.Any]) -> typing.Any:
    try:
        return jsonable_or_none(fn())
    except Exception:
        return None


def _bindings_json(bindings: typing.Any) -> typing.List[dict]:
    out = [proto_dict(b) for b in (bindings or [])]
    return sorted(out, key=lambda d: (d.get("var", ""), json.dumps(d, sort_keys=True)))


def _node_metadata_json(md: typing.Any) -> typing.Any:
    if md is None:
        return None
    return proto_dict(md)


def _node_overrides(n: typing.Any) -> dict:
    out = {}
    res = getattr(n, "_resources", None)
    if res is not None:
        out["resources"] = proto_dict(res)
    ext = getattr(n, "_extended_resources", None)
    if ext is not None:
        d = proto_dict(ext)
        if d:
            out["extended_resources"] = d
    img = getattr(n, "_container_image", None)
    if img is not None:
        out["container_image"] = img
    pt = getattr(n, "_pod_template", None)
    if pt is not None:
        out["pod_template"] = pod_template_json(pt)
    aliases = getattr(n, "_aliases", None)
    if aliases:
        out["aliases"] = sorted(({"var": a.var, "alias": a.alias} for a in aliases), key=lambda d: d["var"])
    return out


def task_location(t: typing.Any) -> typing.Tuple[typing.Optional[str], typing.Optional[str]]:
    fn = getattr(t, "task_function", None)
    if fn is not None:
        fn = inspect_unwrap(fn)
        module = getattr(fn, "__module__", None)
        return module, _source_of(fn, module)
    module = getattr(t, "instantiated_in", None) or getattr(t, "_instantiated_in", None)
    module = module or _find_defining_module(t)
    return module or None, module_file(module)


def workflow_location(wf: typing.Any) -> typing.Tuple[typing.Optional[str], typing.Optional[str]]:
    fn = getattr(wf, "function", None) or getattr(wf, "_workflow_function", None)
    if fn is not None:
        fn = inspect_unwrap(fn)
        module = getattr(fn, "__module__", None)
        return module, _source_of(fn, module)
    module = getattr(wf, "instantiated_in", None) or getattr(wf, "_instantiated_in", None)
    module = module or _find_defining_module(wf)
    return module or None, module_file(module)


def inspect_unwrap(fn: typing.Any) -> typing.Any:
    if isinstance(fn, functools.partial):
        fn = fn.func
    import inspect

    try:
        return inspect.unwrap(fn)
    except Exception:
        return fn


def _source_of(fn: typing.Any, module: typing.Optional[str]) -> typing.Optional[str]:
    import inspect

    try:
        path = inspect.getsourcefile(fn)
    except (TypeError, OSError):
        path = None
    return relpath(path) if path else module_file(module)


def _find_defining_module(obj: typing.Any) -> typing.Optional[str]:
    """For entities flytekit does not track (e.g. ImperativeWorkflow): the first user module, by name, that holds
    the object as a global."""
    for name in sorted(sys.modules):
        m = sys.modules.get(name)
        if m is None or not is_user_file(getattr(m, "__file__", None) or ""):
            continue
        try:
            if any(v is obj for v in vars(m).values()):
                return name
        except Exception:
            continue
    return None


def options_json(o: typing.Any) -> dict:
    out = {}
    for f in ("labels", "annotations", "raw_output_data_config", "security_context", "max_parallelism",
              "notifications", "disable_notifications", "overwrite_cache"):
        v = getattr(o, f, None)
        if v is None:
            continue
        if isinstance(v, list):
            out[f] = [proto_dict(x) if hasattr(x, "to_flyte_idl") else jsonable_or_none(x) for x in v]
        elif hasattr(v, "to_flyte_idl"):
            out[f] = proto_dict(v)
        else:
            out[f] = jsonable_or_none(v)
    return out


def launch_plan_json(lp: typing.Any) -> dict:
    fixed = {k: jsonable_or_none(v) for k, v in (lp.raw_fixed_inputs or {}).items()}
    if not fixed and lp.fixed_inputs is not None and lp.fixed_inputs.literals:
        fixed = {k: proto_dict(v) for k, v in lp.fixed_inputs.literals.items()}
    # flytekit's saved_inputs holds the default inputs updated with the fixed ones
    defaults = {k: jsonable_or_none(v) for k, v in (lp.saved_inputs or {}).items() if k not in fixed}
    config = {}
    for f in ("schedule", "labels", "annotations", "raw_output_data_config", "security_context", "trigger",
              "concurrency"):
        v = getattr(lp, f, None)
        if v is None:
            config[f] = None
        elif hasattr(v, "to_flyte_idl"):
            config[f] = _call_json(lambda v=v: v.to_flyte_idl())
        else:
            config[f] = jsonable_or_none(v) if jsonable_or_none(v) is not None else qualname(type(v))
    config["notifications"] = [proto_dict(n) for n in (lp.notifications or [])]
    config["max_parallelism"] = lp.max_parallelism
    config["overwrite_cache"] = lp.overwrite_cache
    config["auto_activate"] = _safe(lambda: lp.should_auto_activate)
    config["parameters"] = {
        k: proto_dict(p) for k, p in sorted((lp.parameters.parameters or {}).items())
    }
    return {
        "name": lp.name,
        "workflow": lp.workflow.name,
        "fixed_inputs": fixed,
        "default_inputs": defaults,
        "interface": interface_json(lp.python_interface),
        "config": config,
    }


def reference_json(e: typing.Any) -> dict:
    from flytekit.core.reference_entity import LaunchPlanReference, TaskReference, WorkflowReference

    if is_remote_entity(e):
        ident = e.id
        rt = getattr(ident, "resource_type", None)
        kind = {1: "task", 2: "workflow", 3: "launch_plan"}.get(rt, "task")
        iface = getattr(e, "python_interface", None)
        return {
            "kind": kind,
            "name": ident.name,
            "project": ident.project,
            "domain": ident.domain,
            "version": ident.version,
            "interface": interface_json(iface) if iface is not None else {"inputs": {}, "outputs": {}},
        }
    ref = e.reference
    if isinstance(ref, TaskReference):
        kind = "task"
    elif isinstance(ref, WorkflowReference):
        kind = "workflow"
    elif isinstance(ref, LaunchPlanReference):
        kind = "launch_plan"
    else:
        kind = "task"
    return {
        "kind": kind,
        "name": ref.name,
        "project": ref.project,
        "domain": ref.domain,
        "version": ref.version,
        "interface": interface_json(e.python_interface),
    }


# ----------------------------------------------------------------------------------------------------------------
# main


def introspect(entrypoint: str) -> dict:
    modname, attr, obj = load_entrypoint(entrypoint)
    walker = Walker()
    kind, name = walker.classify(obj)
    if kind in ("branch", "gate", "other") or name is None:
        raise IntrospectError(
            "not_a_flyte_entity",
            f"{entrypoint!r} is a {qualname(type(obj))}, not a flytekit task, workflow, launch plan or reference "
            f"entity",
            file=module_file(modname),
        )
    try:
        walker.visit(obj)
    except IntrospectError:
        raise
    except Exception as e:
        tb, f = user_traceback(e)
        raise IntrospectError("introspection_failed", exc_message(e), file=f or module_file(modname), tb=tb)
    import flytekit

    return {
        "entrypoint": entrypoint,
        # What flytekit's default image is chosen by when nothing else names one.
        "environment": {"python": "%d.%d" % sys.version_info[:2], "flytekit": flytekit.__version__},
        "root": {"kind": kind, "name": name},
        "tasks": [walker.tasks[k] for k in sorted(walker.tasks)],
        "workflows": [walker.workflows[k] for k in sorted(walker.workflows)],
        "launch_plans": [walker.launch_plans[k] for k in sorted(walker.launch_plans)],
        "references": [walker.references[k] for k in sorted(walker.references)],
    }


def _introspect_or_error(entrypoint: str) -> typing.Tuple[dict, int]:
    return result_or_error(lambda: introspect(entrypoint), "introspection_failed")


def answer(argv: typing.List[str]) -> typing.Tuple[dict, int]:
    if len(argv) >= 2 and argv[1] == "--batch":
        # One interpreter (one flytekit import) for many entrypoints; each reports on its own.
        return {"results": {ep: _introspect_or_error(ep)[0] for ep in argv[2:]}}, 0
    if len(argv) == 2:
        return _introspect_or_error(argv[1])
    return {"error": IntrospectError(
        "introspection_failed",
        "usage: introspect <module.path:attr | path/to/file.py:attr> | --batch <entrypoint>...",
    ).to_json()}, 2


def main(argv: typing.List[str]) -> int:
    return json_stdout(lambda: answer(argv), dumps)

