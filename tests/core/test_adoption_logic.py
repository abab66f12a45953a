"""Pure pieces of adoption: finding workflows statically, the CLI/Bazel wording of shared messages, and the
warnings for settings that weaken guarantees."""
from flytebuild.core.discover import find_workflows, source_root_of, target_names, workflows_in_source
from flytebuild.core.weakening import major_minor_of_constraints, python_mismatch, python_of_base, unpinned
from flytebuild.core.wording import in_words


def test_workflows_are_found_by_decorator_without_importing(tmp_path):
    src = """
import flytekit as fk
from flytekit import workflow, task, reference_workflow

@task
def t(): ...

@workflow
def a(): ...

@fk.workflow(interruptible=True)
def b(): ...

@reference_workflow(project="p", domain="d", name="n", version="v")
def ref(): ...

def helper():
    @workflow
    def inner(): ...
"""
    assert workflows_in_source(src) == ("a", "b")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg/flows.py").write_text(src)
    (tmp_path / "other.py").write_text("from flytekit import workflow\n@workflow\ndef a(): ...\n")
    (tmp_path / "broken.py").write_text("def (:\n")
    (tmp_path / ".venv/lib").mkdir(parents=True)
    (tmp_path / ".venv/lib/x.py").write_text(src)
    found, broken = find_workflows(str(tmp_path))
    assert [w.entrypoint for w in found] == ["other.py:a", "pkg/flows.py:a", "pkg/flows.py:b"]
    assert broken == ["broken.py"]
    assert target_names(found) == ["other-a", "pkg-flows-a", "b"]
    assert source_root_of(str(tmp_path), ["src/p/a.py", "tests/t.py"]) == "src"
    assert source_root_of(str(tmp_path), ["p/a.py", "setup.py"]) == "."


def test_shared_messages_in_the_cli_and_bazel_words():
    msg = ("[flyte] default_image `x` is not a known flyte_image target. Fix: set [flyte].default_image to a "
           "flyte_image address; set [flyte].endpoint (or --flyte-endpoint, PANTS_FLYTE_ENDPOINT); "
           "regenerate it with `pants generate-lockfiles`")
    cli = in_words(msg, "cli")
    assert "[flyte]" not in cli and "--flyte-" not in cli and "pants" not in cli
    assert "`default_image` in flytebuild.toml" in cli and "(or --endpoint)" in cli and "`flytebuild lock`" in cli
    bazel = in_words(msg, "bazel")
    assert "`default_image` of flyte_settings" in bazel and "[flyte]" not in bazel
    assert in_words(msg, "pants") == msg


def test_weakening_warnings():
    assert "not locked" in unpinned("//a:img", ["flytekit"], "lock it")
    assert unpinned("//a:img", [], "lock it") is None
    assert python_of_base({"config": {"Labels": {"org.flytebuild.python-version": "3.11"}}}) == "3.11"
    assert python_of_base({"config": {"Env": ["PYTHON_VERSION=3.12.4"]}}) == "3.12"
    assert python_of_base({"config": {}}) is None
    assert major_minor_of_constraints(["CPython==3.11.*"]) == "3.11"
    assert major_minor_of_constraints(["CPython>=3.9"]) is None
    assert "Python 3.10" in python_mismatch("img", "base", "3.10", "3.11")
    assert python_mismatch("img", "base", "3.11", "3.11") is None and python_mismatch("img", "b", None, "3.11") is None
