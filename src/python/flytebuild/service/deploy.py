"""The deploy request runtime/deploy.py takes, the checks before anything is pushed or uploaded, and the answer
the deploy ledger gives without running it."""
from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence

from flytebuild.core.bundle import Bundle, BundleWarning
from flytebuild.core.registration import DeployError
from flytebuild.core.settings import AdminSettings
from flytebuild.service.runtime_package import stdlib_module


def check_admin(admin: AdminSettings, fix: str, config_option: str = "config") -> None:
    """Configuration errors before any work: no FlyteAdmin at all, or a flytekit config that is not there.

    `fix` and `config_option` word the message for the front end (`[flyte].config`, `config`)."""
    if not admin.configured:
        raise DeployError("No FlyteAdmin to deploy to", fix=fix)
    if admin.config and not os.path.isfile(admin.config):
        raise DeployError(
            f"The flytekit config file {admin.config} ({config_option}) does not exist",
            fix=f"point {config_option} at a flytekit config.yaml",
        )


def deploy_request(
    admin: AdminSettings,
    dry_run: bool,
    entities: Sequence[Mapping],
    bundle: Optional[Bundle],
    ledger_dir: Optional[str] = None,
) -> dict:
    """runtime/deploy.py's request. `entities`: per serialized entity its file (relative to the request's
    directory), kind and whether it is fast; the bundle is written at `bundle/<name>`; `ledger_dir` holds the
    deploy ledger (runtime/ledger.py: what was registered from here before, so unchanged entities cost no call),
    unless the settings turn it off (`ledger`).
    Tasks keep their images' content tags on every path (no digest pinning), so `--no-push-images` and a normal
    deploy register identical entities (docs/reliability.md)."""
    request = {
        "admin": admin.request_json(),
        "dry_run": dry_run,
        "bundle": {"path": bundle_path(bundle), "name": bundle.name} if bundle is not None else None,
        "dest_dir": ".",
        "entities": list(entities),
    }
    if ledger_dir and admin.ledger:
        request["ledger"] = {"dir": ledger_dir}
    return request


def bundle_path(bundle: Bundle) -> str:
    return f"bundle/{bundle.name}"


def entities_of(index: int, summary: Mapping, plan=None) -> Iterable[dict]:
    """The entities serialize.py wrote for the `index`-th workflow (its files live under `wf<index>/`); with its
    `plan`, each carries its id, which the deploy ledger needs to answer without reading the protobufs."""
    for e in summary["entities"]:
        item = {"file": f"wf{index}/{e['file']}", "kind": e["kind"], "fast": e["fast"]}
        if plan is not None:
            item.update(project=plan.project, domain=plan.domain, name=e["name"], version=e["version"])
        yield item


def serialization_warnings(summary: Mapping) -> Iterable[BundleWarning]:
    """The warnings a workflow's serialization reports for the deploy summary (raw containers are reported by the
    bundle's own check already)."""
    for w in summary.get("warnings", ()):
        if w.get("kind") != "raw_container":
            yield BundleWarning(w["task"], w["message"])


def inline_entities(request: Mapping, files: Mapping[str, bytes]) -> dict:
    """`request` with each entity's bytes (`files[entity file]`) inline (`data`, base64): one request file to
    write instead of one per entity (a thousand small files cost more to create than to send)."""
    entities = [dict(e, data=base64.b64encode(files[e["file"]]).decode("ascii")) for e in request["entities"]]
    return {**request, "entities": entities}


def images_summary(published: Iterable) -> list:
    """The deploy summary's `images`: what was pushed (or found) for the deployed tasks."""
    return [
        {"address": i.address, "ref": i.ref, "digest": i.digest, "pushed": i.pushed, "bytes_uploaded": i.bytes_uploaded}
        for i in sorted(published, key=lambda i: i.address)
    ]


@dataclass(frozen=True)
class LedgerAnswer:
    """runtime/deploy.py's summary and progress lines, when its ledger vouches for every entity of the request."""

    summary: dict
    log: str


def answer_from_ledger(request: Mapping, files: Mapping[str, bytes]) -> Optional[LedgerAnswer]:
    """What runtime/deploy.py would answer to `request` (`deploy_request`'s) without a single call to FlyteAdmin,
    decided by the same code (runtime/ledger.py: same digests, same pins, same summary), or None when it would
    have to ask. `files`: the request's files by content (the bundle's, the entities' unless inline).

    A front end that gets an answer starts no deploy at all; runtime/ledger.py's docstring says what that means
    for a wiped server (the same as the deploy's own shortcut)."""
    ledger = stdlib_module("ledger")
    book = ledger.of_request(request)
    if book is None:
        return None
    answer = ledger.vouched(request, ledger.judged(request, book, files.__getitem__), lambda path: len(files[path]))
    if answer is None:
        return None
    summary, lines = answer
    return LedgerAnswer(summary, "".join(f"{line}\n" for line in lines))
