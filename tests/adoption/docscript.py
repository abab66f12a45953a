"""An adoption guide is the script its test runs: the fenced blocks marked
`<!-- tested: tests/adoption/<file>.py::<test> -->` of docs/adopt-*.md, in order.

- a `python`/`toml`/`starlark`/`ini` block whose first line is `# file: <path>` is a file of the
  user's project, written at that path under the scratch directory;
- a `sh` block is run by bash, all blocks in one script (so `cd`, variables and an activated venv
  carry on), with a marker line printed before each, so the output of every step can be checked;
- the first assignment of each name in `overrides` (`REGISTRY=localhost:5000`) is replaced by the
  test's value: the one place a guide says "your values".
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from tests.docs import doccheck

REPO = Path(__file__).resolve().parents[2]
STEP = "=== flytebuild-doc-step {} ==="


@dataclass
class Steps:
    files: Dict[str, str]  # path -> content (in order of the doc)
    commands: List[str]  # one bash block per entry


def steps(doc: Path, test: str) -> Steps:
    files: Dict[str, str] = {}
    commands: List[str] = []
    for block in doccheck.blocks(doc):
        if block.tested != (f"tests/adoption/{test.split('::')[0]}", test.split("::")[1]):
            continue
        first = block.lines[0].strip() if block.lines else ""
        if first.startswith(("# file: ", "// file: ")):
            files[first.split("file: ", 1)[1].strip()] = "\n".join(block.lines[1:]).rstrip() + "\n"
        elif block.lang in ("sh", "bash"):
            commands.append("\n".join(block.lines))
        else:
            raise AssertionError(f"{block.where}: a tested block is either `# file: <path>` or a sh block")
    assert commands, f"{doc} has no sh block marked for {test}"
    return Steps(files, commands)


def _override(script: str, overrides: Mapping[str, str]) -> str:
    for name, value in overrides.items():
        script, n = re.subn(rf"^{name}=.*$", f"{name}={shlex.quote(value)}", script, count=1, flags=re.M)
        assert n == 1, f"the guide sets no {name}=..."
    return script


def run(doc: Path, test: str, workdir: Path, overrides: Mapping[str, str], env: Optional[Mapping[str, str]] = None,
        timeout: float = 1800) -> List[str]:
    """Write the guide's files into `workdir`, run its commands there; returns each step's output."""
    found = steps(doc, test)
    for rel, text in found.files.items():
        path = workdir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    script = ["set -euo pipefail", "exec 2>&1"]
    for i, block in enumerate(found.commands):
        script += [f"echo {shlex.quote(STEP.format(i))}", block]
    text = _override("\n".join(script), overrides)
    proc = subprocess.run(["bash", "-c", text], cwd=workdir, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    out = proc.stdout + proc.stderr  # stderr is empty but for bash itself: the script merges it
    parts = re.split(r"^=== flytebuild-doc-step \d+ ===$", proc.stdout, flags=re.M)[1:]
    if proc.returncode != 0:
        raise AssertionError(f"step {len(parts) - 1} of {doc.name} failed (exit {proc.returncode}):\n"
                             f"{found.commands[max(len(parts) - 1, 0)]}\n--- output ---\n{out[-6000:]}")
    assert len(parts) == len(found.commands)
    return parts
