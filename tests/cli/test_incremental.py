"""The CLI's content-addressed cache (core/result_cache.py): with nothing changed no user-env process imports
flytekit; after an edit only the workflows whose import closure changed are introspected and serialized again.

flytekit imports are counted for real: the user's interpreter is a venv over the exported user environment whose
startup installs an import hook that appends one line (the process's argv) to a log when `flytekit` is imported."""
import json
import os
import signal
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.support.flyteadmin.fixture import flyteadmin

_HOOK = """
import json, os, sys


class _CountFlytekit:
    def find_spec(self, name, path=None, target=None):
        if name == "flytekit":
            sys.meta_path.remove(self)
            with open(os.environ["FB_FLYTEKIT_LOG"], "a") as f:
                f.write(json.dumps(sys.argv) + "\\n")
        return None


if os.environ.get("FB_FLYTEKIT_LOG"):
    sys.meta_path.insert(0, _CountFlytekit())
"""

_FILES = {
    "src/proj/__init__.py": "",
    "src/proj/util.py": "def double(x):\n    return 2 * x\n",
    "src/proj/a.py": """
        from flytekit import task, workflow
        from proj.util import double

        @task
        def one(x: int) -> int:
            return double(x)

        @workflow
        def wf(x: int = 1) -> int:
            return one(x=x)
        """,
    "src/proj/b.py": """
        from flytekit import task, workflow
        from proj.util import double

        @task
        def two(x: int) -> int:
            return double(x) + 1

        @workflow
        def wf(x: int = 1) -> int:
            return two(x=x)
        """,
    "requirements.txt": "flytekit==1.16.31\n",
    "flytebuild.toml": """
        source_roots = ["src"]
        requirements = "requirements.txt"

        [images.img-a]
        dependencies = ["src/proj/a.py"]
        requirements = ["flytekit"]

        [images.img-b]
        dependencies = ["src/proj/b.py"]
        requirements = ["flytekit"]

        [workflows.a]
        entrypoint = "src/proj/a.py:wf"
        image = "img-a"

        [workflows.b]
        entrypoint = "src/proj/b.py:wf"
        image = "img-b"
        """,
}


@pytest.fixture(scope="module")
def counting_python(user_python, tmp_path_factory) -> Path:
    """A venv whose site-packages adds the exported user environment's and the counting hook."""
    venv = tmp_path_factory.mktemp("counting") / "venv"
    subprocess.run([user_python, "-m", "venv", "--without-pip", str(venv)], check=True)
    site_dirs = json.loads(subprocess.run(
        [user_python, "-c", "import json, site; print(json.dumps(site.getsitepackages()))"],
        check=True, capture_output=True, text=True).stdout)
    (site,) = venv.glob("lib/python3*/site-packages")
    (site / "_fb_count_flytekit.py").write_text(_HOOK)
    (site / "fb_user_env.pth").write_text(
        "".join(f"import site; site.addsitedir({d!r})\n" for d in site_dirs) + "import _fb_count_flytekit\n")
    return venv / "bin" / "python"


@pytest.fixture
def project(tmp_path, counting_python, cli):
    root = tmp_path / "proj"
    for rel, text in _FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    log = tmp_path / "flytekit-imports.log"
    # Without the warm worker (FLYTEBUILD_WORKER=0) every process that imports flytekit is a command's own; the
    # worker's tests below turn it on.
    env = {"FLYTEBUILD_PYTHON": str(counting_python), "FB_FLYTEKIT_LOG": str(log),
           "FLYTEBUILD_CACHE_DIR": str(tmp_path / "cache"), "FLYTEBUILD_WORKER": "0"}

    def run(*args, check=True, extra_env=None):
        before = log.read_text().splitlines() if log.exists() else []
        proc = cli(*args, cwd=root, env={**env, **(extra_env or {})}, check=check)
        after = log.read_text().splitlines() if log.exists() else []
        return proc, [json.loads(line) for line in after[len(before):]]

    run.root = root
    return run


def _introspected(imports) -> list:
    """The entrypoints each introspection process (`introspect --batch` or `session`) was asked about."""
    out = []
    for argv in imports:
        if argv[1:2] == ["session"]:
            out.append(sorted(argv[2:]))
        elif argv[1:3] == ["introspect", "--batch"]:
            out.append(sorted(argv[3:]))
    return out


