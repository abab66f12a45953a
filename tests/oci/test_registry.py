import base64
import hashlib
import json
import os
import shutil
import subprocess
import time

import pytest

from flytebuild.oci import Reference, RegistryClient, RegistryError, build_image, build_layer, publish
from flytebuild.oci.registry import MANIFEST_ACCEPT, load_credentials


@pytest.mark.parametrize("text, expected", [
    ("python", ("docker.io", "library/python", "latest", None)),
    ("python:3.11-slim", ("docker.io", "library/python", "3.11-slim", None)),
    ("docker.io/team/app:1", ("docker.io", "team/app", "1", None)),
    ("index.docker.io/team/app", ("docker.io", "team/app", "latest", None)),
    ("localhost:5000/a/b:t", ("localhost:5000", "a/b", "t", None)),
    ("127.0.0.1:5000/img@sha256:" + "0" * 64, ("127.0.0.1:5000", "img", None, "sha256:" + "0" * 64)),
    ("ghcr.io/o/r:v1@sha256:" + "1" * 64, ("ghcr.io", "o/r", "v1", "sha256:" + "1" * 64)),
])
def test_parse_reference(text, expected):
    r = Reference.parse(text)
    assert (r.registry, r.repository, r.tag, r.digest) == expected
    assert Reference.parse(str(r)) == r


@pytest.mark.parametrize("bad", ["", "UPPER/case", "a b", "x@sha256:short", "host:5000/"])
def test_parse_reference_rejects_bad(bad):
    with pytest.raises(ValueError):
        Reference.parse(bad)


def test_scheme_plain_http_only_for_loopback():
    assert RegistryClient("127.0.0.1:5000", credentials=("", "")).base_url == "http://127.0.0.1:5000"
    assert RegistryClient("localhost:5000", credentials=("", "")).base_url == "http://localhost:5000"
    assert RegistryClient("ghcr.io", credentials=("", "")).base_url == "https://ghcr.io"
    assert RegistryClient("docker.io", credentials=("", "")).base_url == "https://registry-1.docker.io"


def test_credentials_from_auths_and_helper(tmp_path, monkeypatch):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"auths": {"reg.example:5000": {"auth": base64.b64encode(b"u:p:w").decode()},
                                         "https://index.docker.io/v1/": {"username": "hub", "password": "pw"}},
                               "credHelpers": {"helped.example": "fbtest"}}))
    assert load_credentials("reg.example:5000", cfg) == ("u", "p:w")
    assert load_credentials("docker.io", cfg) == ("hub", "pw")
    assert load_credentials("other.example", cfg) is None
    helper = tmp_path / "bin" / "docker-credential-fbtest"
    helper.parent.mkdir()
    helper.write_text(
        '#!/bin/sh\nread host\n'
        'echo "{\\"ServerURL\\":\\"$host\\",\\"Username\\":\\"hu\\",\\"Secret\\":\\"hs-$host\\"}"\n'
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helper.parent}{os.pathsep}{os.environ['PATH']}")
    assert load_credentials("helped.example", cfg) == ("hu", "hs-helped.example")


def test_unreachable_registry_fails_fast_and_clearly(closed_port):
    host = f"127.0.0.1:{closed_port}"  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(RegistryError) as e:
        RegistryClient(host, credentials=None).pull(f"{host}/base:1")
    assert time.monotonic() - t0 < 2
    msg = str(e.value)
    assert host in msg and "base" in msg and "Fix:" in msg and "running" in msg
    assert "Traceback" not in msg


def test_missing_base_image_is_clear(registry, cache_dir):
    with pytest.raises(RegistryError) as e:
        RegistryClient(registry.host, cache_dir=cache_dir).pull(registry.ref("nope/missing:1"))
    msg = str(e.value)
    assert "not found" in msg and registry.host in msg and "nope/missing" in msg and "Fix:" in msg
    assert e.value.status == 404


