"""Pants, the `flytebuild` CLI and Bazel on the same inputs: every example plus an ImageSpec-only project
(tests/images/specs_example as examples/specs). The three front ends give the same plan JSON, the same
registration archive bytes and the same image digests (flyte_image targets and the ImageSpec in code), Pants and the
CLI plan alike again after an edit of a shared module, and the same
admin settings behave the same against the stand-in FlyteAdmin (`insecure` unset: TLS on every path; set: plaintext;
unset with a flytekit config: the config decides).

Each front end reads its own description of the tree: Pants the BUILD files, the CLI examples/flytebuild.toml
(import analysis), Bazel tests/e2e/bazel_examples (BUILD.bazel files, one py_library per file). One Bazel server, one
build of every target (plus the ImageSpec output group of the one workflow that has one).

What Bazel does differently, on purpose (docs/bazel.md): its build actions never talk to FlyteAdmin, so a plan built
by Bazel does not check reference entities against a cluster (the examples declare none; tests/run covers that check
for Pants and the CLI); ImageSpecs with `apt_packages`/`commands` need docker build and a push, which its
`imagespec` output group (OCI layouts) cannot hold: the action fails with the CLI's message.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.bazel.conftest import BazelWorkspace
from tests.cli.conftest import cli  # noqa: F401 - re-exported fixture
from tests.images.test_imagespec import NO_ENGINE, drop_tag

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BAZEL_EXAMPLES = Path(__file__).parent / "bazel_examples"
SPECS = REPO / "tests/images/specs_example"
PEX_ROOT = str(REPO / ".bootstrap/cache/named_caches/pex_root")

# examples/flytebuild.toml's target names ↔ the BUILD files' addresses.
EXAMPLE_NAMES = {
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


def _as_pants(plan: dict, names: dict) -> dict:
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


def _versions(plan: dict) -> dict:
    found = {i["address"]: i["version"] for i in plan["images"]}
    for wf in plan["workflows"]:
        found[wf["address"]] = wf["version"]
        found.update({t["name"]: t["version"] for t in wf["tasks"]})
    return found


NAMES = {**EXAMPLE_NAMES, "specs-wf": "examples/specs:wf"}
IMAGES = sorted(n for n, a in NAMES.items() if a.endswith(("image", ":runtime")))
WORKFLOWS = sorted(n for n, a in NAMES.items() if a.rsplit(":", 1)[1] in ("wf", "lp", "container_wf"))
# The ImageSpec-only project, for the CLI (examples/flytebuild.toml describes the other examples).
SPECS_TOML = '\n[workflows.specs-wf]\nentrypoint = "specs.workflows:wf"\n'
TIMEOUT = 2  # seconds to wait for FlyteAdmin: the same setting on every front end


def _pants_dir(address: str) -> str:
    path, name = address.split(":")
    return f"{path.replace('/', '.')}/{name}"


def _bazel(address: str) -> str:
    return "//" + address


def _from_bazel(text: str) -> dict:
    """A Bazel plan in Pants' addresses: `//examples/baked:image` is `examples/baked:image`; nothing else changes."""
    return json.loads(text.replace('"//examples/', '"examples/').replace(" //examples/", " examples/"))


