"""gRPC servicers generated from flyteidl (AdminService, DataProxyService) over the Store.

RPCs not overridden here keep flyteidl's generated behaviour: UNIMPLEMENTED.
"""
import base64
import datetime
import functools
import random
import string

import grpc
from flyteidl.admin import (
    common_pb2,
    execution_pb2,
    launch_plan_pb2,
    node_execution_pb2,
    project_pb2,
    task_pb2,
    version_pb2,
    workflow_pb2,
)
from flyteidl.core import literals_pb2
from flyteidl.service import admin_pb2_grpc, dataproxy_pb2, dataproxy_pb2_grpc
from google.protobuf import timestamp_pb2

from .blobs import BUCKET, BlobStore
from .store import AdminError, Store

MAX_UPLOAD_EXPIRES_IN = datetime.timedelta(hours=1)  # flyteadmin's dataProxy.upload.maxExpiresIn default


def go_duration(td: datetime.timedelta) -> str:
    """A duration as Go's time.Duration.String() prints it (flyteadmin's messages use it)."""
    total = td.total_seconds()
    h, rest = divmod(int(total), 3600)
    m, sec = divmod(rest, 60)
    frac = total - int(total)
    secs = f"{sec + frac:g}s"
    return f"{h}h{m}m{secs}" if h else (f"{m}m{secs}" if m else secs)


def _admin_errors(method):
    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except AdminError as e:
            context.abort(grpc.StatusCode[e.code], e.message)

    return wrapper


class AdminService(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, store: Store):
        self.store = store

    # --- tasks / workflows / launch plans -------------------------------------------------------
    @_admin_errors
    def CreateTask(self, request, context):
        self.store.create_task(request)
        return task_pb2.TaskCreateResponse()

    @_admin_errors
    def GetTask(self, request, context):
        return self.store.get("task", request.id)

    @_admin_errors
    def ListTasks(self, request, context):
        items, token = self.store.list("task", request)
        return task_pb2.TaskList(tasks=items, token=token)

    @_admin_errors
    def ListTaskIds(self, request, context):
        items, token = self.store.list_ids("task", request)
        return common_pb2.NamedEntityIdentifierList(entities=items, token=token)

    @_admin_errors
    def CreateWorkflow(self, request, context):
        self.store.create_workflow(request)
        return workflow_pb2.WorkflowCreateResponse()

    @_admin_errors
    def GetWorkflow(self, request, context):
        return self.store.get("workflow", request.id)

    @_admin_errors
    def ListWorkflows(self, request, context):
        items, token = self.store.list("workflow", request)
        return workflow_pb2.WorkflowList(workflows=items, token=token)

    @_admin_errors
    def ListWorkflowIds(self, request, context):
        items, token = self.store.list_ids("workflow", request)
        return common_pb2.NamedEntityIdentifierList(entities=items, token=token)

    @_admin_errors
    def CreateLaunchPlan(self, request, context):
        self.store.create_launch_plan(request)
        return launch_plan_pb2.LaunchPlanCreateResponse()

    @_admin_errors
    def GetLaunchPlan(self, request, context):
        return self.store.get("launch_plan", request.id)

    @_admin_errors
    def ListLaunchPlans(self, request, context):
        items, token = self.store.list("launch_plan", request)
        return launch_plan_pb2.LaunchPlanList(launch_plans=items, token=token)

    @_admin_errors
    def ListLaunchPlanIds(self, request, context):
        items, token = self.store.list_ids("launch_plan", request)
        return common_pb2.NamedEntityIdentifierList(entities=items, token=token)

    @_admin_errors
    def UpdateLaunchPlan(self, request, context):
        self.store.update_launch_plan(request.id, request.state)
        return launch_plan_pb2.LaunchPlanUpdateResponse()

    @_admin_errors
    def GetActiveLaunchPlan(self, request, context):
        nid = request.id
        found = self.store.active_launch_plans(nid.project, nid.domain, nid.name)
        if not found:
            where = f"{nid.project}:{nid.domain}:{nid.name}"
            raise AdminError("NOT_FOUND", f"No active launch plan could be found: {where}")
        return found[0]

    @_admin_errors
    def ListActiveLaunchPlans(self, request, context):
        found = self.store.active_launch_plans(request.project, request.domain)
        return launch_plan_pb2.LaunchPlanList(launch_plans=found[: request.limit or None])

    # --- executions -------------------------------------------------------------------------------
    @_admin_errors
    def CreateExecution(self, request, context):
        return execution_pb2.ExecutionCreateResponse(id=self.store.create_execution(request))

    @_admin_errors
    def GetExecution(self, request, context):
        return self.store.get_execution(request.id)["execution"]

    @_admin_errors
    def GetExecutionData(self, request, context):
        found = self.store.get_execution(request.id)
        return execution_pb2.WorkflowExecutionGetDataResponse(
            full_inputs=found["inputs"], full_outputs=literals_pb2.LiteralMap()
        )

    @_admin_errors
    def ListExecutions(self, request, context):
        if not request.id.project or not request.id.domain:
            raise AdminError("INVALID_ARGUMENT", "missing project or domain")
        with self.store.lock:
            found = [v for k, v in self.store.executions.items() if k[:2] == (request.id.project, request.id.domain)]
        found.sort(key=lambda v: v["seq"], reverse=True)
        offset = int(request.token or 0)
        page = found[offset : offset + (request.limit or len(found))]
        token = str(offset + len(page)) if request.limit and len(page) == request.limit else ""
        return execution_pb2.ExecutionList(executions=[v["execution"] for v in page], token=token)

    @_admin_errors
    def ListNodeExecutions(self, request, context):
        self.store.get_execution(request.workflow_execution_id)
        return node_execution_pb2.NodeExecutionList()

    # --- projects, domains, version -------------------------------------------------------------
    @_admin_errors
    def RegisterProject(self, request, context):
        self.store.register_project(request.project)
        return project_pb2.ProjectRegisterResponse()

    @_admin_errors
    def GetProject(self, request, context):
        return self.store.get_project(request.id)

    @_admin_errors
    def ListProjects(self, request, context):
        with self.store.lock:
            projects = [self.store.projects[k] for k in sorted(self.store.projects)]
        return project_pb2.Projects(projects=projects)

    @_admin_errors
    def GetDomains(self, request, context):
        from .store import DOMAINS

        return project_pb2.GetDomainsResponse(domains=[project_pb2.Domain(id=d, name=d) for d in DOMAINS])

    def GetVersion(self, request, context):
        return version_pb2.GetVersionResponse(
            control_plane_version=version_pb2.Version(Build="flytebuild-test", Version="stand-in", BuildTime="")
        )


