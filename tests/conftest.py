"""Shared fixtures: the repo root and the user's own environment (flytekit from the committed lockfile)."""
import glob
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

# One of each expensive real part per session, shared by every directory (see the module's docstring).
from tests.support.fixtures import cache_dir, docker, pants_repo, python_base, registry, registry_repo  # noqa: F401
from tests.support.repo_copy import stop_workers

REPO = Path(__file__).resolve().parents[1]


def _exported_python():
    found = sorted(glob.glob(str(REPO / "dist/export/python/virtualenvs/flyte/*/bin/python")))
    return found[-1] if found else None


# A test that uses one of these (directly or through another fixture) drives ./pants in a repo copy, a Docker
# engine, Bazel or a wheel build (tests/adoption): it is marked `slow`, so `make test-fast` skips it. `make test`
# (CI) runs everything.
SLOW_FIXTURES = frozenset({"pants_repo", "repo", "deploy_repo", "registry_repo", "docker", "bazel_ws", "built_dist"})


# tryfirst: pytest-xdist reads the xdist_group marks in its own pytest_collection_modifyitems.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    rank = {}
    for item in items:
        slow = SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if slow:
            item.add_marker(pytest.mark.slow)
        group = _worker_group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
        rank[item.nodeid] = FIRST.get(group, 2 if slow or item.get_closest_marker("slow") else 3)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Longest work first, so that no long test starts last while the other workers sit idle (the Makefile
        # passes --no-loadscope-reorder: workers take the work units in this order).
        items.sort(key=lambda item: rank[item.nodeid])


# The shared-copy groups are the longest chains of the suite (measured: CONTRIBUTING.md).
FIRST = {"pants_repo": 0, "registry_repo": 1, "registry_repo_images": 1}

# The registry users are two chains, each with its own registry, repo copy, pantsd and dockerd: as one chain they
# were the critical path of the run (about 80 % of its wall time). These files (image building and publishing)
# are the second chain; the verify and end-to-end files the first. Measured balance: CONTRIBUTING.md.
REGISTRY_IMAGES_FILES = frozenset({
    "tests/cli/test_images.py", "tests/images/test_imagespec.py", "tests/images/test_package.py",
    "tests/images/test_package_logs.py", "tests/deploy/test_deploy_images.py",
})


def _worker_group(item):
    """`make test` spreads the suite over worker processes (pytest-xdist, `--dist loadgroup`), and every worker
    has its own session and module fixtures. One group per expensive copy keeps all of its users on one worker,
    so each repo copy + pantsd and each dockerd starts once per run, and each module fixture once; every other
    test goes to whichever worker is free."""
    names = set(getattr(item, "fixturenames", ()))
    if "pants_repo" in names:
        return "pants_repo"
    if names & {"registry_repo", "docker"}:
        in_images = item.nodeid.split("::")[0] in REGISTRY_IMAGES_FILES
        return "registry_repo_images" if in_images else "registry_repo"
    fixturedefs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    if any(defs and defs[-1].scope == "module" for defs in fixturedefs.values()):
        return item.nodeid.split("::")[0]
    return None


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def user_python() -> str:
    """CPython 3.11 with flytekit, exported by Pants from examples/3rdparty/flyte.lock."""
    override = os.environ.get("FLYTEBUILD_USER_PYTHON")
    if override:
        return override
    python = _exported_python()
    if python is None:
        subprocess.run([str(REPO / "pants"), "export", "--resolve=flyte"], cwd=REPO, check=True)
        python = _exported_python()
    assert python, "pants export --resolve=flyte did not produce a virtualenv"
    return python


@pytest.fixture(scope="session", autouse=True)
def _no_worker_outlives_the_session(tmp_path_factory) -> Iterator[None]:
    """Warm workers (the CLI's and pantsd's, docs/worker.md) idle for minutes after the command that started them:
    after the session, the ones whose sockets are in its temp directory (per xdist worker) are stopped, whichever
    test started them. Each runs `runtime/__main__.py worker --socket <path>`."""
    yield
    base = str(tmp_path_factory.getbasetemp()) + os.sep

    def socket_in_base(argv: list) -> bool:
        at = argv.index("--socket") + 1
        return at < len(argv) and argv[at].startswith(base)

    stop_workers(socket_in_base)


# FLYTEBUILD_TEST_TIMELINE=<file>: each worker appends one line per test (worker, start, end, CPU seconds of the
# worker and the processes it waited for, nodeid), so the busiest worker's chain — the run's critical path — and
# the tests that burn the CPU can be read off (CONTRIBUTING.md, "How `make test` runs"). Daemons (pantsd, dockerd,
# a registry) are no waited-for children: their CPU is not in it.
_TIMELINE = os.environ.get("FLYTEBUILD_TEST_TIMELINE")

if _TIMELINE:
    import resource
    import time

    def _cpu() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        start, cpu = time.time(), _cpu()
        yield
        with open(_TIMELINE, "a") as f:
            f.write(f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}\t{start:.2f}\t{time.time():.2f}\t"
                    f"{_cpu() - cpu:.1f}\t{item.nodeid}\n")
