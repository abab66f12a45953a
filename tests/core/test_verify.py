"""core/verify.py (what flyte-verify and `flytebuild verify` check and print) and the static check
of oci/verify.py, on the hand-built monorepo's plan. The Docker and registry paths run for real in
tests/images/test_verify.py and tests/cli/test_verify.py."""
import json

from flytebuild.core.introspection import parse_introspection
from flytebuild.core.plan import plan_workflow
from flytebuild.core.settings import Settings
from flytebuild.core.verify import baked_tasks, check_images, failure_message, render_verify, tasks_by_image
from flytebuild.oci.build import LABEL_DISTRIBUTIONS, LABEL_SOURCE_FILES
from flytebuild.oci.engine import run_argv
from flytebuild.service.verify import static_problems


def _baked(mk):
    closures, images = mk.scenario_facts()
    wf = plan_workflow(mk.workflow_target(), parse_introspection(mk.scenario_intro()), closures, images, Settings())
    return wf, baked_tasks([wf])


def _labels(tasks, drop=()):
    files = sorted({s.split("/", 1)[1] for t in tasks for s in t.sources} - set(drop))
    dists = sorted({f"{r}==1" for t in tasks for r in t.requirements})
    return {LABEL_SOURCE_FILES: json.dumps(files), LABEL_DISTRIBUTIONS: json.dumps(dists)}


def test_only_baked_tasks_with_an_image_are_checked(mk):
    wf, baked = _baked(mk)
    assert baked and {t.mode for t in baked} == {"baked"}
    assert {t.name for t in wf.tasks if t.mode == "baked"} == {t.name for t in baked}
    by_image = tasks_by_image(baked, {"examples/baked:image": "reg/baked:v1"})
    assert set(by_image) == {"reg/baked:v1"}


def test_static_check_names_the_missing_file_per_task(mk):
    _, baked = _baked(mk)
    by_image = tasks_by_image(baked, {t.image_address: "reg/baked:v1" for t in baked})
    complete = _labels(baked)
    checks = check_images(by_image, False, None, lambda ref, t: static_problems(t, complete))
    assert all(not c.problems and c.method == "static" for c in checks)
    assert failure_message(checks) is None and json.loads(render_verify(checks, "json"))["ok"] is True

    victim = baked[0]
    missing = victim.module.replace(".", "/") + ".py"
    partial = _labels(baked, drop={missing})
    checks = check_images(by_image, False, None, lambda ref, t: static_problems(t, partial))
    bad = next(c for c in checks if c.task == victim.name)
    assert f"module {victim.module} not in the image" in bad.problems
    failed = [c for c in checks if c.problems]
    assert failure_message(checks).startswith(f"{len(failed)} baked task(s) cannot run from their image")
    table = render_verify(checks, "table").splitlines()
    assert table[0].split() == ["TASK", "IMAGE", "CHECK", "RESULT"]
    assert any(line.startswith(victim.name) and "not in the image" in line for line in table[1:])
    assert static_problems(victim, {})[0].startswith("the image has no flytebuild source manifest label")


def test_docker_answer_is_read_per_task(mk):
    _, baked = _baked(mk)
    by_image = tasks_by_image(baked, {t.image_address: "reg/baked:v1" for t in baked})
    runs = []
    victim = baked[0]

    def run(ref, modules):  # the JSON runtime/verify_image.py prints
        runs.append((ref, list(modules)))
        return {"pyflyte_execute": "/opt/flytebuild/bin/pyflyte-execute",
                "modules": {m: ("ModuleNotFoundError: No module named 'x'" if m == victim.module else None)
                            for m in modules}}, ""

    checks = check_images(by_image, True, run, None)
    assert runs == [("reg/baked:v1", sorted({t.module for t in baked}))]  # one run per image
    assert [c.task for c in checks] == sorted(c.task for c in checks)
    for c in checks:
        expected = (
            (f"import {c.module}: ModuleNotFoundError: No module named 'x'",) if c.module == victim.module else ()
        )
        assert c.problems == expected and c.method == "docker"

    failed = check_images(by_image, True, lambda ref, mods: (None, "docker pull reg/baked:v1 failed: denied"), None)
    assert all(c.problems == ("docker pull reg/baked:v1 failed: denied",) for c in failed)
    assert render_verify([], "table") == "no baked tasks"
    assert run_argv("docker", "r:1", ["a"])[:6] == ["docker", "run", "--rm", "-i", "--network", "none"]
