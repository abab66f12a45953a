"""Register serialized Flyte entities incrementally: upload the code bundle if needed, then tasks ->
workflows -> launch plans, each only if FlyteAdmin does not already hold it.

Usage:  python <runtime>/__main__.py deploy <request.json>

Runs in the USER's environment: flyteidl + grpcio; flytekit only with a flytekit config file (its channel carries
the config's authentication). Part of the runtime package: stdlib + flytekit/flyteidl/grpc only, no import of
`flytebuild`.

Request and answer: docs/runtime-contract.md (deploy).

ledger: what this checkout registered before, per (endpoint, project, domain), with content digests. An entity it
vouches for (same id, same digest) costs no call: when it vouches for every entity, no connection is even opened.
Otherwise one Get first checks that FlyteAdmin still holds one of those entities (else that partition is forgotten
and every entity is checked: a wiped server is registered again), and the rest goes the way below. A bundle the
ledger recorded (content-addressed name) is not probed again.

pin_images: images pushed while the entities were serialized (concurrently, by tag): every string of a task or
workflow equal to a tag (container and pod images, node overrides) is registered pinned to the pushed digest.

The .pb files are what `pyflyte package` writes (admin.TaskSpec, admin.WorkflowSpec, admin.LaunchPlan); fast tasks
carry flytekit's placeholders `{{ .remote_package_path }}` / `{{ .dest_dir }}` (as `flytectl register files` expects),
filled here with the uploaded bundle's location, the way flytectl does. So do the primary containers of a workflow's
node-level pod templates (`with_overrides(pod_template=...)` on a fast task's node: flytekit copies the task's
container into them), filled likewise and compared whatever bundle they point at.

Per entity, in dependency order (the order of `entities`, deduplicated by id; tasks concurrently, then workflows and
launch plans in groups whose members need only earlier groups, each group concurrently):
- Get<X> first. Missing -> Create<X> ("registered"). Present with the same content -> "unchanged" (nothing sent).
  Present with other content -> "failed": FlyteAdmin versions are immutable. A fast task compares equal whatever
  bundle its stored copy points at: its version covers every file it imports, so an older bundle holds the same
  code for it (this is what keeps an unrelated edit from re-registering every fast task).
- A workflow (or launch plan) whose task, sub-workflow or launch plan failed or is missing is never created
  ("blocked").
- The bundle is uploaded through DataProxy.CreateUploadLocation under a content-addressed name, only when some
  fast task (or a workflow whose node overrides run one) is registered, and skipped when the server already holds
  that name (ALREADY_EXISTS without a hash).
Re-running after an interruption registers what is left: what was created is found by Get and left alone.

With dry_run nothing is created or uploaded; the same statuses are reported ("registered" meaning "would be").

Exit 0 (all registered/unchanged), 1 (some failed/blocked) or 2 (the deploy could not start).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import typing
import urllib.error
import urllib.request

from . import ledger as _ledger
from .admin import Admin, DeployError, grpc_code, grpc_details
from .answers import json_stdout, log

REMOTE_PACKAGE = "{{ .remote_package_path }}"
DEST_DIR = "{{ .dest_dir }}"
BUNDLE_ROOT = "flytebuild-bundles"


# ----------------------------------------------------------------------------------------------------------------
# entities


class Entity:
    def __init__(self, kind: str, file: str, fast: bool, raw: typing.Optional[bytes] = None):
        from flyteidl.admin import launch_plan_pb2, task_pb2, workflow_pb2

        self.kind, self.file, self.fast = kind, file, fast
        if raw is None:
            with open(file, "rb") as f:
                raw = f.read()
        self.raw = raw
        self.digest = ""  # the ledger's content digest (pins included)
        self.hit = False  # the ledger vouches that FlyteAdmin holds exactly this
        self.refused = False  # FlyteAdmin refused its Create
        if kind == "task":
            self.spec = task_pb2.TaskSpec.FromString(self.raw)
            self.id = self.spec.template.id
        elif kind == "workflow":
            self.spec = workflow_pb2.WorkflowSpec.FromString(self.raw)
            self.id = self.spec.template.id
        elif kind == "launch_plan":
            self.spec = launch_plan_pb2.LaunchPlan.FromString(self.raw)
            self.id = self.spec.id
        else:
            raise DeployError("bad_request", f"{file}: unknown entity kind {kind!r}")
        self.status = ""
        self.message = ""

    @property
    def key(self) -> tuple:
        i = self.id
        return (self.kind, i.project, i.domain, i.name, i.version)

    def refs(self) -> typing.List[typing.Tuple[str, typing.Any]]:
        """(kind, Identifier) of the registered entities this one needs."""
        out: typing.List[typing.Tuple[str, typing.Any]] = []
        if self.kind == "launch_plan":
            return [("workflow", self.spec.spec.workflow_id)]
        if self.kind != "workflow":
            return out
        local_subs = {_id_text(s.id) for s in self.spec.sub_workflows}
        for node in _workflow_nodes(self.spec):
            if node.HasField("task_node") and node.task_node.HasField("reference_id"):
                out.append(("task", node.task_node.reference_id))
            if node.HasField("workflow_node"):
                wn = node.workflow_node
                if wn.HasField("launchplan_ref"):
                    out.append(("launch_plan", wn.launchplan_ref))
                if wn.HasField("sub_workflow_ref") and _id_text(wn.sub_workflow_ref) not in local_subs:
                    out.append(("workflow", wn.sub_workflow_ref))
        return out

    def carries_bundle_placeholder(self) -> bool:
        """A workflow whose node overrides hold a fast task's container (with_overrides(pod_template=...))."""
        return self.kind == "workflow" and any(
            REMOTE_PACKAGE in _container_args(c) for c in _override_primaries(self.spec))


