"""Serialize a flytekit entrypoint into registrable protobufs with PER-TASK settings.

Usage:  python <runtime>/__main__.py serialize <request.json> <out_dir>
        python <runtime>/__main__.py serialize --batch <request.json> <out_dir> [<request.json> <out_dir> ...]

--batch serializes several requests in one process (one interpreter start, one flytekit import) and prints
{"results": {"<out_dir>": <summary or {"error": ...}>}}; it exits 0 when every request succeeded, else 2.

Runs in the USER's environment (CPython + flytekit), as part of the runtime package (stdlib + flytekit only, no
import of `flytebuild`). Run it with cwd = repo root (or a sandbox laid out like it) and the source roots on
PYTHONPATH.

Request and answer: docs/runtime-contract.md (serialize). A task's pod_template is attached to its template (the
task's command, args, resources and env are merged into the primary container, as flytekit does for
`PodTemplate`). A node's pod_template (flytebuild merges `with_overrides(pod_template=...)` on top of the task's
template) replaces what flytekit serialized into that task node's overrides, keeping the command, args, resources
and env flytekit put into its primary container; only nodes that have a with_overrides pod template are touched.

What it does:
- imports the entrypoint, then walks it with flytekit's own `get_serializable` twice: a first pass (thrown away)
  finds every reachable entity in dependency order (plus the default launch plan of every workflow, as
  `pyflyte package` does); the second pass serializes each entity, children first, with ITS OWN
  `SerializationSettings` (own version; a `fast` task gets `FastSerializationSettings` pointing at the bundle, a
  `baked`/`container` task plain settings). Parents are serialized after their children, so flytekit copies the
  children's ids (with their own versions) into node references and launch plans.
- images: while a task is serialized its image attribute (`container_image` / ContainerTask `_image`, the inner
  task of a map task) is pinned to the requested ref, so flytekit never resolves `{{.image.x}}` templates nor
  builds an ImageSpec, and the ref lands everywhere flytekit puts the image (container, pod primary container).
  Afterwards the template is checked and, for task types we could not pin, the image is set on the container.
- writes `<n>_<name>_<1|2|3>.pb` files (flytekit's `persist_registrable_entities` naming: 1 task spec,
  2 workflow spec, 3 launch plan) in dependency order, tasks first, then workflows, then launch plans (a workflow
  that calls a launch plan comes after it). Deterministic protobuf serialization: same inputs, same bytes.

Exit 0 with the summary on stdout, exit 2 with {"error": {...}} for bad input. Everything user code (or flytekit)
prints goes to stderr.
"""
from __future__ import annotations

import collections
import contextlib
import copy
import json
import math
import os
import typing

from .answers import IntrospectError as SerializeError
from .answers import json_stdout
from .entrypoint import exc_message, load_entrypoint, module_file, result_or_error, user_traceback

_MODES = ("baked", "fast", "container", "none")
_KIND_RANK = {"task": 0, "workflow": 1, "launch_plan": 2}
_FILE_SUFFIX = {"task": 1, "workflow": 2, "launch_plan": 3}


# ----------------------------------------------------------------------------------------------------------------
# the request


