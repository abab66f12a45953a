"""Bad field values, table-driven (cases.FIELD_CASES): the pure check and every CLI command refuse each one
before anything resolves, builds or runs, with one paragraph naming the target, the field, the value and a fix;
exit code 1, no traceback, nothing written (in --dist or outside it) and nothing registered."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from flytebuild.core import validate
from flytebuild.core.errors import PlanError
from tests.reliability.cases import CLI_COMMANDS, FIELD_CASES, GOOD_VALUES, FieldCase

TRACEBACK = "Traceback (most recent call last)"


def _core_check(case: FieldCase) -> None:
    if case.kind == "reference":
        validate.check_reference("//app:ref", **{"kind": "workflow", "entity_name": "proj.tasks.wf",
                                                 "project": "flytesnacks", "domain": "development",
                                                 case.field: case.value})
        return
    if case.kind == "workflow":
        validate.check_workflow("//app:wf", **{"project": "flytesnacks", "domain": "development",
                                              case.field: case.value})
        return
    fields = {"image_name": "app", "base": "localhost:5000/flytebuild/python:3.11", "registry": "localhost:5000",
              "repository": "team/app", "python": "/usr/bin/python3", "env": ()}
    fields[case.field] = ((case.value, "1"),) if case.field == "env" else case.value
    validate.check_image("//app:img", **fields)


@pytest.mark.parametrize("case", FIELD_CASES, ids=lambda c: c.id)
def test_core_refuses(case: FieldCase):
    with pytest.raises(PlanError) as info:
        _core_check(case)
    message = str(info.value)
    assert f"`{case.field}`" in message and repr(case.value) in message, message
    for fragment in case.expect:
        assert fragment in message, message
    assert "//app:" in message and "Fix:" in message, message
    assert "\n" not in message, "one paragraph"


@pytest.mark.parametrize("field,value", GOOD_VALUES, ids=lambda v: str(v))
def test_core_accepts(field: str, value: str):
    problem = {"base": validate.reference_problem, "registry": validate.registry_problem,
               "repository": validate.repository_problem, "image_name": validate.name_problem,
               "python": validate.python_problem, "project": validate.project_problem,
               "domain": validate.project_problem}[field]
    assert problem(value) is None


# --------------------------------------------------------------------------- the CLI, in process


def _toml(value: object) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def cli_project(root: Path, case: FieldCase | None, user_python: str) -> Path:
    image = {"image_name": "app", "base": "localhost:5000/flytebuild/python:3.11", "registry": "localhost:5000",
             "repository": "team/app", "python": "/usr/bin/python3"}
    workflow = {"project": "flytesnacks", "domain": "development"}
    env_line = 'env = { PYTHONUNBUFFERED = "1" }'
    if case is not None and case.field == "env":
        env_line = f"env = {{ {_toml(case.value)} = \"1\" }}"
    reference = {"kind": "workflow", "entity_name": "proj.tasks.wf"}
    if case is not None and case.field != "env":
        {"image": image, "workflow": workflow, "reference": reference}[case.kind][case.field] = case.value
    (root / "src/proj").mkdir(parents=True, exist_ok=True)
    (root / "src/proj/__init__.py").write_text("")
    (root / "src/proj/tasks.py").write_text(textwrap.dedent("""
        from flytekit import task, workflow

        @task
        def one(x: int) -> int:
            return x + 1

        @workflow
        def wf(x: int = 1) -> int:
            return one(x=x)
        """))
    (root / "requirements.txt").write_text("flytekit==1.16.31\n")
    lines = [f"python = {_toml(user_python)}", 'source_roots = ["src"]', 'requirements = "requirements.txt"',
             'endpoint = "127.0.0.1:1"', "insecure = true", "admin_timeout = 2", "", "[images.img]"]
    lines += [f"{k} = {_toml(v)}" for k, v in image.items()]
    lines += ['dependencies = ["src/proj"]', 'requirements = ["flytekit"]', env_line, "", "[workflows.wf]",
              'entrypoint = "src/proj/tasks.py:wf"', 'image = "img"']
    lines += [f"{k} = {_toml(v)}" for k, v in workflow.items()]
    lines += ["", "[references.ref]", *(f"{k} = {_toml(v)}" for k, v in reference.items())]
    (root / "flytebuild.toml").write_text("\n".join(lines) + "\n")
    return root


def run_cli(capsys, config: Path, *argv: str):
    from flytebuild.cli.main import main

    code = main(["-c", str(config), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _files(root: Path):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("command", CLI_COMMANDS)
@pytest.mark.parametrize("case", FIELD_CASES, ids=lambda c: c.id)
def test_cli_refuses_before_running_anything(tmp_path, capsys, user_python, case: FieldCase, command: str):
    repo = cli_project(tmp_path / "repo", case, user_python)
    before = _files(tmp_path)
    dist = tmp_path / "repo" / "dist"
    argv = {"plan": ["plan"], "package": ["package", "--dist", str(dist), "--image-output=oci"],
            "deploy": ["deploy"]}[command]
    code, out, err = run_cli(capsys, repo / "flytebuild.toml", *argv)
    assert code == 1, (out, err)
    assert TRACEBACK not in err and TRACEBACK not in out
    assert f"`{case.field}`" in err and case.value in err, err
    assert "Fix:" in err and "flytebuild.toml" in err, err
    for fragment in case.expect:
        assert fragment in err, err
    # nothing written anywhere: not in dist/, not next to it (a `../` name), no introspection cache
    assert _files(tmp_path) == before
