"""End to end: the real ./pants flyte-plan over the bundled examples, in a throwaway copy."""
import json
import shutil

import pytest

HELPER = "examples/shared/helpers.py"


def plan(repo, *specs):
    proc = repo.pants("flyte-plan", "--format=json", *(specs or ("examples::",)), check=True)
    return json.loads(proc.stdout)


def tasks_by_name(data):
    return {t["name"]: t for wf in data["workflows"] for t in wf["tasks"]}


def workflows_by_address(data):
    return {wf["address"]: wf for wf in data["workflows"]}


@pytest.fixture(scope="module")
def baseline(pants_repo):
    return plan(pants_repo)


def test_modes_follow_the_images_contents(baseline):
    tasks = tasks_by_name(baseline)
    baked = [n for n in tasks if n.startswith("baked.")]
    assert len(baked) == 4 and all(tasks[n]["mode"] == "baked" for n in baked)
    assert tasks["mixed.spec_tasks.label"]["mode"] == "baked"
    assert tasks["mixed.spec_tasks.label"]["image"] == "examples/mixed:spec_image"
    assert tasks["mixed.spec_tasks.label"]["image_source"] == "code"
    for name in ("mixed.fast_tasks.weights", "mixed.plain_tasks.total"):
        assert tasks[name]["mode"] == "fast"
        assert tasks[name]["image"] == "examples/mixed:runtime"
        assert tasks[name]["image_source"] == "workflow"
    weights = tasks["mixed.fast_tasks.weights"]
    assert HELPER in weights["sources"] and HELPER in weights["missing_sources"]
    assert HELPER not in tasks["mixed.plain_tasks.total"]["sources"]
    assert tasks["mixed.containers.echo"]["mode"] == "container"
    maps = [n for n in tasks if "map_square" in n]
    assert maps and tasks[maps[0]]["mode"] == "baked"


def test_images_list_their_exact_closure(baseline):
    images = {i["address"]: i for i in baseline["images"]}
    baked = images["examples/baked:image"]
    assert HELPER in baked["sources"]
    assert "examples/mixed/fast_tasks.py" not in baked["sources"]
    assert baked["requirements"] == ["flytekit"]
    assert images["examples/mixed:runtime"]["sources"] == []
    spec = images["examples/mixed:spec_image"]
    assert "examples/shared/textutil.py" in spec["sources"] and HELPER not in spec["sources"]


def test_table_output_shows_image_mode_and_version(pants_repo, baseline):
    out = pants_repo.pants("flyte-plan", "examples/mixed:wf", check=True).stdout
    assert "mixed.fast_tasks.weights" in out and "fast" in out and "baked" in out
    version = workflows_by_address(baseline)["examples/mixed:wf"]["version"]
    assert version[:12] in out


def test_editing_the_shared_helper_changes_exactly_its_dependents(pants_repo, baseline):
    original = pants_repo.read(HELPER)
    pants_repo.write(HELPER, original + "\n\ndef extra():\n    return 42\n")
    try:
        after = plan(pants_repo)
        before_tasks, after_tasks = tasks_by_name(baseline), tasks_by_name(after)
        uses_helper = {n for n, t in before_tasks.items() if HELPER in t["sources"]}
        assert uses_helper == {
            "baked.stats.normalize_values",
            "baked.stats.summarize",
            "mixed.fast_tasks.weights",
        }
        changed = {n for n in before_tasks if before_tasks[n]["version"] != after_tasks[n]["version"]}
        # Every baked task runs from an image that bakes the helper: a new image is a new task.
        baked_image_users = {n for n in before_tasks if n.startswith("baked.")}
        assert changed == uses_helper | baked_image_users
        before_wfs, after_wfs = workflows_by_address(baseline), workflows_by_address(after)
        for address in ("examples/baked:wf", "examples/baked:lp", "examples/mixed:wf"):
            assert before_wfs[address]["version"] != after_wfs[address]["version"], address
        assert (
            before_wfs["examples/mixed:container_wf"]["version"] == after_wfs["examples/mixed:container_wf"]["version"]
        )
    finally:
        pants_repo.write(HELPER, original)
    assert plan(pants_repo) == baseline