class Request:
    def __init__(self, raw: typing.Any, path: str):
        self.path = path

        def bad(msg: str) -> SerializeError:
            return SerializeError("bad_request", f"request {path}: {msg}", file=path)

        if not isinstance(raw, dict):
            raise bad("must be a JSON object")
        for key in ("entrypoint", "project", "domain"):
            if not isinstance(raw.get(key), str) or not raw.get(key):
                raise bad(f"{key!r} must be a non-empty string")
        self.entrypoint: str = raw["entrypoint"]
        self.project: str = raw["project"]
        self.domain: str = raw["domain"]
        self.python_interpreter: typing.Optional[str] = raw.get("python_interpreter") or None
        self.default_image: typing.Optional[str] = raw.get("default_image") or None
        if self.default_image is not None and not isinstance(self.default_image, str):
            raise bad("'default_image' must be a string")
        bundle = raw.get("bundle")
        if bundle is not None:
            if not isinstance(bundle, dict) or not isinstance(bundle.get("uri"), str) or not bundle["uri"]:
                raise bad("'bundle' must be null or {\"uri\": \"...\", \"dest_dir\": \"...\"}")
            dest = bundle.get("dest_dir", ".")
            if not isinstance(dest, str) or not dest:
                raise bad("'bundle.dest_dir' must be a non-empty string")
            bundle = {"uri": bundle["uri"], "dest_dir": dest}
        self.bundle: typing.Optional[dict] = bundle

        self.tasks: typing.Dict[str, dict] = {}
        for name, entry in self._section(raw, "tasks", bad).items():
            mode = entry.get("mode", "baked")
            if mode not in _MODES:
                raise bad(f"task {name!r}: 'mode' must be one of {', '.join(_MODES)} (got {mode!r})")
            if mode == "fast" and self.bundle is None:
                raise bad(f"task {name!r} is 'fast' but the request has no 'bundle'")
            image = entry.get("image") or self.default_image
            if mode == "none":  # no container (Echo): flytekit registers no image for it
                image = entry.get("image") or None
            elif not isinstance(image, str) or not image:
                raise bad(f"task {name!r} has no 'image' and the request has no 'default_image'")
            cache_version = entry.get("cache_version")
            if cache_version is not None and not isinstance(cache_version, str):
                raise bad(f"task {name!r}: 'cache_version' must be a string or null")
            pod_template = entry.get("pod_template")
            if pod_template is not None:
                if not isinstance(pod_template, dict) or not isinstance(pod_template.get("pod_spec"), dict):
                    raise bad(f"task {name!r}: 'pod_template' must be null or an object with a 'pod_spec' object")
            self.tasks[name] = {
                "mode": mode,
                "image": image,
                "version": entry["version"],
                "cache_version": cache_version,
                "pod_template": pod_template,
            }
        self.nodes: typing.Dict[str, typing.Dict[str, dict]] = {}
        nodes = raw.get("nodes") or {}
        if not isinstance(nodes, dict):
            raise bad("'nodes' must be an object keyed by workflow name")
        for wf_name, by_id in nodes.items():
            if not isinstance(by_id, dict):
                raise bad(f"nodes[{wf_name!r}] must be an object keyed by node id")
            for node_id, entry in by_id.items():
                pt = entry.get("pod_template") if isinstance(entry, dict) else None
                if not isinstance(pt, dict) or not isinstance(pt.get("pod_spec"), dict):
                    raise bad(f"nodes[{wf_name!r}][{node_id!r}] needs a 'pod_template' object with a 'pod_spec' object")
                self.nodes.setdefault(wf_name, {})[node_id] = {"pod_template": pt}
        self.workflows = self._section(raw, "workflows", bad)
        self.launch_plans = self._section(raw, "launch_plans", bad)

    @staticmethod
    def _section(raw: dict, key: str, bad: typing.Callable[[str], SerializeError]) -> typing.Dict[str, dict]:
        section = raw.get(key) or {}
        if not isinstance(section, dict):
            raise bad(f"{key!r} must be an object keyed by entity name")
        out = {}
        for name, entry in section.items():
            if not isinstance(entry, dict):
                raise bad(f"{key}[{name!r}] must be an object")
            version = entry.get("version")
            if not isinstance(version, str) or not version:
                raise bad(f"{key}[{name!r}] needs a non-empty string 'version'")
            out[name] = entry
        return out

    def image_for(self, task_name: str) -> typing.Optional[str]:
        entry = self.tasks.get(task_name)
        return entry["image"] if entry else self.default_image


# ----------------------------------------------------------------------------------------------------------------
# flytekit plumbing


def _kind_of(entity: typing.Any) -> typing.Optional[str]:
    """Registrable kind of a python entity, or None (nodes, branches, references, remote entities)."""
    from flytekit.core.base_task import PythonTask
    from flytekit.core.launch_plan import LaunchPlan
    from flytekit.core.reference_entity import ReferenceEntity
    from flytekit.core.workflow import WorkflowBase

    if isinstance(entity, ReferenceEntity):
        return None
    if isinstance(entity, PythonTask):
        return "task"
    if isinstance(entity, WorkflowBase):
        return "workflow"
    if isinstance(entity, LaunchPlan):
        return "launch_plan"
    return None


