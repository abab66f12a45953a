"""Launch a registered Flyte task, workflow or launch plan on the cluster: fetch its interface from FlyteAdmin,
parse the inputs by it, create an execution, print its id and URL, and with `--wait` follow it to the end.

Usage:  python <runtime>/__main__.py remote <request.json> [--format=table|json] [--wait] [--<input> <value> ...]

Runs in the USER's environment (flytekit, flyteidl, grpcio), as part of the runtime package (input parsing shared
with run, the connection to FlyteAdmin with deploy). Nothing is compiled or serialized locally: the interface,
defaults and fixed inputs are the registered ones.

Request and answer: docs/runtime-contract.md (remote).

One code path for the three kinds: a task is executed as itself; a workflow through its default launch plan (same
name and version, which registration creates with it: FlyteAdmin executes launch plans and tasks only); a launch
plan as itself. Inputs: command line > launch plan fixed / default inputs > the reference's `default_inputs`; where
each came from is logged. Fixed inputs cannot be overridden.

Exit 0 (execution created; with --wait: succeeded), 1 (with --wait: the execution failed), 2 (bad input, unknown
entity, unreachable cluster: one paragraph on stderr). stdout: the execution (table, or JSON with --format=json).
"""
from __future__ import annotations

import json
import time
import typing

from . import inputs
from .admin import Admin, DeployError, grpc_code, grpc_details
from .answers import RunError, log, request_answer
from .entrypoint import load_entrypoint

_KINDS = ("task", "workflow", "launch_plan")
_TERMINAL = {"SUCCEEDED", "FAILED", "ABORTED", "TIMED_OUT"}


class NotRegistered(RunError):
    """FlyteAdmin answered: no such entity (or no version of it)."""


class Unreachable(RunError):
    """FlyteAdmin did not answer (or could not be connected to): nothing more can be asked of it."""


# ----------------------------------------------------------------------------------------------------------------
# the request


class Request:
    def __init__(self, raw: typing.Any, path: str):
        def bad(msg: str) -> RunError:
            return RunError(f"remote run request {path}: {msg}")

        if not isinstance(raw, dict):
            raise bad("must be a JSON object")
        entity = raw.get("entity")
        if not isinstance(entity, dict) or entity.get("kind") not in _KINDS:
            raise bad(f"'entity.kind' must be one of {', '.join(_KINDS)}")
        for key in ("project", "domain", "name"):
            if not isinstance(entity.get(key), str) or not entity[key]:
                raise bad(f"'entity.{key}' must be a non-empty string")
        self.kind: str = entity["kind"]
        self.project: str = entity["project"]
        self.domain: str = entity["domain"]
        self.name: str = entity["name"]
        self.version: typing.Optional[str] = entity.get("version") or None
        self.admin: dict = raw.get("admin") or {}
        self.target: typing.Optional[str] = raw.get("target") or None
        self.console: typing.Optional[str] = raw.get("console") or None
        self.preamble: str = raw.get("preamble") or ""
        self.entrypoint: typing.Optional[str] = raw.get("entrypoint") or None
        defaults = raw.get("default_inputs") or {}
        if not isinstance(defaults, dict) or not all(isinstance(v, str) for v in defaults.values()):
            raise bad("'default_inputs' must map input names to values as written on the command line")
        self.default_inputs: typing.Dict[str, str] = defaults

    def describe(self, version: typing.Optional[str] = None) -> str:
        v = version or self.version or "latest"
        return f"{self.kind.replace('_', ' ')} {self.name} ({self.project}/{self.domain}, version {v})"


def split_args(argv: typing.List[str]) -> typing.Tuple[str, bool, typing.List[typing.Tuple[str, typing.Optional[str]]]]:
    wait = False
    rest = []
    for a in argv:
        if a == "--wait":
            wait = True
        elif a == "--remote":
            continue  # `pants run <workflow> -- --remote` passes it through
        else:
            rest.append(a)
    fmt, pairs = inputs.split_args(rest)
    return fmt, wait, pairs


# ----------------------------------------------------------------------------------------------------------------
# FlyteAdmin


