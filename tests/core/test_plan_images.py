"""Image choice per task: code, task_images, workflow, default_image, flytekit default."""
import dataclasses

import pytest

from flytebuild.core.errors import PlanError
from flytebuild.core.introspection import parse_introspection
from flytebuild.core.model import ImageTarget
from flytebuild.core.plan import plan_workflow
from flytebuild.core.settings import Settings

T = "fast.tasks.crunch"
ML = ImageTarget(
    address="examples/ml:image",
    image_name="ml",
    base="python:3.11-slim",
    registry="localhost:5000",
    sources=(),
    requirements=("flytekit", "pandas"),
)


def choose(
    mk,
    image=None,
    kind="python",
    target=None,
    default_image=None,
    flytekit_version="1.16.31",
    python="3.11",
    extra_images=(ML,),
):
    closures, images = mk.scenario_facts()
    images.update({i.address: i for i in extra_images})
    t = mk.task(T, kind=kind, image=image)
    data = mk.introspection("task", T, tasks=[t], entrypoint="fast.tasks:crunch")
    intro = parse_introspection({**data, "environment": {"python": python, "flytekit": flytekit_version}})
    target = target or mk.workflow_target(image=None, task_images=())
    return plan_workflow(target, intro, closures, images, Settings(default_image=default_image)).task(T)


def template(name):
    return {"kind": "template", "value": f"{{{{.image.{name}.fqn}}}}:{{{{.image.{name}.version}}}}", "name": name}


def test_code_template_mapped_in_images(mk):
    target = mk.workflow_target(image=mk.BAKED_IMAGE, images=(("trainer", ML.address),))
    t = choose(mk, template("trainer"), target=target)
    assert (t.image, t.image_source, t.image_name) == (ML.address, "code", "ml")


def test_code_template_matched_by_image_name(mk):
    t = choose(mk, template("ml"), target=mk.workflow_target(task_images=((T, mk.BAKED_IMAGE),)))
    assert (t.image, t.image_source) == (ML.address, "code")  # code beats task_images and workflow


def test_code_template_undefined_name_names_target_and_fix(mk):
    with pytest.raises(PlanError) as info:
        choose(mk, template("gpu"))
    text = str(info.value)
    for needle in (
        T,
        "`gpu`",
        mk.WF_ADDRESS,
        'flyte_image(image_name="gpu")',
        "images={",
        "examples/fast/tasks.py",
        "Fix:",
    ):
        assert needle in text
    assert "\n" not in text


def test_code_template_ambiguous_name(mk):
    twin = dataclasses.replace(ML, address="examples/ml2:image")
    with pytest.raises(PlanError, match=r"several flyte_image targets \(examples/ml2:image, examples/ml:image\)"):
        choose(mk, template("ml"), extra_images=(ML, twin))


def test_images_map_to_unknown_address(mk):
    target = mk.workflow_target(images=(("trainer", "examples/nope:image"),))
    with pytest.raises(PlanError, match=r"examples/nope:image.*target examples/baked:wf"):
        choose(mk, template("trainer"), target=target)


def test_default_template_resolves_like_no_image(mk):
    target = mk.workflow_target(image=mk.BAKED_IMAGE, task_images=())
    t = choose(mk, template("default"), target=target)
    assert (t.image, t.image_source) == (mk.BAKED_IMAGE, "workflow")


def test_plain_string_is_external_and_fast(mk):
    t = choose(mk, {"kind": "string", "value": "ghcr.io/org/img:1.0", "name": None})
    assert (t.image, t.image_source, t.image_ref, t.image_address) == (
        "ghcr.io/org/img:1.0",
        "code",
        "ghcr.io/org/img:1.0",
        None,
    )
    assert t.mode == "fast"
    assert t.missing_sources == ("examples/fast/tasks.py",)
    assert t.missing_requirements == ("flytekit", "pandas")
    assert not any("flytekit" in w for w in t.warnings)  # unknown contents: no claim either way


def test_string_holding_a_template_is_a_template(mk):
    value = "{{.image.ml.fqn}}:{{.image.ml.version}}"
    t = choose(mk, {"kind": "string", "value": value, "name": None})
    assert (t.image, t.image_source) == (ML.address, "code")


def test_image_spec_with_target_is_baked_when_it_holds_the_closure(mk):
    closures, _ = mk.scenario_facts()
    full = dataclasses.replace(ML, sources=closures["examples/fast/tasks.py"].sources)
    spec = {"name": "ml", "base_image": "python:3.11-slim", "packages": ["pandas"]}
    t = choose(mk, {"kind": "image_spec", "value": None, "name": "ml", "spec": spec}, extra_images=(full,))
    assert (t.image, t.image_source, t.mode) == (ML.address, "code", "baked")