def _nodes(node) -> typing.Iterator[typing.Any]:
    """A node and the nodes nested in it (branch cases, array node)."""
    yield node
    if node.HasField("branch_node"):
        ie = node.branch_node.if_else
        yield from _nodes(ie.case.then_node)
        for c in ie.other:
            yield from _nodes(c.then_node)
        if ie.HasField("else_node"):
            yield from _nodes(ie.else_node)
    if node.HasField("array_node"):
        yield from _nodes(node.array_node.node)


def _workflow_nodes(spec) -> typing.Iterator[typing.Any]:
    """Every node of a WorkflowSpec: its template's and sub-workflows', failure nodes and nested ones included."""
    for tmpl in [spec.template, *spec.sub_workflows]:
        for n in tmpl.nodes:
            yield from _nodes(n)
        if tmpl.HasField("failure_node"):
            yield from _nodes(tmpl.failure_node)


def _id_text(i) -> str:
    return f"{i.project}/{i.domain}/{i.name}/{i.version}"


def _key(kind: str, i) -> tuple:
    return (kind, i.project, i.domain, i.name, i.version)


# --- fast-register arguments -------------------------------------------------------------------------------------


def _named_container(pod_spec, name: str) -> typing.Optional[typing.Any]:
    """The container called `name` (a protobuf Struct) of a k8s PodSpec held as a Struct."""
    containers = pod_spec.fields.get("containers")
    if containers is None:
        return None
    for c in containers.list_value.values:
        if c.struct_value.fields.get("name") and c.struct_value.fields["name"].string_value == name:
            return c.struct_value
    return None


def _primary_container(template) -> typing.Optional[typing.Any]:
    """The primary container (a protobuf Struct) of a task's k8s pod, if any."""
    if not template.HasField("k8s_pod"):
        return None
    return _named_container(template.k8s_pod.pod_spec, template.config.get("primary_container_name", "primary"))


def _override_primaries(spec) -> typing.List[typing.Any]:
    """The primary containers of a workflow's node-level pod templates. flytekit copies the task's container, fast
    arguments and their `{{ .remote_package_path }}` included, into them: they need the bundle like the task."""
    out = []
    for node in _workflow_nodes(spec):
        if not (node.HasField("task_node") and node.task_node.overrides.HasField("pod_template")):
            continue
        pod = node.task_node.overrides.pod_template
        pc = _named_container(pod.pod_spec, pod.primary_container_name or "primary")
        if pc is not None:
            out.append(pc)
    return out