def image_holder(task: typing.Any) -> typing.Optional[typing.Tuple[typing.Any, str]]:
    """(object, attribute) holding the image flytekit resolves when serializing `task`, if we know it."""
    from flytekit.core.array_node_map_task import ArrayNodeMapTask
    from flytekit.core.container_task import ContainerTask
    from flytekit.core.python_auto_container import PythonAutoContainerTask

    if isinstance(task, ArrayNodeMapTask):
        inner = getattr(task, "_run_task", None)
        return image_holder(inner) if inner is not None else None
    try:
        from flytekit.core.legacy_map_task import MapPythonTask

        if isinstance(task, MapPythonTask):
            inner = getattr(task, "_run_task", None)
            return image_holder(inner) if inner is not None else None
    except ImportError:  # pragma: no cover
        pass
    if isinstance(task, ContainerTask) and hasattr(task, "_image"):
        return task, "_image"
    if isinstance(task, PythonAutoContainerTask) and hasattr(task, "_container_image"):
        return task, "_container_image"
    return None


@contextlib.contextmanager
def pinned_images(pins: typing.List[typing.Tuple[typing.Any, str, str]]):
    """Temporarily set image attributes to plain refs; always restored."""
    saved = []
    try:
        for obj, attr, ref in pins:
            saved.append((obj, attr, getattr(obj, attr)))
            setattr(obj, attr, ref)
        yield
    finally:
        for obj, attr, old in reversed(saved):
            setattr(obj, attr, old)


def _settings(req: Request, version: str, image: typing.Optional[str], fast: bool):
    from flytekit.configuration import FastSerializationSettings, Image, ImageConfig, SerializationSettings

    img = Image.look_up_image_info("default", image) if image else None
    image_config = ImageConfig(default_image=img, images=[img] if img else [])
    kwargs = dict(
        project=req.project,
        domain=req.domain,
        version=version,
        image_config=image_config,
        env=None,
        fast_serialization_settings=FastSerializationSettings(
            enabled=True, destination_dir=req.bundle["dest_dir"], distribution_location=req.bundle["uri"]
        )
        if fast
        else None,
    )
    if req.python_interpreter:
        kwargs["python_interpreter"] = req.python_interpreter
    return SerializationSettings(**kwargs)


@contextlib.contextmanager
def _flyte_context(settings):
    from flytekit.core.context_manager import FlyteContextManager

    ctx = FlyteContextManager.current_context()
    with FlyteContextManager.with_context(ctx.with_serialization_settings(settings)) as new_ctx:
        yield new_ctx


def _is_python_code_task(task: typing.Any) -> bool:
    """A task whose container runs user Python code through pyflyte-execute (so a code bundle can help)."""
    from flytekit.core.array_node_map_task import ArrayNodeMapTask
    from flytekit.core.container_task import ContainerTask
    from flytekit.core.python_auto_container import PythonAutoContainerTask

    if isinstance(task, ContainerTask):
        return False
    if isinstance(task, (PythonAutoContainerTask, ArrayNodeMapTask)):
        return True
    try:
        from flytekit.core.legacy_map_task import MapPythonTask

        return isinstance(task, MapPythonTask)
    except ImportError:  # pragma: no cover
        return False


def _primary_container(template: typing.Any) -> typing.Optional[dict]:
    """The primary container dict of a template's k8s pod, if any."""
    pod = template.k8s_pod
    if pod is None or not pod.pod_spec:
        return None
    name = (template.config or {}).get("primary_container_name") or "primary"
    for c in pod.pod_spec.get("containers") or []:
        if c.get("name") == name:
            return c
    return None


def _task_args(template: typing.Any) -> typing.List[str]:
    if template.container is not None:
        return list(template.container.args or [])
    pc = _primary_container(template)
    return list(pc.get("args") or []) if pc else []


_RESOURCE_NAMES = {"CPU": "cpu", "MEMORY": "memory", "GPU": "nvidia.com/gpu", "STORAGE": "storage",
                   "EPHEMERAL_STORAGE": "ephemeral-storage"}


def _resource_name(entry: typing.Any) -> str:
    from flytekit.models.task import Resources

    for n, v in vars(Resources.ResourceName).items():
        if not n.startswith("_") and v == entry.name:
            return _RESOURCE_NAMES.get(n, n.lower())
    return str(entry.name)


