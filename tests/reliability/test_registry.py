"""Registry faults × operations (cases.FAULT_CASES) through a fault proxy in front of the real registry, tag
trust by fingerprint label, Docker config problems (cases.DOCKER_CONFIG_CASES) against a real htpasswd
registry, and a full disk under the layer cache.

A transient fault must be recovered from (the tag then names the built image and every blob exists); a
persistent one must fail with a paragraph naming the registry and a fix, and must never leave a tag naming
anything but the complete built image."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request

import pytest

from flytebuild.oci import RegistryClient, RegistryError, build_image, build_layer, publish
from flytebuild.oci.build import BuildError, Distribution, ImageInputs, SourceFile, assemble
from flytebuild.oci.image import LABEL_FINGERPRINT
from flytebuild.oci.publish import TagConflict, reusable_tag
from flytebuild.oci.registry import DockerConfigError, load_credentials
from tests.reliability.cases import DOCKER_CONFIG_CASES, FAULT_CASES, ConfigCase, FaultCase

ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"


def _tag_digest(host: str, repo: str, tag: str):
    req = urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{tag}", method="HEAD", headers={"Accept": ACCEPT})
    try:
        with urllib.request.urlopen(req, timeout=10) as rsp:
            return rsp.headers["Docker-Content-Digest"]
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def _blob_exists(host: str, repo: str, digest: str) -> bool:
    req = urllib.request.Request(f"http://{host}/v2/{repo}/blobs/{digest}", method="HEAD")
    try:
        with urllib.request.urlopen(req, timeout=10):
            return True
    except urllib.error.HTTPError:
        return False


def _image(base, tag: str, fingerprint: str = None):
    layer = build_layer([(f"app/{tag}.txt", f"content of {tag}\n".encode())], name="app")
    return build_image([layer], base, fingerprint=fingerprint or f"fp-{tag}")


@pytest.mark.parametrize("case", FAULT_CASES, ids=lambda c: c.id)
def test_fault(case: FaultCase, fault_proxy, registry, base_image, cache_dir):
    tag = case.id.replace(" ", "-")
    repo = "faults/app"
    image = _image(base_image, tag)
    action = "status" if case.action == "status" else case.action
    fault_proxy.add(case.method, case.path, action, times=case.times, seconds=5.0, code=503)
    client = RegistryClient(fault_proxy.host, cache_dir=cache_dir, timeout=0.5, retries=2, backoff=0.01)
    ref = f"{fault_proxy.host}/{repo}:{tag}"
    try:
        result = publish(image, ref, client=client, base_client=RegistryClient(registry.host, cache_dir=cache_dir))
        error = None
    except RegistryError as e:
        error, result = e, None
    fired = sum(1 for _, _, a in fault_proxy.log if a == action)
    assert fired >= 1, f"the fault never fired: {fault_proxy.log}"
    stored = _tag_digest(registry.host, repo, tag)
    if case.outcome == "pushed":
        assert error is None, f"a transient {case.action} on {case.operation} was not recovered from: {error}"
        assert result.digest == image.manifest_digest and stored == image.manifest_digest
        for layer in image.layers:
            assert _blob_exists(registry.host, repo, layer.digest)
        if case.operation == "blob PUT":
            # a lost answer is never followed by a PUT into the consumed session (404 BLOB_UPLOAD_UNKNOWN)
            assert not any("BLOB_UPLOAD_UNKNOWN" in str(x) for x in fault_proxy.log)
    else:
        assert error is not None, f"a persistent {case.action} on {case.operation} reported success"
        message = str(error)
        for fragment in case.expect:
            assert fragment in message, message
        assert "Traceback" not in message and "check the image name" not in message, message
        # never a tag naming anything but the complete built image (a dropped answer to the manifest PUT
        # may have stored it: then it is this image, whole)
        assert stored in (None, image.manifest_digest)
        if stored is not None:
            assert case.operation == "manifest PUT" and case.action in ("drop", "delay"), (case, stored)


def test_lost_answer_after_blob_put_checks_the_blob_instead_of_reusing_the_session(fault_proxy, registry, base_image,
                                                                                    cache_dir):
    image = _image(base_image, "lost-answer")
    fault_proxy.add("PUT", r"/blobs/uploads/", "drop", times=1)
    client = RegistryClient(fault_proxy.host, cache_dir=cache_dir, timeout=5, retries=2, backoff=0.01)
    publish(image, f"{fault_proxy.host}/faults/lost:1", client=client)
    puts = [(m, p) for m, p, _ in fault_proxy.log if m == "PUT" and "/blobs/uploads/" in p]
    dropped = next(p for m, p, a in fault_proxy.log if a == "drop")
    session = dropped.split("?")[0]
    assert [p for _, p in puts].count(dropped) == 1 and sum(p.startswith(session) for _, p in puts) == 1
    heads = [p for m, p, _ in fault_proxy.log if m == "HEAD" and "/blobs/" in p]
    assert heads, "the retry must ask whether the blob exists"
    assert _tag_digest(registry.host, "faults/lost", "1") == image.manifest_digest


# --------------------------------------------------------------------------- tag trust


def test_foreign_content_under_our_tag_is_an_error_and_is_never_overwritten(registry, base_image, cache_dir):
    client = RegistryClient(registry.host, cache_dir=cache_dir)
    ours = _image(base_image, "trust", fingerprint="fp-ours")
    other = _image(base_image, "trust-other", fingerprint="fp-someone-else")
    publish(other, f"{registry.host}/trust/app:v1", client=client)
    before = _tag_digest(registry.host, "trust/app", "v1")
    with pytest.raises(TagConflict) as info:
        reusable_tag(client, f"{registry.host}/trust/app:v1", "fp-ours")
    message = str(info.value)
    assert "trust/app:v1" in message and registry.host in message and "fp-someone-else" in message
    assert "Fix:" in message
    with pytest.raises(TagConflict):
        publish(ours, f"{registry.host}/trust/app:v1", client=client)
    assert _tag_digest(registry.host, "trust/app", "v1") == before, "publish overwrote a foreign tag"


def test_tag_without_fingerprint_label_is_not_trusted(registry, base_image, cache_dir):
    client = RegistryClient(registry.host, cache_dir=cache_dir)
    plain = build_image([build_layer([("x.txt", b"pushed by another tool")])], base_image)
    assert LABEL_FINGERPRINT not in (json.loads(plain.config_bytes)["config"].get("Labels") or {})
    publish(plain, f"{registry.host}/trust/plain:v1", client=client)
    with pytest.raises(TagConflict, match="carries no flytebuild fingerprint label"):
        reusable_tag(client, f"{registry.host}/trust/plain:v1", "fp-1")


def test_tag_with_our_fingerprint_is_reused_without_a_push(registry, base_image, cache_dir):
    client = RegistryClient(registry.host, cache_dir=cache_dir)
    image = _image(base_image, "reuse", fingerprint="fp-same")
    publish(image, f"{registry.host}/trust/reuse:v1", client=client)
    assert reusable_tag(client, f"{registry.host}/trust/reuse:v1", "fp-same") == image.manifest_digest
    assert reusable_tag(client, f"{registry.host}/trust/reuse:absent", "fp-same") is None


# --------------------------------------------------------------------------- Docker config


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    from tests.oci.conftest import start_registry, stop_registry

    if shutil.which("htpasswd") is None:
        subprocess.run(["bash", "tests/support/install_registry.sh"], check=True)
    root = tmp_path_factory.mktemp("auth-registry")
    htpasswd = root / "htpasswd"
    subprocess.run(["htpasswd", "-Bbc", str(htpasswd), "user", "s3cret"], check=True, capture_output=True)
    reg = start_registry(root / "reg", htpasswd=htpasswd)
    yield reg
    stop_registry(reg)


@pytest.mark.parametrize("case", DOCKER_CONFIG_CASES, ids=lambda c: c.name)
def test_docker_config_problem(case: ConfigCase, auth_registry, tmp_path, monkeypatch):
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()
    (config_dir / "config.json").write_text(case.config.replace("REGISTRY", auth_registry.host))
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no docker-credential-* helper of this machine
    image = build_image([build_layer([("c.txt", case.name.encode())])])
    with pytest.raises(RegistryError) as info:
        publish(image, f"{auth_registry.host}/cfg/app:1", client=RegistryClient(auth_registry.host))
    message = str(info.value)
    for fragment in case.expect:
        assert fragment in message, message
    assert str(config_dir / "config.json") in message, "the real path (from $DOCKER_CONFIG) is named"
    assert "~/.docker" not in message and "s3cret" not in message
    if "Authentication failed" not in case.expect:
        assert isinstance(info.value, DockerConfigError) and "(from $DOCKER_CONFIG)" in message
    assert _tag_digest_auth(auth_registry.host) is None


def _tag_digest_auth(host: str):
    import base64

    req = urllib.request.Request(f"http://{host}/v2/cfg/app/manifests/1", method="HEAD", headers={
        "Accept": ACCEPT, "Authorization": "Basic " + base64.b64encode(b"user:s3cret").decode()})
    try:
        with urllib.request.urlopen(req, timeout=10) as rsp:
            return rsp.headers["Docker-Content-Digest"]
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def test_docker_config_is_read_only_when_a_registry_asks(registry, tmp_path, monkeypatch):
    """A broken config does not break registries that need no credentials."""
    (tmp_path / "config.json").write_text("{broken")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert RegistryClient(registry.host).head_manifest("nothing/here", "1") is None
    with pytest.raises(DockerConfigError, match="is not valid JSON"):
        load_credentials(registry.host)


# --------------------------------------------------------------------------- full disk


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_full_disk_in_the_layer_cache_is_a_clear_error(tiny_disk, tmp_path, base_image):
    dist = tmp_path / "demo-1.0"  # an installed wheel (chroot) bigger than the disk under the cache
    (dist / "demo-1.0.dist-info").mkdir(parents=True)
    (dist / "demo-1.0.dist-info/METADATA").write_text("Name: demo\nVersion: 1.0\n")
    (dist / "demo").mkdir()
    (dist / "demo/blob.bin").write_bytes(os.urandom(300_000))
    inputs = ImageInputs(distributions=(Distribution("demo-1.0-py3-none-any.whl", dist),),
                         sources=(SourceFile("pkg/m.py", b"X = 1\n"),))
    with pytest.raises(BuildError) as info:
        assemble(inputs, base_image, cache_dir=tiny_disk)
    message = str(info.value)
    assert "No space left" in message and str(tiny_disk) in message and "Fix:" in message, message


def test_full_disk_while_fetching_a_base_layer(tiny_disk, registry, base_image, cache_dir):
    big = build_layer([("big.bin", os.urandom(200_000))], name="big")
    image = build_image([big], None)
    publish(image, f"{registry.host}/disk/big:1", client=RegistryClient(registry.host, cache_dir=cache_dir))
    client = RegistryClient(registry.host, cache_dir=tiny_disk)
    with pytest.raises(RegistryError) as info:
        client.fetch_blob_path("disk/big", big.digest)
    message = str(info.value)
    assert "Cannot write blob" in message and str(tiny_disk) in message and "free disk space" in message
    assert not list((tiny_disk / "blobs").rglob("*.tmp*")), "no partial blob left behind"


# --------------------------------------------------------------------------- verify's command path


def test_static_verify_finds_a_python_path_missing_from_the_image(registry, base_image, cache_dir):
    from flytebuild.oci.verify import python_problem

    client = RegistryClient(registry.host, cache_dir=cache_dir)
    sources = (SourceFile("pkg/m.py", b"X = 1\n"),)
    for python, ok in (("/nope/bin/python3", False), ("/usr/bin/hello", True)):
        built = assemble(ImageInputs(sources=sources, python=python), base_image, cache_dir=cache_dir)
        ref = f"{registry.host}/verify/app:{'ok' if ok else 'missing'}"
        publish(built.image, ref, client=client)
        problem = python_problem(ref, cache_dir)
        if ok:
            assert problem is None
        else:
            assert problem and "/nope/bin/python3" in problem and "cannot start" in problem