class Cluster:
    def __init__(self, admin_cfg: dict):
        try:
            self.admin = Admin(admin_cfg)
        except DeployError as e:
            raise (Unreachable if e.kind == "unreachable" else RunError)(e.message, fix=e.fix)
        from flyteidl.admin import common_pb2, execution_pb2, launch_plan_pb2, task_pb2  # noqa: F401
        from flyteidl.core import identifier_pb2

        self.ids = identifier_pb2
        self.common = common_pb2
        self.execution = execution_pb2

    def call(self, method: str, request: typing.Any, what: str) -> typing.Any:
        try:
            return self.admin.call(getattr(self.admin.admin, method), request)
        except self.admin.grpc.RpcError as e:
            code, details = grpc_code(e), grpc_details(e)
            if code == "NOT_FOUND":
                raise NotRegistered(
                    f"{what} is not registered on {self.admin.endpoint} ({details})",
                    fix="check the project, domain, name and version, or register it first "
                    "(`./pants flyte-deploy <target>`)",
                )
            if code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                raise Unreachable(
                    f"cannot reach FlyteAdmin at {self.admin.endpoint} while asking for {what} ({code}: {details})",
                    fix="check that FlyteAdmin is running and reachable, and [flyte].endpoint",
                )
            raise RunError(f"FlyteAdmin refused {method} for {what}: {code}: {details}")

    def identifier(self, kind: str, project: str, domain: str, name: str, version: str) -> typing.Any:
        rt = {"task": self.ids.TASK, "workflow": self.ids.WORKFLOW, "launch_plan": self.ids.LAUNCH_PLAN}[kind]
        return self.ids.Identifier(resource_type=rt, project=project, domain=domain, name=name, version=version)

    def latest_version(self, req: Request) -> str:
        from flyteidl.admin import common_pb2

        method = {"task": "ListTasks", "workflow": "ListWorkflows", "launch_plan": "ListLaunchPlans"}[req.kind]
        listing = self.call(
            method,
            common_pb2.ResourceListRequest(
                id=common_pb2.NamedEntityIdentifier(project=req.project, domain=req.domain, name=req.name),
                limit=1,
                sort_by=common_pb2.Sort(key="created_at", direction=common_pb2.Sort.DESCENDING),
            ),
            req.describe(),
        )
        items = list(
            getattr(listing, {"task": "tasks", "workflow": "workflows", "launch_plan": "launch_plans"}[req.kind])
        )
        if not items:
            raise NotRegistered(
                f"no version of {req.kind.replace('_', ' ')} {req.name} is registered in "
                f"{req.project}/{req.domain} on {self.admin.endpoint}",
                fix="check the name, project and domain, or register it first",
            )
        return items[0].id.version


class Launchable:
    """What FlyteAdmin executes for the entity (a task or a launch plan) and its inputs, from the cluster."""

    def __init__(
        self,
        ident: typing.Any,
        types: typing.Dict[str, typing.Any],
        fixed: typing.Dict[str, typing.Any],
        defaults: typing.Dict[str, typing.Any],
        outputs: typing.Dict[str, typing.Any],
        via: str,
    ):
        self.id = ident
        self.types = types  # input name -> LiteralType (proto)
        self.fixed = fixed  # name -> Literal
        self.defaults = defaults  # name -> Literal (launch plan defaults)
        self.outputs = outputs  # name -> LiteralType
        self.via = via


