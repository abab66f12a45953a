"""One image model: ImageSpecs in code are image nodes of the plan, decided by the pure core (no Pants, no flytekit).

Facts are hand-built in the shape adapters hand over (closures, copy candidates that exist, requirement files)."""
from __future__ import annotations

import pytest

from flytebuild.core.errors import PlanError
from flytebuild.core.introspection import parse_introspection
from flytebuild.core.model import Closure, FileDigest, ImageTarget, WorkflowTarget
from flytebuild.core.plan import plan_workflow, with_cross_workflow_warnings
from flytebuild.core.report import render_json, render_table
from flytebuild.core.settings import Settings

BASE = "reg:5000/py:3.11"
PINS = ("flytekit==1.16.31", "protobuf==7.36.2")


def fd(path: str, digest: str = "") -> FileDigest:
    return FileDigest(path, digest or f"d-{path}")


def closure(*paths: str, reqs=("flytekit",), pins=PINS) -> Closure:
    return Closure(tuple(fd(p) for p in paths), reqs, pins)


def spec(**fields):
    return {"kind": "image_spec", "value": None, "name": fields.get("name") or "flytekit", "spec": fields}


def target(address="examples/p:wf", **kw) -> WorkflowTarget:
    return WorkflowTarget(address=address, entrypoint="p.m:wf", project="flytesnacks", domain="development", **kw)


def plan(mk, tasks, closures, images=(), files=(), requirement_files=None, address="examples/p:wf", **kw):
    intro = parse_introspection(mk.introspection("task", tasks[0]["name"], tasks=tasks, entrypoint="p.m:wf"))
    return plan_workflow(
        target(address, **kw), intro, closures, {i.address: i for i in images},
        Settings(default_base=BASE, registry="reg:5000"),
        spec_files={f.path: f for f in files}, requirement_files=requirement_files or {},
    )


def test_unnamed_specs_in_two_packages_stay_distinct_images(mk):
    a = mk.task("alpha.t.run", source_file="examples/alpha/t.py", image=spec(registry="reg:5000", source_root="."))
    b = mk.task("beta.t.run", source_file="examples/beta/t.py", image=spec(registry="reg:5000", packages=["numpy"],
                                                                            source_root="."))
    closures = {"examples/alpha/t.py": closure("examples/alpha/t.py"),
                "examples/beta/t.py": closure("examples/beta/t.py", reqs=("flytekit", "numpy"))}
    p = plan(mk, [a, b], closures)
    ta, tb = p.task("alpha.t.run"), p.task("beta.t.run")
    # flytekit names both `flytekit`; their content differs, so they are two images with two tags.
    assert ta.image_ref.startswith("reg:5000/flytekit:") and tb.image_ref.startswith("reg:5000/flytekit:")
    assert ta.image_ref != tb.image_ref and ta.image_spec != tb.image_spec
    assert (ta.mode, tb.mode) == ("baked", "baked")
    images = {i.ref: i for i in p.spec_images}
    assert images[ta.image_ref].source_paths == ("examples/alpha/t.py",)
    # flytekit is added (pinned from the lockfile's pin in the closure) when the spec does not name it.
    assert images[ta.image_ref].requirements == ("flytekit==1.16.31",)
    assert images[tb.image_ref].requirements == ("numpy", "flytekit==1.16.31")


def test_source_root_bakes_only_the_closure_under_it(mk):
    t = mk.task("ml.train.fit", source_file="examples/ml/train.py",
                image=spec(name="ml", registry="reg:5000", source_root="examples/ml"))
    closures = {"examples/ml/train.py": closure("examples/ml/train.py", "examples/shared/util.py")}
    p = plan(mk, [t], closures)
    task = p.task("ml.train.fit")
    (image,) = p.spec_images
    assert image.source_paths == ("examples/ml/train.py",)  # shared/util.py lies outside source_root
    assert task.mode == "fast" and task.missing_sources == ("examples/shared/util.py",)


def test_copy_resolves_files_and_keeps_flytekits_destination(mk):
    t = mk.task("data.tasks.scale", source_file="examples/data/tasks.py",
                image=spec(registry="reg:5000", copy=["tasks.py", "conf/settings.yaml"]))
    closures = {"examples/data/tasks.py": closure("examples/data/tasks.py", "examples/data/transform.py")}
    files = [fd("examples/data/tasks.py"), fd("examples/data/conf/settings.yaml")]
    p = plan(mk, [t], closures, files=files)
    (image,) = p.spec_images
    # The copied module brings its closure (at import paths); every copied file also lands at /root/<entry>.
    assert image.source_paths == ("examples/data/tasks.py", "examples/data/transform.py")
    assert {(c.source, c.destination) for c in image.copies} == {
        ("examples/data/tasks.py", "tasks.py"), ("examples/data/conf/settings.yaml", "conf/settings.yaml")}
    assert p.task("data.tasks.scale").mode == "baked"
    # A copy entry that is no file of the repository: one paragraph naming it and where it looked.
    with pytest.raises(PlanError) as e:
        plan(mk, [t], closures, files=files[:1])
    assert "conf/settings.yaml" in str(e.value) and "examples/data/conf/settings.yaml" in str(e.value)