def _task_primary(template: typing.Any) -> dict:
    """What flytekit put in a serialized task's container (or its pod's primary container): command, args,
    resources and env, as pod-spec dicts. Taken before any pod template of ours is applied."""
    source = template.container
    if source is not None:
        out: dict = {"command": list(source.command or []), "args": list(source.args or [])}
        limits = {_resource_name(r): r.value for r in (source.resources.limits if source.resources else [])}
        requests = {_resource_name(r): r.value for r in (source.resources.requests if source.resources else [])}
        if limits or requests:
            out["resources"] = {"limits": limits, "requests": requests}
        env = [{"name": k, "value": v} for k, v in sorted((source.env or {}).items())]
        if env:
            out["env"] = env
        return out
    existing = _primary_container(template)
    if not existing:
        return {}
    return {k: copy.deepcopy(existing[k]) for k in ("command", "args", "resources", "env") if k in existing}


def _pod_spec_with_task(pod_template: dict, task_primary: dict, image: typing.Optional[str]) -> dict:
    """The template's pod spec with the task's container folded into the primary container, as flytekit's
    _serialize_pod_spec does (without needing the kubernetes package): image, command and args are the task's, its
    resources win when it has any, and env is the union (the template's value wins for a name in both)."""
    primary_name = pod_template.get("primary_container_name") or "primary"
    spec = copy.deepcopy(pod_template["pod_spec"])
    containers = spec.setdefault("containers", [])
    primary = next((c for c in containers if c.get("name") == primary_name), None)
    if primary is None:
        primary = {"name": primary_name}
        containers.append(primary)
    if image:
        primary["image"] = image
    for key in ("command", "args"):
        if key in task_primary:
            primary[key] = copy.deepcopy(task_primary[key])
    if task_primary.get("resources"):
        primary["resources"] = copy.deepcopy(task_primary["resources"])
    ours = {e.get("name") for e in primary.get("env") or []}
    env = [e for e in task_primary.get("env") or [] if e.get("name") not in ours] + list(primary.get("env") or [])
    if env:
        primary["env"] = env
    return spec


def _apply_pod_template(template: typing.Any, pod_template: dict, task_primary: dict, image: str) -> None:
    """Attach a rendered pod template to a serialized task template (k8s_pod instead of container)."""
    from flytekit.models.task import K8sObjectMetadata, K8sPod

    template._container = None
    template._k8s_pod = K8sPod(
        pod_spec=_pod_spec_with_task(pod_template, task_primary, image),
        metadata=K8sObjectMetadata(
            labels=pod_template.get("labels") or None, annotations=pod_template.get("annotations") or None
        ),
    )
    config = dict(template.config or {})
    config["primary_container_name"] = pod_template.get("primary_container_name") or "primary"
    template._config = config


def _apply_node_pod_templates(
    req: "Request", wf_name: str, model: typing.Any, task_primaries: typing.Dict[str, dict]
) -> typing.List[str]:
    """Replace the with_overrides pod templates of `wf_name`'s task nodes; returns the node ids done. The primary
    container gets the task's own serialized command/args (fast or not, as registered), not what flytekit built
    with the workflow's settings."""
    from flytekit.core.pod_template import PodTemplate
    from flytekit.core.utils import _dnsify

    wanted = {_dnsify(node_id): entry["pod_template"] for node_id, entry in req.nodes.get(wf_name, {}).items()}
    done: typing.List[str] = []

    def visit(node: typing.Any) -> None:
        if node is None:
            return
        tn = node.task_node
        if tn is not None and node.id in wanted and tn.overrides is not None and tn.overrides.pod_template is not None:
            pt = wanted[node.id]
            task_name = tn.reference_id.name
            image = tn.overrides.container_image or req.image_for(task_name)
            tn.overrides._pod_template = PodTemplate(
                pod_spec=_pod_spec_with_task(pt, task_primaries.get(task_name, {}), image),
                primary_container_name=pt.get("primary_container_name") or "primary",
                labels=pt.get("labels") or None,
                annotations=pt.get("annotations") or None,
            )
            done.append(node.id)
        if node.branch_node is not None:
            ie = node.branch_node.if_else
            visit(ie.case.then_node)
            for c in ie.other or []:
                visit(c.then_node)
            visit(ie.else_node)

    for tmpl in [model.template] + list(model.sub_workflows or []):
        for n in tmpl.nodes:
            visit(n)
    return done


def _set_image(template: typing.Any, image: str) -> None:
    if template.container is not None:
        template.container._image = image
    pc = _primary_container(template)
    if pc is not None:
        pc["image"] = image


def _task_image(template: typing.Any) -> typing.Optional[str]:
    if template.container is not None:
        return template.container.image
    pc = _primary_container(template)
    return pc.get("image") if pc else None


# ----------------------------------------------------------------------------------------------------------------
# references inside workflows and launch plans


def _node_refs(node: typing.Any, out: typing.List[typing.Tuple[str, typing.Any]]) -> None:
    if node is None:
        return
    if node.task_node is not None and node.task_node.reference_id is not None:
        out.append(("task", node.task_node.reference_id))
    if node.workflow_node is not None:
        wn = node.workflow_node
        if wn.launchplan_ref is not None:
            out.append(("launch_plan", wn.launchplan_ref))
        if wn.sub_workflow_ref is not None:
            out.append(("workflow", wn.sub_workflow_ref))
    if node.branch_node is not None:
        ie = node.branch_node.if_else
        _node_refs(ie.case.then_node, out)
        for c in ie.other or []:
            _node_refs(c.then_node, out)
        _node_refs(ie.else_node, out)
    if getattr(node, "array_node", None) is not None:
        _node_refs(node.array_node.node, out)


def _refs(kind: str, model: typing.Any) -> typing.List[typing.Tuple[str, typing.Any]]:
    """(kind, Identifier) of every entity a serialized workflow spec / launch plan refers to."""
    out: typing.List[typing.Tuple[str, typing.Any]] = []
    if kind == "workflow":
        for tmpl in [model.template] + list(model.sub_workflows or []):
            for n in tmpl.nodes:
                _node_refs(n, out)
            _node_refs(tmpl.failure_node, out)
    elif kind == "launch_plan":
        out.append(("workflow", model.spec.workflow_id))
    return out


# ----------------------------------------------------------------------------------------------------------------
# main


def _determine_text_chars(length: int) -> int:
    """flytekit.tools.serialize_helpers._determine_text_chars: the width of the file index."""
    if length == 0:
        return 0
    return math.ceil(math.log(length, 10))


