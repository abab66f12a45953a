"""ImageSpec in user code with no flyte_image target: `./pants flyte-imagespec` builds it from its
fields daemonlessly and pushes it to a real registry; real Pants in a temp copy of the repo."""
from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.support.layer_cache import layers  # noqa: F401 - fixture (one layer cache per test process)

EXAMPLE = Path(__file__).parent / "specs_example"
# What specs/etl.py imports, transitively (the empty specs/__init__.py is no dependency in Pants).
CLOSURE = {"specs/images.py", "specs/etl.py", "shared/__init__.py", "shared/textutil.py"}
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


@pytest.fixture(scope="module")
def specs_repo(repo, registry):
    """The example copied into the temp repo as examples/specs, pointed at the test registry."""
    dest = repo.root / "examples" / "specs"
    shutil.copytree(EXAMPLE, dest, dirs_exist_ok=True)
    for f in dest.iterdir():
        f.write_text(f.read_text().replace("localhost:5000", registry.host))
    return repo


def build(repo, cache: Path, *specs: str, env=None):
    return repo.pants(f"--flyte-image-cache-dir={cache}", "flyte-imagespec", "--format=json",
                      *(specs or ("examples/specs:wf",)), env=env or NO_ENGINE)


def built(proc) -> list:
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout)["images"]


def planned_tasks(repo, spec: str) -> dict:
    proc = repo.pants("flyte-plan", "--format=json", spec, check=True)
    return {t["name"]: t for wf in json.loads(proc.stdout)["workflows"] for t in wf["tasks"]}


def drop_tag(registry, ref: str) -> None:
    """Delete the tag's manifest from the test registry; nothing to do when the tag is not there."""
    from flytebuild.oci import RegistryClient
    from flytebuild.oci.registry import Reference

    r = Reference.parse(ref)
    client = RegistryClient(registry.host)
    desc = client.head_manifest(r.repository, r.tag)
    if desc is None:
        return
    client.request("DELETE", f"/v2/{r.repository}/manifests/{desc.digest}", repo=r.repository, actions="*",
                   ok=(202,)).close()


def manifest_and_config(registry, ref: str, cache: Path):
    from flytebuild.oci import RegistryClient
    from flytebuild.oci.registry import Reference

    client = RegistryClient(registry.host, cache_dir=cache)
    manifest, digest = client.resolve(ref)
    repository = Reference.parse(ref).repository
    config = json.loads(client.fetch_blob_path(repository, manifest["config"]["digest"]).read_bytes())
    return client, repository, manifest, digest, config


def test_imagespec_without_target_is_built_pushed_and_used_by_the_plan(specs_repo, registry, layers, tmp_path):
    # Tags are content-addressed: another test of this worker's session (tests/e2e/test_equivalence.py) may have
    # pushed this very image to the same registry. Start without it, so "pushed" is this build's doing.
    drop_tag(registry, planned_tasks(specs_repo, "examples/specs:wf")["specs.etl.clean"]["image_ref"])
    images = built(build(specs_repo, layers))
    assert len(images) == 1
    image = images[0]
    assert image["name"] == "specs-etl" and image["pushed"] is True
    assert image["ref"].startswith(f"{registry.host}/specs-etl:")
    assert sorted(image["tasks"]) == ["specs.etl.clean", "specs.etl.count"]
    assert any(d.startswith("flytekit==1.16.31") for d in image["distributions"])

    # The plan points both tasks at exactly what was built.
    tasks = planned_tasks(specs_repo, "examples/specs:wf")
    for name in ("specs.etl.clean", "specs.etl.count"):
        assert tasks[name]["image_ref"] == image["ref"] and tasks[name]["image_source"] == "code:ImageSpec"
        assert set(tasks[name]["sources"]) == {f"examples/{p}" for p in CLOSURE}  # the build graph's closure

    # In the registry: the manifest pushed, its config carries the spec's env and the closure label.
    client, repository, manifest, digest, config = manifest_and_config(registry, image["ref"], tmp_path / "c")
    assert digest == image["digest"]
    assert "SPECS_MODE=image" in config["config"]["Env"]
    labels = config["config"]["Labels"]
    assert set(json.loads(labels["org.flytebuild.source-files"])) == CLOSURE
    # The sources layer (the last) holds exactly the closure at its import paths, nothing else of
    # the folder (specs/notes.py, specs/workflows.py, BUILD) that source_root="." would have copied.
    blob = client.fetch_blob_path(repository, manifest["layers"][-1]["digest"]).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        files = {m.name.lstrip("/") for m in tar.getmembers() if m.isfile()}
    assert files == {f"root/{p}" for p in CLOSURE} | {"opt/flytebuild/sources.json"}


