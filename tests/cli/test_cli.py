"""`flytebuild` on small projects: configuration, errors users see, table/json output."""
import json
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _project(tmp_path: Path, config: str, files: dict) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    (tmp_path / "flytebuild.toml").write_text(textwrap.dedent(config))
    return tmp_path


_CODE = {
    "src/proj/__init__.py": "",
    "src/proj/util.py": "def double(x):\n    return 2 * x\n",
    "src/proj/tasks.py": """
        from flytekit import task, workflow
        from proj.util import double

        @task
        def one(x: int) -> int:
            return double(x)

        @workflow
        def wf(x: int = 1) -> int:
            return one(x=x)
        """,
    "requirements.txt": "flytekit==1.16.31\n",
}

_CONFIG = """
    source_roots = ["src"]
    requirements = "requirements.txt"

    [images.img]
    dependencies = ["src/proj"]
    requirements = ["flytekit"]

    [workflows.wf]
    entrypoint = "src/proj/tasks.py:wf"
    image = "img"
    """


def _json(proc):
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_plan_json_table_and_output_file(tmp_path, cli):
    root = _project(tmp_path, _CONFIG, _CODE)
    plan = _json(cli("plan", "--format=json", cwd=root / "src"))  # config found upward
    (wf,) = plan["workflows"]
    assert wf["entrypoint"] == "proj.tasks:wf"
    (task,) = wf["tasks"]
    assert (task["name"], task["mode"], task["image"]) == ("proj.tasks.one", "baked", "img")
    # The module's closure (util.py), not the blank __init__.py (Pants' content_only rule).
    assert task["sources"] == ["src/proj/tasks.py", "src/proj/util.py"]
    assert plan["images"][0]["ref"] == f"localhost:5000/img:{plan['images'][0]['version']}"
    # Only requirements.txt, no lockfile: the requirement's own pin.
    assert plan["images"][0]["pins"] == ["flytekit==1.16.31"]

    table = cli("plan", cwd=root)
    assert table.returncode == 0 and "proj.tasks.one" in table.stdout and "baked" in table.stdout
    out = root / "plan.json"
    assert cli("plan", "--format=json", "-o", str(out), "wf", cwd=root).stdout == ""
    assert json.loads(out.read_text())["workflows"][0]["version"] == wf["version"]


def test_same_inputs_same_versions_and_an_edit_changes_only_what_imports_it(tmp_path, cli):
    root = _project(tmp_path, _CONFIG, {**_CODE, "src/proj/other.py": "X = 1\n"})
    first = _json(cli("plan", "--format=json", cwd=root))
    assert _json(cli("plan", "--format=json", cwd=root)) == first
    (root / "src/proj/other.py").write_text("X = 2\n")  # no task imports it, but the image bakes it
    second = _json(cli("plan", "--format=json", cwd=root))
    assert second["images"][0]["version"] != first["images"][0]["version"]
    (root / "src/proj/util.py").write_text("def double(x):\n    return x + x\n")
    third = _json(cli("plan", "--format=json", cwd=root))
    assert third["workflows"][0]["tasks"][0]["fingerprint"] != second["workflows"][0]["tasks"][0]["fingerprint"]


def test_pyproject_tool_table(tmp_path, cli):
    root = _project(tmp_path, "", _CODE)
    (root / "flytebuild.toml").unlink()
    body = (
        textwrap.dedent(_CONFIG)
        .replace("[images.", "[tool.flytebuild.images.")
        .replace("[workflows.", "[tool.flytebuild.workflows.")
    )
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n\n[tool.flytebuild]\n" + body)
    assert _json(cli("plan", "--format=json", cwd=root))["workflows"][0]["address"] == "wf"


