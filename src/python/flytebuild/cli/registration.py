"""Registration artifacts and deploys for the CLI: the twin of the Pants adapter's
util_rules/serialization.py, goals/package_workflow.py and util_rules/deployment.py.

Same core calls (`core.registration.serialize_request`, `core.bundle`), same runtime scripts
(`runtime/serialize.py`, `runtime/deploy.py`) run in the user's environment, same archive layout
(`flyte-package.tgz`, `pyflyte package` style): the bytes equal the Pants goal's for the same inputs.
"""
from __future__ import annotations

import base64
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from flytebuild.cli import userenv
from flytebuild.cli.cache import cache_path
from flytebuild.cli.config import Project
from flytebuild.cli.planning import ProjectPlan
from flytebuild.core.bundle import Bundle, BundleWarning, build_bundle, bundle_warnings, plan_bundle
from flytebuild.core.errors import FlytebuildError
from flytebuild.core.model import WorkflowPlan
from flytebuild.core.registration import SerializationError, deploy_summary, serialize_request
from flytebuild.core.result_cache import ResultCache, result_key
from flytebuild.core.settings import AdminSettings
from flytebuild.service.deploy import (
    answer_from_ledger,
    bundle_path,
    deploy_request,
    entities_of,
    inline_entities,
    serialization_warnings,
)
from flytebuild.service.deploy import check_admin as _check_admin
from flytebuild.service.paths import inside
from flytebuild.service.registration import ARCHIVE, registration_archive


@dataclass(frozen=True)
class Serialized:
    workflow: str
    files: Tuple[Tuple[str, bytes], ...]  # the numbered .pb files
    summary: Mapping


def code_bundle(project: Project, result: ProjectPlan) -> Tuple[Optional[Bundle], Tuple[BundleWarning, ...]]:
    """The fast tasks' files only, or None when every task is baked (nothing is read)."""
    warnings = bundle_warnings(result.workflows, {i.address: i for i in result.image_targets})
    bundle_plan = plan_bundle(result.workflows, project.source_roots)
    if bundle_plan is None:
        return None, warnings

    def read(path: str) -> bytes:
        try:
            with open(os.path.join(project.root, path), "rb") as f:
                return f.read()
        except OSError as e:
            raise FlytebuildError(f"Cannot read {path} for the code bundle: {e.strerror}", file=path) from None

    return build_bundle(bundle_plan, read), warnings


def serialize(project: Project, plan: WorkflowPlan) -> Serialized:
    """runtime/serialize.py in the user's environment: numbered .pb files, per-task settings."""
    return serialize_all(project, (plan,))[0]


def serialize_all(
    project: Project,
    plans: Sequence[WorkflowPlan],
    inputs: Optional[Mapping[str, str]] = None,
    session: Optional[userenv.Session] = None,
) -> List[Serialized]:
    """Every plan in one runtime `serialize --batch` process: one interpreter start, one flytekit import; a plan
    whose request and inputs (`inputs[address]`, planning's input key) were serialized before is read back from
    core/result_cache.py instead, and when none is missing no process starts. With planning's `session` alive,
    serialization runs in that process, which already imported flytekit and the workflows."""
    inputs = inputs or {}
    cache = ResultCache(cache_path("results"))
    runtime = userenv.runtime_fingerprint()
    requests = [serialize_request(plan) for plan in plans]
    keys = [result_key("serialize", req, inputs[plan.address], runtime) if plan.address in inputs else None
            for plan, req in zip(plans, requests)]
    out: Dict[int, Serialized] = {}
    for i, (plan, key) in enumerate(zip(plans, keys)):
        cached = cache.get(key) if key else None
        if cached is not None:
            data = json.loads(cached)
            files = tuple((name, base64.b64decode(b)) for name, b in sorted(data["files"].items()))
            out[i] = Serialized(plan.address, files, data["summary"])
    missing = [i for i in range(len(plans)) if i not in out]
    if missing:
        userenv.progress(f"flytebuild: serializing {', '.join(plans[i].address for i in missing)}")
        python = userenv.check_python(project.python, project.config_file)
        with tempfile.TemporaryDirectory(prefix="flytebuild-serialize-") as tmp:
            args = ["--batch"]
            for i in missing:
                request_file = os.path.join(tmp, f"request{i}.json")
                with open(request_file, "w", encoding="utf-8") as f:
                    json.dump(requests[i], f, sort_keys=True, indent=1)
                args += [request_file, os.path.join(tmp, f"out{i}")]
            if session is not None and session.alive:
                answer, stderr = session.serialize(list(zip(args[1::2], args[2::2])))
            else:
                proc = userenv.run_runtime(python, "serialize", args, project.root, project.source_roots,
                                           cwd=project.root, timeout=project.user_code_timeout,
                                           what=f"Serialization of {', '.join(plans[i].entrypoint for i in missing)}",
                                           target=", ".join(plans[i].address for i in missing))
                stderr = proc.stderr
                try:
                    answer = json.loads(proc.stdout)
                except ValueError:
                    answer = {}
            results = answer.get("results") or {}
            for i in missing:
                plan = plans[i]
                out_dir = os.path.join(tmp, f"out{i}")
                data = results.get(out_dir) or {"error": {"kind": "serialization_failed",
                                                          "message": stderr.strip()[-2000:] or "no output"}}
                if "error" in data:
                    raise SerializationError.from_runtime(plan.address, plan.entrypoint, data.get("error") or {})
                files = []
                for name in sorted(os.listdir(out_dir)):
                    with open(os.path.join(out_dir, name), "rb") as f:
                        files.append((name, f.read()))
                out[i] = Serialized(plan.address, tuple(files), data)
                if keys[i]:
                    cache.put(keys[i], json.dumps(
                        {"summary": data, "files": {n: base64.b64encode(b).decode("ascii") for n, b in files}},
                        sort_keys=True))
    if session is not None:
        session.close()
    return [out[i] for i in range(len(plans))]


