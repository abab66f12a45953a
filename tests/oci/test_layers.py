import gzip
import io
import os
import tarfile

import pytest

from flytebuild.oci.layers import LayerError, build_layer


def _write_tree(root, mtime, mode_extra=0):
    files = {"app/pkg/__init__.py": b"", "app/pkg/mod.py": b"X = 1\n", "app/run.sh": b"#!/bin/sh\n"}
    out = []
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.chmod(p, (0o755 if rel.endswith(".sh") else 0o644) | mode_extra)
        os.utime(p, (mtime, mtime))
        out.append(("/" + rel, p))
    return out


def test_same_inputs_give_byte_identical_layers(tmp_path):
    a = _write_tree(tmp_path / "a", mtime=1_000_000)
    old = os.umask(0o077)
    try:
        b = _write_tree(tmp_path / "b", mtime=1_700_000_000, mode_extra=0o020)  # other mtime, umask, g+w
    finally:
        os.umask(old)
    la = build_layer(a)
    lb = build_layer(list(reversed(b)))  # order given does not matter
    assert la.data == lb.data
    assert (la.digest, la.diff_id, la.size) == (lb.digest, lb.diff_id, lb.size)
    # streamed to a file: the same bytes
    lf = build_layer(a, tmp_path / "out" / "layer.tar.gz")
    assert lf.path.read_bytes() == la.data and lf.digest == la.digest
    # bytes sources are equivalent to file sources
    lbytes = build_layer([(p, f.read_bytes(), 0o755 if p.endswith(".sh") else None) for p, f in a])
    assert lbytes.digest == la.digest


def test_tar_headers_are_normalized(tmp_path):
    layer = build_layer(_write_tree(tmp_path, mtime=123456))
    raw = gzip.decompress(layer.data)
    import hashlib

    assert layer.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert layer.digest == "sha256:" + hashlib.sha256(layer.data).hexdigest()
    assert layer.data[4:8] == b"\0\0\0\0"  # gzip mtime 0
    assert layer.data[3] & 0x08 == 0  # no FNAME
    members = tarfile.open(fileobj=io.BytesIO(raw)).getmembers()
    assert [m.name for m in members] == ["app", "app/pkg", "app/pkg/__init__.py", "app/pkg/mod.py", "app/run.sh"]
    for m in members:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")
        assert not m.pax_headers
    modes = {m.name: m.mode for m in members}
    assert modes == {"app": 0o755, "app/pkg": 0o755, "app/pkg/__init__.py": 0o644, "app/pkg/mod.py": 0o644,
                     "app/run.sh": 0o755}


def test_long_and_unicode_paths_stay_deterministic():
    long = "site-packages/" + "/".join(["a_very_long_directory_name_%02d" % i for i in range(8)]) + "/m\u00e9.py"
    l1 = build_layer([(long, b"x")])
    l2 = build_layer([(long, b"x")])
    assert l1.data == l2.data
    names = tarfile.open(fileobj=io.BytesIO(gzip.decompress(l1.data))).getnames()
    assert long in names


def test_content_change_changes_digest():
    assert build_layer([("a", b"1")]).digest != build_layer([("a", b"2")]).digest
    assert build_layer([("a", b"1")]).digest != build_layer([("a", b"1", 0o755)]).digest


@pytest.mark.parametrize("entries, msg", [
    ([("../etc/passwd", b"x")], "'..'"),
    ([("/", b"x")], "empty path"),
    ([("a", b"1"), ("a", b"2")], "twice"),
    ([("a", b"1"), ("a/b", b"2")], "parent directory"),
    ([("a", "/nonexistent/file")], "cannot read"),
])
def test_bad_entries_are_clear_errors(entries, msg):
    with pytest.raises(LayerError, match=msg):
        build_layer(entries)
    # identical duplicates are fine
    build_layer([("a", b"1"), ("/a", b"1")])


def test_one_layer_built_on_several_threads_at_once(tmp_path):
    """pantsd builds a deploy's images on several threads; images sharing a wheel build the same cached layer
    (same key) at the same moment. Every build succeeds and the cache holds the one blob."""
    import threading

    from flytebuild.oci.build import LayerCache

    cache = LayerCache(tmp_path / "cache")
    entries = [(f"/site-packages/pkg/m{i}.py", os.urandom(64 * 1024)) for i in range(16)]
    together = threading.Barrier(4)

    def build(out):
        together.wait()  # every thread has its temp file path before any renames one
        return build_layer(entries, out)

    results, errors = [], []

    def worker():
        try:
            results.append(cache.put("samekey", build, {}))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({r.digest for r in results}) == 1 and results[0].path.exists()
    assert cache.get("samekey")[0].digest == results[0].digest
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []
