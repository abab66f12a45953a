"""Run a flytekit workflow, launch plan or task locally, with flytebuild's cache versions and images.

Usage:  python <runtime>/__main__.py run <request.json> [--format=table|json] [--<input> <value> ...]

Runs in the USER's environment (CPython + flytekit), as part of the runtime package (the same entrypoint, traceback
and image rules as introspect and serialize). Run it with cwd = repo root and the source roots on PYTHONPATH.

Request and answer: docs/runtime-contract.md (run).

What it does, in order:
- imports the entrypoint; a reference entity anywhere in it is refused with a clear message (they run on the
  cluster: `flyte_reference` targets, or `--remote`), before anything runs;
- parses `--name value` by the entity's Python interface (ints, floats, strings, bools, lists, dicts, dataclasses
  and pydantic models as JSON, files and directories as paths); launch plan fixed inputs (cannot be overridden) and
  default inputs apply; says on stderr where each input came from;
- gives every task flytebuild's `cache_version` (the user's plus a digest of the interface), so flytekit's local
  cache key follows the interface as the backend's does: a new field in a returned dataclass is a cache miss
  instead of a stale or crashing hit. A task with `cache=True` and no outputs is run every time, as on a cluster:
  propeller stores a cache entry as a datacatalog artifact holding the outputs, and datacatalog refuses an artifact
  without data (`ValidateEmptyArtifactData`), so such a task is never a cache hit there;
- pins every task's image to the planned one (logged with its source), so tasks flytekit serializes while running
  locally (connector/agent tasks, raw containers) never fail with "An image is required";
- runs it, printing one line per task/sub-workflow on stderr, then the outputs on stdout: a table, or JSON with
  `--format=json`.

Exit 0 on success; 2 for bad input or an entity that cannot run locally (one paragraph on stderr, no traceback of
ours); 1 when the user's code failed (its traceback, trimmed to user frames).
"""
from __future__ import annotations

import json
import threading
import time
import typing

from . import introspect
from .answers import IntrospectError, RunError, log, request_answer
from .entrypoint import has_user_frames, load_entrypoint, module_file, user_traceback
from .inputs import BadValue, parse_value, show, split_args, to_json, type_name
from .serialize import image_holder

# ----------------------------------------------------------------------------------------------------------------
# the request and the command line


class Request:
    def __init__(self, raw: typing.Any, path: str):
        if not isinstance(raw, dict) or not isinstance(raw.get("entrypoint"), str) or not raw["entrypoint"]:
            raise RunError(f"run request {path} must be a JSON object with a non-empty 'entrypoint'")
        self.entrypoint: str = raw["entrypoint"]
        self.target: typing.Optional[str] = raw.get("target") or None
        tasks = raw.get("tasks") or {}
        if not isinstance(tasks, dict) or not all(isinstance(v, dict) for v in tasks.values()):
            raise RunError(f"run request {path}: 'tasks' must be an object of objects keyed by task name")
        self.tasks: typing.Dict[str, dict] = tasks
        self.default_image: typing.Optional[str] = raw.get("default_image") or None


def take_mocks(
    pairs: typing.List[typing.Tuple[str, typing.Optional[str]]]
) -> typing.Tuple[typing.Dict[str, str], typing.List[typing.Tuple[str, typing.Optional[str]]]]:
    """`--mock <reference name>=<module:function>` pairs (a local stand-in for a reference entity), and the rest."""
    mocks, rest = {}, []
    for name, value in pairs:
        if name != "mock":
            rest.append((name, value))
            continue
        ref, eq, target = (value or "").partition("=")
        if not eq or not ref or ":" not in target:
            raise RunError(f"--mock {value!r} must be `<reference name>=<module.path:function>`",
                           fix="e.g. `--mock remote.tasks.scale=my_mocks:scale`")
        mocks[ref] = target
    return mocks, rest


# ----------------------------------------------------------------------------------------------------------------
# the entity


def entity_kind(obj: typing.Any) -> str:
    kind, _ = introspect.Walker().classify(obj)
    return kind


