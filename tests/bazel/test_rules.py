"""The Bazel rules (rules/*.bzl) built for real by Bazel 4.2.3, offline, on tests/bazel/workspace: a
two-task workflow whose image bakes one task. Plan, image (OCI layout) and registration archive are
declared outputs; an edit re-runs exactly the actions whose inputs it touches; the versions equal
those of the CLI's import analysis on the same tree; `bazel run :wf` deploys, `bazel run :wf.run` runs
locally."""
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TARGETS = ["//demo:wf", "//demo:image", "--output_groups=+package,+oci"]


def _mnemonics(spawns):
    return sorted(m for m, _ in spawns)


def _tasks(plan):
    return {t["name"]: t for t in plan["workflows"][0]["tasks"]}


def _oci_labels(layout: Path) -> dict:
    index = json.loads((layout / "index.json").read_text())
    blob = lambda d: layout / "blobs" / "sha256" / d.split(":", 1)[1]  # noqa: E731
    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
    return json.loads(blob(manifest["config"]["digest"]).read_text())["config"]["Labels"]


def _cli_plan(ws, user_python):
    """The same tree planned by `flytebuild` from a flytebuild.toml (import analysis, no Bazel)."""
    (ws.root / "flytebuild.toml").write_text(
        'requirements = "3rdparty/requirements.txt"\nlockfile = "3rdparty/flyte.lock"\n'
        f'default_base = "{ws.registry}/flytebuild/python:3.11"\nregistry = "{ws.registry}"\n'
        '[images."//demo:image"]\nimage_name = "demo"\nrepository = "flytebuild/bazel-demo"\n'
        'dependencies = ["demo/prep.py"]\nrequirements = ["flytekit"]\nenv = { PYTHONUNBUFFERED = "1" }\n'
        '[workflows."//demo:wf"]\nentrypoint = "demo.workflows:wf"\nimage = "//demo:image"\n'
        'pod_template = "//demo:pod"\n'
        '[pod_templates."//demo:pod"]\nsource = "demo/pod.yaml"\noverlays = { prod = "demo/pod-prod.yaml" }\n'
        'values = { memory = "1Gi" }\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "flytebuild.cli", "plan", "--format=json"],
        cwd=ws.root,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": str(REPO / "src/python"),
            "FLYTEBUILD_PYTHON": user_python,
            "FLYTEBUILD_CACHE_DIR": "",
        },
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_build_plan_image_package_then_rebuild_only_what_an_edit_touches(bazel_ws, user_python, registry, capsys):
    ws = bazel_ws
    ws.registry = registry.host
    _, spawns, cold = ws.bazel("build", *TARGETS)
    assert _mnemonics(spawns) == ["FlyteImage", "FlyteImagePlan", "FlytePackage", "FlytePlan"]

    plan = json.loads(ws.bin("demo/wf.plan.json").read_text())
    tasks = _tasks(plan)
    assert tasks["demo.prep.clean"]["mode"] == "baked"
    assert tasks["demo.train.fit"]["mode"] == "fast"
    assert tasks["demo.train.fit"]["missing_sources"] == ["demo/train.py", "demo/util.py"]
    assert tasks["demo.prep.clean"]["pod_template_source"] == "//demo:pod (workflow)"
    pod = tasks["demo.prep.clean"]["pod_template"]["pod_spec"]
    assert pod["containers"][0]["resources"]["limits"]["memory"] == "1Gi"
    (image,) = plan["images"]
    assert image["sources"] == ["demo/__init__.py", "demo/prep.py"] and image["requirements"] == ["flytekit"]
    assert json.loads(ws.bin("demo/image.image-plan.json").read_text())["images"] == [image]

    # The image: an OCI layout holding exactly the closure, and its ref/digest record.
    image_dir = ws.bin("demo/image.image")
    record = json.loads((image_dir / "demo.image.image.json").read_text())
    assert record["ref"] == image["ref"] and record["digest"].startswith("sha256:")
    labels = _oci_labels(image_dir / "demo.oci")
    assert json.loads(labels["org.flytebuild.source-files"]) == ["demo/__init__.py", "demo/prep.py"]
    assert labels["org.flytebuild.fingerprint"] == image["fingerprint"]

    # The registration archive: every entity, and a bundle with only the fast task's code.
    package = ws.bin("demo/wf.package/demo.wf")
    (bundle,) = [p for p in package.iterdir() if p.name.startswith("fast")]
    with tarfile.open(bundle) as tar:
        assert sorted(m.name for m in tar.getmembers() if m.isfile()) == [
            "demo/__init__.py",
            "demo/train.py",
            "demo/util.py",
        ]
    with tarfile.open(package / "flyte-package.tgz") as tar:
        assert len([n for n in tar.getnames() if n.endswith(".pb")]) >= 3

    # Bazel's graph and the CLI's import analysis agree on every version.
    cli = _cli_plan(ws, user_python)
    assert cli["images"][0]["version"] == image["version"]
    assert {n: t["version"] for n, t in _tasks(cli).items()} == {n: t["version"] for n, t in tasks.items()}
    assert cli["workflows"][0]["version"] == plan["workflows"][0]["version"]

    assert [t["pod_template"] for t in _tasks(cli).values()] == [t["pod_template"] for t in tasks.values()]

    # Nothing changed: nothing runs.
    _, spawns, noop = ws.bazel("build", *TARGETS)
    assert spawns == []

    # The fast task's module: the workflow's plan and archive re-run, the image is untouched.
    ws.write("demo/train.py", (ws.root / "demo/train.py").read_text() + "\n\nSCALE = 1\n")
    _, spawns, incremental = ws.bazel("build", *TARGETS)
    assert _mnemonics(spawns) == ["FlytePackage", "FlytePlan"]
    after = json.loads(ws.bin("demo/wf.plan.json").read_text())
    assert _tasks(after)["demo.train.fit"]["version"] != tasks["demo.train.fit"]["version"]
    assert _tasks(after)["demo.prep.clean"]["version"] == tasks["demo.prep.clean"]["version"]
    assert json.loads((image_dir / "demo.image.image.json").read_text())["digest"] == record["digest"]

    # The baked task's module: the image changes too, so everything downstream re-runs.
    ws.write("demo/prep.py", (ws.root / "demo/prep.py").read_text() + "\n\nLIMIT = 0\n")
    _, spawns, baked_edit = ws.bazel("build", *TARGETS)
    assert _mnemonics(spawns) == ["FlyteImage", "FlyteImagePlan", "FlytePackage", "FlytePlan"]
    assert json.loads((image_dir / "demo.image.image.json").read_text())["digest"] != record["digest"]

    # The pod template: the workflow's plan and archive re-run, the image is untouched.
    ws.write("demo/pod.yaml", (ws.root / "demo/pod.yaml").read_text().replace("${memory}", "2Gi"))
    _, spawns, _ = ws.bazel("build", *TARGETS)
    assert _mnemonics(spawns) == ["FlytePackage", "FlytePlan"]

    with capsys.disabled():
        print(
            f"\nbazel: cold {cold:.1f}s, no-op {noop:.1f}s, fast-task edit {incremental:.1f}s, "
            f"baked-task edit {baked_edit:.1f}s"
        )