def _container_args(container) -> typing.List[str]:
    return [v.string_value for v in container.fields["args"].list_value.values] if "args" in container.fields else []


def _rewrite_container_args(container, fn: typing.Callable[[typing.List[str]], typing.List[str]]) -> None:
    if "args" in container.fields:
        new = fn(_container_args(container))
        container.fields["args"].list_value.Clear()
        container.fields["args"].list_value.extend(new)


def _rewrite_args(template, fn: typing.Callable[[typing.List[str]], typing.List[str]]) -> None:
    if template.HasField("container"):
        new = fn(list(template.container.args))
        del template.container.args[:]
        template.container.args.extend(new)
    pc = _primary_container(template)
    if pc is not None:
        _rewrite_container_args(pc, fn)


def _rewrite_override_args(spec, fn: typing.Callable[[typing.List[str]], typing.List[str]]) -> None:
    for pc in _override_primaries(spec):
        _rewrite_container_args(pc, fn)


def _repeated(field) -> bool:
    # protobuf >= 5 has is_repeated (and later drops label)
    flag = getattr(field, "is_repeated", None)
    return bool(flag) if flag is not None else field.label == field.LABEL_REPEATED


def _replace_strings(msg, table: typing.Mapping[str, str]) -> None:
    """Replace every string in `msg` (Struct values and map values included) that equals a key of `table`."""
    for field, value in msg.ListFields():
        if field.type == field.TYPE_STRING:
            if _repeated(field):
                for i, v in enumerate(value):
                    if v in table:
                        value[i] = table[v]
            elif value in table:
                setattr(msg, field.name, table[value])
        elif field.type == field.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                vf = field.message_type.fields_by_name["value"]
                for k in list(value.keys()):
                    if vf.type == vf.TYPE_MESSAGE:
                        _replace_strings(value[k], table)
                    elif vf.type == vf.TYPE_STRING and value[k] in table:
                        value[k] = table[value[k]]
            elif _repeated(field):
                for v in value:
                    _replace_strings(v, table)
            else:
                _replace_strings(value, table)


def _fill(args: typing.List[str], location: str, dest_dir: str) -> typing.List[str]:
    return [location if a == REMOTE_PACKAGE else dest_dir if a == DEST_DIR else a for a in args]


def _without_bundle(args: typing.List[str]) -> typing.List[str]:
    out = list(args)
    for i, a in enumerate(out[:-1]):
        if a == "--additional-distribution":
            out[i + 1] = REMOTE_PACKAGE
    return out


def _comparable_task(template, fast: bool):
    t = template.__class__()
    t.CopyFrom(template)
    if fast:
        _rewrite_args(t, _without_bundle)
    return t


# --- content comparison ------------------------------------------------------------------------------------------


def _same(a, b) -> bool:
    return a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)


