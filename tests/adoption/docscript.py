"""An adoption guide is the script its test runs: the fenced blocks marked
`<!-- tested: tests/adoption/<file>.py::<test> -->` of docs/adopt-*.md, in order.

- a `python`/`toml`/`starlark`/`ini` block whose first line is `# file: <path>` is a file of the
  user's project, written at that path under the scratch directory;
- a `sh` block is run by bash, all blocks in one script (so `cd`, variables and an activated venv
  carry on), with a marker line printed before each, so the output of every step can be checked;
- the first assignment of each name in `overrides` (`REGISTRY=localhost:5000`) is replaced by the
  test's value: the one place a guide says "your values";
- each step's wall time and the CPU time of the processes it waited for (bash's `times`: not a daemon such as
  pantsd) go to stderr after the run (`pytest -s` shows them), so a slow guide says which step is slow.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
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
    with tempfile.NamedTemporaryFile("r", prefix="doc-times-", suffix=".txt") as clock:
        # outside the user's directory: `tailor`/`init` must find only the guide's files there
        tick = f"{{ date +%s.%N; times; }} >>{shlex.quote(clock.name)}"
        script = ["set -euo pipefail", "exec 2>&1"]
        for i, block in enumerate(found.commands):
            script += [tick, f"echo {shlex.quote(STEP.format(i))}", block]
        text = _override("\n".join(script + [tick]), overrides)
        proc = subprocess.run(["bash", "-c", text], cwd=workdir, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
        _report(doc, found.commands, clock.read())
    out = proc.stdout + proc.stderr  # stderr is empty but for bash itself: the script merges it
    parts = re.split(r"^=== flytebuild-doc-step \d+ ===$", proc.stdout, flags=re.M)[1:]
    if proc.returncode != 0:
        raise AssertionError(f"step {len(parts) - 1} of {doc.name} failed (exit {proc.returncode}):\n"
                             f"{found.commands[max(len(parts) - 1, 0)]}\n--- output ---\n{out[-6000:]}")
    assert len(parts) == len(found.commands)
    return parts


def _seconds(times: str) -> float:
    """bash `times` prints `0m1.250s 0m0.100s` (user, system) for the shell, then for its children."""
    return sum(int(m) * 60 + float(sec) for m, sec in re.findall(r"(\d+)m([\d.]+)s", times))


def _report(doc: Path, commands: List[str], clock: str) -> None:
    ticks = re.findall(r"^(\d+\.\d+)\n(.*)\n(.*)$", clock, flags=re.M)
    for i in range(len(ticks) - 1):
        wall = float(ticks[i + 1][0]) - float(ticks[i][0])
        cpu = _seconds("\n".join(ticks[i + 1][1:])) - _seconds("\n".join(ticks[i][1:]))
        first = next((ln for ln in commands[i].splitlines() if ln.strip() and not ln.startswith("#")), "")
        print(f"{doc.name} step {i}: {wall:6.1f} s wall {cpu:6.1f} s cpu  {first[:70]}", file=sys.stderr)


def report_daemon_cpu(doc: Path, name: str, pid: int) -> None:
    """A daemon the guide starts (pantsd, Bazel's server) is no child the steps wait for: its CPU and that of the
    processes it ran, read before the test stops it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return
    seconds = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime
    print(f"{doc.name}: {name} and the processes it waited for: {seconds:6.1f} s cpu", file=sys.stderr)
