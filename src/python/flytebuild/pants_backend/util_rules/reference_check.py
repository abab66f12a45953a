"""Check, at plan time, the reference entities workflows use against the configured cluster.

`ReferenceCheckRequest` -> `ReferenceWarnings`: per workflow, what differs between the interface a reference
declares in code and the registered one, which references are not registered, or one line when FlyteAdmin cannot
be reached. Only asked for when [flyte] names a cluster and a plan holds references (flyte-plan decides), so the
plain planning path starts no process and opens no connection.

One process per resolve, in the environment introspection already built for the same workflows (same VenvPex
request: nothing new is resolved), running runtime/check_references.py (remote.py's fetch and comparison).
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass

from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.util_rules.pex import VenvPex, VenvPexProcess
from pants.backend.python.util_rules.pex_from_targets import PexFromTargetsRequest
from pants.backend.python.util_rules.python_sources import PythonSourceFiles, PythonSourceFilesRequest
from pants.engine.addresses import Address
from pants.engine.fs import CreateDigest, Digest, FileContent, MergeDigests
from pants.engine.process import FallibleProcessResult, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import TransitiveTargets, TransitiveTargetsRequest, WrappedTarget, WrappedTargetRequest
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from flytebuild.core.model import WorkflowPlan
from flytebuild.core.settings import Settings
from flytebuild.pants_backend.util_rules.planning import _resolve_of
from flytebuild.pants_backend.util_rules.user_env import runtime_argv, runtime_files
from flytebuild.service import references

_DIR = "__flytebuild"


@dataclass(frozen=True)
class ReferenceCheckRequest:
    # Every workflow the plan covers (the environment is built for the same set introspection used), and the
    # plans themselves; only those with references are checked.
    addresses: tuple[Address, ...]
    plans: tuple[WorkflowPlan, ...]


@dataclass(frozen=True)
class ReferenceWarnings:
    by_address: FrozenDict[str, tuple[str, ...]]

    def of(self, plan: WorkflowPlan) -> tuple[str, ...]:
        return self.by_address.get(plan.address, ())


@dataclass(frozen=True)
class _ReferenceCheckGroup:
    addresses: tuple[Address, ...]  # the resolve's workflows, as introspection groups them
    plans: tuple[WorkflowPlan, ...]  # those with references


@rule(desc="Check reference entities against FlyteAdmin", level=LogLevel.DEBUG)
async def check_references(request: ReferenceCheckRequest, python_setup: PythonSetup) -> ReferenceWarnings:
    wrapped = await MultiGet(
        Get(WrappedTarget, WrappedTargetRequest(a, description_of_origin="flyte-plan reference check"))
        for a in request.addresses
    )
    by_resolve: dict[str, list[Address]] = defaultdict(list)
    for w in wrapped:
        by_resolve[_resolve_of(w.target, python_setup)].append(w.target.address)
    plans = {p.address: p for p in request.plans if p.references}
    groups = [
        _ReferenceCheckGroup(tuple(sorted(addresses)), checked)
        for _, addresses in sorted(by_resolve.items())
        if (checked := tuple(plans[str(a)] for a in sorted(addresses) if str(a) in plans))
    ]
    found = await MultiGet(Get(ReferenceWarnings, _ReferenceCheckGroup, g) for g in groups)
    return ReferenceWarnings(FrozenDict({a: w for f in found for a, w in f.by_address.items()}))


@rule(desc="Check reference entities of one resolve", level=LogLevel.DEBUG)
async def check_references_of_resolve(group: _ReferenceCheckGroup, settings: Settings) -> ReferenceWarnings:
    check_request = references.check_request(group.plans, settings.admin)
    files = runtime_files()
    files.append(FileContent(f"{_DIR}/request.json", json.dumps(check_request, indent=1, sort_keys=True).encode()))
    transitive = await Get(TransitiveTargets, TransitiveTargetsRequest(group.addresses))
    venv_pex, sources, scripts = await MultiGet(
        # The very request introspection makes: the environment is already built.
        Get(
            VenvPex,
            PexFromTargetsRequest(
                group.addresses,
                output_filename="flyte-introspect.pex",
                internal_only=True,
                include_source_files=False,
            ),
        ),
        Get(PythonSourceFiles, PythonSourceFilesRequest(transitive.closure, include_files=True)),
        Get(Digest, CreateDigest(files)),
    )
    input_digest = await Get(Digest, MergeDigests([sources.source_files.snapshot.digest, scripts]))
    count = sum(len(p.references) for p in group.plans)
    result = await Get(
        FallibleProcessResult,
        VenvPexProcess(
            venv_pex,
            argv=runtime_argv("check_references", f"{_DIR}/request.json"),
            input_digest=input_digest,
            extra_env={"PEX_EXTRA_SYS_PATH": os.pathsep.join(sources.source_roots)},
            description=f"Check {count} reference entit{'y' if count == 1 else 'ies'} against FlyteAdmin at "
            f"{settings.admin.where}",
            level=LogLevel.INFO,
            # The cluster changes under us: asked once per Pants invocation, never cached across runs.
            cache_scope=ProcessCacheScope.PER_SESSION,
        ),
    )
    # The check only adds warnings: a failure of its own must not fail the plan.
    found = references.reference_warnings(
        group.plans, result.stdout.decode("utf-8", "replace"), result.stderr.decode("utf-8", "replace")
    )
    return ReferenceWarnings(FrozenDict(found))


def rules():
    return collect_rules()