def test_bazel_run_deploys_what_changed(bazel_ws, user_python):
    from tests.support.flyteadmin.fixture import flyteadmin

    with flyteadmin(user_python) as admin:
        args = ["run", "//demo:wf", "--", "--endpoint", admin.endpoint, "--insecure", "--format=json"]
        proc, _, _ = bazel_ws.bazel(*args)
        first = json.loads(proc.stdout)
        assert {e["status"] for e in first["entities"]} == {"registered"}
        names = {e["name"] for e in first["entities"]}
        assert {"demo.prep.clean", "demo.train.fit", "demo.workflows.wf"} <= names
        assert admin.uploads.count == 1  # the fast task's bundle
        proc, _, _ = bazel_ws.bazel(*args)
        assert {e["status"] for e in json.loads(proc.stdout)["entities"]} == {"unchanged"}
        assert admin.uploads.count == 1

        # flyte_reference: launched as registered (its latest version), nothing built or deployed.
        mark = admin.mark()
        proc, _, _ = bazel_ws.bazel(
            "run", "//demo:registered_wf", "--", "--endpoint", admin.endpoint, "--insecure", "--format=json"
        )
        launched = json.loads(proc.stdout)
        assert launched["entity"]["name"] == "demo.workflows.wf"
        assert [e["entity"]["name"] for e in admin.store.executions()] == ["demo.workflows.wf"]
        assert admin.since(mark)["counters"].get("task", {}).get("created", 0) == 0


def test_bazel_run_dot_run_runs_the_workflow_locally_with_typed_inputs(bazel_ws):
    # `:wf.run`: `flytebuild run` on Bazel's graph, in the user's interpreter; nothing deployed.
    proc, _, _ = bazel_ws.bazel("run", "//demo:wf.run", "--", "--xs", "[4.0, -2.0, 2.0]", "--format=json")
    assert json.loads(proc.stdout) == {"outputs": {"o0": 3.0}}  # clean drops -2.0, fit averages 4.0 and 2.0

    # The workflow's default input, in the text format.
    proc, _, _ = bazel_ws.bazel("run", "//demo:wf.run")
    assert [ln.split() for ln in proc.stdout.splitlines()] == [["OUTPUT", "TYPE", "VALUE"], ["o0", "float", "2.0"]]
    assert "xs = [1.0, -2.0, 3.0]  (signature default)" in proc.stderr

    # A bad input: the CLI's one clear message and exit code, no traceback.
    proc, _, _ = bazel_ws.bazel("run", "//demo:wf.run", "--", "--xs", "three", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "error: input --xs: expected List[float] as JSON, got 'three' (target //demo:wf)" in proc.stderr