def walk(obj: typing.Any) -> typing.Tuple[typing.List[typing.Any], typing.List[typing.Any]]:
    """(every task object, every reference entity) reachable from `obj`, each once, in a stable order."""
    from flytekit.core.array_node_map_task import ArrayNodeMapTask
    from flytekit.core.base_task import Task
    from flytekit.core.condition import BranchNode
    from flytekit.core.launch_plan import LaunchPlan
    from flytekit.core.reference_entity import ReferenceEntity
    from flytekit.core.workflow import WorkflowBase

    tasks: typing.Dict[int, typing.Any] = {}
    refs: typing.Dict[int, typing.Any] = {}
    seen: typing.Set[int] = set()

    def visit(e: typing.Any) -> None:
        if e is None or id(e) in seen:
            return
        seen.add(id(e))
        if isinstance(e, ReferenceEntity) or introspect.is_remote_entity(e):
            refs[id(e)] = e
            return
        if isinstance(e, Task):
            tasks[id(e)] = e
            if isinstance(e, ArrayNodeMapTask):
                visit(e.python_function_task)
            inner = getattr(e, "run_task", None)  # legacy map task
            if inner is not None and inner is not e:
                visit(inner)
            for hint in getattr(e, "node_dependency_hints", None) or []:
                visit(hint)
            return
        if isinstance(e, LaunchPlan):
            visit(e.workflow)
            return
        if isinstance(e, WorkflowBase):
            for n in e.nodes:
                visit_node(n)
            visit(getattr(e, "on_failure", None))
            failure_node = getattr(e, "failure_node", None)
            if failure_node is not None:
                visit_node(failure_node)
            return
        if isinstance(e, BranchNode):
            for n in introspect.branch_nodes(e):
                visit_node(n)
            return
        target = introspect.array_node_target(e)
        if target is not None:
            visit(target)

    def visit_node(n: typing.Any) -> None:
        if n is not None:
            visit(n.flyte_entity)

    visit(obj)
    return list(tasks.values()), list(refs.values())


def mock_references(refs: typing.List[typing.Any], mocks: typing.Dict[str, str]) -> typing.List[typing.Any]:
    """Give the references the user mocked (`--mock NAME=module:function`) that function as their local body
    (what `flytekit.testing.patch` does in tests); return the references left without one."""
    names = {introspect.reference_json(r)["name"] for r in refs}
    unknown = sorted(set(mocks) - names)
    if unknown:
        raise RunError(f"--mock names {', '.join(unknown)}, which is not a reference entity of this workflow",
                       fix=f"its reference entities are: {', '.join(sorted(names)) or 'none'}")
    left = []
    for r in refs:
        name = introspect.reference_json(r)["name"]
        if name not in mocks:
            left.append(r)
            continue
        try:
            _, _, fn = load_entrypoint(mocks[name])
        except IntrospectError as e:
            raise RunError(f"cannot load the mock {mocks[name]} of {name}: {e.message}", file=e.file)
        body = getattr(fn, "execute", None) if hasattr(fn, "python_interface") else fn  # a @task works too
        if not callable(body):
            raise RunError(f"the mock {mocks[name]} of {name} is not callable")
        r.execute = body
        log(f"[mock] {name}: runs {mocks[name]} locally")
    return left


def refuse_references(refs: typing.List[typing.Any], entrypoint: str, file: typing.Optional[str]) -> None:
    if not refs:
        return
    described = []
    for r in refs:
        ref = introspect.reference_json(r)
        described.append(
            f"{ref['kind'].replace('_', ' ')} {ref['name']} "
            f"({ref['project']}/{ref['domain']}, version {ref['version']})"
        )
    raise RunError(
        f"`{entrypoint}` uses reference entities, which exist only on the cluster and cannot run locally: "
        + "; ".join(sorted(described)),
        fix="run it on the cluster (`./pants run <target> -- --remote`), give each a local stand-in with "
        "`--mock <name>=<module:function>`, or run a referenced entity on its own through a `flyte_reference` target",
        file=file,
    )


def apply_plan(tasks: typing.List[typing.Any], req: Request) -> None:
    """Give every task the planned cache version and image, and say so."""
    for t in sorted(tasks, key=lambda t: t.name):
        entry = req.tasks.get(t.name) or {}
        md = t.metadata
        if md.cache:
            outputs = t.python_interface.outputs if t.python_interface is not None else {}
            if not outputs:
                # As on a cluster: datacatalog refuses a cache entry without outputs, so nothing is ever a hit.
                md.cache = False
                md.cache_serialize = False
                log(
                    f"[cache] {t.name}: cache=True but no outputs: runs every time, as on a Flyte cluster "
                    "(the backend stores no cache entry without outputs)"
                )
            elif entry.get("cache_version"):
                if md.cache_version != entry["cache_version"]:
                    md.cache_version = entry["cache_version"]
                log(f"[cache] {t.name}: cache version {md.cache_version} (yours + interface digest)")
            else:
                log(f"[cache] {t.name}: cache version {md.cache_version!r} from code (no plan for this task)")
        image = entry.get("image") or req.default_image
        if image:
            holder = image_holder(t)
            if holder is not None:
                setattr(holder[0], holder[1], image)
            source = entry.get("image_source") or ("default_image" if not entry.get("image") else "plan")
            log(f"[image] {t.name}: {image} ({source})")