@pytest.mark.parametrize(
    "config, files, expected",
    [
        (_CONFIG + "\n[images.img2]\nbasee = 'x'\n", {}, ["Unknown key 'basee' in [images.img2]", "Fix: use only"]),
        (
            _CONFIG.replace('"src/proj"', '"src/nope"'),
            {},
            ["[images.img]: dependency `src/nope` matches no files", "Fix:"],
        ),
        (_CONFIG.replace('image = "img"', 'image = "imgg"'), {}, ["`imgg`", "target wf", "Fix:"]),
        (_CONFIG.replace("tasks.py:wf", "tasks.py:nope"), {}, ["attr not found", "target wf", "Fix:"]),
        (_CONFIG.replace("src/proj/tasks.py:wf", "proj.missing:wf"), {}, ["module not found", "target wf"]),
        (
            _CONFIG.replace('requirements = ["flytekit"]', 'requirements = ["pandas"]'),
            {},
            ["requires pandas", "does not declare"],
        ),
        (
            _CONFIG,
            {"src/proj/tasks.py": "from proj.util import double\nraise RuntimeError('boom in user code')\n"},
            ["import error", "boom in user code", "Fix:"],
        ),
        ("images = 3\n", {}, ["`images` in flytebuild.toml must be a table of tables"]),
        (
            _CONFIG.replace("[images.img]\n", "[images.img]\nenv = { A = 1 }\n"),
            {},
            ["`env` in [images.img] must be a table of strings, not dict", "Fix: write `env` as a table of strings"],
        ),
        ("[workflows.w]\nimage = 'x'\n", {}, ["[workflows.w] has no `entrypoint`"]),
        ("x = [\n", {}, ["is not valid TOML"]),
    ],
)
def test_bad_input_is_one_clear_error_without_traceback(tmp_path, cli, config, files, expected):
    root = _project(tmp_path, config, {**_CODE, **files})
    proc = cli("plan", cwd=root)
    assert proc.returncode == 1, proc.stdout
    assert proc.stdout == ""
    for text in expected:
        assert text in proc.stderr, proc.stderr
    assert not any(line.startswith('  File "') and "flytebuild/" in line for line in proc.stderr.splitlines())


def test_no_config_and_unknown_target(tmp_path, cli):
    proc = cli("plan", cwd=tmp_path)
    assert proc.returncode == 1 and "No flytebuild.toml" in proc.stderr and "Fix:" in proc.stderr
    root = _project(tmp_path / "p", _CONFIG, _CODE)
    proc = cli("plan", "wff", cwd=root)
    assert proc.returncode == 1 and "No workflow or image named wff" in proc.stderr and "img, wf" in proc.stderr


def test_publish_takes_images_and_deploy_workflows(tmp_path, cli):
    """`publish` pushes images (as `pants publish`); a workflow named there is one paragraph, nothing built."""
    root = _project(tmp_path, _CONFIG, _CODE)
    proc = cli("publish", "wf", cwd=root)
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout
    assert "flytebuild publish: wf is a workflow; `publish` takes images" in proc.stderr
    assert "Fix: name images (img)" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("deploy", "img", cwd=root)
    assert proc.returncode == 1 and "img is an image; `deploy` takes workflows" in proc.stderr
    assert not (root / "dist").exists()


