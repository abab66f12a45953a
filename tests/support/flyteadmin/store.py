"""FlyteAdmin's registration, lookup and execution semantics over an in-memory store.

Mirrors flyteadmin/pkg/manager/impl (task_manager.go, workflow_manager.go, launch_plan_manager.go,
execution_manager.go, project_manager.go) and its validation package:

- every Create* validates the identifier and that the project is registered and the domain known
  (INVALID_ARGUMENT "failed to validate that project [p] and domain [d] are registered, ...");
- a workflow is compiled against the registered tasks and launch plans it references; a missing
  one fails with INVALID_ARGUMENT "failed to compile workflow for [...] with err: missing entity
  of type task with identifier ...";
- a launch plan needs its workflow (NOT_FOUND otherwise); its default inputs are augmented with
  the workflow's unbound inputs, as ValidateLaunchPlan does;
- same id + same digest -> ALREADY_EXISTS ("task with identical structure already exists");
  same id + different digest -> INVALID_ARGUMENT ("<name> task with different structure already
  exists. (Please register a new version of the task):" + changed paths). Entities are immutable.
- launch plans are created INACTIVE; UpdateLaunchPlan(ACTIVE) deactivates the other versions.
- CreateExecution accepts launch plans and tasks, merges inputs as CheckAndFetchInputsForExecution
  (unknown input, missing required input, overriding a fixed input -> INVALID_ARGUMENT) and records
  the execution; it reaches a terminal phase (SUCCEEDED by default) at once.
"""
import os
import random
import re
import shutil
import string
import threading
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from flyteidl.admin import common_pb2, execution_pb2, launch_plan_pb2, project_pb2, task_pb2, workflow_pb2
from flyteidl.core import execution_pb2 as core_execution_pb2
from flyteidl.core import identifier_pb2, interface_pb2, literals_pb2
from google.protobuf import json_format, timestamp_pb2

from . import compiler

DOMAINS = ("development", "staging", "production")
KINDS = ("task", "workflow", "launch_plan")
_RESOURCE_TYPE = {
    "task": identifier_pb2.TASK,
    "workflow": identifier_pb2.WORKFLOW,
    "launch_plan": identifier_pb2.LAUNCH_PLAN,
}
_EXECUTION_NAME = re.compile(r"^[a-z][a-z\-0-9]*$")


class AdminError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code  # a grpc.StatusCode name, e.g. "ALREADY_EXISTS"
        self.message = message


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


def _missing(entity: str, ident) -> AdminError:
    return AdminError("NOT_FOUND", f"missing entity of type {entity} with identifier {compiler.id_text(ident)}")


@dataclass
class Record:
    kind: str
    obj: object  # admin.Task / admin.Workflow / admin.LaunchPlan
    digest: bytes
    seq: int


@dataclass
class Counter:
    calls: int = 0
    created: int = 0
    already_exists: int = 0
    conflicts: int = 0
    errors: int = 0


