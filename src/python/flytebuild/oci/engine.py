"""Every call into a Docker engine, in one place: `docker load` (the docker output), `docker run` (verify),
`docker build` + `docker push` (ImageSpec fields that need commands run inside the image), `docker info`.

Callers pass the environment the engine is reached with (DOCKER_HOST, DOCKER_CONFIG, PATH, HOME); stdlib only.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from flytebuild.oci.docker_archive import write_docker_archive
from flytebuild.oci.image import Image
from flytebuild.oci.registry import RegistryClient


class EngineError(OSError):
    """A Docker engine call failed; the message says which and how to fix it."""


def docker_env(env: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The process environment with the caller's Docker variables on top (empty values dropped)."""
    return {k: v for k, v in {**os.environ, **(env or {})}.items() if v}


def docker_exe(env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    return shutil.which("docker", path=(env or os.environ).get("PATH"))


def engine_available(env: Optional[Mapping[str, str]] = None) -> bool:
    docker = docker_exe(env)
    if not docker:
        return False
    try:
        return subprocess.run([docker, "info"], env=docker_env(env), capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def docker_load(image: Image, tag: str, *, base_client: Optional[RegistryClient] = None,
                env: Optional[Mapping[str, str]] = None) -> str:
    """Load `image` into the Docker engine as `tag` (a docker-save archive); returns docker's output line."""
    exe = docker_exe(env)
    if exe is None:
        raise EngineError("no `docker` on PATH: the `docker` output needs a Docker engine and its CLI. "
                          "Fix: install Docker, or use the `push` or `oci` output")
    # Through a file, not a pipe: `docker load` answers only at the end, and a failed load must
    # not leave us blocked writing into a full pipe.
    with tempfile.NamedTemporaryFile(prefix="flytebuild-docker-", suffix=".tar") as tmp:
        write_docker_archive(image, tag, tmp, base_client=base_client)
        tmp.flush()
        proc = subprocess.run([exe, "load", "-i", tmp.name], capture_output=True, env=docker_env(env))
    out, err = proc.stdout, proc.stderr
    if proc.returncode != 0:
        said = err.decode(errors="replace").strip() or out.decode(errors="replace").strip()
        raise EngineError(f"`docker load` failed: {said}. Fix: check that the Docker engine is running (DOCKER_HOST)")
    return out.decode(errors="replace").strip()


def inspect_argv(docker: str, ref: str) -> List[str]:
    """The image ID the engine holds for `ref` (exit 1 when it holds none)."""
    return [docker, "image", "inspect", "--format", "{{.Id}}", ref]


def run_argv(docker: str, ref: str, args: Sequence[str], entrypoint: str = "python3") -> List[str]:
    """No network: an import that needs one is a problem the cluster would also hit."""
    return [docker, "run", "--rm", "-i", "--network", "none", "--entrypoint", entrypoint, ref, *args]


def run_script(ref: str, script: bytes, args: Sequence[str], env: Optional[Mapping[str, str]] = None,
               entrypoint: str = "python3", timeout: float = 600) -> Tuple[Optional[str], str]:
    """Pull `ref` and run `script` (piped on stdin) inside it: (stdout, "") or (None, why it could not run).

    A non-zero exit is not an error here: the script's stdout is its answer."""
    denv = docker_env(env)
    docker = docker_exe(env) or "docker"
    try:
        pull = subprocess.run([docker, "pull", "-q", ref], env=denv, capture_output=True, text=True)
        if pull.returncode != 0:
            return None, f"docker pull {ref} failed: {pull.stderr.strip()}"
        proc = subprocess.run(run_argv(docker, ref, ["-", *args], entrypoint), input=script.decode(), env=denv,
                              capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"running {ref} in Docker failed: {e}"
    if not proc.stdout.strip():
        return None, f"running {entrypoint} in {ref} failed: {(proc.stderr or proc.stdout).strip()[-500:]}"
    return proc.stdout, (proc.stderr or "")


def run_command(ref: str, args: Sequence[str], env: Optional[Mapping[str, str]] = None,
                timeout: float = 600) -> Tuple[int, str]:
    """`args` run through the image's own entrypoint (none overridden), as the cluster runs a task's
    container: (exit code, the end of its output). The image must be pulled already (run_script pulls)."""
    docker = docker_exe(env) or "docker"
    try:
        proc = subprocess.run([docker, "run", "--rm", "--network", "none", ref, *args], env=docker_env(env),
                              capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as e:
        return -1, str(e)
    return proc.returncode, (proc.stderr or proc.stdout).strip()[-300:]


def build_and_push(dockerfile: str, tag: str, env: Optional[Mapping[str, str]] = None) -> None:
    """`docker build` a context holding only `dockerfile` as `tag`, then `docker push` it."""
    docker = docker_exe(env) or "docker"
    with tempfile.TemporaryDirectory(prefix="flytebuild-engine-") as ctx:
        Path(ctx, "Dockerfile").write_text(dockerfile)
        for args in (["build", "--network", "host", "-t", tag, ctx], ["push", tag]):
            try:
                proc = subprocess.run([docker, *args], env=docker_env(env), capture_output=True, text=True)
            except OSError as e:
                raise EngineError(f"cannot run `docker {args[0]}`: {e}") from None
            if proc.returncode != 0:
                raise EngineError(f"`docker {args[0]}` failed: {(proc.stderr or proc.stdout).strip()[-800:]}")
