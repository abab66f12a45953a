"""The I/O of verifying baked tasks against their image (core/verify.py decides and reports).

- static: the image config's labels (files and distributions recorded at build time), fetched
  from the registry without pulling a layer;
- docker: the image pulled and run once (`--network none`) with runtime/verify_image.py piped
  on stdin, so nothing is added to the image.
"""
from __future__ import annotations

import functools
import json
import os
import pkgutil
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from flytebuild.core.lockfile import canonical_name
from flytebuild.core.model import TaskPlan
from flytebuild.oci.build import LABEL_DISTRIBUTIONS, LABEL_PYTHON, LABEL_SOURCE_FILES
from flytebuild.oci.registry import Reference, RegistryClient


def _module_files(module: str) -> Tuple[str, str]:
    base = module.replace(".", "/")
    return f"{base}.py", f"{base}/__init__.py"


def static_problems(task: TaskPlan, labels: Mapping[str, str]) -> List[str]:
    """What the image's labels say is missing for `task` (files at import paths, distributions)."""
    try:
        files = set(json.loads(labels.get(LABEL_SOURCE_FILES, "[]")))
        dists = {canonical_name(d.split("==")[0]) for d in json.loads(labels.get(LABEL_DISTRIBUTIONS, "[]"))}
    except ValueError:
        return ["the image's flytebuild labels are unreadable: rebuild it with `pants package`"]
    problems = []
    if not files and LABEL_SOURCE_FILES not in labels:
        return ["the image has no flytebuild source manifest label (not built by flytebuild)"]
    if not any(f in files for f in _module_files(task.module)):
        problems.append(f"module {task.module} not in the image")
    for src in task.sources:
        # task sources keep their source root (src/python/a/b.py); the image holds a/b.py
        if not any(src == f or src.endswith("/" + f) for f in files):
            problems.append(f"file {src} not in the image")
    for req in task.requirements:
        if canonical_name(req) not in dists:
            problems.append(f"requirement {req} not in the image")
    return problems


def image_labels(ref: str, cache_dir: Optional[Path]) -> Dict[str, str]:
    """The config labels of `ref` (manifest and config only; raises RegistryError)."""
    r = Reference.parse(ref)
    config = RegistryClient(r.registry, cache_dir=cache_dir).pull(r).config
    return dict((config.get("config") or {}).get("Labels") or {})


def docker_env(env: Mapping[str, str]) -> Dict[str, str]:
    return {k: v for k, v in {**os.environ, **env}.items() if v}


def _docker(env: Mapping[str, str]) -> Optional[str]:
    return shutil.which("docker", path=env.get("PATH"))


def engine_available(env: Mapping[str, str]) -> bool:
    docker = _docker(env)
    if not docker:
        return False
    try:
        return subprocess.run([docker, "info"], env=docker_env(env), capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def run_argv(docker: str, ref: str, modules: Sequence[str], python: str = "python3") -> List[str]:
    """No network: an import that needs one is a problem the cluster would also hit. `python` is the
    interpreter the image's console scripts (pyflyte-execute) name in their shebang."""
    return [docker, "run", "--rm", "-i", "--network", "none", "--entrypoint", python, ref, "-", *modules]


def command_argv(docker: str, ref: str) -> List[str]:
    """The registered task's own command path: the image's entrypoint (none overridden) + pyflyte-execute."""
    return [docker, "run", "--rm", "--network", "none", ref, "pyflyte-execute", "--help"]


def _image_python(docker: str, ref: str, env: Mapping[str, str]) -> str:
    proc = subprocess.run([docker, "image", "inspect", "--format", "{{json .Config.Labels}}", ref], env=env,
                          capture_output=True, text=True, timeout=60)
    try:
        labels = json.loads(proc.stdout) or {}
    except ValueError:
        labels = {}
    return labels.get(LABEL_PYTHON) or "python3"


def run_in_image(ref: str, modules: Sequence[str], env: Mapping[str, str]) -> Tuple[Optional[dict], str]:
    """Pull `ref`, import `modules` inside it with the image's own interpreter, and start
    `pyflyte-execute --help` the way the cluster will: (the answer, "") or (None, why not)."""
    script = pkgutil.get_data("flytebuild.runtime", "verify_image.py")
    assert script is not None
    denv = docker_env(env)
    docker = _docker(env) or "docker"
    try:
        pull = subprocess.run([docker, "pull", "-q", ref], env=denv, capture_output=True, text=True)
        if pull.returncode != 0:
            return None, f"docker pull {ref} failed: {pull.stderr.strip()}"
        python = _image_python(docker, ref, denv)
        proc = subprocess.run(run_argv(docker, ref, modules, python), input=script.decode(), env=denv,
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 and not proc.stdout.strip():
            return None, (f"the image's python {python} cannot start (is `python` of the flyte_image right?): "
                          f"{proc.stderr.strip()[-300:]}")
        command = subprocess.run(command_argv(docker, ref), env=denv, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"running {ref} in Docker failed: {e}"
    try:
        answer = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, f"running {python} in {ref} failed: {(proc.stderr or proc.stdout).strip()[-500:]}"
    if command.returncode != 0:
        answer["command_error"] = (f"`pyflyte-execute --help` does not start from the image's entrypoint "
                                   f"(exit {command.returncode}): {(command.stderr or command.stdout).strip()[-300:]}")
    return answer, ""


def python_problem(ref: str, cache_dir: Optional[Path]) -> Optional[str]:
    """Static check of the command path: the interpreter the console scripts name is a file of some layer."""
    r = Reference.parse(ref)
    client = RegistryClient(r.registry, cache_dir=cache_dir)
    image = client.pull(r)
    python = ((image.config.get("config") or {}).get("Labels") or {}).get(LABEL_PYTHON)
    if not python or cache_dir is None:
        return None
    wanted = python.lstrip("/")
    for desc in image.manifest.get("layers", []):
        path = client.fetch_blob_path(r.repository, desc["digest"])
        try:
            with tarfile.open(path, "r:*") as tar:
                if any(m.name.lstrip("./") == wanted for m in tar):
                    return None
        except (tarfile.TarError, OSError, EOFError):
            return None  # a layer we cannot read proves nothing either way
    return (f"the image's python {python} (the `python` field; pyflyte-execute's shebang) is not a file in the "
            f"image, so the task cannot start")


def static_check(cache_dir: Optional[Path]) -> Callable[[str, TaskPlan], List[str]]:
    """core.verify.check_images' `static_problems`: labels fetched once per image."""
    labels = functools.lru_cache(maxsize=None)(lambda ref: image_labels(ref, cache_dir))
    python = functools.lru_cache(maxsize=None)(lambda ref: python_problem(ref, cache_dir))

    def check(ref: str, task: TaskPlan) -> List[str]:
        problem = python(ref)
        return ([problem] if problem else []) + static_problems(task, labels(ref))

    return check


def docker_check(env: Mapping[str, str]) -> Callable[[str, Sequence[str]], Tuple[Optional[dict], str]]:
    """core.verify.check_images' `run_in_image`, with the caller's Docker environment."""
    return lambda ref, modules: run_in_image(ref, modules, env)