def test_same_inputs_same_digest_and_present_tag_is_not_rebuilt(specs_repo, registry, layers, tmp_path):
    first = built(build(specs_repo, layers))[0]
    again = built(build(specs_repo, layers))[0]
    assert again["pushed"] is False and again["bytes_uploaded"] == 0 and again["digest"] == first["digest"]
    # Tag gone, clean cache: rebuilt byte for byte.
    drop_tag(registry, first["ref"])
    rebuilt = built(build(specs_repo, tmp_path / "c2"))[0]
    assert rebuilt["pushed"] is True and rebuilt["ref"] == first["ref"] and rebuilt["digest"] == first["digest"]


def test_closure_edit_changes_the_tag_and_outside_edit_does_not(specs_repo, registry, layers):
    before = built(build(specs_repo, layers))[0]
    notes = "examples/specs/notes.py"
    specs_repo.write(notes, specs_repo.read(notes) + "\nMORE = 1\n")
    assert built(build(specs_repo, layers))[0]["ref"] == before["ref"]
    etl = "examples/specs/etl.py"
    original = specs_repo.read(etl)
    try:
        specs_repo.write(etl, original + "\n# edited\n")
        after = built(build(specs_repo, layers))[0]
    finally:
        specs_repo.write(etl, original)
    assert after["ref"] != before["ref"] and after["pushed"] is True


APT_MODULE = '''
from flytekit import ImageSpec, task

tools = ImageSpec(name="specs-tools", registry="{registry}", base_image="{registry}/flytebuild/python:3.11",
                  packages=["flytekit==1.16.31"], apt_packages=["curl"], source_root=".")


@task(container_image=tools)
def fetch(url: str) -> str:
    return url
'''


def test_engine_field_without_engine_fails_clearly_and_tags_nothing(specs_repo, registry, tmp_path):
    from flytebuild.oci import RegistryClient
    from flytebuild.oci.registry import Reference

    specs_repo.write("examples/specs/tools.py", APT_MODULE.format(registry=registry.host))
    specs_repo.write("examples/specs/BUILD", specs_repo.read("examples/specs/BUILD") + (
        '\nflyte_workflow(name="tools_wf", entrypoint="specs.tools:fetch", project="flytesnacks", '
        'domain="development")\n'))
    ref = planned_tasks(specs_repo, "examples/specs:tools_wf")["specs.tools.fetch"]["image_ref"]
    assert ref.startswith(f"{registry.host}/specs-tools:")

    proc = build(specs_repo, tmp_path / "c", "examples/specs:tools_wf")
    assert proc.returncode != 0
    err = proc.stderr
    assert "specs.tools.fetch" in err and "apt_packages" in err and "no Docker engine" in err
    assert "flyte_image(image_name='specs-tools')" in err and "Traceback" not in err
    r = Reference.parse(ref)
    assert RegistryClient(registry.host).head_manifest(r.repository, r.tag) is None


def add_workflow(repo, module: str, text: str, name: str, entrypoint: str) -> None:
    repo.write(f"examples/specs/{module}.py", text)
    repo.write(
        "examples/specs/BUILD",
        repo.read("examples/specs/BUILD")
        + (
            f'\nflyte_workflow(name="{name}", entrypoint="{entrypoint}", project="flytesnacks", domain="development")\n'
        ),
    )


INDEX_MODULE = """
from flytekit import ImageSpec, task

small = ImageSpec(name="specs-small", registry="{registry}", base_image="{registry}/flytebuild/python:3.11",
                  python_version="3.11", packages=["toolz==0.12.1"])


@task(container_image=small)
def first(xs: list[int]) -> int:
    return xs[0]
"""


def test_packages_outside_the_lockfile_are_resolved_by_pex(specs_repo, registry, layers, tmp_path):
    """toolz is in no lockfile of the repo: pex resolves it from the index for the spec's Python."""
    add_workflow(specs_repo, "small", INDEX_MODULE.format(registry=registry.host), "small_wf", "specs.small:first")
    image = built(build(specs_repo, layers, "examples/specs:small_wf"))[0]
    # flytekit is added to what the spec lists (flytekit's builders do the same), pinned to the lockfile's.
    assert image["pushed"] is True and "toolz==0.12.1" in image["distributions"]
    assert "flytekit==1.16.31" in image["distributions"]
    _, _, manifest, _, config = manifest_and_config(registry, image["ref"], tmp_path / "c")
    # No source_root/copy: like flytekit, no code in the image (the task ships in a bundle).
    assert json.loads(config["config"]["Labels"]["org.flytebuild.source-files"]) == []
    task = planned_tasks(specs_repo, "examples/specs:small_wf")["specs.small.first"]
    assert task["image_ref"] == image["ref"] and task["mode"] == "fast"