def _files(directory: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def tree(registry_repo, registry):
    """The session's registry copy plus the ImageSpec-only project as examples/specs (removed afterwards)."""
    repo = registry_repo
    dest = repo.root / "examples/specs"
    shutil.copytree(SPECS, dest, dirs_exist_ok=True)  # tests/images/test_imagespec.py may have copied it already
    for f in dest.iterdir():
        f.write_text(f.read_text().replace("localhost:5000", registry.host))
    config = repo.root / "examples/equivalence.toml"
    examples = (repo.root / "examples/flytebuild.toml").read_text()
    config.write_text(f"admin_timeout = {TIMEOUT}\n{examples}{SPECS_TOML}")
    yield repo
    shutil.rmtree(dest)
    config.unlink()


@pytest.fixture(scope="module")
def bazel(tree, registry, user_python, tmp_path_factory):
    """tests/e2e/bazel_examples next to a copy of the same examples (their Pants BUILD files left out)."""
    subprocess.run(["bash", str(REPO / "tests/support/install_bazel.sh")], check=True)
    base = tmp_path_factory.mktemp("bazel-equivalence")
    root = base / "ws"
    shutil.copytree(BAZEL_EXAMPLES, root)
    # Bazel 4's offline stand-ins (rules_cc, rules_java, remote_coverage_tools), as tests/bazel's workspace has them.
    shutil.copytree(REPO / "tests/bazel/workspace/stand_ins", root / "stand_ins")
    shutil.copytree(tree.root / "examples", root / "examples", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("BUILD", "*.toml", "refs"))
    (root / "WORKSPACE").write_text(
        (root / "WORKSPACE").read_text().replace('path = "../../../src/python"', f'path = "{REPO}/src/python"'))
    for build in root.rglob("BUILD.bazel"):
        build.write_text(build.read_text().replace("localhost:5000", registry.host))
    settings = root / "BUILD.bazel"
    settings.write_text(settings.read_text().replace('domain = "development",\n', f'domain = "development",\n'
                                                     f'    admin_timeout = {TIMEOUT},\n', 1))
    ws = BazelWorkspace(root, base / "out", {
        "FLYTE_PYTHON": user_python,
        "FLYTEBUILD_PYTHON": str(REPO / ".bootstrap/venv/bin/python"),
        "FLYTEBUILD_PEX_ROOT": PEX_ROOT,
        "FLYTEBUILD_IMAGE_CACHE": str(base / "cache"),
    })
    yield ws
    subprocess.run(["bazel", f"--output_user_root={ws.output_root}", "shutdown"], cwd=root, capture_output=True)
    subprocess.run(["chmod", "-R", "u+w", str(base)], capture_output=True)  # Bazel's output tree is read-only


def _pants_flags(registry) -> list:
    # pants.toml's [flyte] defaults pointed at the test registry, as the copy's BUILD files and flytebuild.toml are.
    return [f"--flyte-registry={registry.host}", f"--flyte-default-base={registry.host}/flytebuild/python:3.11"]


def test_pants_cli_and_bazel_give_the_same_plan_archives_and_image_digests(tree, bazel, cli, registry,  # noqa: F811
                                                                             tmp_path):
    repo, config = tree, "examples/equivalence.toml"
    flags = _pants_flags(registry)

    # --- Pants: flyte-plan, package (images into the layer cache only), flyte-imagespec (pushes: its only mode)
    pants_plan = json.loads(repo.pants(*flags, "flyte-plan", "--format=json", "examples::", check=True).stdout)
    proc = repo.pants(*flags, "--flyte-image-output=cache", f"--flyte-image-cache-dir={tmp_path / 'pants-cache'}",
                      "package", *(NAMES[n] for n in IMAGES + WORKFLOWS))
    assert proc.returncode == 0, proc.stderr
    spec_ref = next(t["image_ref"] for w in pants_plan["workflows"] for t in w["tasks"]
                    if t["image_source"] == "code:ImageSpec")
    drop_tag(registry, spec_ref)  # an earlier test of this worker's session may have pushed it
    proc = repo.pants(*flags, f"--flyte-image-cache-dir={tmp_path / 'pants-cache'}", "flyte-imagespec",
                      "--format=json", "examples/specs:wf", env=NO_ENGINE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (pants_spec,) = json.loads(proc.stdout)["images"]
    assert pants_spec["pushed"] is True

    # --- the CLI: plan, package (images into the layer cache only), imagespec (the same: nothing pushed)
    env = {"PEX_ROOT": PEX_ROOT, "XDG_CACHE_HOME": str(tmp_path / "cli-cache"), **NO_ENGINE}
    cli_plan = _as_pants(json.loads(cli("-c", config, "plan", "--format=json", cwd=repo.root, check=True).stdout),
                         NAMES)
    dist = tmp_path / "cli-dist"
    cli("-c", config, "package", *IMAGES, *WORKFLOWS, "--image-output=cache", "--dist", str(dist), cwd=repo.root,
        env=env, check=True)
    proc = cli("-c", config, "imagespec", "specs-wf", "--image-output=cache", "--format=json", cwd=repo.root, env=env,
               check=True)
    (cli_spec,) = json.loads(proc.stdout)["images"]

    # --- Bazel: one build of every target (plans, archives, OCI layouts), then the ImageSpec output group
    bazel.bazel("build", "//examples/...", "--output_groups=+package,+oci")
    bazel.bazel("build", "//examples/specs:wf", "--output_groups=imagespec")
    bin_ = bazel.bin("examples")
    images, workflows = {}, {}
    for path in sorted(bin_.glob("*/*.plan.json")):  # a workflow's plan holds its images
        plan = _from_bazel(path.read_text())
        workflows.update((w["address"], w) for w in plan["workflows"])
        for image in plan["images"]:
            assert images.setdefault(image["address"], image) == image
    for path in sorted(bin_.glob("*/*.image-plan.json")):
        for image in _from_bazel(path.read_text())["images"]:
            assert images.setdefault(image["address"], image) == image
    bazel_plan = {"images": [images[a] for a in sorted(images)], "workflows": [workflows[a] for a in sorted(workflows)]}

    # The same plan JSON, whole: images (files, requirements, pins, fingerprints), every task's image and ref,
    # mode, sources, fingerprint, version and pod template, workflows, launch plans, the ImageSpec.
    assert [w["address"] for w in pants_plan["workflows"]] == sorted(NAMES[n] for n in WORKFLOWS)
    assert cli_plan == pants_plan
    assert bazel_plan == pants_plan

    # The same registration archives (and fast tasks' bundles), byte for byte.
    for name in WORKFLOWS:
        address = NAMES[name]
        theirs = _files(repo.root / "dist" / _pants_dir(address))
        assert _files(dist / name) == theirs, name
        (bazel_dir,) = (bin_ / address.split(":")[0].split("/", 1)[1] / f"{address.split(':')[1]}.package").iterdir()
        assert _files(bazel_dir) == theirs, name
        assert "flyte-package.tgz" in theirs

    # The same image digests: flyte_image targets (Bazel's as OCI layouts) ...
    for name in IMAGES:
        address = NAMES[name]
        path, target = address.split(":")
        pants = json.loads((repo.root / "dist" / path.replace("/", ".") / f"{target}.image.json").read_text())
        ours = json.loads((dist / f"{name}.image.json").read_text())
        (record,) = (bin_ / path.split("/", 1)[1] / f"{target}.image").glob("*.image.json")
        bazel_image = json.loads(record.read_text())
        assert pants["ref"] == ours["ref"] == bazel_image["ref"], name
        assert pants["digest"] == ours["digest"] == bazel_image["digest"], name
        assert bazel_image["output"] == "oci" and pants["output"] == ours["output"] == "cache"
    # ... and the ImageSpec in code.
    (bazel_spec,) = json.loads((bin_ / "specs/wf.imagespec/imagespec.json").read_text())["images"]
    assert pants_spec["ref"] == cli_spec["ref"] == bazel_spec["ref"] == spec_ref
    assert pants_spec["digest"] == cli_spec["digest"] == bazel_spec["digest"]
    assert (cli_spec["output"], bazel_spec["output"]) == ("cache", "oci")
    layout = json.loads((bin_ / "specs/wf.imagespec/specs-etl.oci/index.json").read_text())
    assert layout["manifests"][0]["digest"] == pants_spec["digest"]

    # After an edit of a shared module, Pants and the CLI still plan alike, and exactly its importers change.
    helpers = repo.root / "examples/shared/helpers.py"
    original = helpers.read_text()
    try:
        helpers.write_text(original + "\n\ndef unused():\n    return 1\n")
        pants_after = json.loads(repo.pants(*flags, "flyte-plan", "--format=json", "examples::", check=True).stdout)
        cli_after = _as_pants(json.loads(cli("-c", config, "plan", "--format=json", cwd=repo.root,
                                             check=True).stdout), NAMES)
    finally:
        helpers.write_text(original)
    assert cli_after == pants_after
    before, after = _versions(pants_plan), _versions(pants_after)
    changed = sorted(k for k in before if before[k] != after[k])
    # helpers.py is imported by baked.stats and mixed.fast_tasks and baked into examples/baked:image.
    assert "baked.stats.summarize" in changed and "mixed.fast_tasks.weights" in changed
    assert "examples/baked:image" in changed
    assert "mixed.plain_tasks.total" in before and "examples/mixed:spec_image" in before
    assert "mixed.plain_tasks.total" not in changed and "examples/mixed:spec_image" not in changed


def test_cli_render_equals_pants_flyte_render(tree, cli, registry):  # noqa: F811
    """Pod templates rendered per task (with the `prod` overlay) are the same documents from both front ends."""
    pants = tree.pants(*_pants_flags(registry), "flyte-render", "--env=prod", "--format=json", "examples/mixed:wf",
                       check=True)
    ours = cli("-c", "examples/equivalence.toml", "render", "--env=prod", "--format=json", "mixed-wf",
               cwd=tree.root, check=True)
    theirs, mine = json.loads(pants.stdout)["pods"], json.loads(ours.stdout)["pods"]
    for pod in mine:
        pod["workflow"] = NAMES[pod["workflow"]]
        name, _, rest = pod["source"].partition(" ")
        pod["source"] = f"{NAMES.get(name, name)} {rest}"
    assert mine == theirs and len(mine) >= 5
    assert {p["environment"] for p in mine} == {"prod"}


def _deploy_three_ways(tree, bazel, cli, registry, endpoint, *insecure: str, config=None):  # noqa: F811
    """`baked:wf` deployed (dry run) by each front end with the same settings: endpoint (a flag), admin timeout,
    a flytekit config file, and `insecure` as given (nothing: unset)."""
    pants = tree.pants(*_pants_flags(registry), f"--flyte-admin-timeout={TIMEOUT}",
                       *([f"--flyte-endpoint={endpoint}"] if endpoint else []),
                       *([f"--flyte-config={config}"] if config else []),
                       *(["--flyte-insecure"] if insecure else []), "flyte-deploy", "--dry-run", "--format=json",
                       "examples/baked:wf")
    toml = tree.root / "examples/equivalence.toml"
    if config:  # the CLI's and Bazel's `config` setting
        toml = toml.with_name("equivalence-config.toml")
        toml.write_text(f'config = "{config}"\n' + (tree.root / "examples/equivalence.toml").read_text())
        settings = bazel.root / "BUILD.bazel"
        text = settings.read_text().replace("admin_timeout =", f'config = "{config}",\n    admin_timeout =', 1)
        settings.write_text(text)
    flags = [*(["--endpoint", endpoint] if endpoint else []), *insecure]
    ours = cli("-c", str(toml), "deploy", "baked-wf", "--dry-run", "--format=json", *flags, cwd=tree.root)
    theirs, _, _ = bazel.bazel("run", "//examples/baked:wf", "--", "--dry-run", "--format=json", *flags, check=False)
    return {"pants": pants, "cli": ours, "bazel": theirs}


def _entities(proc) -> list:
    return sorted((e["kind"], e["name"], e["version"], e["status"]) for e in json.loads(proc.stdout)["entities"])


def test_insecure_unset_is_tls_on_every_front_end_and_set_is_plaintext(tree, bazel, cli, registry,  # noqa: F811
                                                                        user_python, tmp_path):
    from tests.support.flyteadmin.fixture import flyteadmin

    with flyteadmin(user_python) as admin:  # plaintext gRPC
        unset = _deploy_three_ways(tree, bazel, cli, registry, admin.endpoint)
        expected = f"cannot reach FlyteAdmin at {admin.endpoint} (TLS) within {TIMEOUT}s"
        for front_end, proc in unset.items():
            assert proc.returncode != 0, front_end
            assert expected in proc.stdout + proc.stderr, f"{front_end}:\n{proc.stdout}\n{proc.stderr}"
            assert "Traceback" not in proc.stderr, front_end

        on = _deploy_three_ways(tree, bazel, cli, registry, admin.endpoint, "--insecure")
        for front_end, proc in on.items():
            assert proc.returncode == 0, f"{front_end}:\n{proc.stdout}\n{proc.stderr}"
        entities = _entities(on["pants"])
        assert _entities(on["cli"]) == _entities(on["bazel"]) == entities
        assert {s for *_, s in entities} == {"registered"} and len(entities) >= 5

        # Unset, with a flytekit config that says `insecure: true` (and names the endpoint): the config decides.
        by_config = _deploy_three_ways(tree, bazel, cli, registry, None, config=admin.write_config(tmp_path / "c.yaml"))
        for front_end, proc in by_config.items():
            assert proc.returncode == 0, f"{front_end}:\n{proc.stdout}\n{proc.stderr}"
            assert _entities(proc) == entities, front_end
        assert admin.store.ids("task") == []  # dry runs: nothing created
