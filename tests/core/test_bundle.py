"""core/bundle.py: what the fast-register bundle holds, its bytes, its name, and its warnings."""
import io
import tarfile

import pytest
from blake3 import blake3

from flytebuild.core.bundle import (
    BundleError,
    build_bundle,
    bundle_warnings,
    plan_bundle,
    strip_source_root,
)
from flytebuild.core.model import ImageTarget, TaskPlan, WorkflowPlan

ROOTS = ("examples", "src/python")


def task(name, mode, sources=(), image_address="examples/mixed:runtime"):
    return TaskPlan(
        name=name, module=name.rsplit(".", 1)[0], kind="container" if mode == "container" else "python",
        task_type="python-task", source_file=None, image=image_address or "ext:1", image_name=None,
        image_source="workflow", image_address=image_address, image_ref=None, image_fingerprint="f",
        mode=mode, fingerprint="0" * 64, version="0" * 32, sources=tuple(sources), requirements=(),
        missing_sources=tuple(sources) if mode == "fast" else (), missing_requirements=(), cache_version=None,
    )


def plan(*tasks, address="examples/mixed:wf"):
    return WorkflowPlan(address, "m:wf", "p", "d", "workflow", "m.wf", "v", tuple(tasks), (), (), ())


FAST_A = task("mixed.fast_tasks.weights", "fast",
              ["examples/mixed/__init__.py", "examples/mixed/fast_tasks.py",
               "examples/shared/__init__.py", "examples/shared/helpers.py"])
FAST_B = task("mixed.plain_tasks.total", "fast", ["examples/mixed/__init__.py", "examples/mixed/plain_tasks.py"])
BAKED = task("mixed.spec_tasks.label", "baked",
             ["examples/mixed/spec_tasks.py", "examples/shared/textutil.py"], "examples/mixed:spec_image")
CONTAINER = task("mixed.containers.echo", "container")

FILES = {
    "examples/mixed/__init__.py": b"",
    "examples/mixed/fast_tasks.py": b"from shared.helpers import x\n",
    "examples/mixed/plain_tasks.py": b"def total(): ...\n",
    "examples/shared/__init__.py": b"",
    "examples/shared/helpers.py": b"x = 1\n",
}


def members(bundle):
    with tarfile.open(fileobj=io.BytesIO(bundle.data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_no_fast_task_means_no_bundle_and_nothing_read():
    assert plan_bundle([plan(BAKED, CONTAINER)], ROOTS) is None


def test_bundle_holds_exactly_the_union_of_fast_closures_at_import_paths():
    bp = plan_bundle([plan(FAST_A, BAKED, CONTAINER), plan(FAST_B, address="examples/mixed:other")], ROOTS)
    assert bp.tasks == ("mixed.fast_tasks.weights", "mixed.plain_tasks.total")
    assert [f.path for f in bp.files] == [
        "mixed/__init__.py", "mixed/fast_tasks.py", "mixed/plain_tasks.py", "shared/__init__.py", "shared/helpers.py",
    ]
    read = []
    bundle = build_bundle(bp, lambda p: read.append(p) or FILES[p])
    assert sorted(read) == sorted(FILES)  # the baked task's textutil.py is never read
    assert members(bundle) == {f.path: FILES[f.source] for f in bp.files}
    assert bundle.name == f"fast{blake3(bundle.data).hexdigest()}.tar.gz" and bundle.digest in bundle.name


def test_bundle_bytes_are_deterministic_and_follow_content():
    bp = plan_bundle([plan(FAST_A, FAST_B)], ROOTS)
    one, two = build_bundle(bp, FILES.__getitem__), build_bundle(bp, FILES.__getitem__)
    assert one.data == two.data and one.name == two.name
    with tarfile.open(fileobj=io.BytesIO(one.data), mode="r:gz") as tar:
        assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in tar.getmembers())
    assert one.data[4:8] == b"\0\0\0\0"  # gzip header mtime
    changed = dict(FILES, **{"examples/shared/helpers.py": b"x = 2\n"})
    assert build_bundle(bp, changed.__getitem__).name != one.name


def test_strip_source_root_longest_root_wins_and_unknown_root_is_a_clear_error():
    assert strip_source_root("src/python/flytebuild/x.py", ("src", "src/python")) == "flytebuild/x.py"
    assert strip_source_root("top.py", ("",)) == "top.py"
    with pytest.raises(BundleError) as err:
        strip_source_root("elsewhere/secret.py", ROOTS)
    assert "elsewhere/secret.py" in str(err.value) and "root_patterns" in str(err.value)


def test_two_files_on_one_import_path_are_rejected():
    clash = task("other.t", "fast", ["src/python/mixed/fast_tasks.py"])
    with pytest.raises(BundleError) as err:
        plan_bundle([plan(FAST_A, clash)], ROOTS)
    assert "mixed/fast_tasks.py" in str(err.value)


def test_warnings_for_raw_containers_and_images_without_flytekit():
    no_flytekit = ImageTarget("examples/bare:image", "bare", "python:3.11", requirements=("pandas",))
    with_flytekit = ImageTarget("examples/mixed:runtime", "rt", "python:3.11", requirements=("flytekit",))
    bare_task = task("bare.t", "fast", ["examples/bare/t.py"], "examples/bare:image")
    warnings = bundle_warnings(
        [plan(FAST_A, BAKED, CONTAINER, bare_task)],
        {i.address: i for i in (no_flytekit, with_flytekit)},
    )
    assert [w.task for w in warnings] == ["bare.t", "mixed.containers.echo"]
    assert "no flytekit" in warnings[0].message and "raw container" in warnings[1].message