class DataProxyService(dataproxy_pb2_grpc.DataProxyServiceServicer):
    def __init__(self, store: Store, blobs: BlobStore):
        self.store = store
        self.blobs = blobs

    @_admin_errors
    def CreateUploadLocation(self, req, context):
        """flyteadmin/dataproxy/service.go CreateUploadLocation."""
        with self.store.lock:
            self.store.count("upload_location").calls += 1
        if not req.project or not req.domain:
            raise AdminError("INVALID_ARGUMENT", "project and domain are required parameters")
        if not req.filename_root and not req.content_md5:
            raise AdminError("INVALID_ARGUMENT", "content_md5 or filename_root is a required parameter")
        if req.filename and req.filename_root:
            known = f"s3://{BUCKET}/{req.project}/{req.domain}/{req.filename_root}/{req.filename}"
            etag = self.blobs.head(known)
            if etag is not None and (not req.content_md5 or etag != req.content_md5.hex()):
                raise AdminError(
                    "ALREADY_EXISTS",
                    f"file already exists at location [{known}], specify a matching hash if you wish to rewrite",
                )
        if req.HasField("expires_in"):
            expires_in = req.expires_in.ToTimedelta()
            if expires_in > MAX_UPLOAD_EXPIRES_IN:
                raise AdminError(
                    "INVALID_ARGUMENT",
                    f"expiresIn [{go_duration(expires_in)}] cannot exceed max allowed expiration "
                    f"[{go_duration(MAX_UPLOAD_EXPIRES_IN)}]",
                )
        else:
            expires_in = MAX_UPLOAD_EXPIRES_IN
        filename = req.filename or "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(20))
        prefix = req.filename_root or base64.b32encode(req.content_md5).decode()
        native = f"s3://{BUCKET}/{req.project}/{req.domain}/{prefix}/{filename}"
        md5_b64 = base64.b64encode(req.content_md5).decode() if req.content_md5 else ""
        expires_at = timestamp_pb2.Timestamp()
        expires_at.FromDatetime(datetime.datetime.now(datetime.timezone.utc) + expires_in)
        return dataproxy_pb2.CreateUploadLocationResponse(
            signed_url=self.blobs.signed_url("PUT", native, expires_in.total_seconds(), md5_b64),
            native_url=native,
            expires_at=expires_at,
        )

    @_admin_errors
    def CreateDownloadLocation(self, req, context):
        expires_in = req.expires_in.ToTimedelta() if req.HasField("expires_in") else MAX_UPLOAD_EXPIRES_IN
        try:
            url = self.blobs.signed_url("GET", req.native_url, expires_in.total_seconds())
        except ValueError as e:
            raise AdminError("INVALID_ARGUMENT", f"error while validating request: {e}")
        expires_at = timestamp_pb2.Timestamp()
        expires_at.FromDatetime(datetime.datetime.now(datetime.timezone.utc) + expires_in)
        return dataproxy_pb2.CreateDownloadLocationResponse(signed_url=url, expires_at=expires_at)
