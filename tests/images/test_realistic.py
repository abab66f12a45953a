"""A project in the shape of published flytekit examples (tests/images/realistic): ImageSpecs in code with
`source_root` and `copy`, unnamed specs in two packages, a raw ContainerTask with an ImageSpec that copies its
script, a Pod plugin task with a flyte_pod_template, a map task and a conditional with an Echo task.

Real Pants in a temp repo copy, the Debian registry, a real Docker engine and the stand-in FlyteAdmin over gRPC."""
from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.support.layer_cache import layers  # noqa: F401 - fixture (one layer cache per test process)

PROJECT = Path(__file__).parent / "realistic"
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
WORKFLOWS = ("basics", "containers", "data", "ml", "pod")
PYTHON_TASKS = {
    "realistic.basics.hello.greet", "realistic.basics.hello.total", "realistic.data.tasks.scale",
    "realistic.ml.train.fit", "realistic.pod.tasks.read_shared",
}


def sh(repo, command: str, env=None):
    """Run a documented command line (`./pants ...`, as docs/imagespec.md shows it) in the repo copy."""
    words = command.split()
    assert words[0] == "./pants"
    return repo.pants(*words[1:], env=env)


@pytest.fixture(scope="module")
def project(repo, registry):
    dest = repo.root / "examples" / "realistic"
    shutil.copytree(PROJECT, dest, dirs_exist_ok=True)
    for f in dest.rglob("*"):
        if f.is_file() and f.suffix in (".py", "") and f.name != "README.md":
            f.write_text(f.read_text().replace("localhost:5000", registry.host))
    return repo


@pytest.fixture(scope="module")
def plan(project):
    proc = sh(project, "./pants flyte-plan --format=json examples/realistic::")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    return {t["name"]: t for wf in data["workflows"] for t in wf["tasks"]}, data


def test_plan_bakes_what_the_imagespecs_hold(plan, registry):
    tasks, data = plan
    for name in PYTHON_TASKS:
        t = tasks[name]
        assert (t["mode"], t["image_source"]) == ("baked", "code:ImageSpec"), (name, t)
        assert t["image_ref"].startswith(registry.host + "/") and t["missing_sources"] == []
    # The map task runs the mapped task's code from the same image.
    (mapped,) = [t for n, t in tasks.items() if n.startswith("realistic.basics.hello.map_square")]
    assert mapped["mode"] == "baked" and mapped["image_ref"] == tasks["realistic.basics.hello.greet"]["image_ref"]
    # Echo runs in propeller: no image, no bundle.
    echo = tasks["realistic.basics.echo"]
    assert (echo["mode"], echo["image_ref"], echo["image_address"], echo["image"]) == ("none", None, None, "-")
    # The raw container gets its ImageSpec's content tag, never a tagless `registry/name`.
    triple = tasks["realistic.containers.triple"]
    assert triple["mode"] == "container" and triple["image_ref"].startswith(f"{registry.host}/realistic-script:")
    # Unnamed specs in two packages: both `flytekit` by name, two images by content.
    data_ref, ml_ref = tasks["realistic.data.tasks.scale"]["image_ref"], tasks["realistic.ml.train.fit"]["image_ref"]
    assert data_ref.startswith(f"{registry.host}/flytekit:") and ml_ref.startswith(f"{registry.host}/flytekit:")
    assert data_ref != ml_ref
    specs = {i["ref"]: i for wf in data["workflows"] for i in wf["spec_images"]}
    assert {c["destination"] for c in specs[triple["image_ref"]]["copies"]} == {"script.py"}
    assert specs[data_ref]["sources"] == ["examples/realistic/data/tasks.py", "examples/realistic/data/transform.py"]
    assert specs[ml_ref]["sources"] == ["examples/realistic/ml/train.py"]  # source_root: only what lies under it
    for ref, image in specs.items():
        assert any(r.split("==")[0] == "flytekit" for r in image["requirements"]), ref


@pytest.fixture(scope="module")
def deployed(project, registry, user_python, layers):
    from tests.support.flyteadmin.fixture import flyteadmin

    cache = layers
    with flyteadmin(user_python) as admin:
        proc = project.pants(f"--flyte-endpoint={admin.endpoint}", "--flyte-insecure",
                             f"--flyte-image-cache-dir={cache}", "flyte-deploy", "--format=json",
                             *(f"examples/realistic/{w}:wf" for w in WORKFLOWS), env=NO_ENGINE)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        yield admin, json.loads(proc.stdout)


