"""The expensive real parts, one per test session, shared by every directory (registered by tests/conftest.py).

Before, each directory's conftest.py imported these fixtures from another one (`from tests.e2e.conftest import
pants_repo`), which makes pytest register a second, separate session fixture: every directory started its own
repo copy and pantsd, registry, base-image push and dockerd. Defined once at the root, they are started once.

- `pants_repo`: a throwaway copy of the repo (examples at localhost:5000) with its own pantsd
  (tests/support/repo_copy.py). Tests may edit it but restore what they change: the next test sees the copy.
- `registry`, `cache_dir`, `python_base`: a real docker-registry with the Debian Python base pushed to it.
- `registry_repo`: a second copy whose examples push to (and pull their base from) `registry`.
- `docker`: a real dockerd with its own data-root and socket (tests/images/conftest.py starts it).
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.oci import conftest as oci_support
from tests.support import base_image as base_support
from tests.support.repo_copy import PantsRepo, pants_repo_copy


@pytest.fixture(scope="session")
def pants_repo(tmp_path_factory) -> Iterator[PantsRepo]:
    repo = pants_repo_copy(tmp_path_factory.mktemp("repo"))
    yield repo
    repo.kill_pantsd()


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    reg = oci_support.start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    oci_support.stop_registry(reg)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("oci-cache")


@pytest.fixture(scope="session")
def python_base(registry, cache_dir) -> str:
    """`<registry>/flytebuild/python:3.11`: Debian's python3 (3.11) and its dependencies, one layer."""
    return base_support.push_base_image(registry.host, base_support.DEFAULT_REPOSITORY, cache_dir=cache_dir)


@pytest.fixture(scope="session")
def registry_repo(tmp_path_factory, registry, python_base) -> Iterator[PantsRepo]:
    repo = pants_repo_copy(tmp_path_factory.mktemp("registry-repo"), registry.host)
    yield repo
    repo.kill_pantsd()


@pytest.fixture(scope="session")
def docker():
    from tests.images.conftest import start_docker, stop_docker

    proc, d = start_docker()
    try:
        yield d
    finally:
        stop_docker(proc, d)


def forget_repository(registry, repository: str) -> None:
    """Delete every tag of `repository` in `registry`, and its links to the blobs they use, as if nothing had ever
    been pushed there. The registry is shared by the whole session: a test that asserts that its first push
    uploads calls this first (another directory may have pushed the same content tag before)."""
    from flytebuild.oci import RegistryClient

    client = RegistryClient(registry.host)
    with client.request("GET", f"/v2/{repository}/tags/list", repo=repository, ok=(200, 404)) as resp:
        tags = (json.loads(resp.read()).get("tags") or []) if resp.status == 200 else []
    for tag in tags:
        try:
            raw, _, digest = client.get_manifest(repository, tag)
        except Exception:  # noqa: BLE001 - a tag deleted through another tag of the same manifest
            continue
        manifest = json.loads(raw)
        for d in [manifest["config"], *manifest.get("layers", [])]:
            client.request("DELETE", f"/v2/{repository}/blobs/{d['digest']}", repo=repository, actions="*",
                           ok=(202, 404)).close()
        client.request("DELETE", f"/v2/{repository}/manifests/{digest}", repo=repository, actions="*",
                       ok=(202, 404)).close()


def once_per_run(tmp_path_factory, name: str, make: Callable[[Path], None]) -> Path:
    """A directory filled by `make(dir)` once per test run, for inputs every test only reads (e.g. the built wheel).

    Under pytest-xdist each worker has its own session fixtures, but their temp dirs share a parent: the first
    worker to get here builds under a lock, the others wait for it and reuse the result."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    out, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            make(out)
            done.touch()
    return out