def test_plan_imports_flytekit_once_then_never_until_an_edit(project):
    first, imports = project("plan", "--format=json")
    assert _introspected(imports) == [["proj.a:wf", "proj.b:wf"]] and len(imports) == 1
    again, imports = project("plan", "--format=json")
    assert imports == [] and again.stdout == first.stdout
    # a comment in a.py: only workflow a is introspected again
    (project.root / "src/proj/a.py").write_text((project.root / "src/proj/a.py").read_text() + "# edited\n")
    edited, imports = project("plan", "--format=json")
    assert _introspected(imports) == [["proj.a:wf"]] and len(imports) == 1
    plans = {w["address"]: w for w in json.loads(edited.stdout)["workflows"]}
    before = {w["address"]: w for w in json.loads(first.stdout)["workflows"]}
    assert plans["b"]["version"] == before["b"]["version"] and plans["a"]["version"] != before["a"]["version"]
    # the shared util: both, in one process
    (project.root / "src/proj/util.py").write_text("def double(x):\n    return x + x\n")
    _, imports = project("plan", "--format=json")
    assert _introspected(imports) == [["proj.a:wf", "proj.b:wf"]] and len(imports) == 1
    # back to the first content: answered from the cache; with the cache turned off, imported again, same answer
    (project.root / "src/proj/util.py").write_text(textwrap.dedent(_FILES["src/proj/util.py"]))
    (project.root / "src/proj/a.py").write_text(textwrap.dedent(_FILES["src/proj/a.py"]))
    back, imports = project("plan", "--format=json")
    assert imports == [] and back.stdout == first.stdout
    off, imports = project("plan", "--format=json", extra_env={"FLYTEBUILD_CACHE_DIR": ""})
    assert len(imports) == 1 and off.stdout == first.stdout


def test_deploy_with_nothing_changed_imports_nothing_and_asks_nothing(project, user_python):
    with flyteadmin(user_python) as admin:
        args = ["deploy", "--endpoint", admin.endpoint, "--insecure", "--format=json", "--no-push-images"]
        first, imports = project(*args)
        assert {e["status"] for e in json.loads(first.stdout)["entities"]} == {"registered"}
        # introspection and serialization in one process (a runtime `session`): flytekit once for the command
        assert len(imports) == 1 and "session" in " ".join(imports[0]), imports
        mark = admin.mark()
        again, imports = project(*args)
        summary = json.loads(again.stdout)
        assert {e["status"] for e in summary["entities"]} == {"unchanged"}
        assert imports == [] and admin.since(mark)["rpcs"] == 0
        # an edit of b: b's entities only, one introspection of b, one serialization of b
        (project.root / "src/proj/b.py").write_text((project.root / "src/proj/b.py").read_text() + "# edited\n")
        mark = admin.mark()
        edited, imports = project(*args)
        summary = json.loads(edited.stdout)
        assert {e["name"] for e in summary["entities"] if e["status"] == "registered"} == {
            "proj.b.two", "proj.b.wf"}
        assert _introspected(imports) == [["proj.b:wf"]] and len(imports) == 1
        delta = admin.since(mark)["counters"]
        assert sum(delta.get(k, {}).get("created", 0) for k in ("task", "workflow", "launch_plan")) == 3


_WARM = {"FLYTEBUILD_WORKER": "1"}


def _worker_pids(project) -> list:
    return [int(p.read_text()) for p in (project.root.parent / "cache/workers").glob("*.pid")]


