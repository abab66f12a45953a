"""The CLI (import analysis, flytebuild.toml) and the Pants backend (build graph, BUILD files)
plan the examples identically: same files and requirements per image and per task, same modes,
same fingerprints and versions — before and after an edit. The archive bytes and image digests of all three
front ends are compared by tests/e2e/test_equivalence.py."""
import json

# examples/flytebuild.toml's target names ↔ the BUILD files' addresses.
NAMES = {
    "baked-image": "examples/baked:image",
    "baked-wf": "examples/baked:wf",
    "baked-lp": "examples/baked:lp",
    "mixed-runtime": "examples/mixed:runtime",
    "mixed-spec-image": "examples/mixed:spec_image",
    "mixed-wf": "examples/mixed:wf",
    "mixed-container-wf": "examples/mixed:container_wf",
    "mixed-pod": "examples/mixed:pod",
    "typed-image": "examples/typed:image",
    "typed-wf": "examples/typed:wf",
    "typed-lp": "examples/typed:lp",
}


def _as_pants(plan: dict, names: dict = NAMES) -> dict:
    """Rename the CLI's target names to Pants addresses; nothing else is touched."""
    for image in plan["images"]:
        image["address"] = names[image["address"]]
    for wf in plan["workflows"]:
        wf["address"] = names[wf["address"]]
        for task in wf["tasks"]:
            for key in ("image", "image_address"):
                if task[key] in names:
                    task[key] = names[task[key]]
            source = task.get("pod_template_source")
            if source:
                name, _, rest = source.partition(" ")
                task["pod_template_source"] = f"{names.get(name, name)} {rest}".rstrip()
            task["warnings"] = [
                w.replace(" mixed-runtime", " examples/mixed:runtime") for w in task["warnings"]
            ]
    plan["images"].sort(key=lambda i: i["address"])
    plan["workflows"].sort(key=lambda w: w["address"])
    return plan


def _both(pants_repo, cli):
    pants = pants_repo.pants("flyte-plan", "--format=json", "examples::", check=True)
    ours = cli("-c", "examples/flytebuild.toml", "plan", "--format=json", cwd=pants_repo.root, check=True)
    return json.loads(pants.stdout), _as_pants(json.loads(ours.stdout))


def _versions(plan: dict) -> dict:
    found = {i["address"]: i["version"] for i in plan["images"]}
    for wf in plan["workflows"]:
        found[wf["address"]] = wf["version"]
        found.update({t["name"]: t["version"] for t in wf["tasks"]})
    return found


def test_cli_plan_equals_pants_plan_on_the_examples(pants_repo, cli):
    pants, ours = _both(pants_repo, cli)
    assert [i["address"] for i in pants["images"]] == sorted(NAMES[n] for n in NAMES if "image" in n or "runtime" in n)
    # Whole documents: images (files, requirements, pins, fingerprints), every task's image,
    # mode, sources, missing files, fingerprint and version, workflows and launch plans.
    assert ours == pants
    mixed = next(w for w in ours["workflows"] if w["address"] == "examples/mixed:wf")
    assert {t["mode"] for t in mixed["tasks"]} == {"baked", "fast"}

    before = _versions(pants)
    helpers = "examples/shared/helpers.py"
    original = pants_repo.read(helpers)
    try:
        pants_repo.write(helpers, original + "\n\ndef unused():\n    return 1\n")
        pants_after, ours_after = _both(pants_repo, cli)
    finally:
        pants_repo.write(helpers, original)
    assert ours_after == pants_after
    after = _versions(pants_after)
    changed = sorted(k for k in before if before[k] != after[k])
    # helpers.py is imported by baked.stats and mixed.fast_tasks and baked into examples/baked:image.
    assert "baked.stats.summarize" in changed and "mixed.fast_tasks.weights" in changed
    assert "examples/baked:image" in changed
    assert "mixed.plain_tasks.total" not in changed and "examples/mixed:spec_image" not in changed


def test_cli_render_equals_pants_flyte_render(pants_repo, cli):
    pants = pants_repo.pants("flyte-render", "--env=prod", "--format=json", "examples/mixed:wf", check=True)
    ours = cli("-c", "examples/flytebuild.toml", "render", "--env=prod", "--format=json", "mixed-wf",
               cwd=pants_repo.root, check=True)
    theirs, mine = json.loads(pants.stdout)["pods"], json.loads(ours.stdout)["pods"]
    for pod in mine:
        pod["workflow"] = NAMES[pod["workflow"]]
        name, _, rest = pod["source"].partition(" ")
        pod["source"] = f"{NAMES.get(name, name)} {rest}"
    assert mine == theirs and len(mine) >= 5
    assert {p["environment"] for p in mine} == {"prod"}
