import json

from flytebuild.core.introspection import parse_introspection
from flytebuild.core.plan import plan_image, plan_workflow
from flytebuild.core.report import render_json, render_table
from flytebuild.core.settings import Settings


def _plans(mk):
    closures, images = mk.scenario_facts()
    wf = plan_workflow(mk.workflow_target(), parse_introspection(mk.scenario_intro()), closures, images, Settings())
    return [plan_image(images[a]) for a in sorted(images)], [wf]


def test_render_json_shape(mk):
    images, workflows = _plans(mk)
    data = json.loads(render_json(images, workflows))
    assert set(data) == {"images", "workflows"}
    img = data["images"][0]
    assert {"address", "name", "fingerprint", "sources", "requirements", "pins", "ref", "version"} <= set(img)
    assert img["env"] == {"LOG_LEVEL": "info"}
    (wf,) = data["workflows"]
    assert {"address", "entrypoint", "version", "tasks", "sub_workflows", "launch_plans", "references"} <= set(wf)
    task_keys = {"name", "module", "image", "image_source", "mode", "fingerprint", "version", "sources",
                 "missing_sources", "missing_requirements", "warnings"}
    for t in wf["tasks"]:
        assert task_keys <= set(t)
    assert [t["name"] for t in wf["tasks"]] == sorted(t["name"] for t in wf["tasks"])
    crunch = next(t for t in wf["tasks"] if t["name"] == "fast.tasks.crunch")
    assert crunch["missing_requirements"] == ["pandas"] and crunch["mode"] == "fast"
    assert wf["version"] == next(w["version"] for w in wf["sub_workflows"] if w["name"] == "baked.workflows.wf")
    assert wf["references"][0]["version"] == "2024.1"


def test_render_json_is_deterministic(mk):
    images, workflows = _plans(mk)
    text = render_json(images, workflows)
    assert text == render_json(list(reversed(images)), workflows)
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_render_table(mk):
    images, workflows = _plans(mk)
    text = render_table(images, workflows)
    lines = text.splitlines()
    wf = workflows[0]
    header = next(l for l in lines if l.startswith(mk.WF_ADDRESS))
    assert "baked.workflows:wf" in header and wf.version[:12] in header
    row = next(l for l in lines if l.strip().startswith("fast.tasks.crunch"))
    assert "examples/fast:image (task_images)" in row and "fast (1 file, 1 req not in image)" in row
    assert wf.task("fast.tasks.crunch").version[:12] in row
    assert wf.task("fast.tasks.crunch").version not in row  # short versions in the table
    report = next(l for l in lines if l.strip().startswith("baked.workflows.make_report"))
    assert "baked" in report and "(workflow)" in report
    # columns are aligned: the IMAGE column starts at the same offset on every task row
    task_rows = [l for l in lines if l.strip().startswith(("baked.workflows.", "fast.tasks.")) and "(" in l]
    offsets = {l.index(l.split()[1]) for l in task_rows}
    assert len(offsets) == 1
    assert render_table([], []) == ""
