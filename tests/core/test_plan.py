"""Planning the scenario monorepo: modes, sources, and which versions move when something changes."""
import dataclasses

import pytest

from flytebuild.core.errors import PlanError
from flytebuild.core.introspection import parse_introspection
from flytebuild.core.model import ImageTarget
from flytebuild.core.plan import plan_image, plan_workflow
from flytebuild.core.settings import Settings

REPORT = "baked.workflows.make_report"
CLEAN = "baked.workflows.clean"
SHELL = "baked.workflows.shell"
CRUNCH = "fast.tasks.crunch"
WF = "baked.workflows.wf"
SUB = "fast.tasks.sub"
SUB_LP = "fast.tasks.sub_lp"


def plan(mk, intro=None, target=None, files=None, default_image=None, flytekit_version="1.16.31", edit=None):
    closures, images = mk.scenario_facts(files)
    data = intro if intro is not None else mk.scenario_intro()
    data = {**data, "environment": {"python": "3.11", "flytekit": flytekit_version}}
    if edit:
        edit(data)
    return plan_workflow(
        target or mk.workflow_target(),
        parse_introspection(data),
        closures,
        images,
        Settings(default_image=default_image),
    )


def versions(p):
    out = {f"task:{t.name}": t.version for t in p.tasks}
    out.update({f"workflow:{n}": v for n, v in p.workflow_versions.items()})
    out.update({f"launch_plan:{n}": v for n, v in p.launch_plan_versions.items()})
    out["root"] = p.version
    return out


def changed(a, b):
    va, vb = versions(a), versions(b)
    assert va.keys() == vb.keys()
    return {k for k in va if va[k] != vb[k]}


def test_scenario_plan(mk):
    p = plan(mk)
    assert (p.address, p.entrypoint, p.project, p.domain) == (
        mk.WF_ADDRESS,
        "baked.workflows:wf",
        "flytesnacks",
        "development",
    )
    assert (p.root_kind, p.root_name) == ("workflow", WF)
    assert p.version == p.workflow_versions[WF] and len(p.version) == 32

    report = p.task(REPORT)
    assert (report.image, report.image_source, report.image_name, report.mode) == (
        mk.BAKED_IMAGE,
        "workflow",
        "baked",
        "baked",
    )
    assert report.sources == ("examples/baked/workflows.py", "examples/shared/helpers.py")
    assert report.missing_sources == () and report.missing_requirements == () and report.warnings == ()
    # the plan carries the finished ref of every task: a flyte_image's content tag
    assert (
        report.image_address == mk.BAKED_IMAGE
        and report.image_ref == plan_image(mk.scenario_facts()[1][mk.BAKED_IMAGE]).ref
    )
    assert report.cache_version is None

    assert p.task(CLEAN).cache_version.startswith("1-")

    shell = p.task(SHELL)
    assert (shell.image, shell.image_source, shell.mode) == ("alpine:3.19", "code", "container")
    assert shell.sources == () and shell.warnings == () and shell.image_ref == "alpine:3.19"

    crunch = p.task(CRUNCH)
    assert (crunch.image, crunch.image_source, crunch.mode) == (mk.FAST_IMAGE, "task_images", "fast")
    assert crunch.missing_sources == ("examples/fast/tasks.py",)
    assert crunch.missing_requirements == ("pandas",)
    assert any("pandas" in w and "fast-register ships code only" in w for w in crunch.warnings)

    assert [w.name for w in p.workflows] == [WF, SUB]
    assert [lp.name for lp in p.launch_plans] == [SUB_LP]
    wf_children = dict((w.name, w.children) for w in p.workflows)[WF]
    assert set(wf_children) == {
        f"task:{REPORT}",
        f"task:{CLEAN}",
        f"task:{SHELL}",
        f"workflow:{SUB}",
        f"launch_plan:{SUB_LP}",
        "reference:remote.tasks.score",
    }
    assert [(r.name, r.version) for r in p.references] == [("remote.tasks.score", "2024.1")]
    assert p.warnings == ()


def test_plan_is_deterministic(mk):
    assert plan(mk) == plan(mk)


def test_editing_shared_helper_changes_exactly_its_tasks_and_parents(mk):
    before = plan(mk)
    after = plan(mk, files={"examples/shared/helpers.py": "d-helpers-edited"})
    # The baked image bakes helpers.py too, so the tasks in it move; the fast project does not.
    assert changed(before, after) == {f"task:{REPORT}", f"task:{CLEAN}", f"workflow:{WF}", "root"}


def test_editing_fast_module_changes_its_task_sub_workflow_and_launch_plan(mk):
    before = plan(mk)
    after = plan(mk, files={"examples/fast/tasks.py": "d-fast-edited"})
    assert changed(before, after) == {
        f"task:{CRUNCH}",
        f"workflow:{SUB}",
        f"launch_plan:{SUB_LP}",
        f"workflow:{WF}",
        "root",
    }


def test_unrelated_file_changes_nothing(mk):
    assert plan(mk, files={"examples/unrelated/other.py": "d-other-edited"}) == plan(mk)


def test_container_task_ignores_its_modules_code(mk):
    before = plan(mk)
    after = plan(mk, files={"examples/baked/workflows.py": "d-baked-edited"})
    assert f"task:{SHELL}" not in changed(before, after)
    assert f"task:{REPORT}" in changed(before, after)


def test_reference_version_bump_moves_only_its_users(mk):
    def bump(data):
        data["references"][0]["version"] = "2024.2"

    assert changed(plan(mk), plan(mk, edit=bump)) == {f"workflow:{WF}", "root"}


