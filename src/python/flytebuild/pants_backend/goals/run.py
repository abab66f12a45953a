"""`pants run <flyte_workflow>`: run the entity locally in its own environment, with the plan's cache
versions and images (runtime/run.py), or on the cluster with `-- --remote [--wait]` (deploy, then
runtime/remote.py). `pants run <flyte_reference>`: launch a registered entity (runtime/remote.py).

Like `pants run` of a `python_source`: a VenvPex of the workflow's closure and resolve runs in the
workspace (cwd = build root, sources from the repo), with the runtime package and a request written
from the plan in the chroot. Arguments after `--` go to the runtime command (inputs, `--format=json`).
"""
from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass

from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.target_types import PythonResolveField
from pants.backend.python.util_rules.interpreter_constraints import InterpreterConstraints
from pants.backend.python.util_rules.pex import PexRequest, VenvPex, VenvPexRequest
from pants.backend.python.util_rules.pex_environment import PexEnvironment, PythonExecutable
from pants.backend.python.util_rules.pex_from_targets import PexFromTargetsRequest
from pants.backend.python.util_rules.pex_requirements import PexRequirements, Resolve
from pants.backend.python.util_rules.python_sources import (
    PythonSourceFiles,
    PythonSourceFilesRequest,
)
from pants.base.exceptions import IntrinsicError
from pants.build_graph.address import ResolveError
from pants.core.goals.run import RunFieldSet, RunInSandboxBehavior, RunRequest, RunSubsystem
from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST, CreateDigest, Digest, FileContent, MergeDigests
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException, TransitiveTargets, TransitiveTargetsRequest
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from flytebuild.core import validate
from flytebuild.core.deploy_report import render_deploy_table
from flytebuild.core.errors import FlytebuildError

# Shared with the CLI (flytebuild.cli): the run request is a pure function of the plan.
from flytebuild.core.run_request import reference_request_json, remote_request_json, run_request_json
from flytebuild.core.settings import Settings
from flytebuild.pants_backend.target_types import (
    FlyteDomainField,
    FlyteEntrypointField,
    FlyteProjectField,
    FlyteReferenceDefaultInputsField,
    FlyteReferenceKindField,
    FlyteReferenceNameField,
    FlyteReferenceVersionField,
)
from flytebuild.pants_backend.util_rules.deployment import DeployRequest, DeployResult
from flytebuild.pants_backend.util_rules.planning import PlannedWorkflows, WorkflowPlansRequest
from flytebuild.pants_backend.util_rules.user_env import UserCodeSetup, runtime_argv, runtime_files
from flytebuild.pants_backend.util_rules.worker import WorkerSetup
from flytebuild.service.runtime_package import RUNTIME_DIR

_DIR = "__flytebuild"


@dataclass(frozen=True)
class FlyteWorkflowRunFieldSet(RunFieldSet):
    required_fields = (FlyteEntrypointField,)
    run_in_sandbox_behavior = RunInSandboxBehavior.NOT_SUPPORTED

    # Not the entrypoint field itself: it is an EntryPointField (a "secondary owner"); holding only primary
    # fields, this field set ranks first for `pants run <file>` as well.
    project: FlyteProjectField
    domain: FlyteDomainField


def error_run_request(message: str) -> RunRequest:
    """A run that prints our one-paragraph error and exits non-zero: errors found while preparing the
    run reach the user like errors of the run itself, without an engine traceback."""
    script = f"printf '%s\\n' {shlex.quote(message)} >&2; exit 2"
    return RunRequest(digest=EMPTY_DIGEST, args=("/bin/sh", "-c", script))


@dataclass(frozen=True)
class UserEnvScriptRequest:
    """A runtime command run in the user's environment, in the workspace, with `files` (name -> bytes)
    beside the runtime package in the chroot. The environment is `address`'s closure and resolve, or, with
    `requirements_resolve`, only flytekit from that resolve's lockfile (for targets that hold no code)."""

    address: Address
    command: str
    files: FrozenDict[str, bytes]
    args: tuple[str, ...] = ()
    requirements_resolve: str | None = None


@rule(desc="Prepare a run in the workflow's environment", level=LogLevel.DEBUG)
async def user_env_script_run_request(
    request: UserEnvScriptRequest,
    pex_env: PexEnvironment,
    python_setup: PythonSetup,
    user_code: UserCodeSetup,
) -> RunRequest:
    if request.requirements_resolve is not None:
        pex_request = PexRequest(
            output_filename="flyte-remote.pex",
            internal_only=True,
            requirements=PexRequirements(
                ["flytekit"], from_superset=Resolve(request.requirements_resolve, use_entire_lockfile=False)
            ),
            interpreter_constraints=InterpreterConstraints(python_setup.interpreter_constraints),
            additional_args=("--no-strip-pex-env",),
        )
        sources = None
    else:
        transitive = await Get(TransitiveTargets, TransitiveTargetsRequest([request.address]))
        pex_request, sources = await MultiGet(
            Get(
                PexRequest,
                PexFromTargetsRequest(
                    [request.address],
                    output_filename="flyte-run.pex",
                    internal_only=True,
                    include_source_files=False,
                    additional_args=("--no-strip-pex-env",),
                ),
            ),
            Get(PythonSourceFiles, PythonSourceFilesRequest(transitive.closure, include_files=True)),
        )
    complete_pex_env = pex_env.in_workspace()
    venv_pex, python, files = await MultiGet(
        Get(VenvPex, VenvPexRequest(pex_request, complete_pex_env)),
        Get(PythonExecutable, InterpreterConstraints, pex_request.interpreter_constraints),
        Get(
            Digest,
            CreateDigest(
                [
                    *runtime_files(_DIR),
                    *(FileContent(f"{_DIR}/{name}", content) for name, content in sorted(request.files.items())),
                ]
            ),
        ),
    )
    source_digests = [sources.source_files.snapshot.digest] if sources is not None else []
    digest = await Get(Digest, MergeDigests([venv_pex.digest, *source_digests, files]))
    chroot = "{chroot}"
    # In-repo sources first (edits are picked up), then their copies in the chroot.
    roots = sources.source_roots if sources is not None else ()
    source_roots = [*roots, *(os.path.join(chroot, sr) for sr in roots)]
    args = (
        os.path.join(chroot, venv_pex.pex.argv0),
        *runtime_argv(request.command, *request.args, prefix=os.path.join(chroot, _DIR)),
    )
    setup = user_code.worker
    if setup is not None:
        args = attach_argv(setup, python.path, setup.venv_of(venv_pex), args)
    return RunRequest(
        digest=digest,
        args=args,
        extra_env={
            **complete_pex_env.environment_dict(python=python),
            "PEX_EXTRA_SYS_PATH": os.pathsep.join(source_roots),
        },
        append_only_caches={
            **complete_pex_env.append_only_caches,
            **(venv_pex.append_only_caches or {}),
        },
    )