def fetch(cluster: Cluster, req: Request) -> Launchable:
    version = req.version or cluster.latest_version(req)
    if req.version is None:
        log(f"[remote] latest version of {req.name}: {version}")
    what = req.describe(version)
    if req.kind == "task":
        from flyteidl.admin import common_pb2  # noqa: F401

        ident = cluster.identifier("task", req.project, req.domain, req.name, version)
        task = cluster.call("GetTask", cluster.common.ObjectGetRequest(id=ident), what)
        iface = task.closure.compiled_task.template.interface
        return Launchable(
            ident,
            {k: v.type for k, v in iface.inputs.variables.items()},
            {},
            {},
            {k: v.type for k, v in iface.outputs.variables.items()},
            "task",
        )
    if req.kind == "workflow":
        # The workflow must exist (a clear error names it), and it runs through its default launch plan.
        cluster.call(
            "GetWorkflow",
            cluster.common.ObjectGetRequest(
                id=cluster.identifier("workflow", req.project, req.domain, req.name, version)
            ),
            what,
        )
        lp_what = f"the default launch plan of {what} (launch plan {req.name}, version {version})"
    else:
        lp_what = what
    ident = cluster.identifier("launch_plan", req.project, req.domain, req.name, version)
    lp = cluster.call("GetLaunchPlan", cluster.common.ObjectGetRequest(id=ident), lp_what)
    params = lp.closure.expected_inputs.parameters or lp.spec.default_inputs.parameters
    types, defaults = {}, {}
    for name, p in params.items():
        types[name] = p.var.type
        if p.HasField("default"):
            defaults[name] = p.default
    fixed = dict(lp.spec.fixed_inputs.literals)
    if fixed:
        # Fixed inputs are left out of the launch plan's parameters: their types are the workflow's.
        wf = cluster.call(
            "GetWorkflow",
            cluster.common.ObjectGetRequest(id=lp.spec.workflow_id),
            f"workflow {lp.spec.workflow_id.name} of {lp_what}",
        )
        wf_inputs = wf.closure.compiled_workflow.primary.template.interface.inputs.variables
        for name in fixed:
            types[name] = wf_inputs[name].type if name in wf_inputs else None
    outputs = {k: v.type for k, v in lp.closure.expected_outputs.variables.items()}
    via = "launch plan" if req.kind == "launch_plan" else f"its default launch plan {req.name}"
    return Launchable(ident, types, fixed, defaults, outputs, via)


# ----------------------------------------------------------------------------------------------------------------
# literals


def python_type(literal_type: typing.Any) -> typing.Any:
    from flytekit.core.type_engine import TypeEngine
    from flytekit.models.types import LiteralType

    return TypeEngine.guess_python_type(LiteralType.from_flyte_idl(literal_type))


def to_literal(value: typing.Any, py_type: typing.Any, literal_type: typing.Any) -> typing.Any:
    from flytekit.core.context_manager import FlyteContextManager
    from flytekit.core.type_engine import TypeEngine
    from flytekit.models.types import LiteralType

    ctx = FlyteContextManager.current_context()
    return TypeEngine.to_literal(ctx, value, py_type, LiteralType.from_flyte_idl(literal_type)).to_flyte_idl()


def show_literal(lit: typing.Any, literal_type: typing.Any) -> str:
    """A literal as a person reads it (its Python value as JSON), falling back to the protobuf's JSON."""
    try:
        from flytekit.core.context_manager import FlyteContextManager
        from flytekit.core.type_engine import TypeEngine
        from flytekit.models.literals import Literal

        if literal_type is None:
            raise ValueError("no type")
        value = TypeEngine.to_python_value(
            FlyteContextManager.current_context(), Literal.from_flyte_idl(lit), python_type(literal_type)
        )
        return inputs.show(value)
    except Exception:
        from google.protobuf.json_format import MessageToDict

        return json.dumps(MessageToDict(lit), sort_keys=True)