def test_launch_plan_defaults_move_launch_plan_and_parent_only(mk):
    def edit(data):
        data["launch_plans"][0]["default_inputs"] = {"x": 4}

    assert changed(plan(mk), plan(mk, edit=edit)) == {f"launch_plan:{SUB_LP}", f"workflow:{WF}", "root"}


def test_interface_change_moves_task_and_its_cache_version(mk):
    def edit(data):
        t = next(t for t in data["tasks"] if t["name"] == CLEAN)
        t["interface"]["outputs"] = {"o0": mk.STR}

    before, after = plan(mk), plan(mk, edit=edit)
    assert changed(before, after) == {f"task:{CLEAN}", f"workflow:{WF}", "root"}
    assert before.task(CLEAN).cache_version != after.task(CLEAN).cache_version


def test_baked_image_losing_a_file_makes_task_fast(mk):
    closures, images = mk.scenario_facts()
    img = images[mk.BAKED_IMAGE]
    images[mk.BAKED_IMAGE] = dataclasses.replace(img, sources=img.sources[:1])
    p = plan_workflow(mk.workflow_target(), parse_introspection(mk.scenario_intro()), closures, images, Settings())
    t = p.task(REPORT)
    assert t.mode == "fast" and t.missing_sources == ("examples/shared/helpers.py",)
    assert t.missing_requirements == ()
    assert t.warnings == ()  # the image has flytekit, so fast-register works


def test_python_task_on_image_without_flytekit_is_a_plan_error(mk):
    """No flytekit, no pyflyte-execute: the registered task could not start, so nothing may be pushed/registered."""
    closures, images = mk.scenario_facts()
    images[mk.FAST_IMAGE] = dataclasses.replace(images[mk.FAST_IMAGE], requirements=(), pins=())
    with pytest.raises(PlanError) as e:
        plan_workflow(mk.workflow_target(), parse_introspection(mk.scenario_intro()), closures, images, Settings())
    msg = str(e.value)
    assert CRUNCH in msg and mk.FAST_IMAGE in msg and "no flytekit" in msg and "Fix: add flytekit" in msg


def test_cache_without_outputs_warns(mk):
    def edit(data):
        next(t for t in data["tasks"] if t["name"] == CLEAN)["interface"]["outputs"] = {}

    (w,) = plan(mk, edit=edit).task(CLEAN).warnings
    assert "backend never caches a task without outputs" in w and "\n" not in w


def test_missing_closure_warns(mk):
    closures, images = mk.scenario_facts()
    del closures["examples/fast/tasks.py"]
    p = plan_workflow(mk.workflow_target(), parse_introspection(mk.scenario_intro()), closures, images, Settings())
    assert any("no build-graph closure for examples/fast/tasks.py" in w for w in p.task(CRUNCH).warnings)


def test_unknown_task_images_key_warns(mk):
    target = mk.workflow_target(task_images=(("fast.tasks.crunch", mk.FAST_IMAGE), ("nope", mk.FAST_IMAGE)))
    assert any("`nope`" in w for w in plan(mk, target=target).warnings)


# --- roots, launch plans, cycles ----------------------------------------------------------


def test_root_launch_plan(mk):
    def edit(data):
        data["launch_plans"].append(mk.launch_plan("baked.workflows.wf_lp", WF, fixed={"x": 1}))
        data["root"] = {"kind": "launch_plan", "name": "baked.workflows.wf_lp"}

    p = plan(mk, edit=edit)
    assert p.version == p.launch_plan_versions["baked.workflows.wf_lp"] != p.workflow_versions[WF]
    lp = next(lp for lp in p.launch_plans if lp.name == "baked.workflows.wf_lp")
    assert lp.children == (f"workflow:{WF}",)


def test_root_task(mk):
    t = mk.task("fast.tasks.crunch")
    intro = mk.introspection("task", t["name"], tasks=[t], entrypoint="fast.tasks:crunch")
    p = plan(mk, intro=intro)
    assert p.version == p.task(CRUNCH).version and p.workflows == ()


def test_cycle_is_reported(mk):
    def edit(data):
        sub = next(w for w in data["workflows"] if w["name"] == SUB)
        sub["nodes"].append(mk.node("n9", "workflow", WF))

    with pytest.raises(PlanError, match=r"cycle: .*workflow:baked.workflows.wf.*->") as info:
        plan(mk, edit=edit)
    assert mk.WF_ADDRESS in str(info.value)


def test_branch_nodes_inside_structure_are_children(mk):
    def edit(data):
        wf = next(w for w in data["workflows"] if w["name"] == WF)
        wf["nodes"].append(mk.node("n6", "branch", None))
        wf["structure"]["nodes"].append(
            {"id": "n6", "branch": {"cases": [{"then": {"id": "n6-0", "entity_kind": "task", "entity": CRUNCH}}]}}
        )

    p = plan(mk, edit=edit)
    assert f"task:{CRUNCH}" in dict((w.name, w.children) for w in p.workflows)[WF]


def test_inconsistent_introspection_is_a_plan_error(mk):
    def edit(data):
        data["workflows"][0]["nodes"].append(mk.node("n9", "task", "ghost.task"))

    with pytest.raises(PlanError, match="ghost.task"):
        plan(mk, edit=edit)


# --- images --------------------------------------------------------------------------------


def test_plan_image(mk):
    _, images = mk.scenario_facts()
    ip = plan_image(images[mk.BAKED_IMAGE])
    assert ip.ref == f"localhost:5000/baked:{ip.version}" and len(ip.version) == 32
    assert ip.sources == ("examples/baked/workflows.py", "examples/shared/helpers.py")
    assert ip.requirements == ("flytekit",) and ip.warnings == ()
    bare = plan_image(ImageTarget(address="x:img", image_name="img", base="alpine"))
    assert bare.ref == f"img:{bare.version}"
    assert any("flytekit" in w for w in bare.warnings)
