"""`pants run <flyte_workflow>`: run the entity locally in its own environment, with the plan's cache
versions and images (runtime/run.py), or on the cluster with `-- --remote [--wait]` (runtime/remote.py).

Like `pants run` of a `python_source`: a VenvPex of the workflow's closure and resolve runs in the
workspace (cwd = build root, sources from the repo), with the runtime scripts and a request written
from the plan in the chroot. Arguments after `--` go to the script (inputs, `--format=json`).
"""
from __future__ import annotations

import json
import os
import pkgutil
import shlex
from dataclasses import dataclass

from pants.backend.python.util_rules.interpreter_constraints import InterpreterConstraints
from pants.backend.python.util_rules.pex import PexRequest, VenvPex, VenvPexRequest
from pants.backend.python.util_rules.pex_environment import PexEnvironment, PythonExecutable
from pants.backend.python.util_rules.pex_from_targets import PexFromTargetsRequest
from pants.backend.python.util_rules.python_sources import (
    PythonSourceFiles,
    PythonSourceFilesRequest,
)
from pants.build_graph.address import ResolveError
from pants.core.goals.run import RunFieldSet, RunInSandboxBehavior, RunRequest
from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST, CreateDigest, Digest, FileContent, MergeDigests
from pants.engine.internals.native_engine import IntrinsicError
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException, TransitiveTargets, TransitiveTargetsRequest
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from flytebuild.core.errors import FlytebuildError
from flytebuild.core.model import ImageTarget, WorkflowPlan
from flytebuild.core.plan import plan_image  # noqa: F401
# Shared with the CLI (flytebuild.cli): the run request is a pure function of the plan.
from flytebuild.core.run_request import run_request_json
from flytebuild.pants_backend.target_types import FlyteDomainField, FlyteEntrypointField, FlyteProjectField
from flytebuild.pants_backend.util_rules.planning import PlannedWorkflows, WorkflowPlansRequest

_DIR = "__flytebuild"
_RUNTIME_SCRIPTS = ("run.py", "introspect.py", "serialize.py")


@dataclass(frozen=True)
class FlyteWorkflowRunFieldSet(RunFieldSet):
    required_fields = (FlyteEntrypointField,)
    run_in_sandbox_behavior = RunInSandboxBehavior.NOT_SUPPORTED

    # Not the entrypoint field itself: it is a PexEntryPointField (a "secondary owner"), which would make
    # this field set rank with `pex_binary`'s and `pants run` ambiguous. Holding only primary fields, it wins.
    project: FlyteProjectField
    domain: FlyteDomainField


def runtime_script(name: str) -> bytes:
    data = pkgutil.get_data("flytebuild.runtime", name)
    assert data is not None, name
    return data


def error_run_request(message: str) -> RunRequest:
    """A run that prints our one-paragraph error and exits non-zero: errors found while preparing the
    run reach the user like errors of the run itself, without an engine traceback."""
    script = f"printf '%s\\n' {shlex.quote(message)} >&2; exit 2"
    return RunRequest(digest=EMPTY_DIGEST, args=("/bin/sh", "-c", script))


@dataclass(frozen=True)
class UserEnvScriptRequest:
    """A script of runtime/ run in the user's environment built from `address`'s closure and resolve,
    in the workspace, with `files` (name -> bytes) next to it in the chroot."""

    address: Address
    script: str
    files: FrozenDict[str, bytes]
    args: tuple[str, ...] = ()


@rule(desc="Prepare a run in the workflow's environment", level=LogLevel.DEBUG)
async def user_env_script_run_request(request: UserEnvScriptRequest, pex_env: PexEnvironment) -> RunRequest:
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
                [FileContent(f"{_DIR}/{name}", content) for name, content in sorted(request.files.items())]
            ),
        ),
    )
    digest = await Get(
        Digest, MergeDigests([venv_pex.digest, sources.source_files.snapshot.digest, files])
    )
    chroot = "{chroot}"
    # In-repo sources first (edits are picked up), then their copies in the chroot.
    source_roots = [*sources.source_roots, *(os.path.join(chroot, sr) for sr in sources.source_roots)]
    return RunRequest(
        digest=digest,
        args=(
            os.path.join(chroot, venv_pex.pex.argv0),
            os.path.join(chroot, _DIR, request.script),
            *request.args,
        ),
        extra_env={
            **complete_pex_env.environment_dict(python=python),
            "PEX_EXTRA_SYS_PATH": os.pathsep.join(source_roots),
        },
        append_only_caches={
            **complete_pex_env.append_only_caches,
            **(venv_pex.append_only_caches or {}),
        },
    )


@rule(desc="Run a Flyte workflow", level=LogLevel.DEBUG)
async def run_flyte_workflow(field_set: FlyteWorkflowRunFieldSet) -> RunRequest:
    try:
        planned = await Get(PlannedWorkflows, WorkflowPlansRequest((field_set.address,)))
    except (FlytebuildError, ResolveError, IntrinsicError, InvalidFieldException) as e:
        return error_run_request(f"error: {e}")
    plan = planned[0].plan
    request = run_request_json(plan, planned[0].images)
    files = {name: runtime_script(name) for name in _RUNTIME_SCRIPTS}
    files["run-request.json"] = (json.dumps(request, indent=2, sort_keys=True) + "\n").encode()
    return await Get(
        RunRequest,
        UserEnvScriptRequest(
            field_set.address,
            "run.py",
            FrozenDict(files),
            (os.path.join("{chroot}", _DIR, "run-request.json"),),
        ),
    )


def rules():
    return [*collect_rules(), *FlyteWorkflowRunFieldSet.rules()]
