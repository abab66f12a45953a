"""Registration artifacts and deploys for the CLI: the twin of the Pants adapter's
util_rules/serialization.py, goals/package_workflow.py and util_rules/deployment.py.

Same core calls (`core.registration.serialize_request`, `core.bundle`), same runtime scripts
(`runtime/serialize.py`, `runtime/deploy.py`) run in the user's environment, same archive layout
(`flyte-package.tgz`, `pyflyte package` style): the bytes equal the Pants goal's for the same inputs.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple

from flytebuild.cli import userenv
from flytebuild.cli.config import Project
from flytebuild.cli.planning import ProjectPlan
from flytebuild.core.bundle import Bundle, BundleWarning, build_bundle, bundle_warnings, plan_bundle
from flytebuild.core.errors import FlytebuildError
from flytebuild.core.model import WorkflowPlan
from flytebuild.core.plan import plan_image
from flytebuild.core.registration import DeployError, SerializationError, deploy_summary, serialize_request
from flytebuild.oci.layers import build_layer

ARCHIVE = "flyte-package.tgz"


@dataclass(frozen=True)
class Serialized:
    workflow: str
    files: Tuple[Tuple[str, bytes], ...]  # the numbered .pb files
    summary: Mapping


def image_refs(result: ProjectPlan, published: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    refs = {image.address: plan_image(image).ref for image in result.image_targets}
    refs.update(published or {})
    return refs


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


def serialize(project: Project, plan: WorkflowPlan, refs: Mapping[str, str]) -> Serialized:
    """runtime/serialize.py in the user's environment: numbered .pb files, per-task settings."""
    python = userenv.check_python(project.python, project.config_file)
    request = serialize_request(plan, refs)
    with tempfile.TemporaryDirectory(prefix="flytebuild-serialize-") as tmp:
        request_file = os.path.join(tmp, "request.json")
        with open(request_file, "w", encoding="utf-8") as f:
            json.dump(request, f, sort_keys=True, indent=1)
        out_dir = os.path.join(tmp, "out")
        proc = userenv.run_script(python, "serialize.py", [request_file, out_dir], project.root, project.source_roots,
                                  cwd=project.root, timeout=project.user_code_timeout,
                                  what=f"Serialization of {plan.entrypoint}", target=plan.address)
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            data = {"error": {"kind": "serialization_failed", "message": proc.stderr.strip()[-2000:] or "no output"}}
        if proc.returncode != 0 or "error" in data:
            raise SerializationError.from_runtime(plan.address, plan.entrypoint, data.get("error") or {})
        files = []
        for name in sorted(os.listdir(out_dir)):
            with open(os.path.join(out_dir, name), "rb") as f:
                files.append((name, f.read()))
    return Serialized(plan.address, tuple(files), data)


def package_workflows(project: Project, result: ProjectPlan, dist_dir: str) -> List[Tuple[str, List[str]]]:
    """Per workflow `<dist>/<name>/flyte-package.tgz` (+ its code bundle): what `pants package` writes."""
    refs = image_refs(result)
    written = []
    for plan in result.workflows:
        userenv.progress(f"flytebuild: serializing {plan.address}")
        serialized = serialize(project, plan, refs)
        bundle, _ = code_bundle(project, ProjectPlan((), (plan,), result.image_targets))
        entries = list(serialized.files)
        if bundle is not None:
            entries.append((bundle.name, bundle.data))
        archive = build_layer(entries, name="flyte-package").read_bytes()
        out_dir = os.path.join(dist_dir, dist_name(plan.address))
        os.makedirs(out_dir, exist_ok=True)
        _write(os.path.join(out_dir, ARCHIVE), archive)
        lines = [f"{len(serialized.files)} entities (numbered .pb files, `flytectl register files --archive`)"]
        if bundle is not None:
            _write(os.path.join(out_dir, bundle.name), bundle.data)
            lines.append(f"code bundle {bundle.name}: {len(bundle.files)} files of the fast tasks")
        else:
            lines.append("no code bundle: every task runs from its image")
        written.append((os.path.join(out_dir, ARCHIVE), lines))
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


@dataclass(frozen=True)
class AdminSettings:
    endpoint: Optional[str]
    insecure: Optional[bool]
    config: Optional[str]  # flytekit config file, absolute
    timeout: int = 15


def check_admin(admin: AdminSettings) -> None:
    if not admin.endpoint and not admin.config:
        raise DeployError(
            "No FlyteAdmin to deploy to",
            fix="set `endpoint` (and `insecure`) or `config` in the flytebuild configuration, or pass --endpoint",
        )


def deploy(
    project: Project,
    result: ProjectPlan,
    admin: AdminSettings,
    dry_run: bool,
    published: Optional[Mapping[str, str]] = None,
) -> Tuple[int, dict, Tuple[BundleWarning, ...], str]:
    """runtime/deploy.py over every planned workflow: (exit code, summary, warnings, log)."""
    check_admin(admin)
    python = userenv.check_python(project.python, project.config_file)
    refs = image_refs(result, published)
    bundle, warnings = code_bundle(project, result)
    found_warnings = set(warnings)
    with tempfile.TemporaryDirectory(prefix="flytebuild-deploy-") as tmp:
        entities = []
        for i, plan in enumerate(result.workflows):
            userenv.progress(f"flytebuild: serializing {plan.address}")
            serialized = serialize(project, plan, refs)
            os.makedirs(os.path.join(tmp, f"wf{i}"))
            for name, data in serialized.files:
                with open(os.path.join(tmp, f"wf{i}", name), "wb") as f:
                    f.write(data)
            for e in serialized.summary["entities"]:
                entities.append({"file": f"wf{i}/{e['file']}", "kind": e["kind"], "fast": e["fast"]})
            for w in serialized.summary.get("warnings", ()):
                if w.get("kind") != "raw_container":  # already reported by the bundle's own check
                    found_warnings.add(BundleWarning(w["task"], w["message"]))
        if bundle is not None:
            os.makedirs(os.path.join(tmp, "bundle"))
            with open(os.path.join(tmp, "bundle", bundle.name), "wb") as f:
                f.write(bundle.data)
        request = {
            "admin": {"endpoint": admin.endpoint, "insecure": admin.insecure, "config": admin.config,
                      "timeout": admin.timeout},
            "dry_run": dry_run,
            "bundle": {"path": f"bundle/{bundle.name}", "name": bundle.name} if bundle is not None else None,
            "dest_dir": ".",
            "entities": entities,
        }
        with open(os.path.join(tmp, "request.json"), "w", encoding="utf-8") as f:
            json.dump(request, f, indent=1, sort_keys=True)
        userenv.progress(
            f"flytebuild: {'checking' if dry_run else 'registering'} {len(entities)} entities at "
            f"{admin.endpoint or admin.config}"
        )
        proc = userenv.run_script(python, "deploy.py", ["request.json"], project.root, project.source_roots, cwd=tmp)
    data = deploy_summary(proc.stdout, proc.stderr)
    return proc.returncode, data, tuple(sorted(found_warnings)), proc.stderr

