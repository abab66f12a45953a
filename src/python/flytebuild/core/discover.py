"""Find the workflows of a project without importing it: what `flytebuild init` and `pants flyte-init`
declare as targets.

A workflow is a module-level function decorated with flytekit's `workflow` (`@workflow`,
`@workflow(...)`, `@flytekit.workflow`, `@fk.workflow`): the same decorator names flytekit exports.
Static (stdlib `ast`): a project whose imports need its own environment can still be scanned, and
nothing of the user's runs. Files that do not parse are skipped (the caller reports them).
"""
from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

# Directories never holding the project's own workflows.
SKIP_DIRS = frozenset({
    ".git", ".hg", ".venv", "venv", "env", ".tox", ".nox", "node_modules", "build", "dist", "site-packages",
    "__pycache__", ".pants.d", ".mypy_cache", ".pytest_cache", "bazel-bin", "bazel-out", "bazel-testlogs",
})


@dataclass(frozen=True)
class FoundWorkflow:
    path: str  # relative to the scanned directory, `/`-separated
    function: str

    @property
    def entrypoint(self) -> str:
        return f"{self.path}:{self.function}"


def _decorator_name(node: ast.expr) -> Optional[str]:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def workflows_in_source(text: str) -> Tuple[str, ...]:
    """Names of the module-level `@workflow` functions of one file (raises SyntaxError)."""
    tree = ast.parse(text)
    return tuple(
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and any(_decorator_name(d) == "workflow" for d in node.decorator_list)
    )


def python_files(directory: str) -> List[str]:
    """`.py` files under `directory` (relative, sorted), skipping virtualenvs, build outputs, hidden dirs."""
    found = []
    for current, dirs, files in os.walk(directory):
        dirs[:] = sorted(
            d for d in dirs
            if d not in SKIP_DIRS and not d.startswith(".")
            and not os.path.isfile(os.path.join(current, d, "pyvenv.cfg"))
        )
        for name in sorted(files):
            if name.endswith(".py"):
                found.append(os.path.relpath(os.path.join(current, name), directory).replace(os.sep, "/"))
    return sorted(found)


def find_workflows(directory: str, files: Optional[Iterable[str]] = None) -> Tuple[List[FoundWorkflow], List[str]]:
    """(workflows, files that could not be parsed), both sorted by path."""
    workflows: List[FoundWorkflow] = []
    broken: List[str] = []
    for rel in files if files is not None else python_files(directory):
        try:
            with open(os.path.join(directory, rel), encoding="utf-8") as f:
                names = workflows_in_source(f.read())
        except (SyntaxError, UnicodeDecodeError, ValueError):
            broken.append(rel)
            continue
        workflows.extend(FoundWorkflow(rel, name) for name in names)
    return workflows, broken


def target_names(workflows: Sequence[FoundWorkflow]) -> List[str]:
    """One short, unique, TOML-bare-key-safe name per workflow: the function name, or the module path
    and the function name where two files define the same name."""
    counts = {}
    for w in workflows:
        counts[w.function] = counts.get(w.function, 0) + 1

    def safe(s: str) -> str:
        return re.sub(r"[^A-Za-z0-9_-]+", "-", s).strip("-")

    return [
        safe(w.function) if counts[w.function] == 1 else safe(f"{w.path[:-3]}-{w.function}")
        for w in workflows
    ]


def source_root_of(directory: str, files: Sequence[str]) -> str:
    """`src` when the project keeps its packages under src/ (the src layout), else `.`."""
    return (
        "src"
        if any(f.startswith("src/") for f in files) and not any("/" not in f for f in files if f != "setup.py")
        else "."
    )
