"""`flytebuild init`: a starting flytebuild.toml for an existing flytekit project.

It scans the project for `@workflow` functions (statically, `core/discover.py`), finds the
environment that has flytekit, and writes the shipped template (`flytebuild/templates/flytebuild.toml`)
with one image baking the workflows' code and the project's requirements, and one
`[workflows.*]` per workflow found. Nothing else in the project is touched, except a
requirements.txt pinning flytekit when the project has none.
"""
from __future__ import annotations

import os
import subprocess
import sys
from string import Template
from typing import List, Optional, Tuple

from flytebuild import __version__
from flytebuild.cli.config import DEFAULTS
from flytebuild.cli.requirements import parse_requirements_txt
from flytebuild.core.discover import find_workflows, python_files, source_root_of, target_names
from flytebuild.core.errors import FlytebuildError

LOCKFILE = "flytebuild.lock"
_PROBE = "import importlib.metadata as m, sys; print('%d.%d' % sys.version_info[:2]); print(m.version('flytekit'))"


def template() -> str:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(here, "templates", "flytebuild.toml"), encoding="utf-8") as f:
        return f.read()


def _probe(python: str) -> Optional[Tuple[str, str]]:
    """(python major.minor, flytekit version) of an interpreter, or None if flytekit is not there."""
    try:
        proc = subprocess.run([python, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = proc.stdout.split()
    return (lines[0], lines[1]) if proc.returncode == 0 and len(lines) == 2 else None


def _find_python(directory: str, given: Optional[str]) -> Tuple[str, str, str]:
    """(as written in the config, python major.minor, flytekit version)."""
    candidates: List[Tuple[str, str]] = []  # (written, executable)
    if given:
        candidates.append((given, given if os.sep not in given else os.path.join(directory, given)))
    else:
        for venv in (".venv", "venv", "env"):
            exe = os.path.join(venv, "bin", "python")
            if os.path.exists(os.path.join(directory, exe)):
                candidates.append((exe, os.path.join(directory, exe)))
        candidates.append((sys.executable, sys.executable))  # flytebuild installed next to flytekit
    for written, exe in candidates:
        found = _probe(exe)
        if found:
            return (written, *found)
    tried = ", ".join(w for w, _ in candidates)
    raise FlytebuildError(
        f"No Python with flytekit found (tried {tried})",
        fix="pass --python <interpreter of the environment that has flytekit> (or install flytekit next to flytebuild)",
    )


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(
    directory: str, python: Optional[str], registry: str, base: str, project: str, domain: str
) -> Tuple[str, List[str], Optional[str]]:
    """(flytebuild.toml text, notes for the user, requirements.txt text to write or None)."""
    files = python_files(directory)
    workflows, broken = find_workflows(directory, files)
    notes = [f"skipped {f}: it does not parse" for f in broken]
    if not workflows:
        raise FlytebuildError(
            f"No @workflow functions found under {directory}",
            fix="run `flytebuild init` in the directory of your flytekit project (or pass it as DIR)",
        )
    written_python, py_version, flytekit_version = _find_python(directory, python)
    notes.append(f"python: {written_python} (Python {py_version}, flytekit {flytekit_version})")
    requirements_txt = None
    declared: List[str] = ["flytekit"]
    if os.path.isfile(os.path.join(directory, "requirements.txt")):
        with open(os.path.join(directory, "requirements.txt"), encoding="utf-8") as f:
            declared = [name for name, _ in parse_requirements_txt(f.read(), "requirements.txt")]
        if "flytekit" not in declared:
            raise FlytebuildError(
                "requirements.txt does not declare flytekit", file=os.path.join(directory, "requirements.txt"),
                fix=f"add `flytekit=={flytekit_version}` to it (the version your environment has)",
            )
    else:
        requirements_txt = f"flytekit=={flytekit_version}\n"
        notes.append(f"wrote requirements.txt: flytekit=={flytekit_version} (the version {written_python} has)")
    has_lock = os.path.isfile(os.path.join(directory, LOCKFILE))
    root = source_root_of(directory, files)
    text = Template(template()).substitute(
        version=__version__,
        source_roots=_toml_str(root),
        python=written_python,
        requirements="requirements.txt",
        lockfile=f'lockfile = "{LOCKFILE}"' if has_lock else f'# lockfile = "{LOCKFILE}"   # after `flytebuild lock`',
        registry=registry,
        base=base,
        project=project,
        domain=domain,
    )
    paths = sorted({w.path for w in workflows})
    text += (
        "\n# One image baking the workflows' code (and what it imports) and the requirements: their tasks run\n"
        "# from it, with no code bundle. Split it, or add images, as the project grows.\n"
        "[images.app]\n"
        f"dependencies = [{', '.join(_toml_str(p) for p in paths)}]\n"
        f"requirements = [{', '.join(_toml_str(r) for r in declared)}]\n"
    )
    for name, w in zip(target_names(workflows), workflows):
        text += f'\n[workflows.{name}]\nentrypoint = {_toml_str(w.entrypoint)}\nimage = "app"\n'
        notes.append(f"workflow {name}: {w.entrypoint}")
    return text, notes, requirements_txt


def init(directory: str, python: Optional[str], registry: Optional[str], base: Optional[str],
         project: Optional[str], domain: Optional[str], force: bool) -> str:
    directory = os.path.abspath(directory)
    target = os.path.join(directory, "flytebuild.toml")
    if os.path.exists(target) and not force:
        raise FlytebuildError(
            f"{target} exists already", file=target, fix="edit it, or pass --force to overwrite it"
        )
    text, notes, requirements_txt = render(
        directory, python, registry or DEFAULTS["registry"], base or DEFAULTS["default_base"],
        project or DEFAULTS["project"], domain or DEFAULTS["domain"],
    )
    if requirements_txt is not None:
        with open(os.path.join(directory, "requirements.txt"), "w", encoding="utf-8") as f:
            f.write(requirements_txt)
    with open(target, "w", encoding="utf-8") as f:
        f.write(text)
    for note in notes:
        print(f"    {note}")
    return target
