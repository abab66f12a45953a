"""`flytebuild lock`: pin the project's requirements for its Python, without Pants.

It runs `pex3 lock create` (pex is a dependency of flytebuild) for the configured interpreter:

    pex3 lock create --style strict --resolver-version pip-2020-resolver --python <python> \\
        -r <requirements> -o <lockfile> --indent 2

The result is a Pex lockfile, the format Pants' lockfiles hold, read by `plan` (pins, so content
tags follow transitive versions) and by `package` (images resolve from it).
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import List

from flytebuild.cli import userenv
from flytebuild.cli.config import Project
from flytebuild.cli.init import LOCKFILE
from flytebuild.core.errors import FlytebuildError


def lock_argv(python: str, requirements: str, output: str) -> List[str]:
    # pip's 2020 resolver, as Pants runs it: pex's default (legacy) resolver can lock a set that does not
    # satisfy itself (python-dateutil 4 next to botocore's <3 with flytekit 1.16).
    return [sys.executable, "-m", "pex.cli", "lock", "create", "--style", "strict", "--resolver-version",
            "pip-2020-resolver", "--python", python, "-r", requirements, "-o", output, "--indent", "2"]


def lock(project: Project) -> str:
    if not project.requirements_file:
        raise FlytebuildError(
            "`flytebuild lock` pins the requirements file, and none is configured",
            file=project.config_file, fix='set `requirements = "requirements.txt"`',
        )
    python = userenv.check_python(project.python, project.config_file)
    output = (
        os.path.join(project.root, project.lockfile) if project.lockfile else os.path.join(project.directory, LOCKFILE)
    )
    argv = lock_argv(python, os.path.join(project.root, project.requirements_file), output)
    # A global pip constraints file (pip.conf `constraint`) breaks pex's own pip: pex gets none.
    env = {**os.environ, "PIP_CONFIG_FILE": "/dev/null"}
    userenv.progress(f"flytebuild: locking {project.requirements_file} for {python} with pex3")
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise FlytebuildError(
            f"pex3 could not lock {project.requirements_file}:\n{proc.stderr.strip()[-2000:]}",
            file=project.config_file,
            fix="fix the conflicting requirements (pex names them above) and re-run `flytebuild lock`",
        )
    if not project.lockfile:
        _use_lockfile(project.config_file, os.path.relpath(output, project.directory))
    return output


def _use_lockfile(config_file: str, rel: str) -> None:
    """Turn on the `# lockfile = ...` line `flytebuild init` wrote; otherwise say what to add."""
    with open(config_file, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if line.startswith(f'# lockfile = "{rel}"'):
            lines[i] = f'lockfile = "{rel}"'
            with open(config_file, "w", encoding="utf-8") as f:
                f.write("\n".join(lines))
            print(f'    {config_file}: lockfile = "{rel}"', file=sys.stderr)
            return
    print(f'Add `lockfile = "{rel}"` to {config_file} so plans and images use it.', file=sys.stderr)