def test_deploy_registers_baked_tasks_without_fast_execute_and_no_bundle(deployed, plan):
    from tests.deploy.conftest import stored_task, task_container

    admin, summary = deployed
    tasks, _ = plan
    registered = {e["name"]: e for e in summary["entities"] if e["kind"] == "task"}
    assert PYTHON_TASKS <= set(registered) and "realistic.containers.triple" in registered
    for name in PYTHON_TASKS:
        container = task_container(stored_task(admin, name, registered[name]["version"]))
        assert container["image"] == tasks[name]["image_ref"]
        assert "pyflyte-execute" in container["args"] and "pyflyte-fast-execute" not in container["args"], name
    # Every task is baked (or needs no code): nothing was bundled or uploaded.
    assert not summary.get("bundle") and summary.get("bytes_uploaded", 0) == 0
    triple = task_container(
        stored_task(admin, "realistic.containers.triple", registered["realistic.containers.triple"]["version"])
    )
    assert triple["image"] == tasks["realistic.containers.triple"]["image_ref"]
    echo = stored_task(admin, "realistic.basics.echo", registered["realistic.basics.echo"]["version"])
    assert "container" not in echo and "k8s_pod" not in echo


def test_pod_plugin_spec_merged_with_the_pod_template(deployed, project):
    from tests.deploy.conftest import stored_task

    admin, summary = deployed
    (entry,) = [e for e in summary["entities"] if e["name"] == "realistic.pod.tasks.read_shared"]
    pod = stored_task(admin, entry["name"], entry["version"])["k8s_pod"]
    spec = pod["pod_spec"]
    containers = {c["name"]: c for c in spec["containers"]}
    # The plugin's own pod spec: the sidecar, the shared volume, the primary's resources and mount...
    assert set(containers) == {"primary", "sidecar"}
    assert [v["name"] for v in spec["volumes"]] == ["shared"]
    assert containers["primary"]["resources"]["requests"]["cpu"] == "1"
    assert {"name": "shared", "mountPath": "/shared"} in containers["primary"]["volumeMounts"]
    # ...plus what the flyte_pod_template adds.
    assert spec["tolerations"][0]["key"] == "dedicated"
    assert any(e["name"] == "FLYTE_ENV" for e in containers["primary"]["env"])
    assert pod["metadata"]["labels"]["team"] == "ml"
    # flyte-render prints the same spec.
    proc = sh(project, "./pants flyte-render --format=json examples/realistic/pod:wf")
    assert proc.returncode == 0, proc.stderr
    (rendered,) = json.loads(proc.stdout)["pods"]
    rspec = rendered["pod"]["pod_spec"]
    assert {c["name"] for c in rspec["containers"]} == {"primary", "sidecar"}
    assert rspec["volumes"] == spec["volumes"] and rspec["tolerations"] == spec["tolerations"]
    assert "code" in rendered["source"] and "examples/realistic/pod:template" in rendered["source"]


def test_images_hold_flytekit_and_the_container_finds_its_script(deployed, plan, docker):
    tasks, _ = plan
    for ref in sorted({tasks[n]["image_ref"] for n in PYTHON_TASKS}):
        docker.run("pull", ref)
        out = docker.run(
            "run",
            "--rm",
            "--network",
            "none",
            ref,
            "sh",
            "-c",
            "command -v pyflyte-execute && python3 -c 'import flytekit; print(flytekit.__version__)'",
        ).stdout
        assert "pyflyte-execute" in out and "1.16.31" in out, ref
    # The container task's registered command, run in its image: the copied script is where it looks.
    from tests.deploy.conftest import stored_task, task_container

    admin, summary = deployed
    (entry,) = [e for e in summary["entities"] if e["name"] == "realistic.containers.triple"]
    container = task_container(stored_task(admin, entry["name"], entry["version"]))
    command = [a.replace("{{.inputs.n}}", "4") for a in container["command"] + container.get("args", [])]
    ref = tasks["realistic.containers.triple"]["image_ref"]
    docker.run("pull", ref)
    out = docker.run(
        "run",
        "--rm",
        "--network",
        "none",
        ref,
        "sh",
        "-c",
        "mkdir -p /var/outputs && " + " ".join(command) + " && cat /var/outputs/out",
    ).stdout
    assert out.strip().endswith("12")


EXTRA = '''
"""A third unrelated package with its own unnamed ImageSpec."""
from flytekit import ImageSpec, task

image = ImageSpec(registry="{registry}", base_image="{registry}/flytebuild/python:3.11", source_root=".")


@task(container_image=image)
def ping(n: int) -> int:
    return n
'''