def _differences(old, new, limit: int = 5) -> typing.List[str]:
    from google.protobuf import json_format

    def flat(value, path, out):
        if isinstance(value, dict):
            for k in sorted(value):
                flat(value[k], f"{path}.{k}" if path else k, out)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                flat(v, f"{path}[{i}]", out)
        else:
            out[path] = value
        return out

    a = flat(json_format.MessageToDict(old, preserving_proto_field_name=True), "", {})
    b = flat(json_format.MessageToDict(new, preserving_proto_field_name=True), "", {})
    diffs = [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return diffs[:limit] + ([f"... {len(diffs) - limit} more"] if len(diffs) > limit else [])


_COMPILER_NODES = ("start-node", "end-node")


def _comparable_overrides(overrides):
    """A node's overrides whatever bundle their fast container points at (see _comparable_task)."""
    o = overrides.__class__()
    o.CopyFrom(overrides)
    if o.HasField("pod_template"):
        pc = _named_container(o.pod_template.pod_spec, o.pod_template.primary_container_name or "primary")
        if pc is not None:
            _rewrite_container_args(pc, _without_bundle)
    return o


def _workflow_signature(template) -> dict:
    """What of a workflow FlyteAdmin's compiler keeps as given: its interface, outputs and, per node, what it runs
    and with which overrides.

    The compiled copy FlyteAdmin stores adds start/end nodes and derived fields (upstream ids, defaults), so the
    templates are not compared byte for byte."""
    from google.protobuf import json_format

    def runs(node) -> list:
        out = []
        if node.HasField("task_node"):
            out.append(("task", _id_text(node.task_node.reference_id)))
            if node.task_node.HasField("overrides"):
                out.append(("overrides", canon(_comparable_overrides(node.task_node.overrides))))
        if node.HasField("workflow_node"):
            wn = node.workflow_node
            if wn.HasField("launchplan_ref"):
                out.append(("launch_plan", _id_text(wn.launchplan_ref)))
            if wn.HasField("sub_workflow_ref"):
                out.append(("workflow", _id_text(wn.sub_workflow_ref)))
        if node.HasField("branch_node"):
            ie = node.branch_node.if_else
            for then in [ie.case.then_node, *(c.then_node for c in ie.other)] + (
                    [ie.else_node] if ie.HasField("else_node") else []):
                out.append((then.id, runs(then)))
        if node.HasField("array_node"):
            out.append(("array", runs(node.array_node.node)))
        return out

    def canon(msg) -> str:
        return json.dumps(json_format.MessageToDict(msg, preserving_proto_field_name=True), sort_keys=True)

    sig = {"interface": canon(template.interface), "outputs": [canon(b) for b in template.outputs]}
    for node in template.nodes:
        if node.id not in _COMPILER_NODES:
            sig[f"node {node.id}"] = json.dumps(runs(node))
    return sig


def _stored_matches(entity: Entity, stored) -> typing.Tuple[bool, typing.List[str]]:
    """Whether FlyteAdmin's stored copy holds the same content as ours (see the module docstring)."""
    if entity.kind == "task":
        ours = _comparable_task(entity.spec.template, entity.fast)
        ours.id.CopyFrom(entity.id)
        theirs = _comparable_task(stored.closure.compiled_task.template, entity.fast)
        return _same(ours, theirs), _differences(theirs, ours)
    if entity.kind == "workflow":
        ours = _workflow_signature(entity.spec.template)
        theirs = _workflow_signature(stored.closure.compiled_workflow.primary.template)
        return ours == theirs, [f"{k}: {theirs.get(k)!r} -> {ours.get(k)!r}"
                                for k in sorted(set(ours) | set(theirs)) if ours.get(k) != theirs.get(k)][:5]
    # FlyteAdmin completes a launch plan's default inputs with the workflow's unbound inputs: ours must be a subset.
    ours = entity.spec.spec.__class__()
    ours.CopyFrom(entity.spec.spec)
    theirs = stored.spec.__class__()
    theirs.CopyFrom(stored.spec)
    defaults_ok = all(
        name in theirs.default_inputs.parameters and _same(param, theirs.default_inputs.parameters[name])
        for name, param in ours.default_inputs.parameters.items()
    )
    ours.ClearField("default_inputs")
    theirs.ClearField("default_inputs")
    return _same(ours, theirs) and defaults_ok, _differences(theirs, ours)


# ----------------------------------------------------------------------------------------------------------------
# the deploy


class Deployer:
    def __init__(self, admin: Admin, dry_run: bool, dest_dir: str):
        from flyteidl.admin import common_pb2, launch_plan_pb2, task_pb2, workflow_pb2

        self.admin = admin
        self.dry_run = dry_run
        self.dest_dir = dest_dir
        self.pb = {"common": common_pb2, "task": task_pb2, "workflow": workflow_pb2, "launch_plan": launch_plan_pb2}
        self.known: typing.Dict[tuple, str] = {}  # key -> status of entities in this deploy
        self.remote: typing.Dict[tuple, bool] = {}  # key -> present on the server (references outside this deploy)
        self.bytes_uploaded = 0

    # --- admin calls ---
    def get(self, kind: str, ident):
        stub = self.admin.admin
        method = {"task": stub.GetTask, "workflow": stub.GetWorkflow, "launch_plan": stub.GetLaunchPlan}[kind]
        req = self.pb["common"].ObjectGetRequest(id=ident)
        try:
            return self.admin.call(method, req)
        except self.admin.grpc.RpcError as e:
            if grpc_code(e) == "NOT_FOUND":
                return None
            raise

    def create(self, entity: Entity) -> None:
        stub = self.admin.admin
        if entity.kind == "task":
            self.admin.call(stub.CreateTask, self.pb["task"].TaskCreateRequest(id=entity.id, spec=entity.spec))
        elif entity.kind == "workflow":
            self.admin.call(stub.CreateWorkflow,
                            self.pb["workflow"].WorkflowCreateRequest(id=entity.id, spec=entity.spec))
        else:
            self.admin.call(stub.CreateLaunchPlan,
                            self.pb["launch_plan"].LaunchPlanCreateRequest(id=entity.id, spec=entity.spec.spec))

    # --- per entity ---
    def examine(self, entity: Entity) -> None:
        """Decide the status from FlyteAdmin's copy: registered (to create) / unchanged / failed / blocked."""
        label = entity.kind.replace("_", " ")
        for rkind, rid in entity.refs():
            key = _key(rkind, rid)
            status = self.known.get(key)
            if status in ("failed", "blocked"):
                entity.status = "blocked"
                entity.message = f"not registered: its {rkind.replace('_', ' ')} {rid.name} ({rid.version}) {status}"
                return
            if status is None:
                if key not in self.remote:
                    self.remote[key] = self.get(rkind, rid) is not None
                if not self.remote[key]:
                    entity.status = "blocked"
                    entity.message = (f"not registered: it uses {rkind.replace('_', ' ')} {_id_text(rid)}, which is "
                                      f"neither in this deploy nor registered")
                    return
        stored = self.get(entity.kind, entity.id)
        if stored is None:
            entity.status = "registered"
            return
        same, diffs = _stored_matches(entity, stored)
        if same:
            entity.status = "unchanged"
            return
        if entity.kind != "task" and not self.dry_run:
            # FlyteAdmin stores workflows compiled and launch plans completed: its own digest is the judge.
            # Create answers ALREADY_EXISTS (identical: unchanged) or INVALID_ARGUMENT (different: failed).
            entity.status = "registered"
            return
        entity.status = "failed"
        entity.message = (
            f"{label} {_id_text(entity.id)} is already registered with different content, and FlyteAdmin versions "
            f"are immutable ({'; '.join(diffs)}). Something registered this version outside flytebuild: delete it "
            f"or register into another project/domain"
        )

    def commit(self, entity: Entity) -> None:
        if self.dry_run or entity.status != "registered":
            return
        try:
            self.create(entity)
        except self.admin.grpc.RpcError as e:
            if grpc_code(e) == "ALREADY_EXISTS":  # created meanwhile with the same content: FlyteAdmin's "success"
                entity.status = "unchanged"
                return
            entity.status = "failed"
            entity.refused = True
            entity.message = f"FlyteAdmin refused {entity.kind.replace('_', ' ')} {_id_text(entity.id)}: " \
                             f"{grpc_code(e)}: {grpc_details(e)}"

    # --- the bundle ---
    def upload_location(self, project: str, domain: str, name: str, md5: typing.Optional[bytes]):
        from flyteidl.service import dataproxy_pb2

        req = dataproxy_pb2.CreateUploadLocationRequest(
            project=project, domain=domain, filename=name, filename_root=BUNDLE_ROOT)
        if md5 is not None:
            req.content_md5 = md5
        return self.admin.call(self.admin.data.CreateUploadLocation, req)

    def place_bundle(self, bundle: dict, project: str, domain: str) -> dict:
        """Upload the bundle unless FlyteAdmin's store already holds its content-addressed name."""
        with open(bundle["path"], "rb") as f:
            data = f.read()
        md5 = hashlib.md5(data).digest()
        info = {"name": bundle["name"], "size": len(data), "uploaded": False, "present": False, "native_url": None}
        try:
            # Without a hash, FlyteAdmin refuses a name that exists: the cheapest existence check it offers.
            probe = self.upload_location(project, domain, bundle["name"], None)
        except self.admin.grpc.RpcError as e:
            if grpc_code(e) != "ALREADY_EXISTS":
                raise DeployError("upload_failed", f"CreateUploadLocation for {bundle['name']} failed: "
                                                   f"{grpc_code(e)}: {grpc_details(e)}",
                                  "check that FlyteAdmin's data proxy is configured (storage and signed URLs)")
            info["present"] = True
            # The same name with its hash: answers with the location (and refuses if the content differed).
            loc = self.upload_location(project, domain, bundle["name"], md5)
            info["native_url"] = loc.native_url
            return info
        info["native_url"] = probe.native_url
        if self.dry_run:
            return info
        loc = self.upload_location(project, domain, bundle["name"], md5)
        log(f"uploading {bundle['name']} ({len(data)} bytes)")
        put = urllib.request.Request(loc.signed_url, data=data, method="PUT", headers={
            "Content-MD5": base64.b64encode(md5).decode(), "Content-Length": str(len(data)),
            "Content-Type": "application/octet-stream"})
        try:
            with urllib.request.urlopen(put, timeout=max(60.0, self.admin.timeout)) as rsp:
                rsp.read()
        except (urllib.error.URLError, OSError) as e:
            detail = e.read().decode("utf-8", "replace")[:300] if isinstance(e, urllib.error.HTTPError) else ""
            raise DeployError("upload_failed", f"uploading {bundle['name']} to {loc.native_url} failed: {e} {detail}"
                              .rstrip(), "check the object store behind FlyteAdmin's data proxy") from None
        info["native_url"] = loc.native_url
        info["uploaded"] = True
        self.bytes_uploaded += len(data)
        return info


def _read_file(file: str) -> bytes:
    try:
        with open(file, "rb") as f:
            return f.read()
    except OSError as e:
        raise DeployError("bad_request", f"cannot read {file}: {e.strerror}")


def _levels(entities: typing.List[Entity]) -> typing.List[typing.List[Entity]]:
    """Workflows and launch plans grouped so that each group needs only earlier groups (or entities already
    decided): the groups run one after another, their members concurrently."""
    by_key = {e.key: e for e in entities}
    level: typing.Dict[tuple, int] = {e.key: 0 for e in entities}
    for _ in range(len(entities) + 1):
        changed = False
        for e in entities:
            deps = [level[_key(k, i)] + 1 for k, i in e.refs() if _key(k, i) in by_key]
            want = max(deps, default=0)
            if want != level[e.key]:
                level[e.key], changed = want, True
        if not changed:
            break
    groups: typing.Dict[int, typing.List[Entity]] = {}
    for e in entities:  # keeps the given order inside a group
        groups.setdefault(level[e.key], []).append(e)
    return [groups[k] for k in sorted(groups)]


def check_projects(admin: Admin, wanted: typing.Sequence[typing.Tuple[str, str]]) -> None:
    """Every project (and its domain) exists before anything is uploaded or created; an admin without
    GetProject (older than the API) is not asked."""
    from flyteidl.admin import project_pb2

    for project in sorted({p for p, _ in wanted}):
        try:
            found = admin.call(admin.admin.GetProject, project_pb2.ProjectGetRequest(id=project))
        except Exception as e:  # noqa: BLE001 - gRPC errors carry their code
            code = grpc_code(e)
            if code == "UNIMPLEMENTED":
                return
            if code == "NOT_FOUND":
                raise DeployError(
                    "project_not_found", f"project `{project}` does not exist on FlyteAdmin {admin.endpoint}; "
                    f"nothing was uploaded or registered",
                    f"create it (`flytectl create project --id {project} --name {project}`) or set the workflow's "
                    f"`project` (or [flyte].project) to an existing one") from None
            raise
        domains = {d.id for d in found.domains}
        for p, domain in wanted:
            if p == project and domains and domain not in domains:
                raise DeployError(
                    "domain_not_found", f"project `{project}` on FlyteAdmin {admin.endpoint} has no domain "
                    f"`{domain}` (it has: {', '.join(sorted(domains))}); nothing was uploaded or registered",
                    "set the workflow's `domain` (or [flyte].domain) to one of those")


def deploy(req: dict) -> typing.Tuple[dict, int]:
    dry_run = bool(req.get("dry_run"))
    ledger = _ledger.of_request(req)
    items = _ledger.judged(req, ledger, _read_file)
    answer = _ledger.vouched(req, items, os.path.getsize)
    if answer is not None:  # the ledger vouches for every entity: not one call (Pants decides this in its rule)
        summary, lines = answer
        for line in lines:
            log(line)
        return summary, 0

    admin = Admin(req.get("admin") or {})
    d = Deployer(admin, dry_run, req.get("dest_dir") or ".")
    workers = max(1, int(req.get("concurrency") or 8))

    entities: typing.List[Entity] = []
    seen: typing.Dict[tuple, Entity] = {}
    pins = req.get("pin_images") or {}
    for item in items:
        e = Entity(item["kind"], item["file"], bool(item.get("fast")), raw=item["raw"])
        e.digest, e.hit = item["digest"], bool(item["hit"])
        if pins and e.kind in ("task", "workflow"):
            _replace_strings(e.spec, pins)
        prev = seen.get(e.key)
        if prev is not None:
            if prev.raw != e.raw:
                raise DeployError("bad_request", f"{e.kind} {_id_text(e.id)} was serialized twice with different "
                                                 f"content ({prev.file}, {e.file})",
                                  "this is a flytebuild bug: versions must follow content")
            continue
        seen[e.key] = e
        entities.append(e)

    # Before anything is uploaded or created: every project (and domain) the entities go to exists.
    check_projects(admin, sorted({(e.id.project, e.id.domain) for e in entities}))

    # The ledger is a cache: before trusting it on a server we are talking to anyway, check that the server still
    # holds one entity it vouches for (the last one registered: a launch plan, after its workflow and tasks).
    if ledger is not None:
        probes: typing.Dict[typing.Tuple[str, str], Entity] = {}
        for e in entities:
            if e.hit:
                probes[(e.id.project, e.id.domain)] = e
        for (project, domain), e in sorted(probes.items()):
            if d.get(e.kind, e.id) is None:
                log(f"FlyteAdmin no longer holds {e.kind} {_id_text(e.id)}: checking every entity of "
                    f"{project}/{domain} again")
                ledger.forget(project, domain)
                for other in entities:
                    if (other.id.project, other.id.domain) == (project, domain):
                        other.hit = False
    hits = 0
    for e in entities:
        if e.hit:
            e.status = "unchanged"
            d.known[e.key] = e.status
            hits += 1
            _progress(e, dry_run)

    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=workers)

    def each(fn, group: typing.List[Entity]) -> None:
        list(pool.map(fn, group))  # re-raises the first failure (a gRPC error mid-deploy)

    tasks = [e for e in entities if e.kind == "task" and not e.hit]
    each(d.examine, tasks)
    for e in tasks:
        d.known[e.key] = e.status

    # The bundle goes up only if something registered runs from it: a fast task, or a workflow whose node overrides
    # hold a fast task's container (its task may well be unchanged).
    bundle = req.get("bundle")
    placed: typing.Dict[str, dict] = {}

    def fill(e: Entity) -> None:
        if "info" not in placed:
            known = ledger.bundle(e.id.project, e.id.domain, bundle["name"]) if ledger is not None else None
            if known:  # uploaded (or found) before: its content-addressed name says the content is the same
                placed["info"] = {"name": bundle["name"], "size": os.path.getsize(bundle["path"]), "uploaded": False,
                                  "present": True, "native_url": known}
            else:
                placed["info"] = d.place_bundle(bundle, e.id.project, e.id.domain)
            placed["where"] = (e.id.project, e.id.domain)
        location = placed["info"]["native_url"] or REMOTE_PACKAGE
        rewrite = _rewrite_override_args if e.kind == "workflow" else _rewrite_args
        rewrite(e.spec if e.kind == "workflow" else e.spec.template,
                lambda args: _fill(args, location, d.dest_dir))

    if bundle:
        for e in tasks:
            if e.fast and e.status == "registered":
                fill(e)

    each(d.commit, tasks)
    for e in tasks:
        d.known[e.key] = e.status
        _progress(e, dry_run)
    for group in _levels([e for e in entities if e.kind != "task" and not e.hit]):
        each(d.examine, group)
        for e in group:
            d.known[e.key] = e.status
            if bundle and e.status == "registered" and e.carries_bundle_placeholder():
                fill(e)
        each(d.commit, group)
        for e in group:
            d.known[e.key] = e.status
            _progress(e, dry_run)
    pool.shutdown()

    bundle_info = placed.get("info")
    if bundle and bundle_info is None:
        bundle_info = {"name": bundle["name"], "size": os.path.getsize(bundle["path"]), "uploaded": False,
                       "present": None, "native_url": None}

    if ledger is not None:
        for e in entities:
            if not e.hit and (e.status == "unchanged" or (e.status == "registered" and not dry_run)):
                ledger.record(e.id.project, e.id.domain, e.kind, e.id.name, e.id.version, e.digest)
            if e.refused:  # FlyteAdmin disagrees with what we believed it holds: trust nothing there next time
                ledger.forget(e.id.project, e.id.domain)
        if bundle_info and bundle_info.get("native_url") and not dry_run and "where" in placed:
            ledger.record_bundle(*placed["where"], bundle["name"], bundle_info["native_url"])
        ledger.save()

    counts: typing.Dict[str, int] = {}
    for e in entities:
        counts[e.status] = counts.get(e.status, 0) + 1
    out = {
        "endpoint": admin.endpoint,
        "dry_run": dry_run,
        "entities": [
            {"kind": e.kind, "project": e.id.project, "domain": e.id.domain, "name": e.id.name,
             "version": e.id.version, "status": e.status, "message": e.message, "fast": e.fast}
            for e in sorted(entities, key=lambda e: (_ledger.RANK[e.kind], e.id.name, e.id.version))
        ],
        "bundle": bundle_info,
        "bytes_uploaded": d.bytes_uploaded,
        "counts": counts,
    }
    if ledger is not None:
        out["ledger"] = {"hits": hits}
    failed = counts.get("failed", 0) + counts.get("blocked", 0)
    return out, 1 if failed else 0