def test_container_task_with_imagespec_gets_the_content_tag(mk):
    c = mk.task("c.tasks.triple", kind="container", source_file="examples/c/tasks.py",
                image=spec(name="script", registry="reg:5000", copy=["script.py"]))
    files = [fd("examples/c/script.py", "v1")]
    p = plan(mk, [c], {}, files=files)
    task = p.task("c.tasks.triple")
    assert task.mode == "container" and task.image_source == "code:ImageSpec"
    assert task.image_ref.startswith("reg:5000/script:") and len(task.image_ref.rsplit(":", 1)[1]) == 32
    (image,) = p.spec_images
    assert [(x.source, x.destination) for x in image.copies] == [("examples/c/script.py", "script.py")]
    # Editing the copied script changes the image, hence the task.
    edited = plan(mk, [c], {}, files=[fd("examples/c/script.py", "v2")]).task("c.tasks.triple")
    assert edited.image_ref != task.image_ref and edited.version != task.version


def test_containerless_echo_has_mode_none_and_no_image(mk):
    echo = mk.task("b.hello.echo", kind="other", source_file="examples/b/hello.py", has_container=False)
    work = mk.task("b.hello.work", source_file="examples/b/hello.py")
    closures = {"examples/b/hello.py": closure("examples/b/hello.py")}
    img1 = ImageTarget("examples/b:img", "b", BASE, "reg:5000", requirements=("flytekit",))
    img2 = ImageTarget("examples/b:img", "b", "reg:5000/py:3.12", "reg:5000", requirements=("flytekit",))
    p1 = plan(mk, [echo, work], closures, images=[img1], image="examples/b:img")
    p2 = plan(mk, [echo, work], closures, images=[img2], image="examples/b:img")
    e1, e2 = p1.task("b.hello.echo"), p2.task("b.hello.echo")
    assert (e1.mode, e1.image, e1.image_ref, e1.image_address) == ("none", "-", None, None)
    assert e1.version == e2.version  # no image in its version
    assert p1.task("b.hello.work").version != p2.task("b.hello.work").version
    from flytebuild.core.registration import serialize_request

    req = serialize_request(p1)
    work_ref = p1.task("b.hello.work").image_ref
    assert req["tasks"]["b.hello.echo"]["image"] is None and req["default_image"] == work_ref


def test_image_without_flytekit_for_a_python_task_is_a_plan_error(mk):
    t = mk.task("b.hello.work", source_file="examples/b/hello.py")
    closures = {"examples/b/hello.py": closure("examples/b/hello.py")}
    bare = ImageTarget("examples/b:bare", "bare", BASE, "reg:5000", requirements=())
    with pytest.raises(PlanError) as e:
        plan(mk, [t], closures, images=[bare], image="examples/b:bare")
    assert "b.hello.work" in str(e.value) and "examples/b:bare" in str(e.value) and "Fix: add flytekit" in str(e.value)
    # A raw container on the same image is fine: it runs the image's own command.
    c = mk.task("b.hello.raw", kind="container", source_file="examples/b/hello.py")
    assert plan(mk, [c], closures, images=[bare], image="examples/b:bare").task("b.hello.raw").mode == "container"


