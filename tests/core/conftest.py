"""Hand-built introspection payloads (docs/runtime-contract.md, introspect) and build-graph facts for a small monorepo.

The monorepo mirrors examples/: a `baked` project whose image bakes its code and the shared
helpers, a `fast` project whose image lacks its code, a raw container task, a sub-workflow used
directly and through a launch plan, and a reference task.
"""
from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any, Dict, Optional

import pytest

from flytebuild.core.model import Closure, FileDigest, ImageTarget, WorkflowTarget

INT = {"type": "int"}
STR = {"type": "str"}
REPORT = {"type": "dataclass", "name": "baked.workflows.Report", "fields": {"rows": INT, "title": STR}}

FLYTEKIT_PINS = ("flytekit==1.16.31", "protobuf==7.36.2")
PANDAS_PINS = ("numpy==2.3.0", "pandas==2.3.1")

WF_ADDRESS = "examples/baked:wf"
BAKED_IMAGE = "examples/baked:image"
FAST_IMAGE = "examples/fast:image"


def image_use(kind: str = "none", value: Optional[str] = None, name: Optional[str] = None, spec=None):
    return {"kind": kind, "value": value, "name": name, "spec": spec}


def task(
    name: str,
    *,
    kind: str = "python",
    source_file: Optional[str] = None,
    image: Optional[dict] = None,
    inputs: Optional[dict] = None,
    outputs: Optional[dict] = None,
    cache: bool = False,
    cache_version: str = "",
    config: Optional[dict] = None,
    **extra: Any,
) -> Dict[str, Any]:
    module = name.rsplit(".", 1)[0]
    data = {
        "name": name,
        "kind": kind,
        "task_type": {"python": "python-task", "container": "raw-container", "map": "map_task"}.get(kind, "other"),
        "module": module,
        "source_file": source_file if source_file is not None else "examples/" + module.replace(".", "/") + ".py",
        "image": image or image_use(),
        "cache": {"enabled": cache, "version": cache_version, "serialize": False, "ignored_inputs": []},
        "interface": {
            "inputs": inputs if inputs is not None else {"x": INT},
            "outputs": outputs if outputs is not None else {"o0": INT},
        },
        "input_defaults": {},
        "config": config if config is not None else {"retries": 0, "timeout": None},
    }
    data.update(extra)
    return data


def node(id: str, kind: str, entity: Optional[str], upstream=()) -> Dict[str, Any]:
    return {"id": id, "entity_kind": kind, "entity": entity, "upstream": list(upstream)}


def workflow(name: str, nodes, *, inputs=None, outputs=None, structure=None) -> Dict[str, Any]:
    module = name.rsplit(".", 1)[0]
    return {
        "name": name,
        "module": module,
        "source_file": "examples/" + module.replace(".", "/") + ".py",
        "interface": {"inputs": inputs or {"x": INT}, "outputs": outputs or {"o0": INT}},
        "nodes": nodes,
        "structure": structure
        if structure is not None
        else {
            "nodes": [
                {"id": n["id"], "entity": n["entity"], "upstream": n["upstream"], "bindings": {"x": "wf.x"}}
                for n in nodes
            ],
            "outputs": {"o0": nodes[-1]["id"] + ".o0"} if nodes else {},
            "failure_policy": "FAIL_IMMEDIATELY",
        },
    }


def launch_plan(name: str, workflow_name: str, *, fixed=None, defaults=None, config=None) -> Dict[str, Any]:
    return {
        "name": name,
        "workflow": workflow_name,
        "fixed_inputs": fixed or {},
        "default_inputs": defaults or {"x": 3},
        "config": config or {"labels": {}, "schedule": None},
    }


def reference(name: str, kind: str = "task", version: str = "v1") -> Dict[str, Any]:
    return {
        "kind": kind,
        "name": name,
        "project": "flytesnacks",
        "domain": "development",
        "version": version,
        "interface": {"inputs": {"x": INT}, "outputs": {"o0": INT}},
    }


def introspection(
    root_kind: str,
    root_name: str,
    *,
    tasks=(),
    workflows=(),
    launch_plans=(),
    references=(),
    entrypoint="baked.workflows:wf",
):
    return {
        "entrypoint": entrypoint,
        "root": {"kind": root_kind, "name": root_name},
        "tasks": sorted(tasks, key=lambda t: t["name"]),
        "workflows": sorted(workflows, key=lambda w: w["name"]),
        "launch_plans": sorted(launch_plans, key=lambda lp: lp["name"]),
        "references": sorted(references, key=lambda r: r["name"]),
        "future_key": "ignored by core",
    }