def check_docker(tasks: typing.List[typing.Any], req: Request) -> None:
    """flytekit runs a raw ContainerTask locally with the docker SDK and a Docker engine: say so before running."""
    from flytekit.core.container_task import ContainerTask

    containers = sorted(t.name for t in tasks if isinstance(t, ContainerTask))
    if not containers:
        return
    names = ", ".join(containers)
    try:
        import docker
    except ImportError:
        raise RunError(
            f"raw container task{'s' if len(containers) > 1 else ''} {names} run{'' if len(containers) > 1 else 's'} "
            "in Docker when local, and the `docker` Python package is not installed in this environment",
            fix="add `docker` to the resolve's requirements, or run it on the cluster with `--remote`",
        )
    try:
        docker.from_env().ping()
    except Exception as e:
        raise RunError(
            f"raw container task(s) {names} run in Docker when local, and no Docker engine answers "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
            fix="start the Docker engine (or set DOCKER_HOST), or run it on the cluster with `--remote`",
        )


# ----------------------------------------------------------------------------------------------------------------
# inputs


def resolve_inputs(
    obj: typing.Any, kind: str, pairs: typing.List[typing.Tuple[str, typing.Optional[str]]], entrypoint: str
) -> typing.Tuple[typing.Any, typing.Dict[str, typing.Any]]:
    """(what to call, its keyword arguments): command line > launch plan fixed/default inputs > signature defaults."""
    iface = obj.python_interface
    types = dict(iface.inputs)
    signature_defaults = dict(iface.default_inputs_as_kwargs)
    fixed: typing.Dict[str, typing.Any] = {}
    lp_defaults: typing.Dict[str, typing.Any] = {}
    call = obj
    if kind == "launch_plan":
        fixed = obj.raw_fixed_inputs
        lp_defaults = {k: v for k, v in obj.saved_inputs.items() if k not in fixed}
        call = obj.workflow

    def expected() -> str:
        names = [f"--{k} ({type_name(v)})" for k, v in types.items() if k not in fixed]
        return ", ".join(names) or "none"

    given: typing.Dict[str, typing.Any] = {}
    for name, raw in pairs:
        key = name if name in types else name.replace("-", "_")
        if key not in types:
            raise RunError(f"unknown input --{name} for `{entrypoint}`", fix=f"its inputs are: {expected()}")
        if key in fixed:
            raise RunError(
                f"input --{key} is fixed by launch plan `{obj.name}` to {show(fixed[key])}; it cannot be overridden",
                fix="drop it from the command line, or run the workflow itself",
            )
        if key in given:
            raise RunError(f"input --{key} is given twice")
        try:
            given[key] = parse_value(raw, types[key])
        except BadValue as e:
            where = f"--{key}{e.where}"
            if e.got == "missing":
                what = f"input {where} ({e.expected}) is missing"
            elif e.got == "unknown field":
                what = f"input {where} is not {e.expected}"
            else:
                what = f"input {where}: expected {e.expected}, got " + (
                    "no value" if e.got == "no value" else repr(e.got)
                )
            raise RunError(what, fix=f"pass --{key} as {type_name(types[key])}")

    values: typing.Dict[str, typing.Any] = {}
    origin: typing.Dict[str, str] = {}
    for k in types:
        if k in given:
            values[k], origin[k] = given[k], "command line"
        elif k in fixed:
            values[k], origin[k] = fixed[k], f"fixed by launch plan {obj.name}"
        elif k in lp_defaults:
            values[k], origin[k] = lp_defaults[k], f"default of launch plan {obj.name}"
        elif k in signature_defaults:
            values[k], origin[k] = signature_defaults[k], "signature default"
    missing = [k for k in types if k not in values and not _optional(types[k])]
    if missing:
        raise RunError(
            "missing input"
            + ("s " if len(missing) > 1 else " ")
            + ", ".join(f"--{k} ({type_name(types[k])})" for k in missing)
            + f" for `{entrypoint}`",
            fix="pass " + " ".join(f"--{k} <value>" for k in missing),
        )
    for k in types:
        if k in values:
            log(f"[input] {k} = {show(values[k])}  ({origin[k]})")
    return call, values


def _optional(tp: typing.Any) -> bool:
    return type(None) in typing.get_args(tp)


# ----------------------------------------------------------------------------------------------------------------
# progress