ENGINE_MODULE = """
from flytekit import ImageSpec, task

shell = ImageSpec(name="specs-shell", registry="{registry}", base_image="{registry}/flytebuild/python:3.11",
                  packages=["flytekit==1.16.31"], commands=["echo built-by-engine > /etc/flytebuild-marker"],
                  source_root=".")


@task(container_image=shell)
def hello(n: int) -> int:
    return n
"""


def test_commands_run_with_a_docker_engine(specs_repo, registry, docker, layers):
    add_workflow(specs_repo, "shell", ENGINE_MODULE.format(registry=registry.host), "shell_wf", "specs.shell:hello")
    proc = build(specs_repo, layers, "examples/specs:shell_wf", env={"DOCKER_HOST": docker.host})
    image = built(proc)[0]
    assert image["engine"] is True and image["pushed"] is True
    assert (
        specs_repo
        and planned_tasks(specs_repo, "examples/specs:shell_wf")["specs.shell.hello"]["image_ref"] == image["ref"]
    )
    docker.run("rmi", "-f", image["ref"], check=False)
    docker.run("pull", image["ref"])
    out = docker.run(
        "run",
        "--rm",
        "--network",
        "none",
        image["ref"],
        "sh",
        "-c",
        "cat /etc/flytebuild-marker && ls /root/specs && command -v pyflyte-execute",
    ).stdout
    assert "built-by-engine" in out and "shell.py" in out and "pyflyte-execute" in out


# --------------------------------------------------------------------------- core (pure) decisions


def _task(name: str, source_file: str, spec: dict):
    from flytebuild.core.introspection import CacheSettings, ImageUse, Interface, Task

    return Task(
        name,
        "python",
        "python-task",
        name.rsplit(".", 1)[0],
        source_file,
        ImageUse("image_spec", None, spec.get("name"), spec),
        CacheSettings(),
        Interface({}, {}),
        {},
        {},
    )


def _closure(*paths: str):
    from flytebuild.core.model import Closure, FileDigest

    return Closure(tuple(FileDigest(p, p * 2) for p in paths), ("flytekit",), ("flytekit==1.16.31",))


SPEC = {
    "name": "s",
    "registry": "r:5000",
    "base_image": "r:5000/py:3.11",
    "packages": ["flytekit==1.16.31"],
    "source_root": ".",
}


def test_one_image_per_spec_holds_the_union_of_its_tasks_closures():
    from flytebuild.core.imagespec import spec_images

    closures = {"a.py": _closure("a.py", "shared.py"), "b.py": _closure("b.py")}
    images = spec_images([_task("a.t", "a.py", SPEC), _task("b.t", "b.py", SPEC)], closures)
    (image,) = images.values()
    assert image.source_paths == ("a.py", "b.py", "shared.py") and image.tasks == ("a.t", "b.t")
    assert image.ref == f"r:5000/s:{image.version}"
    # Code only when asked for (source_root/copy), as flytekit; the closure's files then don't count.
    bare = {k: v for k, v in SPEC.items() if k != "source_root"}
    (no_code,) = spec_images([_task("a.t", "a.py", bare)], closures).values()
    assert no_code.sources == ()
    from flytebuild.core.model import Closure, FileDigest

    edited = {"a.py": Closure((FileDigest("a.py", "changed"),), ("flytekit",), ("flytekit==1.16.31",))}
    (same,) = spec_images([_task("a.t", "a.py", bare)], edited).values()
    assert same.ref == no_code.ref
    (baked_edit,) = spec_images([_task("a.t", "a.py", SPEC)], edited).values()
    assert baked_edit.ref != image.ref
    # Defaults fill what the spec leaves out, and are part of the tag.
    loose = {"name": "s", "packages": ["flytekit"]}
    (d1,) = spec_images([_task("a.t", "a.py", loose)], closures, "r:5000/py:3.11", "r:5000").values()
    (d2,) = spec_images([_task("a.t", "a.py", loose)], closures, "r:5000/py:3.12", "r:5000").values()
    assert d1.base == "r:5000/py:3.11" and d1.registry == "r:5000" and d1.ref != d2.ref


def test_unbuildable_specs_get_one_clear_paragraph():
    from flytebuild.core.errors import FlytebuildError
    from flytebuild.core.imagespec import check_buildable, spec_images

    nested = dict(SPEC, base_image={"name": "inner", "packages": ["numpy"]})
    (image,) = spec_images([_task("a.t", "a.py", nested)], {}).values()
    with pytest.raises(FlytebuildError) as e:
        check_buildable(image, target="x:wf", file="a.py", engine=True)
    assert "another ImageSpec as base_image" in str(e.value) and "a.t" in str(e.value) and "Fix:" in str(e.value)

    apt = dict(SPEC, apt_packages=["curl"], commands=["true"])
    (image,) = spec_images([_task("a.t", "a.py", apt)], {}).values()
    check_buildable(image, target="x:wf", file="a.py", engine=True)  # an engine can do it
    with pytest.raises(FlytebuildError) as e:
        check_buildable(image, target="x:wf", file="a.py", engine=False)
    assert "apt_packages, commands" in str(e.value) and "flyte_image(image_name='s')" in str(e.value)