def test_missing_user_python(tmp_path, cli):
    root = _project(tmp_path, _CONFIG, _CODE)
    proc = cli("plan", cwd=root, env={"FLYTEBUILD_PYTHON": ""})
    assert proc.returncode == 1 and "No user Python is configured" in proc.stderr
    proc = cli("plan", cwd=root, env={"FLYTEBUILD_PYTHON": "venv/bin/python"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "FLYTEBUILD_PYTHON='venv/bin/python' is not an existing interpreter" in proc.stderr and "Fix:" in proc.stderr


_POD = """
    containers:
      - name: primary
        resources:
          limits:
            memory: ${memory}
    """


def test_pod_templates_render_per_environment_and_invalid_ones_fail_clearly(tmp_path, cli):
    config = _CONFIG + (
        '\npod_template = "pod"\n\n[pod_templates.pod]\nsource = "pod.yaml"\n'
        'overlays = { prod = "pod-prod.yaml" }\nvalues = { memory = "1Gi" }\n'
    )
    root = _project(tmp_path, config, {**_CODE, "pod.yaml": _POD, "pod-prod.yaml": "nodeSelector:\n  pool: big\n"})
    dev = cli("render", "--format=json", cwd=root)
    assert dev.returncode == 0, dev.stderr
    (pod,) = json.loads(dev.stdout)["pods"]
    assert pod["task"] == "proj.tasks.one" and pod["files"] == ["pod.yaml"]
    (primary,) = pod["pod"]["pod_spec"]["containers"]
    assert primary["resources"]["limits"]["memory"] == "1Gi" and primary["image"].startswith("localhost:5000/img:")
    (prod,) = json.loads(cli("render", "--format=json", "--env=prod", cwd=root, check=True).stdout)["pods"]
    assert prod["pod"]["pod_spec"]["nodeSelector"] == {"pool": "big"} and prod["files"] == ["pod.yaml", "pod-prod.yaml"]
    # The pod template is an input of the task's version.
    plan = json.loads(cli("plan", "--format=json", cwd=root, check=True).stdout)
    (root / "pod.yaml").write_text(textwrap.dedent(_POD).replace("${memory}", "2Gi"))
    assert json.loads(cli("plan", "--format=json", cwd=root, check=True).stdout) != plan

    (root / "pod.yaml").write_text("containers:\n  - name: primary\n    imagePullPolicyy: Always\n")
    bad = cli("plan", cwd=root)
    assert bad.returncode == 1 and "not a valid Kubernetes V1PodSpec" in bad.stderr, bad.stderr
    assert "`containers[0].imagePullPolicyy`: unknown field" in bad.stderr and "pod.yaml" in bad.stderr
    (root / "flytebuild.toml").write_text(
        textwrap.dedent(config).replace('pod_template = "pod"', 'pod_template = "pdo"')
    )
    unknown = cli("plan", cwd=root)
    assert unknown.returncode == 1 and "pod template `pdo`" in unknown.stderr and "use one of: pod" in unknown.stderr


@pytest.mark.parametrize(
    "config, field_words, value",
    [
        (
            _CONFIG.replace("[images.img]\n", '[images.img]\n    image_name = "../../escaped"\n'),
            "`image_name` in [images.img]",
            "../../escaped",
        ),
        (
            _CONFIG.replace("[workflows.wf]", '[workflows.".."]').replace('image = "img"', 'image = "img"\n'),
            "table name [workflows.\"..\"]",
            "..",
        ),
    ],
    ids=["image_name", "workflow_name"],
)
def test_names_that_would_write_outside_dist_are_rejected(tmp_path, cli, config, field_words, value):
    """An image name or a workflow name that would put the OCI layout / the archive outside `--dist` fails with
    one message naming the target and the field, and writes nothing outside."""
    root = _project(tmp_path / "proj", config, _CODE)
    dist = root / "dist"
    target = "img" if "image_name" in field_words else ".."
    proc = cli("package", target, "--image-output=oci", "--dist", str(dist), cwd=root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # Field validation stops it before anything is planned or built: the message names the field, the value and
    # why (a path separator), and the fix.
    assert field_words in proc.stderr and repr(value) in proc.stderr and "path separator" in proc.stderr
    assert "Fix:" in proc.stderr and "Traceback" not in proc.stderr
    outside = [p for p in tmp_path.rglob("*") if not str(p).startswith(str(root))]
    assert not [p for p in outside if p.name.endswith((".oci", ".tgz"))]
    assert not (root / "flyte-package.tgz").exists() and not list(root.glob("*.oci"))


def test_one_broken_workflow_does_not_hide_the_others(tmp_path, cli):
    """`plan` prints every workflow that plans and `package` writes its archive; each broken one is one paragraph
    on stderr; exit 1 (as `pants flyte-plan` / `pants package`)."""
    files = {**_CODE, "src/proj/broken.py": "import proj.does_not_exist\n"}
    config = (
        _CONFIG
        + """
    [workflows.broken]
    entrypoint = "src/proj/broken.py:wf"
    image = "img"
    """
    )
    root = _project(tmp_path, config, files)
    plan = cli("plan", "--format=json", cwd=root)
    assert plan.returncode == 1
    assert [w["address"] for w in json.loads(plan.stdout)["workflows"]] == ["wf"]
    assert "broken" in plan.stderr and "proj.does_not_exist" in plan.stderr and "Traceback (most recent" in plan.stderr
    assert 'File "src/proj/broken.py"' in plan.stderr and "flytebuild/" not in plan.stderr
    package = cli("package", "--dist", str(tmp_path / "dist"), "wf", "broken", cwd=root)
    assert package.returncode == 1 and "broken" in package.stderr
    assert (tmp_path / "dist" / "wf" / "flyte-package.tgz").is_file()
    assert not (tmp_path / "dist" / "broken").exists()
