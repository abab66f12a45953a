"""The plan's reference check (runtime/check_references.py), for every front end: with a FlyteAdmin configured,
the references a workflow declares are compared with the registered entities; differences are warnings.

Front ends run that command in the user's environment (Pants: a per-session process; the CLI: a subprocess) and
hand its stdout to `reference_warnings`.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Dict, Sequence, Tuple

from flytebuild.core.model import WorkflowPlan
from flytebuild.core.settings import AdminSettings

COMMAND = "check_references"  # the runtime command (docs/runtime-contract.md)


def wanted(plans: Sequence[WorkflowPlan], admin: AdminSettings) -> Tuple[WorkflowPlan, ...]:
    """The plans to check: none without a cluster (nothing runs, nothing connects) or without references."""
    if not admin.configured:
        return ()
    return tuple(p for p in plans if p.references)


def check_request(plans: Sequence[WorkflowPlan], admin: AdminSettings) -> dict:
    return {
        "admin": admin.request_json(),
        "workflows": [
            {
                "address": p.address,
                "entrypoint": p.entrypoint,
                "references": [
                    {"kind": r.kind, "project": r.project, "domain": r.domain, "name": r.name, "version": r.version}
                    for r in p.references
                ],
            }
            for p in plans
        ],
    }


def reference_warnings(plans: Sequence[WorkflowPlan], stdout: str, stderr: str) -> Dict[str, Tuple[str, ...]]:
    """Per workflow address its warnings; a check that failed on its own adds one warning, never an error."""
    try:
        found = json.loads(stdout)["warnings"]
        return {a: tuple(lines) for a, lines in found.items()}
    except (ValueError, KeyError, TypeError):
        tail = stderr.strip().splitlines()[-1:] or ["no output"]
        return {p.address: (f"references not checked: the check failed ({tail[0]})",) for p in plans}


def with_warnings(plans: Sequence[WorkflowPlan], warnings: Dict[str, Tuple[str, ...]]) -> Tuple[WorkflowPlan, ...]:
    return tuple(dataclasses.replace(p, warnings=p.warnings + tuple(warnings.get(p.address, ()))) for p in plans)