def test_one_image_name_never_silently_remaps_unrelated_packages(project, registry):
    """`flyte_image(image_name="flytekit")` (what flytekit calls every unnamed spec): it answers only the specs that
    do not conflict with it, and every plan it changes says so, naming the tasks and their packages."""
    root = project.root / "examples" / "realistic"
    (root / "extra").mkdir(exist_ok=True)
    (root / "extra" / "__init__.py").write_text("")
    (root / "extra" / "tasks.py").write_text(EXTRA.format(registry=registry.host))
    (root / "extra" / "BUILD").write_text(
        'python_sources()\n\nflyte_workflow(name="wf", entrypoint="tasks.py:ping", project="flytesnacks", '
        'domain="development")\n'
    )
    (root / "images").mkdir(exist_ok=True)
    (root / "images" / "BUILD").write_text(
        f'flyte_image(name="fk", image_name="flytekit", base="{registry.host}/flytebuild/python:3.11", '
        'dependencies=["examples/realistic/ml", "examples/realistic/extra", "examples/3rdparty:reqs#flytekit", '
        '"examples/3rdparty:reqs#numpy"])\n'
    )
    try:
        proc = project.pants("flyte-plan", "--format=json", "examples/realistic::")
    finally:
        shutil.rmtree(root / "extra")
        shutil.rmtree(root / "images")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    workflows = {wf["address"]: wf for wf in json.loads(proc.stdout)["workflows"]}
    tasks = {t["name"]: t for wf in workflows.values() for t in wf["tasks"]}
    fk = "examples/realistic/images:fk"
    # Two specs of different content answered by one name: both plans warn, naming both tasks and packages.
    assert (
        tasks["realistic.ml.train.fit"]["image_address"] == fk
        and tasks["realistic.extra.tasks.ping"]["image_address"] == fk
    )
    for address in ("examples/realistic/ml:wf", "examples/realistic/extra:wf"):
        (w,) = [w for w in workflows[address]["warnings"] if fk in w]
        assert "realistic.ml.train.fit (package realistic.ml)" in w
        assert "realistic.extra.tasks.ping (package realistic.extra)" in w
    # The spec that copies files is not remapped: it keeps its own image, and its task says why.
    data = tasks["realistic.data.tasks.scale"]
    assert data["image_address"] is None and data["image_source"] == "code:ImageSpec" and data["mode"] == "baked"
    assert any(fk in w and "copies files" in w for w in data["warnings"])


BROKEN = """
from flytekit import task, workflow

import realistic.does_not_exist  # noqa: F401


@task
def t(n: int) -> int:
    return n


@workflow
def wf(n: int = 1) -> int:
    return t(n=n)
"""


def test_package_writes_every_other_archive_and_reports_the_broken_workflow(project):
    broken = project.root / "examples" / "realistic" / "broken"
    broken.mkdir(exist_ok=True)
    (broken / "__init__.py").write_text("")
    (broken / "flows.py").write_text(BROKEN)
    (broken / "BUILD").write_text(
        'python_sources()\n\nflyte_workflow(name="wf", entrypoint="flows.py:wf", '
        'project="flytesnacks", domain="development")\n'
    )
    dist = project.root / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    try:
        proc = sh(project, "./pants package examples/realistic::", env=NO_ENGINE)
        plan = sh(project, "./pants flyte-plan examples/realistic::")
    finally:
        shutil.rmtree(broken)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # One paragraph naming the workflow and the fix, with the user's own traceback, none of ours.
    assert "examples/realistic/broken:wf" in proc.stderr and "No module named 'realistic.does_not_exist'" in proc.stderr
    assert "Fix:" in proc.stderr and "flytebuild/" not in proc.stderr
    for w in WORKFLOWS:
        archive = dist / f"examples.realistic.{w}" / "wf" / "flyte-package.tgz"
        assert archive.is_file(), w
        with tarfile.open(archive) as tar:
            assert any(m.name.endswith(".pb") for m in tar.getmembers())
    assert not (dist / "examples.realistic.broken").exists()
    # flyte-plan: every good workflow printed, the broken one reported, exit 1.
    assert plan.returncode == 1 and "examples/realistic/broken:wf" in plan.stderr
    for w in WORKFLOWS:
        assert f"examples/realistic/{w}:wf" in plan.stdout


def test_flyte_verify_checks_baked_tasks_on_imagespec_images(project, docker):
    """flyte-verify follows the one model: tasks baked into ImageSpec images are imported inside those images."""
    proc = sh(
        project,
        "./pants flyte-verify --format=json examples/realistic/data:wf examples/realistic/ml:wf",
        env={"DOCKER_HOST": docker.host},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = {c["task"]: c for c in json.loads(proc.stdout)["tasks"]}
    assert set(checks) == {"realistic.data.tasks.scale", "realistic.ml.train.fit"}
    for check in checks.values():
        assert check["method"] == "docker" and check["problems"] == [], check