def test_flyte_deploy_pushes_the_imagespec_and_registers_its_tasks_on_it(specs_repo, registry, user_python, layers):
    """Over real gRPC to the stand-in FlyteAdmin: flyte-deploy builds the ImageSpec (same tag as the plan) first."""
    from flytebuild.oci import RegistryClient
    from flytebuild.oci.registry import Reference
    from tests.deploy.conftest import stored_task, task_container
    from tests.support.flyteadmin.fixture import flyteadmin

    ref = planned_tasks(specs_repo, "examples/specs:wf")["specs.etl.clean"]["image_ref"]
    r = Reference.parse(ref)
    client = RegistryClient(registry.host)
    if client.head_manifest(r.repository, r.tag) is not None:
        drop_tag(registry, ref)
    with flyteadmin(user_python) as admin:
        proc = specs_repo.pants(
            f"--flyte-endpoint={admin.endpoint}",
            "--flyte-insecure",
            f"--flyte-image-cache-dir={layers}",
            "flyte-deploy",
            "--format=json",
            "examples/specs:wf",
            env=NO_ENGINE,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        summary = json.loads(proc.stdout)
        assert client.head_manifest(r.repository, r.tag) is not None  # pushed before registering
        tasks = [e for e in summary["entities"] if e["kind"] == "task"]
        assert {e["name"] for e in tasks} == {"specs.etl.clean", "specs.etl.count"}
        for e in tasks:
            assert task_container(stored_task(admin, e["name"], e["version"]))["image"] == ref


# ---------------------------------------------------------------------------------------------------------------
# The CLI on the same ImageSpec-only project: the same plan, the same image, through the same service

from tests.cli.conftest import cli  # noqa: E402,F401 - re-exported fixture

SPECS_TOML = """
root = "../.."
source_roots = [".."]
requirements = "../3rdparty/requirements.txt"
lockfile = "../3rdparty/flyte.lock"

[workflows.wf]
entrypoint = "specs.workflows:wf"
"""
PEX_ROOT = {"PEX_ROOT": str(Path(__file__).resolve().parents[2] / ".bootstrap/cache/named_caches/pex_root")}


def test_cli_plans_and_builds_the_imagespec_exactly_like_pants(specs_repo, registry, cli, tmp_path):  # noqa: F811
    (specs_repo.root / "examples/specs/flytebuild.toml").write_text(SPECS_TOML)
    config = "examples/specs/flytebuild.toml"
    ours = json.loads(cli("-c", config, "plan", "--format=json", cwd=specs_repo.root, check=True).stdout)
    pants = json.loads(specs_repo.pants("flyte-plan", "--format=json", "examples/specs:wf", check=True).stdout)
    (cli_wf,), (pants_wf,) = ours["workflows"], pants["workflows"]
    fields = (
        "name",
        "image",
        "image_ref",
        "image_source",
        "mode",
        "version",
        "fingerprint",
        "sources",
        "requirements",
        "cache_version",
    )
    assert [{k: t[k] for k in fields} for t in cli_wf["tasks"]] == [
        {k: t[k] for k in fields} for t in pants_wf["tasks"]
    ]
    assert cli_wf["version"] == pants_wf["version"]

    # Built by the CLI first (from its own cache), then the tag dropped and built by Pants: the same manifest.
    ref = next(t["image_ref"] for t in cli_wf["tasks"] if t["image_source"] == "code:ImageSpec")
    from flytebuild.oci import RegistryClient
    from flytebuild.oci.registry import Reference

    r = Reference.parse(ref)
    if RegistryClient(registry.host).head_manifest(r.repository, r.tag) is not None:  # an earlier test pushed it
        drop_tag(registry, ref)
    proc = cli(
        "-c",
        config,
        "imagespec",
        "--format=json",
        cwd=specs_repo.root,
        env={**PEX_ROOT, "XDG_CACHE_HOME": str(tmp_path / "cli-cache"), **NO_ENGINE},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (mine,) = json.loads(proc.stdout)["images"]
    assert mine["pushed"] is True and mine["ref"] == ref and mine["tasks"] == ["specs.etl.clean", "specs.etl.count"]
    drop_tag(registry, ref)
    (theirs,) = built(build(specs_repo, tmp_path / "pants-cache"))
    assert theirs["pushed"] is True and theirs["digest"] == mine["digest"]
    assert sorted(theirs["distributions"]) == sorted(mine["distributions"])
