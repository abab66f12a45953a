"""Check the reference entities workflows use (`@reference_task`, `@reference_workflow`, `reference_launch_plan`)
against the cluster, for `flyte-plan`: each must be registered, with the interface the code declares.

Usage:  python <runtime>/__main__.py check_references <request.json>

Runs in the USER's environment (flytekit, flyteidl, grpcio), as part of the runtime package: the fetching
(remote.fetch) and the comparison (remote.declared_differences) are the ones `run --remote` uses, so both report
the same differences in the same words.

Request and answer: docs/runtime-contract.md (check_references). Exit 0 whatever was found: the plan is still
valid, the differences are warnings. Exit 2 only for an unreadable request (a flytebuild bug).
"""
from __future__ import annotations

import json
import sys
import typing

from . import remote
from .answers import stdout_answer
from .entrypoint import load_entrypoint
from .introspect import reference_json
from .run import walk


def _key(kind: str, name: str) -> typing.Tuple[str, str]:
    return kind, name


def declared_interfaces(entrypoint: str) -> typing.Dict[typing.Tuple[str, str], typing.Any]:
    """(kind, name) -> the flytekit interface each reference reachable from `entrypoint` declares."""
    _, _, obj = load_entrypoint(entrypoint)
    _, refs = walk(obj)
    out = {}
    for ref in refs:
        info = reference_json(ref)
        out.setdefault(_key(info["kind"], info["name"]), ref.interface)
    return out


def label(ref: dict) -> str:
    return f"reference {ref['kind'].replace('_', ' ')} {ref['name']}"


def check(request: dict) -> typing.Dict[str, typing.List[str]]:
    workflows = [w for w in request.get("workflows") or [] if w.get("references")]
    warnings: typing.Dict[str, typing.List[str]] = {w["address"]: [] for w in workflows}
    try:
        cluster = remote.Cluster(request.get("admin") or {})
    except remote.RunError as e:
        # One line per workflow, not one per reference: nothing could be asked.
        for w in workflows:
            warnings[w["address"]].append(f"references not checked: {e.what.rstrip('.')}")
        return warnings
    fetched: typing.Dict[tuple, typing.Any] = {}  # the same reference in several workflows: asked once
    unreachable: typing.Optional[str] = None
    for w in workflows:
        address = w["address"]
        if unreachable is not None:
            warnings[address].append(unreachable)
            continue
        try:
            declared = declared_interfaces(w["entrypoint"])
        except Exception as e:  # noqa: BLE001 - introspection already planned it; the check only adds warnings
            declared = {}
            warnings[address].append(f"could not load {w['entrypoint']} to check the interfaces its references "
                                     f"declare ({type(e).__name__}: {e})")
        for ref in w["references"]:
            req = remote.Request({"entity": ref}, "check")
            key = (ref["kind"], ref["project"], ref["domain"], ref["name"], ref.get("version"))
            try:
                if key not in fetched:
                    fetched[key] = remote.fetch(cluster, req)
                target = fetched[key]
            except remote.Unreachable as e:
                unreachable = f"references not checked: {e.what.rstrip('.')}"
                warnings[address].append(unreachable)
                break
            except remote.RunError as e:
                fetched[key] = e
                target = e
            if isinstance(target, remote.RunError):
                warnings[address].append(f"reference {target.what.rstrip('.')}")
                continue
            interface = declared.get(_key(ref["kind"], ref["name"]))
            if interface is not None:
                warnings[address] += remote.declared_differences(label(ref), interface, target)
    return warnings


def main(argv: typing.List[str]) -> int:
    if len(argv) != 2:
        print("usage: check_references <request.json>", file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as f:
            request = json.load(f)
    except (OSError, ValueError) as e:
        print(f"error: cannot read reference check request {argv[1]}: {e}", file=sys.stderr)
        return 2
    # User code may print while it is imported: keep stdout for the answer.
    return stdout_answer(lambda: (json.dumps({"warnings": check(request)}, indent=1, sort_keys=True) + "\n", 0))