@pytest.mark.slow
def test_a_warm_worker_imports_flytekit_once_for_every_command(project, user_python):
    """The first command starts the worker (the one flytekit import); the following ones, edits included, fork
    from it: no new process imports flytekit, and the answers are those of plain subprocesses."""
    try:
        with flyteadmin(user_python) as admin:
            args = ["deploy", "--endpoint", admin.endpoint, "--insecure", "--format=json", "--no-push-images"]
            first, imports = project(*args, extra_env=_WARM)
            assert {e["status"] for e in json.loads(first.stdout)["entities"]} == {"registered"}
            assert [argv[1] for argv in imports] == ["worker"], imports
            (project.root / "src/proj/b.py").write_text((project.root / "src/proj/b.py").read_text() + "# edit\n")
            edited, imports = project(*args, extra_env=_WARM)
            summary = json.loads(edited.stdout)
            assert {e["name"] for e in summary["entities"] if e["status"] == "registered"} == {
                "proj.b.two", "proj.b.wf"}
            assert imports == []
            (project.root / "src/proj/util.py").write_text("def double(x):\n    return x + x\n")
            warm_plan, imports = project("plan", "--format=json", extra_env=_WARM)
            assert imports == []
            cold_plan, imports = project("plan", "--format=json",
                                         extra_env={"FLYTEBUILD_CACHE_DIR": str(project.root.parent / "cold")})
            assert len(imports) == 1 and cold_plan.stdout == warm_plan.stdout
    finally:
        stopped, _ = project("worker", "stop")
    assert "stopped 1 worker(s)" in stopped.stdout


@pytest.mark.slow
@pytest.mark.parametrize("command", ["plan", "deploy"])  # deploy: the session, introspection then serialization
def test_a_worker_killed_mid_command_falls_back_to_a_subprocess(project, user_python, command):
    project("plan", "--format=json", extra_env=_WARM)  # starts the worker
    (pid,) = _worker_pids(project)
    # a slow import: the worker (and the forks it supervises) is killed while the command waits for it
    (project.root / "src/proj/util.py").write_text("import time\ntime.sleep(4)\n\n\ndef double(x):\n"
                                                    "    return 2 * x\n")
    killer = threading.Timer(2.0, lambda: os.killpg(os.getpgid(pid), signal.SIGKILL))
    with flyteadmin(user_python) as admin:
        args = ["plan", "--format=json"] if command == "plan" else [
            "deploy", "--endpoint", admin.endpoint, "--insecure", "--format=json", "--no-push-images"]
        killer.start()
        start = time.monotonic()
        done, imports = project(*args, extra_env=_WARM)
        killer.join()
    assert time.monotonic() - start > 4
    assert _introspected(imports) == [["proj.a:wf", "proj.b:wf"]]  # the fallback: a plain subprocess
    if command == "plan":
        assert {w["address"] for w in json.loads(done.stdout)["workflows"]} == {"a", "b"}
    else:
        assert {e["status"] for e in json.loads(done.stdout)["entities"]} == {"registered"}
    project("worker", "stop")


def _set_mtime(path: Path, mtime_ns: int) -> None:
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_plan_caches_change_no_byte_and_never_hide_a_same_size_same_mtime_edit(project):
    """The digest (stat) cache and the parsed-imports cache: a warm plan is byte-identical to a cold one and to one
    with every cache off, and a rewrite keeping size and mtime (the racily-clean trap, and an mtime set back on
    purpose) is still seen."""
    util = project.root / "src/proj/util.py"
    old = time.time_ns() - 60 * 1_000_000_000  # older than any cache write: the stat cache keeps these entries
    for path in (project.root / "src").rglob("*.py"):
        _set_mtime(path, old)
    cold, _ = project("plan", "--format=json")
    cache = project.root.parent / "cache"
    assert list(cache.glob("stat-*.json")) and list(cache.glob("imports-*.json"))
    warm, imports = project("plan", "--format=json")
    off, _ = project("plan", "--format=json", extra_env={"FLYTEBUILD_CACHE_DIR": ""})
    assert imports == [] and warm.stdout == cold.stdout == off.stdout

    def versions(proc) -> dict:
        return {w["address"]: w["version"] for w in json.loads(proc.stdout)["workflows"]}

    # same size, mtime set back to the cached one (inode kept): only the ctime tells, as in git's index
    text = util.read_text()
    edited = text.replace("2 * x", "x + x")
    assert len(edited) == len(text) and edited != text
    util.write_text(edited)
    _set_mtime(util, old)
    after, imports = project("plan", "--format=json")
    assert _introspected(imports) == [["proj.a:wf", "proj.b:wf"]]
    assert all(versions(after)[w] != versions(cold)[w] for w in ("a", "b"))
    assert after.stdout == project("plan", "--format=json", extra_env={"FLYTEBUILD_CACHE_DIR": ""})[0].stdout

    # racily clean: written, planned, rewritten with the same size within the same mtime (the filesystem's
    # granularity simulated by setting it back): not cached at the first plan, so hashed again
    util.write_text(text)
    now = util.stat().st_mtime_ns
    racy_first, _ = project("plan", "--format=json")
    util.write_text(edited)
    _set_mtime(util, now)
    racy_after, _ = project("plan", "--format=json")
    assert versions(racy_first) == versions(cold) and versions(racy_after) == versions(after)