def test_flyte_image_answers_a_spec_by_name_only_without_conflict(mk):
    """A spec whose base_image (or packages) the target would drop is built from its own fields, with a warning."""
    closures, _ = mk.scenario_facts()
    full = dataclasses.replace(ML, sources=closures["examples/fast/tasks.py"].sources)
    spec = {"name": "ml", "base_image": "python:3.12", "packages": ["pandas", "torch"]}
    t = choose(mk, {"kind": "image_spec", "value": None, "name": "ml", "spec": spec}, extra_images=(full,))
    assert t.image_source == "code:ImageSpec" and t.image_ref.startswith("localhost:5000/ml:")
    (w,) = [w for w in t.warnings if ML.address in w]
    assert "base_image `python:3.12`" in w and "torch" in w and 'images={"ml": "examples/ml:image"}' in w
    # Mapped explicitly, the target answers, and the plan says what the spec loses.
    target = mk.workflow_target(image=None, task_images=(), images=(("ml", ML.address),))
    t = choose(
        mk, {"kind": "image_spec", "value": None, "name": "ml", "spec": spec}, extra_images=(full,), target=target
    )
    assert (t.image, t.image_source) == (ML.address, "code")
    assert any("replaces what the spec asks for" in w and "python:3.12" in w for w in t.warnings)


def test_image_spec_without_target_is_built_by_flytebuild_under_a_content_tag(mk):
    # flytebuild builds it (core/imagespec.py, `flyte-imagespec`): the ref carries the content tag.
    spec = {"name": "nlp", "registry": "ghcr.io/org", "packages": ["spacy"]}
    t = choose(mk, {"kind": "image_spec", "value": None, "name": "nlp", "spec": spec})
    assert (t.image_source, t.mode, t.image_name) == ("code:ImageSpec", "fast", "nlp")
    assert t.image == t.image_ref and t.image.startswith("ghcr.io/org/nlp:") and len(t.image.split(":")[1]) == 32
    assert any("ImageSpec nlp sets neither source_root nor copy" in w for w in t.warnings)


def test_image_spec_spec_is_part_of_the_version(mk):
    a = choose(mk, {"kind": "image_spec", "name": "nlp", "spec": {"name": "nlp", "packages": ["spacy"]}})
    b = choose(mk, {"kind": "image_spec", "name": "nlp", "spec": {"name": "nlp", "packages": ["spacy", "x"]}})
    assert a.version != b.version


def test_task_images_full_and_short_name(mk):
    for key in (T, "crunch"):
        t = choose(mk, target=mk.workflow_target(image=mk.BAKED_IMAGE, task_images=((key, ML.address),)))
        assert (t.image, t.image_source) == (ML.address, "task_images")


def test_workflow_image(mk):
    t = choose(mk, target=mk.workflow_target(image=ML.address, task_images=()))
    assert (t.image, t.image_source) == (ML.address, "workflow")


def test_workflow_image_unknown_address(mk):
    with pytest.raises(PlanError) as info:
        choose(mk, target=mk.workflow_target(image="examples/gone:image", task_images=()))
    assert "examples/gone:image" in str(info.value) and mk.WF_ADDRESS in str(info.value)


@pytest.mark.parametrize("spelling", ["examples/ml:image", "//examples/ml:image"])
def test_default_image_address(mk, spelling):
    t = choose(mk, default_image=spelling)
    assert (t.image, t.image_source) == (ML.address, "default_image")


def test_default_image_reference(mk):
    t = choose(mk, default_image="ghcr.io/org/base:2")
    assert (t.image, t.image_source, t.mode) == ("ghcr.io/org/base:2", "default_image", "fast")


def test_default_image_unknown_address(mk):
    with pytest.raises(PlanError, match=r"default_image `//examples/gone:image`"):
        choose(mk, default_image="//examples/gone:image")


def test_flytekit_default_image(mk):
    t = choose(mk)
    assert (t.image, t.image_source) == ("cr.flyte.org/flyteorg/flytekit:py3.11-1.16.31", "flytekit_default")
    assert any("no image configured" in w and mk.WF_ADDRESS in w for w in t.warnings)
    assert choose(mk, flytekit_version=None).image.endswith(":py3.11-latest")
    # The user's own interpreter picks the tag, as flytekit does.
    assert choose(mk, python="3.12").image == "cr.flyte.org/flyteorg/flytekit:py3.12-1.16.31"


def test_container_task_without_image_warns_about_fallback(mk):
    t = choose(mk, kind="container", target=mk.workflow_target(image=mk.BAKED_IMAGE, task_images=()))
    assert (t.mode, t.image_source, t.sources) == ("container", "workflow", ())
    (w,) = t.warnings
    assert "falls back" in w and mk.BAKED_IMAGE in w


def test_changing_the_chosen_image_changes_the_version(mk):
    a = choose(mk, default_image="ghcr.io/org/base:2")
    b = choose(mk, default_image="ghcr.io/org/base:3")
    assert a.version != b.version
