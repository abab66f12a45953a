"""Real parts for image tests: the Debian registry (tests/oci), a Python 3.11 base image made from
this machine's Debian packages and pushed to it, and a real Docker engine (Debian docker.io) with
its own data-root and socket, stopped after the session."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.oci import conftest as oci_support
from tests.support import base_image as base_support

SUPPORT = Path(__file__).resolve().parents[1] / "support"
BASE_REPOSITORY = base_support.DEFAULT_REPOSITORY


# registry, cache_dir, python_base and docker are one per session (tests/support/fixtures.py, registered by
# tests/conftest.py), shared with tests/cli, tests/bazel, tests/deploy and tests/run. The names stay importable
# for conftests that re-exported them; they are not fixtures here, so importing them shadows nothing.
registry = cache_dir = python_base = docker = None


@pytest.fixture
def make_registry(tmp_path):
    started = []

    def make(name: str = "reg", htpasswd=None):
        reg = oci_support.start_registry(tmp_path / name, htpasswd=htpasswd)
        started.append(reg)
        return reg

    yield make
    for reg in started:
        oci_support.stop_registry(reg)


# --------------------------------------------------------------------------- Docker engine


@dataclass
class Docker:
    host: str  # DOCKER_HOST value, "unix:///.../docker.sock"
    root: Path

    @property
    def env(self) -> dict:
        return {**os.environ, "DOCKER_HOST": self.host}

    def run(self, *args: str, check: bool = True, timeout: float = 300, input=None) -> subprocess.CompletedProcess:
        proc = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                              input=input)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc


def _ensure_docker() -> None:
    if not (shutil.which("dockerd") and Path("/usr/bin/docker").exists()):
        subprocess.run(["bash", str(SUPPORT / "install_docker.sh")], check=True)


def start_docker() -> tuple:
    """overlay2 where the kernel and the temp dir's filesystem allow it, else vfs (TOOLCHAIN's flags).

    vfs copies the whole filesystem per layer, so pulling a many-layer image costs minutes there.
    """
    _ensure_docker()
    try:
        return _start_docker("overlay2")
    except RuntimeError:
        return _start_docker("vfs")


def _start_docker(driver: str) -> tuple:
    # Short paths: unix socket paths are limited to 108 bytes (containerd's live under exec-root).
    root = Path(tempfile.mkdtemp(prefix="fbd-", dir="/tmp"))
    sock = root / "d.sock"
    log = open(root / "dockerd.log", "wb")
    proc = subprocess.Popen(
        ["dockerd", "--iptables=false", "--ip-masq=false", "--bridge=none", f"--storage-driver={driver}",
         f"--data-root={root / 'data'}", f"--exec-root={root / 'x'}", f"--pidfile={root / 'd.pid'}",
         f"--host=unix://{sock}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    docker = Docker(f"unix://{sock}", root)
    deadline = time.monotonic() + 60
    while True:
        if sock.exists() and docker.run("version", check=False, timeout=10).returncode == 0:
            return proc, docker
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            text = (root / "dockerd.log").read_text()[-3000:]
            subprocess.run(["rm", "-rf", str(root)], check=False)
            raise RuntimeError(f"dockerd ({driver}) did not start:\n{text}")
        time.sleep(0.2)


def stop_docker(proc: subprocess.Popen, docker: Docker) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    # vfs layers are plain directories owned by root: remove them so /tmp does not fill up.
    subprocess.run(["rm", "-rf", str(docker.root)], check=False)




@pytest.fixture(scope="session")
def base_image(registry, cache_dir):
    """A tiny one-layer base (tests/oci's), for tests that never run the image."""
    from flytebuild.oci import RegistryClient, build_image, build_layer, publish

    layer = build_layer(oci_support.BASE_FILES, name="base-files")
    img = build_image([layer], None, env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
                      cmd=["/usr/bin/hello"])
    ref = registry.ref("base/tiny:1")
    publish(img, ref, cache_dir=cache_dir)
    return RegistryClient(registry.host, cache_dir=cache_dir).pull(ref)


@pytest.fixture(scope="session")
def repo(registry_repo):
    """The session's copy whose images push to (and pull their base from) the test registry (`registry_repo`,
    tests/support/fixtures.py; shared with tests/deploy/test_deploy_images.py); its `pants(env=...)` adds
    variables (DOCKER_HOST) for one command."""
    return registry_repo