def attach_argv(
    setup: WorkerSetup, python: str, venv: str, cold: tuple[str, ...]
) -> tuple[str, ...]:
    """The run as a fork of the warm worker of `venv` (runtime/attach.py, docs/performance.md): a stdlib-only client
    (the bare interpreter, nothing of the user's imported) hands the worker its stdio, environment (the source roots
    in PEX_EXTRA_SYS_PATH, as for the pex) and cwd, and exits with the command's status; with no usable worker (e.g.
    the venv is not created yet) it execs `cold`. Decided when the run starts, not here: pantsd memoizes this."""
    env = setup.user_env(os.path.join(venv, "bin", "python"))
    return (
        python,
        "-I",
        "-S",
        os.path.join("{chroot}", _DIR, RUNTIME_DIR, "attach.py"),
        *("--venv", venv, "--runtime", env.runtime_dir, "--identity", env.identity),
        *("--socket-dir", env.socket_dir),
        "--",
        *cold,
    )


@rule(desc="Run a Flyte workflow", level=LogLevel.DEBUG)
async def run_flyte_workflow(
    field_set: FlyteWorkflowRunFieldSet, run_subsystem: RunSubsystem, settings: Settings
) -> RunRequest:
    remote = "--remote" in run_subsystem.args
    try:
        planned = await Get(PlannedWorkflows, WorkflowPlansRequest((field_set.address,)))
        plan = planned[0].plan
        # A reference entity is already registered: launch it as it is (nothing to deploy).
        deploy = remote and plan.root_kind != "reference"
        # Deploys what is missing, images included: a task registered before its image is pushed cannot start.
        deployed = await Get(DeployResult, DeployRequest((field_set.address,), push_images=True)) if deploy else None
    except (FlytebuildError, ResolveError, IntrinsicError, InvalidFieldException) as e:
        return error_run_request(f"error: {e}")
    if not remote:
        request = run_request_json(plan)
        command = "run"
    elif deployed is None:
        request = remote_request_json(plan, settings.admin)
        command = "remote"
    else:
        report = render_deploy_table(deployed.summary(), deployed.warnings)
        if deployed.exit_code != 0:
            return error_run_request(
                f"{report}\nerror: {plan.address} could not be deployed (see MESSAGE above); nothing was launched. "
                "Fix: fix the cause and re-run: what was registered is kept."
            )
        request = remote_request_json(plan, settings.admin)
        request["preamble"] = report
        command = "remote"
    files = {"request.json": (json.dumps(request, indent=2, sort_keys=True) + "\n").encode()}
    return await Get(
        RunRequest,
        UserEnvScriptRequest(
            field_set.address, command, FrozenDict(files), (os.path.join("{chroot}", _DIR, "request.json"),)
        ),
    )


@dataclass(frozen=True)
class FlyteReferenceRunFieldSet(RunFieldSet):
    required_fields = (FlyteReferenceKindField, FlyteReferenceNameField)
    run_in_sandbox_behavior = RunInSandboxBehavior.NOT_SUPPORTED

    kind: FlyteReferenceKindField
    entity_name: FlyteReferenceNameField
    version: FlyteReferenceVersionField
    project: FlyteProjectField
    domain: FlyteDomainField
    default_inputs: FlyteReferenceDefaultInputsField
    resolve: PythonResolveField


@rule(desc="Run a registered Flyte entity", level=LogLevel.DEBUG)
async def run_flyte_reference(
    field_set: FlyteReferenceRunFieldSet, settings: Settings, python_setup: PythonSetup
) -> RunRequest:
    validate.check_reference(
        str(field_set.address),
        kind=field_set.kind.value,
        entity_name=field_set.entity_name.value,
        project=field_set.project.value or settings.project,
        domain=field_set.domain.value or settings.domain,
    )
    request = reference_request_json(
        str(field_set.address),
        field_set.kind.value,
        field_set.entity_name.value,
        field_set.version.value,
        field_set.project.value or settings.project,
        field_set.domain.value or settings.domain,
        field_set.default_inputs.value,
        settings.admin,
    )
    files = {"request.json": (json.dumps(request, indent=2, sort_keys=True) + "\n").encode()}
    return await Get(
        RunRequest,
        UserEnvScriptRequest(
            field_set.address,
            "remote",
            FrozenDict(files),
            (os.path.join("{chroot}", _DIR, "request.json"),),
            requirements_resolve=field_set.resolve.normalized_value(python_setup),
        ),
    )


def rules():
    return [*collect_rules(), *FlyteWorkflowRunFieldSet.rules(), *FlyteReferenceRunFieldSet.rules()]