def test_unrelated_edits_change_nothing(pants_repo, baseline):
    # A new package nothing imports and no image bakes, and a non-source file.
    pants_repo.write("examples/scratch/BUILD", "python_sources()\n")
    pants_repo.write("examples/scratch/unused.py", "VALUE = 1\n")
    readme = pants_repo.read("examples/README.md")
    pants_repo.write("examples/README.md", readme + "\nmore\n")
    try:
        assert plan(pants_repo) == baseline
    finally:
        shutil.rmtree(pants_repo.root / "examples/scratch")
        pants_repo.write("examples/README.md", readme)


def test_an_edit_imports_again_only_the_workflows_whose_closure_it_touches(pants_repo, baseline):
    # Each workflow's introspection answer is kept under a key of its own inputs (core/result_cache.py, in the
    # repo's .pants.d): a new entry is a workflow that was imported again.
    results = pants_repo.root / ".bootstrap/pants.d/flytebuild/results"
    models = "examples/typed/models.py"
    original = pants_repo.read(models)
    before = set(results.rglob("introspect-*.json"))
    assert before  # the baseline plan filled it
    pants_repo.write(models, original + "\n# edited\n")
    try:
        after = plan(pants_repo)
        new = set(results.rglob("introspect-*.json")) - before
        assert len(new) == 2  # examples/typed:wf and examples/typed:lp, in one process; the other four replayed
        entrypoints = sorted(
            json.loads(p.read_text())["entrypoint"] for p in new if "entrypoint" in json.loads(p.read_text())
        )
        assert all(ep.startswith("typed.") for ep in entrypoints)
        changed = {
            a
            for a, wf in workflows_by_address(after).items()
            if wf["version"] != workflows_by_address(baseline)[a]["version"]
        }
        assert changed == {"examples/typed:wf", "examples/typed:lp"}
    finally:
        pants_repo.write(models, original)
    assert plan(pants_repo) == baseline
    assert set(results.rglob("introspect-*.json")) - before == new  # back to known content: nothing new


BAD_BUILD = """
python_sources()
flyte_workflow(name="missing_mod", entrypoint="bad.nope:wf")
flyte_workflow(name="missing_file", entrypoint="nope.py:wf")
flyte_workflow(name="import_err", entrypoint="broken.py:wf")
flyte_workflow(name="no_attr", entrypoint="ok.py:nothere")
flyte_workflow(name="not_entity", entrypoint="ok.py:x")
flyte_workflow(name="bad_image", entrypoint="ok.py:wf", image=":nope")
flyte_workflow(name="undef_name", entrypoint="ok.py:wf_gpu")
"""
BROKEN = """import flytekit


def helper():
    raise RuntimeError("boom in user code")


helper()
"""
OK = """from flytekit import task, workflow

x = 3


@task
def t() -> int:
    return 1


@task(container_image="{{.image.gpu.fqn}}:{{.image.gpu.version}}")
def t_gpu() -> int:
    return 1


@workflow
def wf() -> int:
    return t()


@workflow
def wf_gpu() -> int:
    return t_gpu()
"""


@pytest.fixture(scope="module")
def bad_repo(pants_repo):
    pants_repo.write("examples/bad/__init__.py", "")
    pants_repo.write("examples/bad/broken.py", BROKEN)
    pants_repo.write("examples/bad/ok.py", OK)
    pants_repo.write("examples/bad/BUILD", BAD_BUILD)
    yield pants_repo
    shutil.rmtree(pants_repo.root / "examples/bad")


@pytest.mark.parametrize(
    "target, expected",
    [
        ("missing_mod", ["module 'bad.nope'", "Fix:"]),
        ("missing_file", ["examples/bad/nope.py", "entrypoint"]),
        ("import_err", ["RuntimeError: boom in user code", 'File "examples/bad/broken.py", line 8']),
        ("no_attr", ["no attribute 'nothere'", "Fix:"]),
        ("not_entity", ["is a int, not a flytekit task", "Fix:"]),
        ("bad_image", ["examples/bad:nope", "`image` field of examples/bad:bad_image"]),
        ("undef_name", ["image `gpu`", 'flyte_image(image_name="gpu")', "Fix:"]),
    ],
)
def test_bad_input_gets_one_clear_message(bad_repo, target, expected):
    proc = bad_repo.pants("flyte-plan", f"examples/bad:{target}")
    assert proc.returncode != 0
    message = proc.stderr
    assert f"examples/bad:{target}" in message or target in ("missing_file",)
    for text in expected:
        assert text in message, (text, message)
    # Never a traceback of ours (the user's own, trimmed, is fine for import errors).
    assert "flytebuild/" not in message and "site-packages" not in message
    if target != "import_err":
        assert "Traceback" not in message