_LOCK = Path(__file__).resolve().parents[2] / "examples/3rdparty/flyte.lock"

# c: b's module with another task (on the default image)
_C = _FILES["src/proj/b.py"].replace("two", "three").replace("+ 1", "+ 3")

_D = """
    from flytekit import ImageSpec, task, workflow

    spec = ImageSpec(name="d-spec", registry="localhost:5000", packages=["flytekit==1.16.31"], copy=["conf.txt"])

    @task(container_image=spec)
    def four(x: int) -> int:
        return x + 4

    @workflow
    def wf(x: int = 1) -> int:
        return four(x=x)
    """


def _cache_config(project="proj", domain="development", registry="localhost:5000", default_image="img-a",
                  b_env="", a_cache_key="interface", endpoint="") -> str:
    """The project's flytebuild.toml plus: a lockfile, every setting a step below changes, workflow c on the default
    image and d on an ImageSpec in code that copies a file."""
    def edit(text: str, after: str, added: str) -> str:
        assert after in text
        return text.replace(after, after + added, 1)

    admin = f'endpoint = "{endpoint}"\ninsecure = true\n' if endpoint else ""
    text = edit(textwrap.dedent(_FILES["flytebuild.toml"]), 'requirements = "requirements.txt"\n',
                f'lockfile = "flyte.lock"\nproject = "{project}"\ndomain = "{domain}"\nregistry = "{registry}"\n'
                f'default_image = "{default_image}"\n{admin}')
    text = edit(text, 'dependencies = ["src/proj/b.py"]\nrequirements = ["flytekit"]\n', f"{b_env}\n")
    text = edit(text, 'entrypoint = "src/proj/a.py:wf"\nimage = "img-a"\n', f'cache_key = "{a_cache_key}"\n')
    return text + '\n[workflows.c]\nentrypoint = "src/proj/c.py:wf"\n\n[workflows.d]\nentrypoint = "src/proj/d.py:wf"\n'


def _bump_cloudpickle(lock: Path) -> None:
    """Another locked version of a package flytekit pulls in (every task's closure pins it)."""
    text = lock.read_text()
    at = text.index('"project_name": "cloudpickle"')
    old = text[at:].split('"version": "', 1)[1].split('"', 1)[0]
    lock.write_text(text[:at] + text[at:].replace(f'"version": "{old}"', f'"version": "{old}.post1"', 1))


