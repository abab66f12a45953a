"""`./pants package <flyte_image>` end to end: real Pants in a temp copy of the repo, the real
registry with the Debian Python base pushed to it, a real Docker engine running the result."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support.fixtures import forget_repository
from tests.support.layer_cache import layers  # noqa: F401 - fixture (one layer cache per test process)

IMAGE = "examples/baked:image"
SUMMARY = "dist/examples.baked/image.image.json"


def package(repo, cache: Path, *args: str, check: bool = True):
    """`package` with the push output (the one-step package-and-push these tests are about), unless `args` pick
    another output."""
    output = () if any(a.startswith("--flyte-image-output") for a in args) else ("--flyte-image-output=push",)
    proc = repo.pants(f"--flyte-image-cache-dir={cache}", *output, *args, "package", IMAGE)
    if check:
        assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    return proc


def summary(repo) -> dict:
    return json.loads(repo.read(SUMMARY))


def drop_tag(registry, ref: str) -> None:
    """Delete the tag (as a registry GC'd image would be), so the next package builds and pushes again."""
    from flytebuild.oci import RegistryClient
    from flytebuild.oci.registry import Reference

    r = Reference.parse(ref)
    client = RegistryClient(registry.host)
    desc = client.head_manifest(r.repository, r.tag)
    client.request("DELETE", f"/v2/{r.repository}/manifests/{desc.digest}", repo=r.repository, actions="*",
                   ok=(202,)).close()


def test_package_twice_from_clean_caches_is_identical_then_skips(repo, registry, tmp_path):
    forget_repository(registry, "flytebuild/baked")  # the session's registry: tests/cli or tests/deploy pushed it too
    first = package(repo, tmp_path / "c1")
    s1 = summary(repo)
    assert s1["pushed"] is True and s1["ref"].startswith(f"{registry.host}/flytebuild/baked:")
    names = [l["name"] for l in s1["layers"]]
    assert names[-2:] == ["scripts", "sources"] and any("flytekit" in n for n in names)
    assert len(names) <= 24 + 2  # wheels grouped into at most 24 layers (engines cap layer counts)
    assert "pushed " + s1["ref"] in first.stderr

    # Same tag in the registry: nothing is built or pushed.
    again = package(repo, tmp_path / "c1")
    s2 = summary(repo)
    assert s2["pushed"] is False and s2["bytes_uploaded"] == 0 and s2["digest"] == s1["digest"]
    assert "nothing built or pushed" in again.stderr

    # Built again from clean caches (tag gone): byte-identical manifest.
    drop_tag(registry, s1["ref"])
    package(repo, tmp_path / "c2")
    s3 = summary(repo)
    assert s3["pushed"] is True and s3["digest"] == s1["digest"]


def user_literal_map(user_python: str, code: str, out: Path) -> None:
    """Write/read LiteralMap protobufs with the user's own flytekit (never imported in this process)."""
    subprocess.run([user_python, "-c", code, str(out)], check=True, capture_output=True, text=True)


def test_baked_task_runs_from_the_pulled_image(repo, registry, docker, user_python, layers, tmp_path):
    """pyflyte-execute inside the image runs a baked task on local-file inputs: no code bundle."""
    package(repo, layers)
    ref = summary(repo)["ref"]
    docker.run("pull", ref)
    data = tmp_path / "data"
    data.mkdir()
    user_literal_map(user_python, (
        "import sys\n"
        "from flytekit.models.literals import LiteralMap, Literal, Scalar, Primitive\n"
        "lm = LiteralMap({'x': Literal(scalar=Scalar(primitive=Primitive(integer=4)))})\n"
        "open(sys.argv[1], 'wb').write(lm.to_flyte_idl().SerializeToString())\n"), data / "inputs.pb")
    run = docker.run(
        "run", "--rm", "--network", "none", "-v", f"{data}:/data", ref,
        "pyflyte-execute", "--inputs", "/data/inputs.pb", "--output-prefix", "/data/out",
        "--raw-output-data-prefix", "/data/raw",
        "--resolver", "flytekit.core.python_auto_container.default_task_resolver",
        "--", "task-module", "baked.data", "task-name", "make_values",
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = subprocess.run([user_python, "-c", (
        "import sys\n"
        "from flyteidl.core import literals_pb2\n"
        "m = literals_pb2.LiteralMap(); m.ParseFromString(open(sys.argv[1], 'rb').read())\n"
        "print([l.scalar.primitive.float_value for l in m.literals['o0'].collection.literals])\n"),
        str(data / "out" / "outputs.pb")], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[1.0, 2.0, 3.0, 4.0]"
    # Only what the closure holds is baked: mixed/ is not in this image.
    files = json.loads(docker.run("inspect", "--format", "{{json .Config.Labels}}", ref).stdout)
    baked = json.loads(files["org.flytebuild.source-files"])
    assert "baked/data.py" in baked and "shared/helpers.py" in baked
    assert not any(f.startswith("mixed/") for f in baked)


def registry_layers(registry, ref: str) -> list:
    from flytebuild.oci import RegistryClient

    manifest, _ = RegistryClient(registry.host).resolve(ref)
    return [d["digest"] for d in manifest["layers"]]


def test_source_change_in_closure_uploads_only_the_sources_layer(repo, registry, layers):
    cache = layers
    package(repo, cache)
    before = summary(repo)
    path = "examples/shared/helpers.py"
    repo.write(path, repo.read(path) + "\n# one more line\n")
    package(repo, cache)
    after = summary(repo)
    assert after["pushed"] is True and after["ref"] != before["ref"]
    # In the registry: same layers but the last (the sources layer).
    layers_before, layers_after = registry_layers(registry, before["ref"]), registry_layers(registry, after["ref"])
    assert len(layers_before) == len(layers_after)
    assert [i for i, (a, b) in enumerate(zip(layers_before, layers_after)) if a != b] == [len(layers_after) - 1]
    assert layers_after[-1] == next(l["digest"] for l in after["layers"] if l["name"] == "sources")
    uploaded = [l["name"] for l in after["layers"] if l["status"] == "uploaded"]
    assert uploaded == ["sources"]
    sources = next(l for l in after["layers"] if l["name"] == "sources")
    assert sources["size"] < after["bytes_uploaded"] < sources["size"] + 20_000  # + the config blob


def test_change_outside_closure_changes_nothing(repo, layers):
    cache = layers
    package(repo, cache)
    before = summary(repo)
    path = "examples/mixed/plain_tasks.py"
    repo.write(path, repo.read(path) + "\n# not in the baked image\n")
    package(repo, cache)
    after = summary(repo)
    assert after["ref"] == before["ref"] and after["digest"] == before["digest"]
    assert after["pushed"] is False and after["bytes_uploaded"] == 0


def _bad_image(repo, name: str, registry: str, base: str) -> str:
    repo.write(f"examples/bad_{name}/BUILD", (
        "flyte_image(\n"
        f"    name='image', image_name='bad-{name}', base='{base}', registry='{registry}',\n"
        f"    repository='flytebuild/bad-{name}',\n"
        "    dependencies=['examples/shared:shared', 'examples/3rdparty:reqs#flytekit'],\n"
        ")\n"))
    return f"examples/bad_{name}:image"


def test_bad_input_fails_clearly_and_tags_nothing(repo, registry, make_registry, tmp_path):
    import socket

    from flytebuild.oci import RegistryClient

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    htpasswd = tmp_path / "htpasswd"
    subprocess.run(["htpasswd", "-Bbc", str(htpasswd), "flyte", "s3cret"], check=True, capture_output=True)
    secure = make_registry("secure", htpasswd=htpasswd)
    base = f"{registry.host}/flytebuild/python:3.11"
    cases = {
        "unreachable": (_bad_image(repo, "unreachable", closed, base), "Cannot reach registry " + closed),
        "nobase": (_bad_image(repo, "nobase", registry.host, f"{registry.host}/flytebuild/missing:1"),
                   f"Image {registry.host}/flytebuild/missing:1 not found"),
        "auth": (_bad_image(repo, "auth", secure.host, base), f"Authentication failed at registry {secure.host}"),
    }
    for name, (address, message) in cases.items():
        proc = repo.pants(f"--flyte-image-cache-dir={tmp_path / 'c'}", "--flyte-image-output=push", "package", address)
        assert proc.returncode != 0, name
        assert message in proc.stderr, f"{name}:\n{proc.stderr}"
        assert f"Cannot build flyte_image {address}" in proc.stderr
        assert "Fix:" in proc.stderr and "Traceback" not in proc.stderr
    # Nothing was tagged in the reachable registry.
    tags = RegistryClient(registry.host).request(
        "GET", "/v2/flytebuild/bad-nobase/tags/list", repo="flytebuild/bad-nobase", ok=(200, 404)
    )
    with tags:
        assert tags.status == 404 or not (json.loads(tags.read()).get("tags") or [])


def test_oci_layout_and_docker_load_outputs(repo, docker, layers):
    cache = layers
    package(repo, cache, "--flyte-image-output=oci")
    s = summary(repo)
    layout = repo.root / "dist" / "examples.baked" / "baked.oci"
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["digest"] == s["digest"]
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == s["ref"]
    manifest = json.loads((layout / "blobs" / "sha256" / s["digest"].split(":")[1]).read_text())
    for d in [manifest["config"], *manifest["layers"]]:  # every blob is there, with its size
        assert (layout / "blobs" / "sha256" / d["digest"].split(":")[1]).stat().st_size == d["size"]

    proc = repo.pants(
        f"--flyte-image-cache-dir={cache}",
        "--flyte-image-output=docker",
        "package",
        IMAGE,
        env={"DOCKER_HOST": docker.host},
    )
    assert proc.returncode == 0, proc.stderr
    assert f"loaded {s['ref']} into Docker" in proc.stderr
    # Docker's image ID is our config digest: the same image, loaded without a registry.
    image_id = docker.run("image", "inspect", "--format", "{{.Id}}", s["ref"]).stdout.strip()
    assert image_id == manifest["config"]["digest"]
    out = docker.run(
        "run",
        "--rm",
        "--network",
        "none",
        s["ref"],
        "sh",
        "-c",
        "command -v pyflyte-execute && command -v pyflyte-fast-execute && python3 -c 'import baked.data'",
    ).stdout
    assert out.split() == ["/opt/flytebuild/bin/pyflyte-execute", "/opt/flytebuild/bin/pyflyte-fast-execute"]


def test_package_builds_and_publish_pushes_the_same_image(repo, registry, layers):
    """Pants idioms: `package` builds (an OCI layout under dist/, nothing pushed), `publish` pushes that layout;
    the pushed manifest is the one `package --flyte-image-output=push` (and `flyte-deploy`) pushes."""
    from flytebuild.oci import RegistryClient
    from flytebuild.oci.registry import Reference

    cache = layers
    built = repo.pants(f"--flyte-image-cache-dir={cache}", "package", IMAGE)
    assert built.returncode == 0, built.stderr
    s = summary(repo)
    assert s["output"] == "oci" and s["pushed"] is False and s["bytes_uploaded"] == 0
    assert (repo.root / "dist" / "examples.baked" / "baked.oci" / "index.json").is_file()
    ref = Reference.parse(s["ref"])
    drop = RegistryClient(registry.host).head_manifest(ref.repository, ref.tag)
    if drop is not None:  # another test pushed this content already: start from an untagged registry
        drop_tag(registry, s["ref"])
    assert RegistryClient(registry.host).head_manifest(ref.repository, ref.tag) is None  # package pushed nothing

    published = repo.pants(f"--flyte-image-cache-dir={cache}", "publish", IMAGE)
    assert published.returncode == 0, published.stdout + published.stderr
    assert f"pushed {s['ref']} ({s['digest']}" in published.stdout + published.stderr
    assert RegistryClient(registry.host).head_manifest(ref.repository, ref.tag).digest == s["digest"]
    again = repo.pants(f"--flyte-image-cache-dir={cache}", "publish", IMAGE)
    assert again.returncode == 0 and "already in the registry" in again.stdout + again.stderr

    drop_tag(registry, s["ref"])
    package(repo, cache)  # the one-step output: same manifest digest
    assert summary(repo)["digest"] == s["digest"] and summary(repo)["pushed"] is True


def test_image_name_that_escapes_dist_is_rejected(repo, tmp_path):
    """An image_name with `../` never writes outside dist/: one message naming the target and the field."""
    repo.write(
        "examples/escape/BUILD",
        (
            "flyte_image(\n"
            "    name='image', image_name='../../escaped',\n"
            "    dependencies=['examples/shared:shared', 'examples/3rdparty:reqs#flytekit'],\n"
            ")\n"
        ),
    )
    proc = repo.pants(f"--flyte-image-cache-dir={tmp_path / 'c'}", "package", "examples/escape:image")
    assert proc.returncode != 0
    # Field validation stops it before anything resolves or builds (service.paths would refuse the write too).
    assert "`image_name` field of flyte_image examples/escape:image is '../../escaped'" in proc.stderr, proc.stderr
    assert "path separator" in proc.stderr and "Fix:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(repo.root.glob("**/escaped.oci")) and not (repo.root.parent / "escaped.oci").exists()