def parse_inputs(req: Request, target: Launchable, pairs: typing.List[typing.Tuple[str, typing.Optional[str]]]):
    """(literals to send, {name: (shown value, origin)}): command line > launch plan fixed/default > reference
    defaults. FlyteAdmin fills launch plan defaults and fixed inputs itself: only the rest is sent."""
    known = {k: t for k, t in target.types.items()}

    def expected() -> str:
        return (
            ", ".join(
                f"--{k} ({inputs.type_name(python_type(t))})"
                for k, t in known.items()
                if k not in target.fixed and t is not None
            )
            or "none"
        )

    def parse(name: str, raw: typing.Optional[str], origin: str) -> typing.Any:
        literal_type = known[name]
        py_type = python_type(literal_type)
        try:
            schema = dataclass_schema(py_type, literal_type)
            if schema is not None:
                return partial_dataclass(raw, py_type, literal_type, schema)
            value = inputs.parse_value(raw, py_type)
        except inputs.BadValue as e:
            where = f"--{name}{e.where}"
            if e.got == "missing":
                what = f"input {where} ({e.expected}) is missing"
            elif e.got == "unknown field":
                what = f"input {where} is not {e.expected}"
            else:
                what = f"input {where}: expected {e.expected}, got " + (
                    "no value" if e.got == "no value" else repr(e.got)
                )
            raise RunError(
                what + ("" if origin == "command line" else f" (from {origin})"),
                fix=f"pass --{name} as {inputs.type_name(py_type)}",
            )
        return value, to_literal(value, py_type, literal_type)

    sent: typing.Dict[str, typing.Any] = {}
    shown: typing.Dict[str, typing.Tuple[str, str]] = {}
    seen = set()
    for name, raw in pairs:
        key = name if name in known else name.replace("-", "_")
        if key not in known:
            raise RunError(
                f"unknown input --{name} for {req.describe(target.id.version)}", fix=f"its inputs are: {expected()}"
            )
        if key in seen:
            raise RunError(f"input --{key} is given twice")
        seen.add(key)
        if key in target.fixed:
            raise RunError(
                f"input --{key} is fixed by launch plan {target.id.name} to "
                f"{show_literal(target.fixed[key], known[key])}; it cannot be overridden",
                fix="drop it from the command line",
            )
        value, sent[key] = parse(key, raw, "command line")
        shown[key] = (inputs.show(value), "command line")
    for name in known:
        if name in shown:
            continue
        if name in target.fixed:
            shown[name] = (show_literal(target.fixed[name], known[name]), f"fixed by launch plan {target.id.name}")
        elif name in target.defaults:
            shown[name] = (show_literal(target.defaults[name], known[name]), f"default of launch plan {target.id.name}")
        elif name in req.default_inputs:
            value, sent[name] = parse(
                name, req.default_inputs[name], f"default_inputs of {req.target or 'the reference'}"
            )
            shown[name] = (inputs.show(value), "reference default")
    unknown_defaults = sorted(set(req.default_inputs) - set(known))
    if unknown_defaults:
        raise RunError(
            f"default_inputs name {', '.join(unknown_defaults)}, which {req.describe(target.id.version)} does not take",
            fix=f"its inputs are: {expected()}",
        )
    missing = [k for k in known if k not in shown and not _optional(known[k])]
    if missing:
        raise RunError(
            "missing input"
            + ("s " if len(missing) > 1 else " ")
            + ", ".join(f"--{k} ({inputs.type_name(python_type(known[k]))})" for k in missing)
            + f" for {req.describe(target.id.version)}",
            fix="pass " + " ".join(f"--{k} <value>" for k in missing),
        )
    return sent, shown


def dataclass_schema(py_type: typing.Any, literal_type: typing.Any) -> typing.Optional[dict]:
    """The JSON schema a registered dataclass carries (None for other types)."""
    import dataclasses

    if not (isinstance(py_type, type) and dataclasses.is_dataclass(py_type)) or not literal_type.HasField("metadata"):
        return None
    from google.protobuf.json_format import MessageToDict

    schema = MessageToDict(literal_type.metadata)
    return schema if isinstance(schema.get("properties"), dict) else None


def partial_dataclass(raw: typing.Optional[str], py_type: typing.Any, literal_type: typing.Any, schema: dict):
    """A dataclass input of a registered entity: fields checked by the registered schema, only those given sent.

    flytekit rebuilds the class from the schema with every field required and no defaults (a `default_factory`
    leaves none in the schema), so it cannot hold a partial value; the task's own class fills the defaults when
    it decodes the (msgpack) literal, as it does for any dict with fewer keys."""
    from flytekit.core.context_manager import FlyteContextManager
    from flytekit.core.type_engine import TypeEngine
    from flytekit.models.types import LiteralType

    try:
        data = json.loads(raw) if raw is not None else None
    except ValueError:
        raise inputs.BadValue("", inputs.type_name(py_type) + " as JSON", raw)
    if not isinstance(data, dict):
        raise inputs.BadValue("", inputs.type_name(py_type), data if raw is not None else "no value")
    props = schema["properties"]
    title = schema.get("title") or py_type.__name__
    unknown = sorted(set(data) - set(props))
    if unknown:
        raise inputs.BadValue(f".{unknown[0]}", f"a field of {title} ({', '.join(props)})", "unknown field")
    hints = typing.get_type_hints(py_type)
    for field in schema.get("required") or []:
        if field not in data:
            raise inputs.BadValue(f".{field}", inputs.type_name(hints.get(field, typing.Any)), "missing")
    plain = {k: inputs.to_json(inputs.from_json(v, hints.get(k, typing.Any), f".{k}")) for k, v in data.items()}
    ctx = FlyteContextManager.current_context()
    literal = TypeEngine.to_literal(ctx, plain, dict, LiteralType.from_flyte_idl(literal_type)).to_flyte_idl()
    shown = {k: (plain[k] if k in plain else props[k].get("default", "<its default>")) for k in props}
    return shown, literal