def test_plan_replays_unchanged_workflows_and_replans_exactly_what_each_input_changes(project, tmp_path):
    """The per-workflow plan cache: after each kind of change the warm plan is byte-identical to a plan made with
    an empty cache dir, exactly the workflows whose inputs changed get a new plan (as Pants decides them: c runs
    on the default image, so what changes that image changes c; d's ImageSpec copies the first `conf.txt` found
    from its module's directory up), and a workflow whose introspection key did not change is never introspected
    again, its answer not even read: plans are replayed."""
    root = project.root
    (root / "src/proj/c.py").write_text(textwrap.dedent(_C))
    (root / "src/proj/d.py").write_text(textwrap.dedent(_D))
    (root / "conf.txt").write_text("level = 1\n")
    (root / "flyte.lock").write_text(_LOCK.read_text())
    config = root / "flytebuild.toml"
    settings: dict = {}
    config.write_text(_cache_config())
    fresh_dirs = iter(range(100))

    def plans(proc) -> dict:
        return {w["address"]: json.dumps(w, sort_keys=True) for w in json.loads(proc.stdout)["workflows"]}

    def configure(**changes):
        def change():
            settings.update(changes)  # on top of the earlier steps' changes
            config.write_text(_cache_config(**settings))
        return change

    def append(rel: str, line: str):
        return lambda: (root / rel).write_text((root / rel).read_text() + line)

    steps = [  # (what, change, workflows whose plan changes, entrypoints introspected again)
        ("module edit", append("src/proj/a.py", "# edited\n"), {"a", "c"}, [["proj.a:wf"]]),
        ("shared lib edit", append("src/proj/util.py", "# edited\n"), {"a", "b", "c"},
         [["proj.a:wf", "proj.b:wf", "proj.c:wf"]]),
        ("copied file edit", append("conf.txt", "level = 2\n"), {"d"}, []),
        ("nearer copied file", lambda: (root / "src/proj/conf.txt").write_text("near\n"), {"d"}, []),
        ("project", configure(project="other"), {"a", "b", "c", "d"}, []),
        ("domain", configure(domain="staging"), {"a", "b", "c", "d"}, []),
        ("registry", configure(registry="registry.example:5000"), {"a", "b", "c"}, []),
        ("default image", configure(default_image="img-b"), {"c"}, []),
        ("image fingerprint", configure(b_env='env = {LEVEL = "debug"}'), {"b", "c"}, []),
        ("cache-key policy", configure(a_cache_key="code"), {"a"}, []),
        ("lockfile", lambda: _bump_cloudpickle(root / "flyte.lock"), {"a", "b", "c", "d"}, []),
    ]
    before, _ = project("plan", "--format=json")
    for what, change, changed, introspected in steps:
        change()
        warm, imports = project("plan", "--format=json")
        empty = tmp_path / f"fresh-{next(fresh_dirs)}"
        fresh, _ = project("plan", "--format=json", extra_env={"FLYTEBUILD_CACHE_DIR": str(empty)})
        assert warm.stdout == fresh.stdout, what
        old, new = plans(before), plans(warm)
        assert {w for w in new if new[w] != old[w]} == changed, what
        assert _introspected(imports) == introspected, what
        before = warm

    # Nothing changed but the FlyteAdmin a deploy would go to (a plan is the same for every cluster), every
    # introspection answer gone from the cache: all four plans are replayed.
    cache = root.parent / "cache"
    answers = list(cache.glob("results/*/introspect-*.json"))
    assert answers and list(cache.glob("results/*/plan-*.json"))
    for path in answers:
        path.unlink()
    configure(endpoint="admin.example:81")()
    replayed, imports = project("plan", "--format=json")
    assert imports == [] and replayed.stdout == before.stdout

    # Damaged plan entries (a field missing, a truncated file) are misses: planned again, the same plans.
    for i, path in enumerate(sorted(cache.glob("results/*/plan-*.json"))):
        path.write_text('{"format": 1, "needs": {}}' if i % 2 else path.read_text()[:100])
    again, imports = project("plan", "--format=json")
    assert len(imports) == 1 and again.stdout == before.stdout


def test_an_environment_variable_user_code_reads_is_part_of_the_cached_answer(project):
    """User code may read the environment at import (`ImageSpec(registry=os.environ[...])`): a changed variable
    is a new introspection, the same one is not; a new shell's own variables change nothing."""
    a = project.root / "src/proj/a.py"
    a.write_text(a.read_text().replace("@task\n", '@task(cache=True, cache_version=__import__("os").environ.get('
                                                  '"FB_CACHE_VERSION", "1"))\n'))
    first, imports = project("plan", "--format=json")
    assert len(imports) == 1
    _, imports = project("plan", "--format=json", extra_env={"SHLVL": "7", "OLDPWD": "/elsewhere"})
    assert imports == []
    changed, imports = project("plan", "--format=json", extra_env={"FB_CACHE_VERSION": "2"})
    assert _introspected(imports) == [["proj.a:wf", "proj.b:wf"]]
    fresh, _ = project("plan", "--format=json", extra_env={"FB_CACHE_VERSION": "2", "FLYTEBUILD_CACHE_DIR": ""})
    assert changed.stdout == fresh.stdout != first.stdout
    _, imports = project("plan", "--format=json", extra_env={"FB_CACHE_VERSION": "2"})
    assert imports == []