def _progress(e: Entity, dry_run: bool) -> None:
    verb = {"registered": "would register" if dry_run else "registered"}.get(e.status, e.status)
    log(f"{verb:>14}  {e.kind:<11} {e.id.name}  {e.id.version}" + (f"  -- {e.message}" if e.message else ""))


def _main(argv: typing.List[str]) -> typing.Tuple[dict, int]:
    try:
        if len(argv) != 2:
            raise DeployError("bad_request", "usage: deploy <request.json>")
        try:
            with open(argv[1], encoding="utf-8") as f:
                req = json.load(f)
        except (OSError, ValueError) as e:
            raise DeployError("bad_request", f"cannot read request {argv[1]}: {e}")
        return deploy(req)
    except DeployError as e:
        return {"error": e.to_json()}, 2
    except Exception as e:  # noqa: BLE001 - gRPC failures mid-deploy are reported, not dumped
        code = grpc_code(e)
        if code != "UNKNOWN":
            return {"error": {"kind": "admin_error", "message": f"FlyteAdmin call failed: {code}: {grpc_details(e)}",
                              "fix": "re-run the deploy once FlyteAdmin is healthy: what was registered is kept"}}, 2
        import traceback

        return {"error": {"kind": "internal", "message": f"{type(e).__name__}: {e}",
                          "fix": "this is a flytebuild bug; please report it",
                          "traceback": traceback.format_exc()}}, 2


def main(argv: typing.List[str]) -> int:
    # stdout carries our JSON only.
    try:
        return json_stdout(lambda: _main(argv), lambda result: json.dumps(result, indent=2, sort_keys=True))
    except KeyboardInterrupt:
        # Ctrl-C, or Pants stopping the process on Ctrl-C. Creates go in dependency order, so what landed is
        # consistent; exit now instead of letting queued creates run on while the pool's threads are joined.
        log("interrupted: what was registered so far is kept and consistent; run the deploy again to finish")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)