def _optional(literal_type: typing.Any) -> bool:
    if literal_type is None:
        return True
    try:
        return type(None) in typing.get_args(python_type(literal_type))
    except Exception:
        return False


def _comparable(literal_type: typing.Any) -> typing.Any:
    """A LiteralType without what describes rather than types it (docs, schemas, annotations)."""
    from google.protobuf.json_format import MessageToDict

    def strip(d: typing.Any) -> typing.Any:
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items() if k not in ("metadata", "structure", "annotation")}
        if isinstance(d, list):
            return [strip(x) for x in d]
        return d

    return strip(MessageToDict(literal_type)) if literal_type is not None else None


def interface_differences(entrypoint: str, target: Launchable) -> typing.List[str]:
    """How the interface a reference declares in code differs from the registered one (empty when they agree)."""
    try:
        _, _, obj = load_entrypoint(entrypoint)
        declared = obj.interface
    except Exception as e:  # the local declaration is only checked, never needed to launch
        return [f"could not load {entrypoint} to check its declared interface ({type(e).__name__}: {e})"]
    return declared_differences(entrypoint, declared, target)


def declared_differences(label: str, declared: typing.Any, target: Launchable) -> typing.List[str]:
    """How `declared` (a flytekit TypedInterface, of the reference `label` names) differs from the registered
    interface of `target`: inputs or outputs on one side only, and types that differ. Shared by `run --remote`
    (the entrypoint itself) and `flyte-plan` (every reference a workflow uses)."""
    out = []
    for side, mine, theirs in (
        ("input", {k: v.type.to_flyte_idl() for k, v in (declared.inputs or {}).items()}, target.types),
        ("output", {k: v.type.to_flyte_idl() for k, v in (declared.outputs or {}).items()}, target.outputs),
    ):
        for name in sorted(set(mine) | set(theirs)):
            if name not in theirs:
                out.append(f"{label} declares {side} `{name}`, which the registered entity does not have")
            elif name not in mine:
                out.append(f"the registered entity has {side} `{name}`, which {label} does not declare")
            elif theirs[name] is not None and _comparable(mine[name]) != _comparable(theirs[name]):
                out.append(
                    f"{side} `{name}`: {label} declares {inputs.type_name(python_type(mine[name]), False)}, "
                    f"registered {inputs.type_name(python_type(theirs[name]), False)}"
                )
    return out


# ----------------------------------------------------------------------------------------------------------------
# executions


def console_url(req: Request, cluster: Cluster, execution: typing.Any) -> str:
    base = req.console
    if not base:
        endpoint = cluster.admin.endpoint.split("://", 1)[-1]
        insecure = req.admin.get("insecure")
        base = f"{'http' if insecure else 'https'}://{endpoint}"
    return (
        f"{base.rstrip('/')}/console/projects/{execution.project}/domains/{execution.domain}"
        f"/executions/{execution.name}"
    )