@dataclass
class Store:
    state_dir: str
    execution_phase: int = core_execution_pb2.WorkflowExecution.SUCCEEDED
    lock: threading.RLock = field(default_factory=threading.RLock)
    projects: Dict[str, project_pb2.Project] = field(default_factory=dict)
    entities: Dict[str, Dict[tuple, Record]] = field(default_factory=lambda: {k: {} for k in KINDS})
    executions: Dict[tuple, dict] = field(default_factory=dict)
    counters: Dict[str, Counter] = field(default_factory=dict)
    uploads: List[dict] = field(default_factory=list)
    rpcs: Dict[str, int] = field(default_factory=dict)  # every gRPC call by method name, counted on arrival
    latency_s: float = 0.0  # added to every gRPC call (server.py); a test may change it while the server runs
    _seq: int = 0

    # --- bookkeeping -------------------------------------------------------------------------
    def count(self, name: str) -> Counter:
        return self.counters.setdefault(name, Counter())

    def count_rpc(self, method: str) -> None:
        with self.lock:
            self.rpcs[method] = self.rpcs.get(method, 0) + 1

    def wipe(self) -> None:
        """Forget every entity, execution and upload (a FlyteAdmin whose database and bucket were reset); projects,
        counters and the gRPC call count stay, so tests can count across the wipe."""
        with self.lock:
            self.entities = {k: {} for k in KINDS}
            self.executions = {}
            self.uploads = []
            for sub in ("entities", "blobs"):
                shutil.rmtree(os.path.join(self.state_dir, sub), ignore_errors=True)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _persist(self, kind: str, ident, obj) -> None:
        path = os.path.join(self.state_dir, "entities", kind, ident.project, ident.domain, ident.name)
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, f"{ident.version}.pb"), "wb") as f:
            f.write(obj.SerializeToString(deterministic=True))

    # --- validation (flyteadmin/pkg/manager/impl/validation) -----------------------------------
    @staticmethod
    def _validate_identifier(ident, kind: str, has: bool = True) -> None:
        if not has:
            raise AdminError("INVALID_ARGUMENT", "missing id")
        if ident.resource_type != _RESOURCE_TYPE[kind]:
            raise AdminError(
                "INVALID_ARGUMENT",
                f"unexpected resource type {identifier_pb2.ResourceType.Name(ident.resource_type).lower()} "
                f"for identifier [{compiler.id_text(ident)}], expected {kind} instead",
            )
        for fname in ("project", "domain", "name", "version"):
            if not getattr(ident, fname):
                raise AdminError("INVALID_ARGUMENT", f"missing {fname}")

    def _validate_project_domain(self, project: str, domain: str) -> None:
        proj = self.projects.get(project)
        if proj is None:
            raise AdminError(
                "INVALID_ARGUMENT",
                f"failed to validate that project [{project}] and domain [{domain}] are registered, err: "
                f"[missing entity of type project with identifier {project}]",
            )
        if proj.state != project_pb2.Project.ACTIVE:
            raise AdminError("INVALID_ARGUMENT", f"project [{project}] is not active")
        if domain not in DOMAINS:
            raise AdminError("INVALID_ARGUMENT", f"domain [{domain}] is unrecognized by system")

    def _get(self, kind: str, ident) -> Record:
        rec = self.entities[kind].get(compiler.id_key(ident))
        if rec is None:
            raise _missing(kind.replace("_", " "), ident)
        return rec

    def _register(self, kind: str, ident, obj, dig: bytes, different) -> None:
        """Store a new entity, or raise FlyteAdmin's identical / different structure errors."""
        counter = self.count(kind)
        existing = self.entities[kind].get(compiler.id_key(ident))
        label = kind.replace("_", " ")
        if existing is not None:
            if existing.digest == dig:
                counter.already_exists += 1
                err = AdminError("ALREADY_EXISTS", f"{label} with identical structure already exists")
                err.counted = True
                raise err
            counter.conflicts += 1
            lines = compiler.json_diff(*different(existing.obj))
            err = AdminError(
                "INVALID_ARGUMENT",
                f"{ident.name} {label} with different structure already exists. "
                f"(Please register a new version of the {label}):\n" + "\n".join(lines),
            )
            err.counted = True
            raise err
        self.entities[kind][compiler.id_key(ident)] = Record(kind, obj, dig, self._next_seq())
        counter.created += 1
        self._persist(kind, ident, obj)

    def _guard(self, name: str, fn, *args):
        """Count the call; failures other than identical/different structure count as errors."""
        with self.lock:
            counter = self.count(name)
            counter.calls += 1
            try:
                return fn(*args)
            except AdminError as e:
                if not getattr(e, "counted", False):
                    counter.errors += 1
                raise

    # --- projects ---------------------------------------------------------------------------
    def register_project(self, project: project_pb2.Project) -> None:
        with self.lock:
            if not project.id:
                raise AdminError("INVALID_ARGUMENT", "missing project_id")
            if project.id in self.projects:
                raise AdminError("ALREADY_EXISTS", f"project [{project.id}] already exists")
            stored = project_pb2.Project()
            stored.CopyFrom(project)
            if not stored.name:
                stored.name = project.id
            del stored.domains[:]
            for d in DOMAINS:
                stored.domains.add(id=d, name=d)
            self.projects[project.id] = stored

    def get_project(self, project_id: str) -> project_pb2.Project:
        with self.lock:
            if project_id not in self.projects:
                raise AdminError("NOT_FOUND", f"missing entity of type project with identifier {project_id}")
            return self.projects[project_id]

    # --- tasks ------------------------------------------------------------------------------
    def create_task(self, request: task_pb2.TaskCreateRequest) -> None:
        self._guard("task", self._create_task, request)

    def _create_task(self, request):
        self._validate_identifier(request.id, "task", request.HasField("id"))
        self._validate_project_domain(request.id.project, request.id.domain)
        if not request.HasField("spec") or not request.spec.HasField("template"):
            raise AdminError("INVALID_ARGUMENT", "missing spec")
        template = request.spec.template.__class__()
        template.CopyFrom(request.spec.template)
        template.id.CopyFrom(request.id)  # setDefaults: Spec.Template.Id = request.Id
        task = task_pb2.Task()
        task.id.CopyFrom(request.id)
        task.closure.compiled_task.template.CopyFrom(template)
        task.closure.created_at.CopyFrom(_now())
        if request.spec.HasField("description"):
            task.short_description = request.spec.description.short_description
        self._register(
            "task", request.id, task, compiler.digest(template),
            lambda old: (old.closure.compiled_task, task.closure.compiled_task),
        )

    # --- workflows --------------------------------------------------------------------------
    def create_workflow(self, request: workflow_pb2.WorkflowCreateRequest) -> None:
        self._guard("workflow", self._create_workflow, request)

    def _create_workflow(self, request):
        self._validate_identifier(request.id, "workflow", request.HasField("id"))
        self._validate_project_domain(request.id.project, request.id.domain)
        if not request.HasField("spec") or not request.spec.HasField("template"):
            raise AdminError("INVALID_ARGUMENT", "missing spec")
        template = request.spec.template.__class__()
        template.CopyFrom(request.spec.template)
        template.id.CopyFrom(request.id)
        subs = list(request.spec.sub_workflows)
        try:
            task_ids, lp_ids = compiler.requirements(template, subs)
            tasks = [self._get("task", t).obj.closure.compiled_task.template for t in task_ids]
            for lp in lp_ids:
                self._get("launch_plan", lp)
        except (AdminError, compiler.CompileError) as e:
            message = e.message if isinstance(e, AdminError) else str(e)
            raise AdminError(
                "INVALID_ARGUMENT",
                f"failed to compile workflow for [{compiler.id_text(request.id)}] with err: {message}",
            )
        closure = compiler.compile_workflow(template, subs, tasks)
        wf = workflow_pb2.Workflow()
        wf.id.CopyFrom(request.id)
        wf.closure.compiled_workflow.CopyFrom(closure)
        wf.closure.created_at.CopyFrom(_now())
        if request.spec.HasField("description"):
            wf.short_description = request.spec.description.short_description
        self._register(
            "workflow",
            request.id,
            wf,
            compiler.digest(closure),
            lambda old: (old.closure.compiled_workflow, closure),
        )

    # --- launch plans -----------------------------------------------------------------------
    def create_launch_plan(self, request: launch_plan_pb2.LaunchPlanCreateRequest) -> None:
        self._guard("launch_plan", self._create_launch_plan, request)

    def _create_launch_plan(self, request):
        spec = launch_plan_pb2.LaunchPlanSpec()
        spec.CopyFrom(request.spec)
        self._validate_identifier(spec.workflow_id, "workflow", spec.HasField("workflow_id"))
        workflow = self._get("workflow", spec.workflow_id).obj
        iface = workflow.closure.compiled_workflow.primary.template.interface
        self._validate_identifier(request.id, "launch_plan", request.HasField("id"))
        self._validate_project_domain(request.id.project, request.id.domain)
        if not request.HasField("spec"):
            raise AdminError("INVALID_ARGUMENT", "missing spec")
        expected = self._expected_launch_plan_inputs(iface, spec.fixed_inputs, spec.default_inputs)
        spec.default_inputs.CopyFrom(expected)
        lp = launch_plan_pb2.LaunchPlan()
        lp.id.CopyFrom(request.id)
        lp.spec.CopyFrom(spec)
        lp.closure.expected_inputs.CopyFrom(expected)
        lp.closure.expected_outputs.CopyFrom(iface.outputs)
        dig = compiler.digest(lp.id, lp.spec, lp.closure)
        lp.closure.state = launch_plan_pb2.INACTIVE
        lp.closure.created_at.CopyFrom(_now())
        lp.closure.updated_at.CopyFrom(lp.closure.created_at)
        self._register("launch_plan", request.id, lp, dig, lambda old: (old.spec, spec))

    @staticmethod
    def _expected_launch_plan_inputs(iface, fixed, defaults) -> interface_pb2.ParameterMap:
        """checkAndFetchExpectedInputForLaunchPlan."""
        variables = iface.inputs.variables
        if not variables:
            if defaults.parameters:
                raise AdminError(
                    "INVALID_ARGUMENT",
                    f"invalid launch plan default inputs, expected none but found {len(defaults.parameters)}",
                )
            if fixed.literals:
                raise AdminError(
                    "INVALID_ARGUMENT",
                    f"invalid launch plan fixed inputs, expected none but found {len(fixed.literals)}",
                )
            return interface_pb2.ParameterMap()
        for name, param in defaults.parameters.items():
            if name not in variables:
                raise AdminError("INVALID_ARGUMENT", f"unexpected default_input {name}")
            if not compiler.castable_type(param.var.type, variables[name].type):
                raise AdminError("INVALID_ARGUMENT", f"invalid default_input wrong type {name}")
        for name, literal in fixed.literals.items():
            if name not in variables:
                raise AdminError("INVALID_ARGUMENT", f"unexpected fixed_input {name}")
            if not compiler.castable_literal(literal, variables[name].type):
                raise AdminError("INVALID_ARGUMENT", f"invalid fixed_input wrong type {name}")
        expected = interface_pb2.ParameterMap()
        for name, var in variables.items():
            if name in defaults.parameters:
                expected.parameters[name].CopyFrom(defaults.parameters[name])
            elif name not in fixed.literals:
                p = expected.parameters[name]
                p.var.type.CopyFrom(var.type)
                p.var.description = var.description
                p.required = True
        return expected

    def update_launch_plan(self, ident, state: int) -> None:
        with self.lock:
            self._validate_identifier(ident, "launch_plan")
            rec = self._get("launch_plan", ident)
            if state == launch_plan_pb2.ACTIVE:
                for other in self.entities["launch_plan"].values():
                    i = other.obj.id
                    if (i.project, i.domain, i.name) == (ident.project, ident.domain, ident.name):
                        other.obj.closure.state = launch_plan_pb2.INACTIVE
            elif state != launch_plan_pb2.INACTIVE:
                raise AdminError(
                    "INVALID_ARGUMENT",
                    f"Unrecognized launch plan state {state} for update for launch plan [{compiler.id_text(ident)}]",
                )
            rec.obj.closure.state = state
            rec.obj.closure.updated_at.CopyFrom(_now())

    def active_launch_plans(
        self, project: str, domain: str, name: Optional[str] = None
    ) -> List[launch_plan_pb2.LaunchPlan]:
        with self.lock:
            return [
                r.obj
                for r in sorted(self.entities["launch_plan"].values(), key=lambda r: r.seq)
                if r.obj.closure.state == launch_plan_pb2.ACTIVE
                and (r.obj.id.project, r.obj.id.domain) == (project, domain)
                and (name is None or r.obj.id.name == name)
            ]

    # --- lookups ----------------------------------------------------------------------------
    def get(self, kind: str, ident):
        with self.lock:
            self._validate_identifier(ident, kind)
            return self._get(kind, ident).obj

    def list(self, kind: str, request: common_pb2.ResourceListRequest):
        """ListTasks / ListWorkflows / ListLaunchPlans: filtered, sorted, paginated by offset tokens."""
        with self.lock:
            nid = request.id
            if not nid.project:
                raise AdminError("INVALID_ARGUMENT", "missing project")
            if not nid.domain:
                raise AdminError("INVALID_ARGUMENT", "missing domain")
            if request.limit <= 0:
                raise AdminError("INVALID_ARGUMENT", "invalid value for limit")
            records = [
                r
                for r in self.entities[kind].values()
                if (r.obj.id.project, r.obj.id.domain) == (nid.project, nid.domain)
                and (not nid.name or r.obj.id.name == nid.name)
            ]
            records = [r for r in records if _matches(kind, r, request.filters)]
            return _paginate(kind, records, request.sort_by, request.limit, request.token, lambda r: r.obj)

    def list_ids(self, kind: str, request: common_pb2.NamedEntityIdentifierListRequest):
        with self.lock:
            if not request.project:
                raise AdminError("INVALID_ARGUMENT", "missing project")
            if not request.domain:
                raise AdminError("INVALID_ARGUMENT", "missing domain")
            if request.limit <= 0:
                raise AdminError("INVALID_ARGUMENT", "invalid value for limit")
            latest: Dict[str, Record] = {}
            for r in self.entities[kind].values():
                if (r.obj.id.project, r.obj.id.domain) == (request.project, request.domain):
                    if r.obj.id.name not in latest or r.seq > latest[r.obj.id.name].seq:
                        latest[r.obj.id.name] = r
            return _paginate(
                kind,
                list(latest.values()),
                request.sort_by,
                request.limit,
                request.token,
                lambda r: common_pb2.NamedEntityIdentifier(
                    project=r.obj.id.project, domain=r.obj.id.domain, name=r.obj.id.name
                ),
            )

    # --- executions -------------------------------------------------------------------------
    def create_execution(self, request: execution_pb2.ExecutionCreateRequest) -> core_execution_pb2.ExecutionError:
        return self._guard("execution", self._create_execution, request)

    def _create_execution(self, request):
        if not request.project:
            raise AdminError("INVALID_ARGUMENT", "missing project")
        if not request.domain:
            raise AdminError("INVALID_ARGUMENT", "missing domain")
        if request.name:
            if len(request.name) > 20:
                raise AdminError("INVALID_ARGUMENT", f"size of name exceeded length 20 : {request.name}")
            if not _EXECUTION_NAME.match(request.name.lower()):
                raise AdminError("INVALID_ARGUMENT", f"invalid name format: {request.name}")
        self._validate_project_domain(request.project, request.domain)
        if not request.HasField("spec"):
            raise AdminError("INVALID_ARGUMENT", "missing spec")
        ref = request.spec.launch_plan
        for fname in ("project", "domain", "name", "version"):
            if not getattr(ref, fname):
                raise AdminError("INVALID_ARGUMENT", f"missing {fname}")
        user_inputs = request.inputs if request.HasField("inputs") else request.spec.inputs
        if ref.resource_type == identifier_pb2.LAUNCH_PLAN:
            lp = self._get("launch_plan", ref).obj
            expected, fixed = lp.closure.expected_inputs, lp.spec.fixed_inputs
            workflow_id = lp.spec.workflow_id
        elif ref.resource_type == identifier_pb2.TASK:
            task = self._get("task", ref).obj
            expected = interface_pb2.ParameterMap()
            for name, var in task.closure.compiled_task.template.interface.inputs.variables.items():
                expected.parameters[name].var.CopyFrom(var)
                expected.parameters[name].required = True
            fixed = literals_pb2.LiteralMap()
            workflow_id = identifier_pb2.Identifier(
                resource_type=identifier_pb2.WORKFLOW,
                project=ref.project,
                domain=ref.domain,
                name=ref.name,
                version=ref.version,
            )
        else:
            raise AdminError(
                "INVALID_ARGUMENT",
                f"Invalid reference entity resource type [{identifier_pb2.ResourceType.Name(ref.resource_type)}], "
                f"only [LAUNCH_PLAN TASK] allowed",
            )
        inputs = _merge_execution_inputs(user_inputs, fixed, expected)
        name = request.name or ("a" + "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(19)))
        key = (request.project, request.domain, name)
        if key in self.executions:
            raise AdminError("ALREADY_EXISTS", f"execution with name [{name}] already exists")
        ex = execution_pb2.Execution()
        ex.id.project, ex.id.domain, ex.id.name = key
        ex.spec.CopyFrom(request.spec)
        ex.spec.inputs.CopyFrom(inputs)
        now = _now()
        ex.closure.phase = self.execution_phase
        ex.closure.created_at.CopyFrom(now)
        ex.closure.started_at.CopyFrom(now)
        ex.closure.updated_at.CopyFrom(now)
        ex.closure.workflow_id.CopyFrom(workflow_id)
        self.executions[key] = {"execution": ex, "inputs": inputs, "user_inputs": user_inputs, "seq": self._next_seq()}
        self.count("execution").created += 1
        return ex.id

    def get_execution(self, ident) -> dict:
        with self.lock:
            for fname in ("project", "domain", "name"):
                if not getattr(ident, fname):
                    raise AdminError("INVALID_ARGUMENT", f"missing {fname}")
            found = self.executions.get((ident.project, ident.domain, ident.name))
            if found is None:
                raise _missing("execution", ident)
            return found

    # --- state for the test side (JSON) ---------------------------------------------------------
    def snapshot(self) -> dict:
        with self.lock:

            def ident(i):
                return {"project": i.project, "domain": i.domain, "name": i.name, "version": i.version}

            return {
                "counters": {k: vars(c).copy() for k, c in self.counters.items()},
                "entities": {
                    kind: [
                        dict(
                            ident(r.obj.id),
                            seq=r.seq,
                            **(
                                {"state": launch_plan_pb2.LaunchPlanState.Name(r.obj.closure.state)}
                                if kind == "launch_plan"
                                else {}
                            ),
                        )
                        for r in sorted(recs.values(), key=lambda r: r.seq)
                    ]
                    for kind, recs in self.entities.items()
                },
                "executions": [
                    {
                        "project": k[0],
                        "domain": k[1],
                        "name": k[2],
                        "entity": dict(
                            ident(v["execution"].spec.launch_plan),
                            resource_type=identifier_pb2.ResourceType.Name(
                                v["execution"].spec.launch_plan.resource_type
                            ),
                        ),
                        "inputs": json_format.MessageToDict(v["inputs"], preserving_proto_field_name=True),
                        "user_inputs": json_format.MessageToDict(v["user_inputs"], preserving_proto_field_name=True),
                        "phase": core_execution_pb2.WorkflowExecution.Phase.Name(v["execution"].closure.phase),
                    }
                    for k, v in sorted(self.executions.items(), key=lambda kv: kv[1]["seq"])
                ],
                "uploads": list(self.uploads),
                "uploaded_bytes": sum(u["size"] for u in self.uploads),
                "rpcs": dict(self.rpcs),
                "projects": sorted(self.projects),
            }

    def entity_json(self, kind: str, project: str, domain: str, name: str, version: str) -> Optional[dict]:
        with self.lock:
            rec = self.entities[kind].get((_RESOURCE_TYPE[kind], project, domain, name, version))
            if rec is None:
                return None
            return json_format.MessageToDict(rec.obj, preserving_proto_field_name=True)


def _merge_execution_inputs(user, fixed, expected) -> literals_pb2.LiteralMap:
    """CheckAndFetchInputsForExecution."""
    out = literals_pb2.LiteralMap()
    for name, value in user.literals.items():
        if name not in expected.parameters:
            raise AdminError("INVALID_ARGUMENT", f"invalid input {name}")
        out.literals[name].CopyFrom(value)
    for name, param in expected.parameters.items():
        if name not in out.literals:
            if param.required:
                raise AdminError("INVALID_ARGUMENT", f"expected_inputs {name} missing")
            out.literals[name].CopyFrom(param.default)
        elif not compiler.castable_literal(out.literals[name], param.var.type):
            raise AdminError("INVALID_ARGUMENT", f"invalid {name} input wrong type")
    for name, value in fixed.literals.items():
        if name in out.literals:
            raise AdminError("INVALID_ARGUMENT", f"fixed_inputs {name} cannot be overridden")
        out.literals[name].CopyFrom(value)
    return out


_FILTER = re.compile(r"^(eq|ne)\((\w+),([^)]*)\)$")


def _field_value(kind: str, rec: Record, fname: str) -> str:
    if fname in ("project", "domain", "name", "version"):
        return getattr(rec.obj.id, fname)
    if fname == "state" and kind == "launch_plan":
        return str(rec.obj.closure.state)
    raise AdminError("INVALID_ARGUMENT", f"unrecognized filter field {fname} for {kind}")


def _matches(kind: str, rec: Record, filters: str) -> bool:
    if not filters:
        return True
    for expr in filters.split("+"):
        m = _FILTER.match(expr.strip())
        if not m:
            raise AdminError("INVALID_ARGUMENT", f"unsupported filter expression {expr!r}")
        op, fname, value = m.groups()
        actual = _field_value(kind, rec, fname)
        if (actual == value) != (op == "eq"):
            return False
    return True


def _paginate(kind, records, sort_by, limit, token, render):
    key = sort_by.key or "created_at"
    if key == "created_at":
        records.sort(key=lambda r: r.seq)
    elif key in ("name", "version", "project", "domain"):
        records.sort(key=lambda r: (getattr(r.obj.id, key), r.seq))
    else:
        raise AdminError("INVALID_ARGUMENT", f"invalid sort_key {key}")
    if sort_by.direction == common_pb2.Sort.DESCENDING:
        records.reverse()
    try:
        offset = int(token) if token else 0
    except ValueError:
        raise AdminError("INVALID_ARGUMENT", f"invalid pagination token {token} for List")
    page = records[offset : offset + limit]
    next_token = str(offset + len(page)) if len(page) == limit else ""
    return [render(r) for r in page], next_token
