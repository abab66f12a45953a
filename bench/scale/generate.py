#!/usr/bin/env python3
"""Generate a synthetic Flyte monorepo: projects x modules x tasks, one shared lib, non-code assets.

    python bench/scale/generate.py ROOT [--projects 12] [--modules 3] [--tasks 4] [--asset-kb 700]

writes, under ROOT (a checkout copy made by tests/support/repo_copy.py, so `examples/3rdparty` is the resolve):

    examples/scale/BUILD, __init__.py
    examples/scale/lib/           the shared lib every task imports (common.py)
    examples/scale/pNN/           one project: m0.py .. m{M-1}.py with T tasks each, workflows.py (`wf` calling
                                  every task, launch plan `lp`), assets/data.bin (non-code), BUILD with a
                                  flyte_image baking the project and the lib, flyte_workflow targets `wf` and `lp`
    scale.toml                    the same targets for the `flytebuild` CLI

Per project: M*T tasks, 1 workflow, 2 launch plans (the default one and `lp`); pyflyte registers the same. The
content is a pure function of the arguments (benches and their numbers are reproducible).
"""
from __future__ import annotations

import argparse
import hashlib
import textwrap
from pathlib import Path

BASE = "localhost:5000/flytebuild/python:3.11"


def project_name(i: int) -> str:
    return f"p{i:02d}"


def module_source(p: str, m: int, tasks: int) -> str:
    lines = [
        f'"""Project {p}, module m{m}: {tasks} tasks."""',
        "from flytekit import task",
        "",
        "from scale.lib.common import scaled",
        "",
    ]
    for t in range(tasks):
        lines += [
            "",
            "@task",
            f"def t{m}_{t}(x: int) -> int:",
            f"    return scaled(x) + {m * 100 + t}",
            "",
        ]
    return "\n".join(lines)


def workflows_source(p: str, modules: int, tasks: int) -> str:
    imports = [f"from scale.{p}.m{m} import " + ", ".join(f"t{m}_{t}" for t in range(tasks)) for m in range(modules)]
    body = ["    y = x"]
    for m in range(modules):
        for t in range(tasks):
            body.append(f"    y = t{m}_{t}(x=y)")
    body.append("    return y")
    return "\n".join([
        f'"""Project {p}: one workflow calling every task, and a launch plan."""',
        "from flytekit import LaunchPlan, workflow",
        "",
        *imports,
        "",
        "",
        "@workflow",
        "def wf(x: int = 1) -> int:",
        *body,
        "",
        "",
        f'lp = LaunchPlan.get_or_create(workflow=wf, name="scale.{p}.workflows.lp", default_inputs={{"x": 3}})',
        "",
    ])


def asset_bytes(p: str, size: int) -> bytes:
    """Deterministic, incompressible bytes (like real data files): a hash chain."""
    out = bytearray()
    block = hashlib.sha256(p.encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:size])


def project_build(p: str) -> str:
    return textwrap.dedent(f"""\
        python_sources()

        flyte_image(
            name="image",
            image_name="scale-{p}",
            base="{BASE}",
            registry="localhost:5000",
            repository="flytebuild/scale-{p}",
            dependencies=["examples/scale/{p}:{p}", "examples/scale/lib:lib", "examples/3rdparty:reqs#flytekit"],
        )

        flyte_workflow(name="wf", entrypoint="scale.{p}.workflows:wf", image=":image")
        flyte_workflow(name="lp", entrypoint="scale.{p}.workflows:lp", image=":image")
        """)


def cli_config(projects: list) -> str:
    lines = [
        "# bench/scale/generate.py: the generated projects for the `flytebuild` CLI",
        'root = "."',
        'source_roots = ["examples"]',
        'python = "dist/export/python/virtualenvs/flyte/*/bin/python"',
        'requirements = "examples/3rdparty/requirements.txt"',
        'lockfile = "examples/3rdparty/flyte.lock"',
        'project = "flytebuild-cli"',
        'domain = "development"',
        'registry = "localhost:5000"',
        f'default_base = "{BASE}"',
        "",
    ]
    for p in projects:
        lines += [
            f"[images.{p}-image]",
            f'image_name = "scale-{p}"',
            f'base = "{BASE}"',
            'registry = "localhost:5000"',
            f'repository = "flytebuild/scale-{p}"',
            f'dependencies = ["examples/scale/{p}", "examples/scale/lib"]',
            'requirements = ["flytekit"]',
            "",
            f"[workflows.{p}-wf]",
            f'entrypoint = "scale.{p}.workflows:wf"',
            f'image = "{p}-image"',
            "",
            f"[workflows.{p}-lp]",
            f'entrypoint = "scale.{p}.workflows:lp"',
            f'image = "{p}-image"',
            "",
        ]
    return "\n".join(lines)


def write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)


def generate(root: Path, projects: int = 12, modules: int = 3, tasks: int = 4, asset_kb: int = 700) -> dict:
    base = root / "examples" / "scale"
    names = [project_name(i) for i in range(projects)]
    write(base / "BUILD", "python_sources()\n")
    write(base / "__init__.py", "")
    write(base / "lib" / "BUILD", "python_sources()\n")
    write(base / "lib" / "__init__.py", "")
    write(base / "lib" / "common.py", '"""The shared lib every task imports."""\n\n\ndef scaled(x: int) -> int:\n'
                                      "    return 2 * x\n")
    for p in names:
        d = base / p
        write(d / "BUILD", project_build(p))
        write(d / "__init__.py", "")
        for m in range(modules):
            write(d / f"m{m}.py", module_source(p, m, tasks))
        write(d / "workflows.py", workflows_source(p, modules, tasks))
        write(d / "assets" / "data.bin", asset_bytes(p, asset_kb * 1024))
    write(root / "scale.toml", cli_config(names))
    return {"projects": projects, "modules": modules, "tasks_per_module": tasks,
            "tasks": projects * modules * tasks, "asset_bytes": projects * asset_kb * 1024,
            "entities_per_project": modules * tasks + 3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--projects", type=int, default=12)
    ap.add_argument("--modules", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--asset-kb", type=int, default=700)
    a = ap.parse_args()
    print(generate(a.root, a.projects, a.modules, a.tasks, a.asset_kb))


if __name__ == "__main__":
    main()