def launch(cluster: Cluster, req: Request, target: Launchable, sent: dict) -> typing.Any:
    from flyteidl.core import literals_pb2

    literals = literals_pb2.LiteralMap()
    for name, lit in sent.items():
        literals.literals[name].CopyFrom(lit)
    spec = cluster.execution.ExecutionSpec(
        launch_plan=target.id,
        metadata=cluster.execution.ExecutionMetadata(
            mode=cluster.execution.ExecutionMetadata.MANUAL, principal="flytebuild"
        ),
    )
    created = cluster.call(
        "CreateExecution",
        cluster.execution.ExecutionCreateRequest(project=req.project, domain=req.domain, spec=spec, inputs=literals),
        f"an execution of {req.describe(target.id.version)}",
    )
    return created.id


def wait(cluster: Cluster, execution_id: typing.Any, what: str, poll: float = 2.0) -> typing.Tuple[str, typing.Any]:
    from flyteidl.core import execution_pb2 as core_execution

    last = None
    while True:
        ex = cluster.call("GetExecution", cluster.execution.WorkflowExecutionGetRequest(id=execution_id), what)
        phase = core_execution.WorkflowExecution.Phase.Name(ex.closure.phase)
        if phase != last:
            log(f"[remote] {execution_id.name}: {phase}")
            last = phase
        if phase in _TERMINAL:
            return phase, ex
        time.sleep(poll)


def outputs_of(cluster: Cluster, execution_id: typing.Any, target: Launchable, what: str) -> typing.Dict[str, str]:
    data = cluster.call("GetExecutionData", cluster.execution.WorkflowExecutionGetDataRequest(id=execution_id), what)
    out = {}
    for name, lit in data.full_outputs.literals.items():
        out[name] = json.loads(show_literal(lit, target.outputs.get(name)))
    return out


def run(req: Request, argv: typing.List[str]) -> typing.Tuple[str, int]:
    fmt, follow, pairs = split_args(argv)
    if req.preamble:
        log(req.preamble.rstrip())
    cluster = Cluster(req.admin)
    target = fetch(cluster, req)
    version = target.id.version
    log(
        f"[remote] {req.describe(version)} on {cluster.admin.endpoint}"
        + ("" if req.kind != "workflow" else f", through {target.via}")
    )
    if req.entrypoint:
        for line in interface_differences(req.entrypoint, target):
            log(f"[remote] warning: {line}")
    sent, shown = parse_inputs(req, target, pairs)
    for name in target.types:
        if name in shown:
            log(f"[input] {name} = {shown[name][0]}  ({shown[name][1]})")
    execution_id = launch(cluster, req, target, sent)
    url = console_url(req, cluster, execution_id)
    log(f"[remote] created execution {execution_id.name}: {url}")
    result = {
        "execution": {"project": execution_id.project, "domain": execution_id.domain, "name": execution_id.name},
        "url": url,
        "entity": {
            "kind": req.kind,
            "project": req.project,
            "domain": req.domain,
            "name": req.name,
            "version": version,
        },
        "launched": {
            "resource_type": cluster.ids.ResourceType.Name(target.id.resource_type),
            "name": target.id.name,
            "version": target.id.version,
        },
        "inputs": {k: {"value": json.loads(v[0]) if _is_json(v[0]) else v[0], "from": v[1]} for k, v in shown.items()},
    }
    code = 0
    if follow:
        phase, _ = wait(cluster, execution_id, f"execution {execution_id.name}")
        result["phase"] = phase
        if phase == "SUCCEEDED":
            result["outputs"] = outputs_of(cluster, execution_id, target, f"execution {execution_id.name}")
        else:
            code = 1
            log(f"error: execution {execution_id.name} ended {phase}: {url}")
    return render(result, fmt), code


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


def render(result: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result, indent=2, sort_keys=True) + "\n"
    ex = result["execution"]
    lines = [
        f"execution  {ex['project']}/{ex['domain']}/{ex['name']}",
        f"url        {result['url']}",
        f"entity     {result['entity']['kind']} {result['entity']['name']} version {result['entity']['version']}",
    ]
    if "phase" in result:
        lines.append(f"phase      {result['phase']}")
    for name, value in sorted((result.get("outputs") or {}).items()):
        lines.append(f"output     {name} = {json.dumps(value, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


def main(argv: typing.List[str]) -> int:
    return request_answer(
        argv,
        "remote run request",
        "remote <request.json> [--format=table|json] [--wait] [--<input> <value> ...]",
        Request,
        run,
    )
