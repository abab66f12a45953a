"""Ctrl-C on the real `./pants` while an image push (slowed by the fault proxy) or a registration (slowed by the
stand-in FlyteAdmin) is in flight: a real SIGINT to the client's process group, as a terminal sends it.

After it nothing more happens: no request reaches the registry past a short grace (what was already on the wire),
the tag never appears, nothing is registered later, and what remains is consistent (no tag without its blobs, no
workflow without its tasks). The same command run again completes.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.reliability.faultproxy import FaultProxy
from tests.reliability.test_deploy import _dangling, _entities
from tests.reliability.test_pants import OUR_FRAME, WF
from tests.reliability.test_registry import _blob_exists
from tests.support.flyteadmin.fixture import flyteadmin
from tests.support.repo_copy import PANTS_ENV

DIR = "examples/reliability_cancel"
DELAY = 1.0  # seconds each blob PUT waits at the proxy: a push of the flytekit image takes well over 10 s
GRACE = DELAY + 2.0  # requests already on the wire when Ctrl-C came may still finish; a push going on would
# have sent new ones within any window of this length
ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture
def slow_registry(registry):
    proxy = FaultProxy(registry.host)
    yield proxy
    proxy.close()


@pytest.fixture
def project(pants_repo, slow_registry, python_base):
    """A flyte_image (flytekit and its dependencies: dozens of layers) pushed through the proxy to a repository
    no earlier run used, and a workflow on it. Removed afterwards: the shared repo copy is left as it was."""
    repository = f"rel/cancel-{uuid.uuid4().hex[:8]}"
    pants_repo.write(f"{DIR}/__init__.py", "")
    pants_repo.write(f"{DIR}/wf.py", WF)
    pants_repo.write(f"{DIR}/BUILD", f'''
python_sources()

flyte_image(name="slow", base="{python_base}", registry="{slow_registry.host}", repository="{repository}",
            dependencies=["examples/3rdparty:reqs#flytekit"])

flyte_workflow(name="wf", entrypoint="wf.py:wf", image=":slow")
''')
    yield repository
    import shutil

    shutil.rmtree(pants_repo.root / DIR, ignore_errors=True)


def _manifest(host: str, repository: str, ref: str):
    req = urllib.request.Request(f"http://{host}/v2/{repository}/manifests/{ref}", headers={"Accept": ACCEPT})
    try:
        with urllib.request.urlopen(req, timeout=10) as rsp:
            return json.loads(rsp.read())
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def _tags(host: str, repository: str):
    try:
        with urllib.request.urlopen(f"http://{host}/v2/{repository}/tags/list", timeout=10) as rsp:
            return json.loads(rsp.read()).get("tags") or []
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return []
        raise


def _ctrl_c(repo, tmp_path: Path, args, ready, what: str):
    """Run `./pants ARGS`, and once `ready()` holds send SIGINT to its process group (a terminal's Ctrl-C).
    Returns (exit code, output, seconds from the signal to the client's exit)."""
    out = tmp_path / f"pants-{len(list(tmp_path.glob('pants-*')))}.log"
    with open(out, "w") as log:
        proc = subprocess.Popen([str(repo.root / "pants"), *args], cwd=repo.root, env={**os.environ, **PANTS_ENV},
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 600
        while not ready():
            assert proc.poll() is None, f"finished before {what}:\n{out.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"never reached {what}:\n{out.read_text()[-3000:]}"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        signalled = time.monotonic()
        code = proc.wait(timeout=60)
    return code, out.read_text(), time.monotonic() - signalled


def _pushing(proxy: FaultProxy):
    return lambda: proxy.fired("delay") >= 1


def _assert_push_stopped(proxy: FaultProxy, registry, repository: str) -> None:
    """Past the grace, the registry hears nothing more, and no tag ever appears."""
    time.sleep(GRACE)
    heard = len(proxy.log)
    time.sleep(GRACE)
    late = proxy.log[heard:]
    assert late == [], f"requests after Ctrl-C: {late}"
    assert not [p for m, p, _ in proxy.log if m == "PUT" and "/manifests/" in p], "a manifest was pushed"
    assert _tags(registry.host, repository) == []


def _push_completes(repo, proxy: FaultProxy, registry, repository: str, *args: str) -> None:
    """The same command, unhindered, pushes the whole image: its tag and every blob it names."""
    proxy.rules.clear()
    proc = repo.pants(*args)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    tags = _tags(registry.host, repository)
    assert len(tags) == 1, tags
    manifest = _manifest(registry.host, repository, tags[0])
    for d in [manifest["config"], *manifest["layers"]]:
        assert _blob_exists(registry.host, repository, d["digest"]), d


@pytest.mark.parametrize("goal", ["package", "publish"])
def test_ctrl_c_stops_an_image_push(pants_repo, project, slow_registry, registry, tmp_path, goal):
    """`package` with image_output=push pushes inside a rule; `publish` pushes in an InteractiveProcess."""
    repository = project
    slow_registry.add("PUT", r"/blobs/uploads/", "delay", times=-1, seconds=DELAY)
    args = (["--flyte-image-output=push"] if goal == "package" else []) + [goal, f"{DIR}:slow"]
    code, output, took = _ctrl_c(pants_repo, tmp_path, args, _pushing(slow_registry), "the first blob upload")
    assert code != 0, output[-3000:]
    assert took < 30, f"the client took {took:.0f} s to stop"
    assert not OUR_FRAME.search(output), f"a traceback of ours:\n{output[-3000:]}"
    _assert_push_stopped(slow_registry, registry, repository)
    _push_completes(pants_repo, slow_registry, registry, repository, *args)


def test_ctrl_c_during_flyte_deploy_leaves_nothing_half_done(pants_repo, project, slow_registry, registry, tmp_path,
                                                             user_python):
    """Ctrl-C while flyte-deploy pushes its image: no tag later and nothing registered. Ctrl-C while it registers
    (every FlyteAdmin answer slowed to 1 s): nothing more is asked of FlyteAdmin, nothing dangles. Then a full
    deploy holds every entity exactly once."""
    repository = project
    with flyteadmin(user_python, latency_ms=1000) as admin:
        args = [f"--flyte-endpoint={admin.endpoint}", "--flyte-insecure", "flyte-deploy", "--format=json",
                f"{DIR}:wf"]
        slow_registry.add("PUT", r"/blobs/uploads/", "delay", times=-1, seconds=DELAY)
        code, output, took = _ctrl_c(pants_repo, tmp_path, args, _pushing(slow_registry), "the first blob upload")
        assert code != 0 and took < 30 and not OUR_FRAME.search(output), (code, took, output[-3000:])
        _assert_push_stopped(slow_registry, registry, repository)
        assert all(not ids for ids in _entities(admin).values()) and admin.uploads.count == 0

        slow_registry.rules.clear()

        def registering():
            return any(n for rpc, n in admin.store.rpcs().items() if rpc.startswith("Create"))

        code, output, took = _ctrl_c(pants_repo, tmp_path, args, registering, "the first registration")
        assert code != 0 and took < 30 and not OUR_FRAME.search(output), (code, took, output[-3000:])
        # Tasks are created first: the one in flight may land; the workflow and launch plan, asked for only after
        # it (each answer takes 1 s), never do: the registration process was stopped.
        time.sleep(4.0)
        rpcs = admin.store.rpcs()
        assert not rpcs.get("CreateWorkflow") and not rpcs.get("CreateLaunchPlan"), rpcs
        assert not _entities(admin)["workflow"] and not _entities(admin)["launch_plan"]
        assert _dangling(admin) == []

        admin.set_latency(0)  # the full deploy below need not wait 1 s per answer
        proc = pants_repo.pants(*args)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        summary = json.loads(proc.stdout)
        held = [(k, i["name"], i["version"]) for k, items in _entities(admin).items() for i in items]
        assert len(held) == len(set(held)), held
        kinds = {"task": "task", "workflow": "workflow", "launch_plan": "launch_plan", "launch plan": "launch_plan"}
        assert set(held) == {(kinds.get(e["kind"], e["kind"]), e["name"], e["version"]) for e in summary["entities"]}
        assert _dangling(admin) == []
        assert len(_tags(registry.host, repository)) == 1


def test_ctrl_c_stops_the_push_process_publish_runs(fault_proxy, registry, base_image, tmp_path):
    """`python -m flytebuild.service.push` (what `publish` runs) on SIGINT: queued and in-flight uploads stop, exit
    130 with one line, and the tag never appears."""
    import sys

    from flytebuild.oci import build_image, build_layer, write_oci_layout

    layers = [build_layer([(f"l{i}.bin", os.urandom(2048))], name=f"l{i}") for i in range(12)]
    layout = write_oci_layout(build_image(layers, None), tmp_path / "img.oci")
    fault_proxy.add("PUT", r"/blobs/uploads/", "delay", times=-1, seconds=DELAY)
    ref = f"{fault_proxy.host}/rel/push-{uuid.uuid4().hex[:8]}:1"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src/python")}
    proc = subprocess.Popen([sys.executable, "-m", "flytebuild.service.push", str(layout), ref, "2"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not fault_proxy.fired("delay"):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, (proc.returncode, err)
    _assert_push_stopped(fault_proxy, registry, ref.split("/", 1)[1].rsplit(":", 1)[0])
