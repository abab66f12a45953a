"""The reliability cases through the real `./pants`, in the session's repo copy (one pantsd for every test):
bad fields fail before anything resolves with the target, field and fix and no traceback of ours; an
`image_name` with `../` never writes outside dist/; a broken target fails only the goals that need it; a user
module that blocks at import is stopped by [flyte].user_code_timeout with the target named."""
from __future__ import annotations

import re
import shutil
import textwrap
import time

import pytest

OUR_FRAME = re.compile(r'File ".*flytebuild/[^"]*", line \d+')

BUILD = '''
python_sources()

flyte_image(name="good", base="localhost:5000/flytebuild/python:3.11", repository="rel/good",
            dependencies=["examples/3rdparty:reqs#flytekit"])
flyte_image(name="bad-base", base="http://exa mple:abc/x", dependencies=["examples/3rdparty:reqs#flytekit"])
flyte_image(name="bad-registry", registry="http://localhost:5000", dependencies=["examples/3rdparty:reqs#flytekit"])
flyte_image(name="evil", image_name="../evil", dependencies=["examples/3rdparty:reqs#flytekit"])

flyte_workflow(name="wf-good", entrypoint="wf.py:wf", image=":good")
flyte_workflow(name="wf-bad-base", entrypoint="wf.py:wf", image=":bad-base")
flyte_workflow(name="wf-bad-registry", entrypoint="wf.py:wf", image=":bad-registry")
flyte_workflow(name="wf-bad-project", entrypoint="wf.py:wf", image=":good", project="Flyte Snacks")
flyte_workflow(name="wf-hang", entrypoint="hang.py:wf", image=":good")
# names its image in code (ImageSpec name `good`): planning it looks every flyte_image up by name
flyte_workflow(name="wf-named", entrypoint="named.py:wf")
flyte_reference(name="bad-ref", kind="nope", entity_name="remote.wf")
'''

WF = textwrap.dedent('''
    from flytekit import task, workflow


    @task
    def one(x: int) -> int:
        return x + 1


    @workflow
    def wf(x: int = 1) -> int:
        return one(x=x)
    ''')

NAMED = WF.replace("from flytekit import task, workflow", "from flytekit import ImageSpec, task, workflow\n\n"
                   "spec = ImageSpec(name=\"good\", registry=\"localhost:5000\")").replace(
    "@task\n", "@task(container_image=spec)\n")

HANG = "import time\n\ntime.sleep(3600)  # blocks at import, as a module waiting on a network call would\n" + WF


@pytest.fixture(scope="module")
def repo(pants_repo):
    """The session's repo copy and pantsd (tests/support/fixtures.py) with the broken targets in their own
    directory, removed afterwards: other tests plan `examples::` in the same copy."""
    pants_repo.write("examples/reliability/BUILD", BUILD)
    pants_repo.write("examples/reliability/__init__.py", "")
    pants_repo.write("examples/reliability/wf.py", WF)
    pants_repo.write("examples/reliability/hang.py", HANG)
    pants_repo.write("examples/reliability/named.py", NAMED)
    yield pants_repo
    shutil.rmtree(pants_repo.root / "examples/reliability", ignore_errors=True)


def _refused(proc, *fragments):
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text
    for fragment in fragments:
        assert fragment in text, text[-3000:]
    assert "Fix:" in text
    assert not OUR_FRAME.search(text), f"a traceback of ours:\n{text[-3000:]}"


@pytest.mark.parametrize("target,fragments", [
    ("wf-bad-base", ("The `base` field of flyte_image examples/reliability:bad-base", "'http://exa mple:abc/x'")),
    ("wf-bad-registry", ("The `registry` field of flyte_image examples/reliability:bad-registry", "URL scheme")),
    ("wf-bad-project", ("The `project` field of flyte_workflow examples/reliability:wf-bad-project",
                        "'Flyte Snacks'")),
])
def test_bad_field_fails_flyte_plan_before_user_code_runs(repo, target, fragments):
    start = time.monotonic()
    _refused(repo.pants("flyte-plan", f"examples/reliability:{target}"), *fragments)
    assert time.monotonic() - start < 300


def test_image_name_with_dotdot_never_writes_outside_dist(repo):
    proc = repo.pants("--flyte-image-output=oci", "package", "examples/reliability:evil")
    _refused(proc, "The `image_name` field of flyte_image examples/reliability:evil", "path separator")
    assert not list(repo.root.glob("evil*")) and not list(repo.root.glob("dist/../evil*"))
    assert not (repo.root / "dist" / "evil.oci").exists()


def test_broken_targets_fail_only_the_goals_that_need_them(repo):
    proc = repo.pants("flyte-plan", "--format=json", "examples/reliability:wf-good")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '"examples/reliability:wf-good"' in proc.stdout or "wf-good" in proc.stdout


def test_a_broken_reference_fails_only_its_own_run(repo):
    proc = repo.pants("flyte-plan", "--format=json", "examples/reliability:wf-named")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "examples/reliability:good" in proc.stdout
    _refused(repo.pants("run", "examples/reliability:bad-ref"),
             "The `kind` field of flyte_reference examples/reliability:bad-ref", "'nope'")


def test_user_module_blocking_at_import_is_stopped_with_the_target_named(repo):
    start = time.monotonic()
    proc = repo.pants("--flyte-user-code-timeout=6", "flyte-plan", "examples/reliability:wf-hang")
    _refused(proc, "did not finish within 6 s", "examples/reliability:wf-hang", "[flyte].user_code_timeout")
    assert time.monotonic() - start < 240


DOTS_BUILD = '''
flyte_image(name="img", repository="rel/dots", dependencies=["examples/3rdparty:reqs#flytekit"])
python_sources()
flyte_workflow(name="..", entrypoint="wf.py:wf", image=":img")
'''


def test_target_named_dotdot_never_writes_outside_dist(repo):
    """A flyte_workflow's target name becomes `dist/<dir>/<name>/`: Pants bans `/` in names, not `..`, which would
    write the archive into dist/ itself. It is refused, naming the target, and nothing is written."""
    repo.write("examples/reliability/dots/BUILD", DOTS_BUILD)
    repo.write("examples/reliability/dots/__init__.py", "")
    repo.write("examples/reliability/dots/wf.py", WF)
    try:
        proc = repo.pants("package", "examples/reliability/dots:..")
    finally:
        shutil.rmtree(repo.root / "examples/reliability/dots", ignore_errors=True)
    _refused(proc, "The target name of flyte_workflow examples/reliability/dots:.. is '..'", "path separator")
    assert not (repo.root / "dist/flyte-package.tgz").exists()
    assert not list((repo.root / "dist").glob("fast*.tar.gz"))
