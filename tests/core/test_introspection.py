import json

import pytest

from flytebuild.core.errors import FlytebuildError, IntrospectionError
from flytebuild.core.introspection import Introspection, parse_introspection


def test_parses_scenario_into_frozen_dataclasses(mk):
    intro = parse_introspection(mk.scenario_intro())
    assert isinstance(intro, Introspection)
    assert intro.entrypoint == "baked.workflows:wf"
    assert (intro.root.kind, intro.root.name) == ("workflow", "baked.workflows.wf")
    assert [t.name for t in intro.tasks] == [
        "baked.workflows.clean",
        "baked.workflows.make_report",
        "baked.workflows.shell",
        "fast.tasks.crunch",
    ]
    shell = next(t for t in intro.tasks if t.kind == "container")
    assert (shell.image.kind, shell.image.value, shell.task_type) == ("string", "alpine:3.19", "raw-container")
    clean = next(t for t in intro.tasks if t.name.endswith("clean"))
    assert clean.cache.enabled and clean.cache.version == "1"
    assert clean.source_file == "examples/baked/workflows.py"
    wf = next(w for w in intro.workflows if w.name == "baked.workflows.wf")
    assert [n.entity_kind for n in wf.nodes] == ["task", "task", "workflow", "launch_plan", "task", "reference"]
    assert wf.nodes[1].upstream == ("n0",)
    assert intro.launch_plans[0].workflow == "fast.tasks.sub"
    assert intro.references[0].version == "2024.1"
    with pytest.raises(Exception):
        intro.root.name = "other"  # frozen


def test_accepts_json_text_and_ignores_unknown_keys(mk):
    data = mk.scenario_intro()
    data["tasks"][0]["brand_new_fact"] = {"x": 1}
    intro = parse_introspection(json.dumps(data))
    assert len(intro.tasks) == 4


def test_image_spec_is_kept(mk):
    spec = {"name": "ml", "base_image": "python:3.11", "packages": ["pandas"], "registry": "ghcr.io/org"}
    data = mk.introspection(
        "task", "a.t", tasks=[mk.task("a.t", image=mk.image_use("image_spec", None, "ml", spec))]
    )
    t = parse_introspection(data).tasks[0]
    assert (t.image.kind, t.image.name, t.image.spec["packages"]) == ("image_spec", "ml", ["pandas"])


def test_error_form_raises_introspection_error_with_all_fields():
    payload = {
        "error": {
            "kind": "import_error",
            "message": "ZeroDivisionError: division by zero",
            "file": "examples/baked/workflows.py",
            "traceback": 'File "examples/baked/workflows.py", line 3\n    1/0\nZeroDivisionError: division by zero',
        }
    }
    with pytest.raises(IntrospectionError) as info:
        parse_introspection(payload, target="examples/baked:wf")
    err = info.value
    assert isinstance(err, FlytebuildError)
    assert err.kind == "import_error"
    assert err.error_message == "ZeroDivisionError: division by zero"
    assert err.file == "examples/baked/workflows.py"
    assert "line 3" in err.traceback
    text = str(err)
    assert "examples/baked:wf" in text and "examples/baked/workflows.py" in text
    assert "Fix:" in text and "ZeroDivisionError" in text


def test_from_runtime_names_entrypoint_and_fix():
    err = IntrospectionError.from_runtime(
        "examples/baked:wf", "baked.nope:wf", {"kind": "module_not_found", "message": "No module named 'baked.nope'"}
    )
    text = str(err)
    assert "baked.nope:wf" in text and "examples/baked:wf" in text
    assert "source root" in text
    assert "\n" not in text  # one paragraph when there is no user traceback


@pytest.mark.parametrize("bad", ["not json", "[1, 2]", {"tasks": []}, {"root": {"kind": "task"}}])
def test_malformed_output_is_a_clear_error(bad):
    with pytest.raises(IntrospectionError) as info:
        parse_introspection(bad, target="examples/baked:wf")
    assert info.value.kind == "introspection_failed"
    assert "examples/baked:wf" in str(info.value)
