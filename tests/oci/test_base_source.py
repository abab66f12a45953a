"""Bases from anywhere: an OCI layout directory and a `docker save` tarball are bases like a registry
reference — an image built on each, pushed to a real registry, holds the base's layers (copied over) and
pulls back whole; a wrong path or a non-layout is one clear error."""
import io
import json
import tarfile

import pytest

from flytebuild.oci import RegistryClient, RegistryError, build_image, build_layer, publish, write_oci_layout
from flytebuild.oci.base_source import base_source, split_local


def _base():
    layer = build_layer([("/etc/base-marker", b"base\n")], name="base")
    return build_image([layer], None, env={"PATH": "/usr/bin"}, cmd=["/usr/bin/python3"],
                       labels={"org.flytebuild.python-version": "3.11"})


def _docker_save(image, path):
    """What `docker save` writes (Docker 20.10): <id>/layer.tar (uncompressed), <config>.json, manifest.json."""
    import gzip

    with tarfile.open(path, "w") as tar:
        def add(name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))

        names = []
        for layer in image.layers:
            name = f"{layer.digest[7:]}/layer.tar"
            add(name, gzip.decompress(layer.read_bytes()))
            names.append(name)
        add(f"{image.config_digest[7:]}.json", image.config_bytes)
        add("manifest.json", json.dumps([{"Config": f"{image.config_digest[7:]}.json", "RepoTags": ["b:1"],
                                          "Layers": names}]).encode())


def test_split_local():
    assert split_local("oci:base.oci") == ("oci:", "base.oci", None)
    assert split_local("oci:images/base:3.11") == ("oci:", "images/base", "3.11")
    assert split_local("docker-archive:/x/b.tar") == ("docker-archive:", "/x/b.tar", None)


@pytest.mark.parametrize("kind", ["oci", "docker-archive"])
def test_an_image_on_a_local_base_pushes_with_the_base_layers(kind, registry, tmp_path):
    base = _base()
    if kind == "oci":
        write_oci_layout(base, tmp_path / "base.oci", ref_name="3.11")
        spec = "oci:base.oci:3.11"
    else:
        _docker_save(base, tmp_path / "base.tar")
        spec = "docker-archive:base.tar"
    client, ref = base_source(spec, cache_dir=tmp_path / "cache", relative_to=tmp_path)
    pulled = client.pull(ref)
    assert pulled.config["config"]["Labels"]["org.flytebuild.python-version"] == "3.11"
    ours = build_layer([("/root/app.py", b"print(1)\n")], name="sources")
    image = build_image([ours], pulled, workdir="/root")
    result = publish(image, registry.ref(f"local-base/{kind}:v1"), base_client=client, cache_dir=tmp_path / "c2")
    assert not result.skipped and len(result.blobs_uploaded) == 3  # base layer, our layer, config
    back = RegistryClient(registry.host, cache_dir=tmp_path / "c3").pull(registry.ref(f"local-base/{kind}:v1"),
                                                                          layers=True)
    assert back.manifest_digest == image.manifest_digest and len(back.layers) == 2
    # the same base twice: the same image
    again = build_image([ours], base_source(spec, cache_dir=tmp_path / "cache", relative_to=tmp_path)[0].pull(ref),
                        workdir="/root")
    assert again.manifest_digest == image.manifest_digest


def test_bad_local_bases_are_one_clear_error(tmp_path):
    with pytest.raises(RegistryError, match=r"does not exist.*Fix: write it first"):
        base_source("oci:nowhere", cache_dir=tmp_path, relative_to=tmp_path)
    (tmp_path / "plain").mkdir()
    client, ref = base_source("oci:plain", cache_dir=tmp_path, relative_to=tmp_path)
    with pytest.raises(RegistryError, match=r"not an OCI image layout.*docker-archive"):
        client.pull(ref)
    (tmp_path / "x.tar").write_bytes(b"not a tar")
    client, ref = base_source("docker-archive:x.tar", cache_dir=tmp_path, relative_to=tmp_path)
    with pytest.raises(RegistryError, match=r"docker save"):
        client.pull(ref)