def test_pull_back_by_tag_verifies_digests(registry, base_image, cache_dir):
    client = RegistryClient(registry.host, cache_dir=cache_dir)
    raw, media_type, digest = client.get_manifest("base/tiny", "1")
    assert digest == base_image.manifest_digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert media_type == "application/vnd.oci.image.manifest.v1+json"
    head = client.head_manifest("base/tiny", "1")
    assert head.digest == digest and head.size == len(raw)
    cfg_digest = json.loads(raw)["config"]["digest"]
    cfg = client.fetch_blob("base/tiny", cfg_digest)
    assert "sha256:" + hashlib.sha256(cfg).hexdigest() == cfg_digest
    assert base_image.config["config"]["Cmd"] == ["/usr/bin/hello"]
    # layers land in the content-addressed cache, verified
    pulled = client.pull(registry.ref("base/tiny:1"), layers=True)
    for d in pulled.layers:
        path = cache_dir / "blobs" / "sha256" / d["digest"].split(":")[1]
        assert "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() == d["digest"]
    # by digest too
    assert client.pull(registry.ref(f"base/tiny@{digest}")).manifest_digest == digest


def test_index_resolves_to_linux_amd64(registry, base_image, cache_dir):
    client = RegistryClient(registry.host, cache_dir=cache_dir)
    raw, _, digest = client.get_manifest("base/tiny", "1")
    arm = build_image([build_layer([("arm", b"not really arm")])])
    publish(arm, registry.ref("base/tiny:arm"), client=client)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": arm.manifest_digest,
                "size": len(arm.manifest_bytes),
                "platform": {"os": "linux", "architecture": "arm64"},
            },
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": len(raw),
                "platform": {"os": "linux", "architecture": "amd64"},
            },
        ],
    }
    data = json.dumps(index).encode()
    client.put_manifest("base/tiny", "multi", data, "application/vnd.oci.image.index.v1+json")
    assert client.pull(registry.ref("base/tiny:multi")).manifest_digest == digest
    with pytest.raises(RegistryError, match="no linux/s390x manifest"):
        client.resolve(registry.ref("base/tiny:multi"), platform=("linux", "s390x"))


def test_blob_digest_mismatch_is_detected(registry, tmp_path):
    client = RegistryClient(registry.host, cache_dir=tmp_path / "a")
    layer = build_layer([("f", b"content that the test corrupts on the registry's disk")])
    publish(build_image([layer]), registry.ref("corrupt/check:1"), client=client)
    assert (
        RegistryClient(registry.host, cache_dir=tmp_path / "b").fetch_blob("corrupt/check", layer.digest) == layer.data
    )
    hexd = layer.digest.split(":")[1]
    data = registry.root / "storage" / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexd[:2] / hexd / "data"
    data.write_bytes(data.read_bytes()[:-1] + b"X")
    fresh = RegistryClient(registry.host, cache_dir=tmp_path / "c")
    with pytest.raises(RegistryError, match="does not match its digest"):
        fresh.fetch_blob("corrupt/check", layer.digest)
    assert not list((tmp_path / "c").rglob("*" + hexd + "*"))  # nothing corrupt left in the cache
    with pytest.raises(RegistryError) as e:
        fresh.fetch_blob("corrupt/check", "sha256:" + "f" * 64)
    assert e.value.status == 404


@pytest.mark.skipif(shutil.which("htpasswd") is None, reason="htpasswd (apache2-utils) is not installed")
def test_auth_with_docker_config(tmp_path, monkeypatch, make_registry):
    htpasswd = tmp_path / "htpasswd"
    subprocess.run(["htpasswd", "-Bbc", str(htpasswd), "flyte", "s3cret"], check=True, capture_output=True)
    reg = make_registry("secure", htpasswd=htpasswd)
    image = build_image([build_layer([("a.txt", b"auth")])])
    ref = f"{reg.host}/secure/app:1"
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "nodocker"))
    with pytest.raises(RegistryError) as e:
        publish(image, ref, client=RegistryClient(reg.host))
    msg = str(e.value)
    assert e.value.status == 401 and reg.host in msg and "secure/app" in msg and "docker login" in msg
    # wrong password: same clear error
    with pytest.raises(RegistryError, match="Authentication failed"):
        RegistryClient(reg.host, credentials=("flyte", "wrong")).head_manifest("secure/app", "1")
    # credentials from ~/.docker/config.json `auths`
    docker_dir = tmp_path / "docker"
    docker_dir.mkdir()
    (docker_dir / "config.json").write_text(
        json.dumps({"auths": {reg.host: {"auth": base64.b64encode(b"flyte:s3cret").decode()}}})
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_dir))
    res = publish(image, ref, client=RegistryClient(reg.host))
    assert res.digest == image.manifest_digest and not res.skipped
    assert RegistryClient(reg.host).head_manifest("secure/app", "1").digest == image.manifest_digest


def test_accept_header_lists_oci_and_docker_types():
    for t in (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ):
        assert t in MANIFEST_ACCEPT