class Progress:
    """One line per task / sub-workflow as it runs (flytekit calls `local_execute` on each)."""

    def __init__(self) -> None:
        self.depth = 0
        self.hit = threading.local()
        self.count = 0

    def install(self) -> None:
        from flytekit.core import base_task, local_cache, reference_entity, workflow

        progress = self
        orig_get = local_cache.LocalTaskCache.get

        def get(*args, **kwargs):
            found = orig_get(*args, **kwargs)
            progress.hit.value = found is not None
            return found

        local_cache.LocalTaskCache.get = staticmethod(get)
        for cls, kind in (
            (base_task.Task, "task"),
            (workflow.WorkflowBase, "workflow"),
            (reference_entity.ReferenceEntity, "mocked reference"),
        ):
            self._wrap(cls, kind)

    def _wrap(self, cls: typing.Any, kind: str) -> None:
        original = cls.local_execute
        progress = self

        def local_execute(entity, ctx, **kwargs):
            from flytekit.core.array_node_map_task import ArrayNodeMapTask

            pad = "  " * progress.depth
            label = "map" if isinstance(entity, ArrayNodeMapTask) else kind
            log(f"[run] {pad}{label} {entity.name} ...")
            progress.depth += 1
            progress.hit.value = False
            start = time.monotonic()
            try:
                result = original(entity, ctx, **kwargs)
            except BaseException:
                progress.depth -= 1
                log(f"[run] {pad}{label} {entity.name} FAILED after {time.monotonic() - start:.2f}s")
                raise
            progress.depth -= 1
            cached = " (cache hit)" if kind == "task" and getattr(progress.hit, "value", False) else ""
            if kind == "task":
                progress.count += 1
            log(f"[run] {pad}{label} {entity.name} done in {time.monotonic() - start:.2f}s{cached}")
            return result

        cls.local_execute = local_execute


# ----------------------------------------------------------------------------------------------------------------
# outputs


def name_outputs(result: typing.Any, obj: typing.Any) -> typing.Dict[str, typing.Any]:
    names = list(obj.python_interface.outputs)
    if not names:
        return {}
    if len(names) == 1:
        return {names[0]: result}
    return dict(zip(names, result))


def render(outputs: typing.Dict[str, typing.Any], types: typing.Dict[str, typing.Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"outputs": {k: to_json(v) for k, v in outputs.items()}}, indent=2, ensure_ascii=False) + "\n"
    if not outputs:
        return "(no outputs)\n"
    rows = [("OUTPUT", "TYPE", "VALUE")] + [
        (k, type_name(types.get(k, type(v)), how=False), json.dumps(to_json(v), ensure_ascii=False))
        for k, v in outputs.items()
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    return "".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}".rstrip() + "\n" for r in rows)


# ----------------------------------------------------------------------------------------------------------------
# main


def run(req: Request, argv: typing.List[str]) -> typing.Tuple[str, int]:
    fmt, pairs = split_args(argv)
    mocks, pairs = take_mocks(pairs)
    try:
        modname, _, obj = load_entrypoint(req.entrypoint)
    except IntrospectError as e:
        text = f"cannot load `{req.entrypoint}`: {e.kind.replace('_', ' ')}: {e.message}"
        if e.tb:
            text += "\n\n" + e.tb.rstrip()
        raise RunError(text, fix="fix the entrypoint or the error in your code", file=e.file)
    kind = entity_kind(obj)
    modfile = module_file(modname)
    if kind == "reference":
        refuse_references([obj], req.entrypoint, modfile)
    if kind not in ("task", "workflow", "launch_plan"):
        raise RunError(
            f"`{req.entrypoint}` is a {introspect.qualname(type(obj))}, not a flytekit task, workflow or launch plan",
            file=modfile,
        )
    tasks, refs = walk(obj)
    refuse_references(mock_references(refs, mocks), req.entrypoint, modfile)
    call, inputs = resolve_inputs(obj, kind, pairs, req.entrypoint)
    apply_plan(tasks, req)
    check_docker(tasks, req)
    progress = Progress()
    progress.install()
    start = time.monotonic()
    try:
        result = call(**inputs)
    except Exception as e:  # the user's code (or flytekit on its behalf) failed: their traceback, not ours
        cause = _user_cause(e)
        tb, file = user_traceback(cause)
        log(
            f"\nerror: {kind.replace('_', ' ')} {obj.name} failed"
            + (f" (file {file})" if file else "")
            + ":\n"
            + tb.rstrip()
        )
        return "", 1
    log(
        f"[run] {kind.replace('_', ' ')} {obj.name} succeeded in {time.monotonic() - start:.2f}s "
        f"({progress.count} task run{'s' if progress.count != 1 else ''})"
    )
    outputs = name_outputs(result, obj)
    return render(outputs, dict(obj.python_interface.outputs), fmt), 0


def _user_cause(e: BaseException) -> BaseException:
    """flytekit wraps a task's exception (FlyteScopedUserException, `.value`); report the user's own."""
    seen = set()
    while id(e) not in seen:
        seen.add(id(e))
        inner = getattr(e, "value", None)
        if isinstance(inner, BaseException):
            e = inner
            continue
        if e.__cause__ is not None and not has_user_frames(e):
            e = e.__cause__
            continue
        break
    return e


def main(argv: typing.List[str]) -> int:
    # stdout carries the outputs only: user prints and flytekit logs go to stderr.
    return request_answer(
        argv, "run request", "run <request.json> [--format=table|json] [--<input> <value> ...]", Request, run
    )