def test_one_flyte_image_name_answering_different_specs_warns_naming_tasks_and_packages(mk):
    fk = ImageTarget("examples/images:fk", "flytekit", BASE, "reg:5000", requirements=("flytekit", "numpy"),
                     sources=(fd("examples/alpha/t.py"), fd("examples/beta/t.py")))
    a = mk.task("alpha.t.run", source_file="examples/alpha/t.py", image=spec(registry="reg:5000"))
    b = mk.task("beta.t.run", source_file="examples/beta/t.py", image=spec(registry="reg:5000", packages=["numpy"]))
    conflicting = mk.task("gamma.t.run", source_file="examples/gamma/t.py",
                          image=spec(registry="reg:5000", base_image="other/py:3.12"))
    closures = {f"examples/{p}/t.py": closure(f"examples/{p}/t.py") for p in ("alpha", "beta", "gamma")}
    pa = plan(mk, [a], closures, images=[fk], address="examples/alpha:wf")
    pb = plan(mk, [b], closures, images=[fk], address="examples/beta:wf")
    pg = plan(mk, [conflicting], closures, images=[fk], address="examples/gamma:wf")
    assert pa.task("alpha.t.run").image_address == fk.address and pb.task("beta.t.run").image_address == fk.address
    # The spec asking for another base is not silently remapped: built from its own fields, with a warning.
    g = pg.task("gamma.t.run")
    assert g.image_address is None and g.image_source == "code:ImageSpec"
    assert any("examples/images:fk" in w and "base_image `other/py:3.12`" in w for w in g.warnings)
    # Across workflows: one name answers two different specs -> a warning naming the tasks and packages.
    plans = {p.address: p for p in with_cross_workflow_warnings([pa, pb, pg])}
    (w,) = [w for w in plans["examples/alpha:wf"].warnings if "answers 2 ImageSpecs" in w]
    assert "alpha.t.run (package alpha)" in w and "beta.t.run (package beta)" in w
    assert not any("answers" in w for w in plans["examples/gamma:wf"].warnings)


def test_lazily_imported_requirement_is_named_with_the_dependencies_fix(mk):
    df = {"type": "pandas.core.frame.DataFrame"}
    t = mk.task("d.frames.load", source_file="examples/d/frames.py", inputs={}, outputs={"o0": df})
    img = ImageTarget("examples/d:img", "d", BASE, "reg:5000", requirements=("flytekit", "pandas"))
    closures = {"examples/d/frames.py": closure("examples/d/frames.py", reqs=("flytekit", "pandas"))}
    with pytest.raises(PlanError) as e:
        plan(mk, [t], closures, images=[img], image="examples/d:img")
    text = str(e.value)
    assert "d.frames.load" in text and "`pyarrow`" in text and 'dependencies=["<requirements target>#pyarrow"]' in text
    ok = {"examples/d/frames.py": closure("examples/d/frames.py", reqs=("flytekit", "pandas", "pyarrow"))}
    assert plan(mk, [t], ok, images=[img], image="examples/d:img").task("d.frames.load").mode == "fast"


def test_reference_rows_keep_their_columns_and_full_version(mk):
    t = mk.task("b.hello.work", source_file="examples/b/hello.py")
    data = mk.introspection("task", "b.hello.work", tasks=[t], entrypoint="p.m:wf",
                            references=[mk.reference("remote.tasks.scale", version="v2025-11-30-release-candidate")])
    p = plan_workflow(target(), parse_introspection(data), {}, {}, Settings(default_image="reg:5000/img:1"))
    lines = render_table([], [p]).splitlines()
    header = next(line for line in lines if line.strip().startswith("ENTITY"))
    row = next(line for line in lines if "remote.tasks.scale" in line)
    assert row[header.index("VERSION"):].startswith("v2025-11-30-release-candidate")
    assert row[header.index("MODE"):].startswith("reference task (flytesnacks/development)")
    assert row[header.index("IMAGE"):].startswith("-")


def test_plan_json_lists_what_publishers_build(mk):
    t = mk.task("a.t.run", source_file="examples/a/t.py", image=spec(name="a", registry="reg:5000", source_root="."))
    p = plan(mk, [t], {"examples/a/t.py": closure("examples/a/t.py")})
    import json

    (image,) = json.loads(render_json([], [p]))["workflows"][0]["spec_images"]
    assert image["ref"] == p.task("a.t.run").image_ref and image["base"] == BASE
    assert image["requirements"] == ["flytekit==1.16.31"] and image["sources"] == ["examples/a/t.py"]


def test_a_plan_read_back_from_the_clis_plan_cache_is_the_same_value(mk):
    """cli/cache.py keeps finished plans as JSON (`to_json`) and replays them (`from_json`): spec images with their
    copies, file digests, env pairs and Optionals come back as the same frozen value, so a replayed plan renders
    byte-identically."""
    import json

    from flytebuild.cli.cache import from_json, to_json
    from flytebuild.core.model import WorkflowPlan

    t = mk.task("data.tasks.scale", source_file="examples/data/tasks.py",
                image=spec(registry="reg:5000", copy=["tasks.py"], env={"A": "1"}, packages=["numpy"]))
    closures = {"examples/data/tasks.py": closure("examples/data/tasks.py", "examples/data/transform.py")}
    p = plan(mk, [t], closures, files=[fd("examples/data/tasks.py")])
    assert p.spec_images and p.spec_images[0].copies and p.spec_images[0].env
    back = from_json(WorkflowPlan, json.loads(json.dumps(to_json(p))))
    assert back == p and render_json([], [back]) == render_json([], [p])