def serialize(req: Request, out_dir: str) -> dict:
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise SerializeError("bad_request", f"output directory {out_dir} is not empty")
    modname, _, root = load_entrypoint(req.entrypoint)
    root_kind = _kind_of(root)
    if root_kind is None:
        raise SerializeError(
            "not_a_flyte_entity",
            f"{req.entrypoint!r} is a {type(root).__module__}.{type(root).__qualname__}, not a flytekit task, "
            f"workflow or launch plan defined in this repository (reference entities are registered elsewhere)",
            file=module_file(modname),
        )

    from flytekit.core.context_manager import FlyteEntities
    from flytekit.core.launch_plan import LaunchPlan
    from flytekit.remote.remote_callable import RemoteEntity
    from flytekit.tools.translator import get_serializable

    try:
        # Pass 1 (thrown away): what is reachable, in flytekit's dependency order. Every known task's image is
        # pinned to a plain ref so that nothing resolves templates or builds an ImageSpec.
        pins = []
        for e in list(FlyteEntities.entities) + ([root] if root_kind == "task" else []):
            if _kind_of(e) == "task":
                holder, ref = image_holder(e), req.image_for(e.name)
                if holder is not None and ref:
                    pins.append((holder[0], holder[1], ref))
        discovery = _settings(req, "discovery", req.default_image, fast=False)
        first: "collections.OrderedDict[typing.Any, typing.Any]" = collections.OrderedDict()
        with pinned_images(pins), _flyte_context(discovery) as ctx:
            get_serializable(first, discovery, root)
            for e in list(first):
                if _kind_of(e) == "workflow":
                    get_serializable(first, discovery, LaunchPlan.get_default_launch_plan(ctx, e))
        entities = []
        seen_ids = set()
        for e, model in first.items():
            kind = _kind_of(e)
            if kind is None or isinstance(model, RemoteEntity) or id(e) in seen_ids:
                continue
            seen_ids.add(id(e))
            entities.append((kind, e))

        # Versions for everything, or one clear error naming all that is missing.
        versions: typing.Dict[typing.Tuple[str, str], str] = {}
        missing = []
        for kind, e in entities:
            if kind == "task":
                entry = req.tasks.get(e.name)
                v = entry["version"] if entry else None
            elif kind == "workflow":
                v = (req.workflows.get(e.name) or {}).get("version")
            else:
                v = (req.launch_plans.get(e.name) or {}).get("version")
                if v is None and e.name == e.workflow.name:  # a default launch plan: its workflow's version
                    v = (req.workflows.get(e.name) or {}).get("version")
            if v is None:
                missing.append(f"{kind} {e.name}")
            versions[(kind, e.name)] = v
        if missing:
            raise SerializeError(
                "bad_request",
                f"request {req.path} has no entry (version) for: {', '.join(sorted(missing))} "
                f"(reachable from {req.entrypoint})",
                file=req.path,
            )

        # Pass 2: children first, each with its own settings.
        second: "collections.OrderedDict[typing.Any, typing.Any]" = collections.OrderedDict()
        fast_mode: typing.Dict[str, bool] = {}
        for kind, e in entities:
            version = versions[(kind, e.name)]
            pins = []
            if kind == "task":
                entry = req.tasks[e.name]
                fast = entry["mode"] == "fast"
                settings = _settings(req, version, entry["image"], fast=fast)
                holder = image_holder(e)
                if holder is not None:
                    pins.append((holder[0], holder[1], entry["image"]))
                fast_mode[e.name] = fast
            else:
                settings = _settings(req, version, req.default_image, fast=False)
                # Nodes with with_overrides(pod_template=...) make flytekit build their task's container
                # with the workflow's settings: every task's image stays pinned (no ImageSpec resolution).
                for tkind, t in entities:
                    holder = image_holder(t) if tkind == "task" else None
                    if holder is not None:
                        pins.append((holder[0], holder[1], req.tasks[t.name]["image"]))
            with pinned_images(pins), _flyte_context(settings):
                get_serializable(second, settings, e)
    except SerializeError:
        raise
    except Exception as e:
        tb, f = user_traceback(e)
        raise SerializeError("serialization_failed", exc_message(e), file=f or module_file(modname), tb=tb)

    # Post-process tasks: image, cache version, pod template; warnings where a bundle cannot help.
    warnings = []
    task_primaries: typing.Dict[str, dict] = {}
    models: typing.Dict[typing.Tuple[str, str], typing.Any] = {}
    for kind, e in entities:
        model = second[e]
        models[(kind, e.name)] = model
        if kind != "task":
            continue
        entry = req.tasks[e.name]
        template = model.template
        task_primaries[e.name] = _task_primary(template)
        if entry["pod_template"] is not None:
            if template.container is None and template.k8s_pod is None:
                warnings.append(
                    {
                        "task": e.name,
                        "kind": "pod_template_ignored",
                        "message": f"task {e.name} ({template.type}) has no container; its pod_template "
                        f"was not applied",
                    }
                )
            else:
                _apply_pod_template(template, entry["pod_template"], task_primaries[e.name], entry["image"])
        if template.container is not None or template.k8s_pod is not None:
            if _task_image(template) != entry["image"]:
                _set_image(template, entry["image"])
        if entry["cache_version"] is not None:
            template.metadata._discovery_version = entry["cache_version"]
        if entry["mode"] == "fast":
            if not _is_python_code_task(e):
                from flytekit.core.container_task import ContainerTask

                raw = isinstance(e, ContainerTask)
                warnings.append(
                    {
                        "task": e.name,
                        "kind": "raw_container" if raw else "non_python",
                        "message": f"task {e.name} is {'a raw container task' if raw else f'a {template.type} task'} "
                        f"and does not run Python code through pyflyte-execute: a code bundle cannot help "
                        f"it, it was registered without one (mode 'container' avoids this warning)",
                    }
                )

    # Node overrides: flytebuild's merged with_overrides pod templates.
    for kind, e in entities:
        if kind == "workflow" and e.name in req.nodes:
            done = set(_apply_node_pod_templates(req, e.name, models[(kind, e.name)], task_primaries))
            from flytekit.core.utils import _dnsify

            for node_id in sorted(req.nodes[e.name]):
                if _dnsify(node_id) not in done:
                    warnings.append(
                        {
                            "task": f"{e.name}/{node_id}",
                            "kind": "node_pod_template_ignored",
                            "message": f"workflow {e.name} has no task node {node_id} with a "
                            f"with_overrides pod template; its pod_template was not applied",
                        }
                    )

    # Self-check: every id and every reference carries the requested version.
    for (kind, name), model in models.items():
        ident = model.template.id if kind in ("task", "workflow") else model.id
        if ident.version != versions[(kind, name)]:
            raise SerializeError(
                "internal",
                f"{kind} {name} was serialized with version {ident.version!r}, expected {versions[(kind, name)]!r}",
            )
        for rkind, rid in _refs(kind, model):
            expected = versions.get((rkind, rid.name))
            if (
                expected is not None
                and rid.version != expected
                and (rid.project, rid.domain) == (req.project, req.domain)
            ):
                raise SerializeError(
                    "internal",
                    f"{kind} {name} refers to {rkind} {rid.name} at version {rid.version!r}, expected {expected!r}",
                )

    # Order: dependencies first; among the ready ones tasks, then workflows, then launch plans (pass-1 order).
    index = {(k, e.name): i for i, (k, e) in enumerate(entities)}
    deps = {key: set() for key in index}
    for key, model in models.items():
        for rkind, rid in _refs(key[0], model):
            dep = (rkind, rid.name)
            if dep in index and dep != key:
                deps[key].add(dep)
    ordered: typing.List[typing.Tuple[str, str]] = []
    done: typing.Set[typing.Tuple[str, str]] = set()
    while len(ordered) < len(index):
        ready = [k for k in index if k not in done and deps[k] <= done]
        if not ready:  # a cycle cannot happen in flytekit; keep pass-1 order for whatever is left
            ready = [k for k in index if k not in done]
        nxt = min(ready, key=lambda k: (_KIND_RANK[k[0]], index[k]))
        ordered.append(nxt)
        done.add(nxt)

    os.makedirs(out_dir, exist_ok=True)
    width = _determine_text_chars(len(ordered))
    out_entities = []
    for i, (kind, name) in enumerate(ordered):
        fname = f"{str(i).zfill(width)}_{name}_{_FILE_SUFFIX[kind]}.pb"
        data = models[(kind, name)].to_flyte_idl().SerializeToString(deterministic=True)
        with open(os.path.join(out_dir, fname), "wb") as f:
            f.write(data)
        is_fast = kind == "task" and "pyflyte-fast-execute" in _task_args(models[(kind, name)].template)
        out_entities.append(
            {"kind": kind, "name": name, "version": versions[(kind, name)], "file": fname, "fast": is_fast}
        )
    any_fast = any(x["fast"] for x in out_entities)
    return {
        "root": {"kind": root_kind, "name": root.name},
        "entities": out_entities,
        "warnings": sorted(warnings, key=lambda w: (w["task"], w["kind"])),
        "bundle": {"uri": req.bundle["uri"], "used": any_fast} if req.bundle else None,
    }