# ---------------------------------------------------------------------------------------------
# The monorepo scenario

FILES = {
    "examples/shared/helpers.py": "d-helpers",
    "examples/baked/workflows.py": "d-baked",
    "examples/fast/tasks.py": "d-fast",
    "examples/unrelated/other.py": "d-other",
}


def scenario_intro() -> Dict[str, Any]:
    tasks = [
        task("baked.workflows.make_report", outputs={"o0": REPORT}),
        task("baked.workflows.clean", cache=True, cache_version="1"),
        task(
            "baked.workflows.shell",
            kind="container",
            image=image_use("string", "alpine:3.19"),
            config={"command": ["echo", "{{.inputs.x}}"], "image": "alpine:3.19"},
        ),
        task("fast.tasks.crunch"),
    ]
    workflows = [
        workflow("fast.tasks.sub", [node("n0", "task", "fast.tasks.crunch")]),
        workflow(
            "baked.workflows.wf",
            [
                node("n0", "task", "baked.workflows.make_report"),
                node("n1", "task", "baked.workflows.clean", ["n0"]),
                node("n2", "workflow", "fast.tasks.sub", ["n1"]),
                node("n3", "launch_plan", "fast.tasks.sub_lp", ["n1"]),
                node("n4", "task", "baked.workflows.shell"),
                node("n5", "reference", "remote.tasks.score", ["n4"]),
            ],
        ),
    ]
    return introspection(
        "workflow",
        "baked.workflows.wf",
        tasks=tasks,
        workflows=workflows,
        launch_plans=[launch_plan("fast.tasks.sub_lp", "fast.tasks.sub")],
        references=[reference("remote.tasks.score", version="2024.1")],
    )


def scenario_facts(files: Optional[Dict[str, str]] = None):
    """(closures, images) for the scenario, with file digests from `files`."""
    files = {**FILES, **(files or {})}

    def fd(path: str) -> FileDigest:
        return FileDigest(path, files[path])

    closures = {
        "examples/baked/workflows.py": Closure(
            sources=(fd("examples/baked/workflows.py"), fd("examples/shared/helpers.py")),
            requirements=("flytekit",),
            pins=FLYTEKIT_PINS,
        ),
        "examples/fast/tasks.py": Closure(
            sources=(fd("examples/fast/tasks.py"),),
            requirements=("flytekit", "pandas"),
            pins=FLYTEKIT_PINS + PANDAS_PINS,
        ),
    }
    images = {
        BAKED_IMAGE: ImageTarget(
            address=BAKED_IMAGE,
            image_name="baked",
            base="python:3.11-slim",
            registry="localhost:5000",
            repository="baked",
            env=(("LOG_LEVEL", "info"),),
            python="/usr/local/bin/python",
            sources=(fd("examples/baked/workflows.py"), fd("examples/shared/helpers.py")),
            requirements=("flytekit",),
            pins=FLYTEKIT_PINS,
        ),
        FAST_IMAGE: ImageTarget(
            address=FAST_IMAGE,
            image_name="fast",
            base="python:3.11-slim",
            registry="localhost:5000",
            repository="fast",
            sources=(),
            requirements=("flytekit",),
            pins=FLYTEKIT_PINS,
        ),
    }
    return closures, images


def workflow_target(**overrides) -> WorkflowTarget:
    fields = dict(
        address=WF_ADDRESS,
        entrypoint="baked.workflows:wf",
        project="flytesnacks",
        domain="development",
        image=BAKED_IMAGE,
        images=(),
        task_images=(("fast.tasks.crunch", FAST_IMAGE),),
    )
    fields.update(overrides)
    return WorkflowTarget(**fields)


@pytest.fixture
def mk() -> SimpleNamespace:
    """Builders for introspection payloads and build-graph facts (see this module)."""
    return SimpleNamespace(
        image_use=image_use,
        task=task,
        node=node,
        workflow=workflow,
        launch_plan=launch_plan,
        reference=reference,
        introspection=introspection,
        scenario_intro=lambda: copy.deepcopy(scenario_intro()),
        scenario_facts=scenario_facts,
        workflow_target=workflow_target,
        FILES=dict(FILES),
        INT=INT,
        STR=STR,
        REPORT=REPORT,
        WF_ADDRESS=WF_ADDRESS,
        BAKED_IMAGE=BAKED_IMAGE,
        FAST_IMAGE=FAST_IMAGE,
    )