def package_workflows(project: Project, result: ProjectPlan, dist_dir: str) -> List[Tuple[str, List[str]]]:
    """Per workflow `<dist>/<name>/flyte-package.tgz` (+ its code bundle): what `pants package` writes."""
    written = []
    serialized_all = serialize_all(project, result.workflows, dict(result.input_keys), result.session)
    for plan, serialized in zip(result.workflows, serialized_all):
        bundle, _ = code_bundle(project, ProjectPlan((), (plan,), result.image_targets))
        built = registration_archive(serialized.files, bundle)
        out_dir = str(inside(dist_dir, dist_name(plan.address), target=plan.address, field="name", value=plan.address))
        os.makedirs(out_dir, exist_ok=True)
        for name, data in built.files:
            _write(os.path.join(out_dir, name), data)
        written.append((os.path.join(out_dir, ARCHIVE), list(built.lines)))
    return written


def dist_name(address: str) -> str:
    """A target's output directory name: `baked-wf` stays, a label `//demo:wf` becomes `demo.wf`."""
    return address.lstrip("/@").replace("/", ".").replace(":", ".") or "root"


def _write(path: str, data: bytes) -> None:
    # Write-then-rename: a reader (or an interrupted run) never sees half an archive.
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def check_admin(admin: AdminSettings) -> None:
    _check_admin(
        admin,
        fix="set `endpoint` (and `insecure`) or `config` in the flytebuild configuration, or pass --endpoint",
        config_option="`config` in the flytebuild configuration",
    )


def deploy(
    project: Project,
    result: ProjectPlan,
    admin: AdminSettings,
    dry_run: bool,
) -> Tuple[int, dict, Tuple[BundleWarning, ...], str]:
    """runtime/deploy.py over every planned workflow: (exit code, summary, warnings, log). Tasks name their
    images' content tags (never digests), whatever was pushed."""
    check_admin(admin)
    python = userenv.check_python(project.python, project.config_file)
    bundle, warnings = code_bundle(project, result)
    found_warnings = set(warnings)
    entities = []
    files = {bundle_path(bundle): bundle.data} if bundle is not None else {}
    serialized_all = serialize_all(project, result.workflows, dict(result.input_keys), result.session)
    for i, (plan, serialized) in enumerate(zip(result.workflows, serialized_all)):
        entities += entities_of(i, serialized.summary, plan)
        files.update((f"wf{i}/{name}", data) for name, data in serialized.files)
        found_warnings.update(serialization_warnings(serialized.summary))
    # The deploy ledger in the CLI's cache dir (runtime/ledger.py): unchanged entities cost no call, and when it
    # vouches for every entity no deploy starts at all (the same decision as the Pants rule's, by the same code).
    request = deploy_request(admin, dry_run, entities, bundle, ledger_dir=cache_path("ledger"))
    known = answer_from_ledger(request, files)
    if known is not None:
        return 0, known.summary, tuple(sorted(found_warnings)), known.log
    with tempfile.TemporaryDirectory(prefix="flytebuild-deploy-") as tmp:
        if bundle is not None:
            os.makedirs(os.path.join(tmp, "bundle"))
            with open(os.path.join(tmp, bundle_path(bundle)), "wb") as f:
                f.write(bundle.data)
        with open(os.path.join(tmp, "request.json"), "w", encoding="utf-8") as f:
            # The entities' bytes inline: one file to write, not one per entity.
            json.dump(inline_entities(request, files), f, indent=1, sort_keys=True)
        userenv.progress(
            f"flytebuild: {'checking' if dry_run else 'registering'} {len(entities)} entities at "
            f"{admin.where}"
        )
        proc = userenv.run_runtime(python, "deploy", ["request.json"], project.root, project.source_roots, cwd=tmp)
    data = deploy_summary(proc.stdout, proc.stderr)
    return proc.returncode, data, tuple(sorted(found_warnings)), proc.stderr