def _read_request(path: str) -> Request:
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except OSError as e:
        raise SerializeError("bad_request", f"cannot read request {path}: {e.strerror}", file=path)
    except ValueError as e:
        raise SerializeError("bad_request", f"request {path} is not valid JSON: {e}", file=path)
    return Request(raw, path)


def _serialize_one(req_path: str, out_dir: str) -> typing.Tuple[dict, int]:
    return result_or_error(lambda: serialize(_read_request(req_path), out_dir), "serialization_failed")


def _main(argv: typing.List[str]) -> typing.Tuple[dict, int]:
    try:
        if len(argv) >= 2 and argv[1] == "--batch":
            pairs = argv[2:]
            if not pairs or len(pairs) % 2:
                raise SerializeError("bad_request", "usage: serialize --batch <request.json> <out_dir> ...")
            results, code = {}, 0
            for req_path, out_dir in zip(pairs[::2], pairs[1::2]):
                one, one_code = _serialize_one(req_path, out_dir)
                results[out_dir] = one
                code = code or one_code
            return {"results": results}, code
        if len(argv) != 3:
            raise SerializeError("bad_request", "usage: serialize <request.json> <out_dir>")
        return _serialize_one(argv[1], argv[2])
    except SerializeError as e:
        return {"error": e.to_json()}, 2


def main(argv: typing.List[str]) -> int:
    return json_stdout(lambda: _main(argv), lambda result: json.dumps(result, indent=2, sort_keys=True))
