import json

from flytebuild.oci.image import (
    EPOCH,
    LABEL_FINGERPRINT,
    LABEL_SOURCE_MANIFEST,
    OCI_MANIFEST,
    BaseImage,
    build_image,
    canonical_json,
)
from flytebuild.oci.layers import build_layer

BASE = BaseImage(
    "127.0.0.1:1/base:1",
    manifest={
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": "sha256:" + "c" * 64,
            "size": 1,
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "digest": "sha256:" + "a" * 64,
                "size": 10,
            }
        ],
    },
    config={
        "architecture": "arm64",
        "variant": "v8",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/bin", "PYTHONPATH=/opt/base"],
            "Cmd": ["python3"],
            "WorkingDir": "/",
            "Labels": {"base": "1"},
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "b" * 64]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "base"}],
    },
)


def _build(**kw):
    layer = build_layer([("root/app/x.py", b"x = 1\n")], name="sources")
    args = dict(
        env={"FOO": "bar"},
        pythonpath=["/root/app"],
        workdir="/root",
        fingerprint="fp123",
        source_manifest_digest="sha256:" + "d" * 64,
    )
    args.update(kw)
    return build_image([layer], BASE, **args), layer


def test_config_and_manifest_on_top_of_base():
    img, layer = _build()
    cfg, man = img.config, img.manifest
    assert (cfg["architecture"], cfg["os"], cfg["variant"], cfg["created"]) == ("arm64", "linux", "v8", EPOCH)
    assert cfg["config"]["Env"] == ["PATH=/usr/bin", "PYTHONPATH=/root/app:/opt/base", "FOO=bar"]
    assert cfg["config"]["WorkingDir"] == "/root"
    assert cfg["config"]["Cmd"] == ["python3"] and "Entrypoint" not in cfg["config"]
    assert cfg["config"]["Labels"] == {
        "base": "1",
        LABEL_FINGERPRINT: "fp123",
        LABEL_SOURCE_MANIFEST: "sha256:" + "d" * 64,
    }
    assert cfg["rootfs"]["diff_ids"] == ["sha256:" + "b" * 64, layer.diff_id]
    assert cfg["history"][-1] == {"created": EPOCH, "created_by": "flytebuild: sources"}
    assert man["mediaType"] == OCI_MANIFEST
    assert man["config"] == {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": img.config_digest,
        "size": len(img.config_bytes),
    }
    assert [l["digest"] for l in man["layers"]] == ["sha256:" + "a" * 64, layer.digest]
    assert all(l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip" for l in man["layers"])
    assert img.manifest_bytes == canonical_json(man) and b" " not in img.manifest_bytes
    assert img.base_layers() == [man["layers"][0]]


def test_digests_reproduce_and_follow_inputs():
    a, _ = _build()
    b, _ = _build()
    assert (a.config_digest, a.manifest_digest) == (b.config_digest, b.manifest_digest)
    c, _ = _build(fingerprint="other")
    assert c.manifest_digest != a.manifest_digest
    env_order, _ = _build(env={"B": "2", "A": "1"})
    env_order2, _ = _build(env={"A": "1", "B": "2"})
    assert env_order.manifest_digest == env_order2.manifest_digest


def test_entrypoint_resets_base_cmd_and_scratch_defaults():
    img, _ = _build(entrypoint=["pyflyte-execute"])
    assert img.config["config"]["Entrypoint"] == ["pyflyte-execute"] and "Cmd" not in img.config["config"]
    scratch = build_image([build_layer([("a", b"1")])])
    assert (scratch.config["architecture"], scratch.config["os"]) == ("amd64", "linux")
    assert json.loads(scratch.manifest_bytes)["layers"][0]["size"] > 0
