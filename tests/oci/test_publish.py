import hashlib
import json
import time

from flytebuild.oci import RegistryClient, build_image, build_layer, publish, write_oci_layout
from flytebuild.oci.image import LABEL_FINGERPRINT


def _project(root, *, mod_x=b"X = 1\n"):
    files = {
        "deps/site-packages/dep/__init__.py": b"DEP = 1\n",
        "src/proj/__init__.py": b"",
        "src/proj/x.py": mod_x,
        "src/proj/y.py": b"Y = 2\n",
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def _build(root, base):
    deps = build_layer([("/opt/deps/" + p.relative_to(root / "deps").as_posix(), p)
                        for p in sorted((root / "deps").rglob("*.py"))], name="requirements")
    srcs = build_layer([("/root/" + p.relative_to(root / "src").as_posix(), p)
                        for p in sorted((root / "src").rglob("*.py"))], name="sources")
    return build_image([deps, srcs], base, env={"FLYTE_X": "1"}, pythonpath=["/root", "/opt/deps/site-packages"],
                       workdir="/root", fingerprint="fp", source_manifest_digest=srcs.diff_id)


def test_build_push_twice_is_identical_and_second_push_uploads_nothing(registry, base_image, cache_dir, tmp_path):
    a = _build(_project(tmp_path / "a"), base_image)
    b = _build(_project(tmp_path / "b"), base_image)  # another checkout, other mtimes
    assert a.manifest_digest == b.manifest_digest
    assert [l.data for l in a.layers] == [l.data for l in b.layers] and a.config_bytes == b.config_bytes

    client = RegistryClient(registry.host, cache_dir=cache_dir)
    events = []
    first = publish(a, registry.ref("proj/app:v1"), client=client, progress=lambda *e: events.append(e))
    assert not first.skipped and first.digest == a.manifest_digest
    assert set(first.blobs_uploaded) == {a.layers[0].digest, a.layers[1].digest, a.config_digest}
    assert first.blobs_mounted == [base_image.layers[0]["digest"]]  # base layer mounted from base/tiny
    assert first.bytes_uploaded == sum(l.size for l in a.layers) + len(a.config_bytes)
    statuses = {(name, status) for _, name, status, _ in events}
    assert {("requirements", "uploading"), ("requirements", "uploaded"), ("sources", "uploaded"),
            ("base", "mounted")} <= statuses

    second = publish(b, registry.ref("proj/app:v1"), client=client)
    assert second.skipped and second.bytes_uploaded == 0 and second.digest == first.digest

    # same content under a new tag: every blob already there, only the manifest is PUT
    third = publish(b, registry.ref("proj/app:v2"), client=client)
    assert not third.skipped and third.bytes_uploaded == 0 and third.blobs_uploaded == []
    assert client.head_manifest("proj/app", "v2").digest == a.manifest_digest

    # pulled back by tag with the right Accept: the same digests, config intact
    pulled = client.pull(registry.ref("proj/app:v1"), layers=True)
    assert pulled.manifest_digest == a.manifest_digest
    assert pulled.config["config"]["Labels"][LABEL_FINGERPRINT] == "fp"
    assert pulled.config["rootfs"]["diff_ids"] == base_image.diff_ids + [l.diff_id for l in a.layers]


def test_one_source_change_uploads_only_the_sources_layer(registry, base_image, cache_dir, tmp_path):
    client = RegistryClient(registry.host, cache_dir=cache_dir)
    old = _build(_project(tmp_path / "old"), base_image)
    publish(old, registry.ref("proj/change:1"), client=client)
    new = _build(_project(tmp_path / "new", mod_x=b"X = 42\n"), base_image)
    assert new.layers[0].digest == old.layers[0].digest and new.layers[1].digest != old.layers[1].digest
    res = publish(new, registry.ref("proj/change:2"), client=client)
    assert res.blobs_uploaded == [new.layers[1].digest, new.config_digest]
    assert res.bytes_uploaded == new.layers[1].size + len(new.config_bytes)
    assert set(res.blobs_skipped) == {base_image.layers[0]["digest"], new.layers[0].digest}


def test_push_to_another_registry_copies_base_layers(registry, base_image, cache_dir, tmp_path, make_registry):
    other = make_registry("other")
    img = _build(_project(tmp_path / "p"), base_image)
    res = publish(img, other.ref("copy/app:1"), cache_dir=cache_dir,
                  base_client=RegistryClient(registry.host, cache_dir=cache_dir))
    assert base_image.layers[0]["digest"] in res.blobs_uploaded
    pulled = RegistryClient(other.host, cache_dir=tmp_path / "c2").pull(other.ref("copy/app:1"), layers=True)
    assert pulled.manifest_digest == img.manifest_digest


def test_parallel_push_of_many_layers(registry, cache_dir):
    layers = [build_layer([(f"l{i}/f.bin", bytes([i]) * 200_000)], name=f"l{i}") for i in range(8)]
    img = build_image(layers)
    t0 = time.monotonic()
    res = publish(img, registry.ref("proj/many:1"), client=RegistryClient(registry.host), jobs=4)
    assert len(res.blobs_uploaded) == 9 and time.monotonic() - t0 < 30
    assert RegistryClient(registry.host).head_manifest("proj/many", "1").digest == img.manifest_digest


def test_oci_layout(registry, base_image, cache_dir, tmp_path):
    img = _build(_project(tmp_path / "p"), base_image)
    out = write_oci_layout(img, tmp_path / "layout", ref_name="v1",
                           base_client=RegistryClient(registry.host, cache_dir=cache_dir))
    assert json.loads((out / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((out / "index.json").read_text())
    [desc] = index["manifests"]
    assert desc["digest"] == img.manifest_digest and desc["annotations"]["org.opencontainers.image.ref.name"] == "v1"
    blobs = out / "blobs" / "sha256"
    manifest = json.loads((blobs / img.manifest_digest.split(":")[1]).read_bytes())
    for d in [manifest["config"]] + manifest["layers"]:
        data = (blobs / d["digest"].split(":")[1]).read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == d["digest"] and len(data) == d["size"]
    # rewriting is stable
    again = write_oci_layout(img, tmp_path / "layout2", ref_name="v1",
                             base_client=RegistryClient(registry.host, cache_dir=cache_dir))
    assert (again / "index.json").read_bytes() == (out / "index.json").read_bytes()


def test_publish_layout_pushes_the_same_manifest_as_publish(registry, base_image, cache_dir, tmp_path):
    """What `pants publish` runs: the layout `package` wrote, pushed blob by blob, gives the manifest digest
    `publish()` of the built image gives; a second push uploads nothing."""
    import subprocess
    import sys
    from pathlib import Path

    from flytebuild.oci.publish import publish_layout

    img = _build(_project(tmp_path / "p"), base_image)
    layout = write_oci_layout(img, tmp_path / "layout", ref_name="v1",
                              base_client=RegistryClient(registry.host, cache_dir=cache_dir))
    client = RegistryClient(registry.host)
    first = publish_layout(layout, registry.ref("proj/fromlayout:v1"), client=client)
    assert not first.skipped and first.digest == img.manifest_digest and first.bytes_uploaded > 0
    assert client.head_manifest("proj/fromlayout", "v1").digest == img.manifest_digest
    again = publish_layout(layout, registry.ref("proj/fromlayout:v1"), client=client)
    assert again.skipped and again.bytes_uploaded == 0

    # The entry point the publish goal runs, as a process: one line, exit 0; a bad layout: one line, exit 1.
    src = str(Path(__file__).resolve().parents[2] / "src/python")
    proc = subprocess.run([sys.executable, "-m", "flytebuild.service.push", str(layout), registry.ref("proj/cli:v2")],
                          env={"PYTHONPATH": src, "HOME": str(tmp_path)}, capture_output=True, text=True)
    assert proc.returncode == 0
    assert proc.stdout.startswith(f"pushed {registry.ref('proj/cli:v2')} ({img.manifest_digest}")
    bad = subprocess.run(
        [sys.executable, "-m", "flytebuild.service.push", str(tmp_path / "nowhere"), "x/y:1"],
        env={"PYTHONPATH": src, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and bad.stderr.startswith("error: cannot push x/y:1:") and "Traceback" not in bad.stderr
