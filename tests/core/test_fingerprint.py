import dataclasses
import json
import os

import pytest
from blake3 import blake3

from flytebuild.core import fingerprint as fp
from flytebuild.core.introspection import parse_introspection
from flytebuild.core.model import Closure, ExternalImage, FileDigest, ImageTarget


def test_canonical_json_is_sorted_compact_utf8():
    assert fp.canonical_json({"b": 1, "a": ["é", None]}) == '{"a":["é",null],"b":1}'.encode("utf-8")
    with pytest.raises(ValueError):
        fp.canonical_json(float("nan"))


def test_file_digest_is_plain_blake3():
    assert fp.file_digest(b"hello") == blake3(b"hello").hexdigest()
    assert len(fp.file_digest(b"")) == 64


def test_version_of():
    f = fp.closure_fingerprint([], [])
    assert fp.version_of(f) == f[:32] and len(fp.version_of(f)) == 32


def test_domain_separation():
    # Same payload shape under two entity kinds never collides.
    assert fp._fingerprint("task", {}) != fp._fingerprint("workflow", {})


# --- closures ------------------------------------------------------------------------------

A = FileDigest("examples/a.py", "1" * 64)
B = FileDigest("examples/b.py", "2" * 64)


def test_closure_is_order_independent_and_input_sensitive():
    base = fp.closure_fingerprint([A, B], ["x==1", "y==2"])
    assert fp.closure_fingerprint([B, A, A], ["y==2", "x==1"]) == base
    assert fp.closure_fingerprint([A], ["x==1", "y==2"]) != base
    assert fp.closure_fingerprint([A, FileDigest(B.path, "3" * 64)], ["x==1", "y==2"]) != base
    assert fp.closure_fingerprint([A, FileDigest("examples/c.py", B.digest)], ["x==1", "y==2"]) != base
    assert fp.closure_fingerprint([A, B], ["x==1", "y==3"]) != base
    assert fp.closure_fingerprint([A, B], ["x==1"]) != base


# --- images --------------------------------------------------------------------------------

IMAGE = ImageTarget(
    address="examples/baked:image",
    image_name="baked",
    base="python:3.11-slim",
    registry="localhost:5000",
    repository="baked",
    env=(("A", "1"), ("B", "2")),
    python="/usr/bin/python3",
    sources=(A, B),
    requirements=("flytekit", "pandas"),
    pins=("flytekit==1.16.31", "pandas==2.3.1"),
)


@pytest.mark.parametrize(
    "change",
    [
        {"base": "python:3.12-slim"},
        {"registry": "ghcr.io/org"},
        {"repository": "other"},
        {"env": (("A", "1"), ("B", "3"))},
        {"env": (("A", "1"),)},
        {"python": "/usr/local/bin/python"},
        {"sources": (A, FileDigest(B.path, "9" * 64))},
        {"sources": (A,)},
        {"requirements": ("flytekit",)},
        {"pins": ("flytekit==1.16.32", "pandas==2.3.1")},
    ],
)
def test_image_fingerprint_changes_with_each_input(change):
    assert fp.image_fingerprint(dataclasses.replace(IMAGE, **change)) != fp.image_fingerprint(IMAGE)


def test_image_fingerprint_ignores_order_address_and_name():
    same = dataclasses.replace(
        IMAGE,
        address="elsewhere:img",
        image_name="renamed",
        env=tuple(reversed(IMAGE.env)),
        sources=tuple(reversed(IMAGE.sources)),
        requirements=tuple(reversed(IMAGE.requirements)),
        pins=tuple(reversed(IMAGE.pins)),
    )
    assert fp.image_fingerprint(same) == fp.image_fingerprint(IMAGE)


def test_external_image_fingerprint():
    a = fp.external_image_fingerprint(ExternalImage("alpine:3.19"))
    assert a != fp.external_image_fingerprint(ExternalImage("alpine:3.20"))
    assert a != fp.external_image_fingerprint(ExternalImage("alpine:3.19", '{"name":"x"}'))


# --- tasks ---------------------------------------------------------------------------------


def _task(mk, inputs=None, outputs=None, **raw):
    """A cached task; `raw` replaces top-level keys of its introspection JSON."""
    data = mk.task("baked.workflows.t", cache=True, cache_version="1", inputs=inputs, outputs=outputs)
    data.update(raw)
    return parse_introspection(mk.introspection("task", data["name"], tasks=[data])).tasks[0]


CLOSURE = Closure(sources=(A, B), requirements=("flytekit",), pins=("flytekit==1.16.31",))
IMG_FP = fp.image_fingerprint(IMAGE)


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": "baked.workflows.t2"},
        {"kind": "map"},
        {"task_type": "other-type"},
        {"inputs": {"x": {"type": "float"}}},
        {"inputs": {"x": {"type": "int"}, "y": {"type": "int"}}},
        {"outputs": {"o0": {"type": "str"}}},
        {
            "outputs": {
                "o0": {"type": "dataclass", "name": "m.R", "fields": {"a": {"type": "int"}, "b": {"type": "int"}}}
            }
        },
        {"config": {"retries": 3, "timeout": None}},
        {"config": {"retries": 0, "timeout": None, "resources": {"requests": {"cpu": "1"}}}},
        {"cache": {"enabled": False, "version": "1", "serialize": False, "ignored_inputs": []}},
        {"cache": {"enabled": True, "version": "2", "serialize": False, "ignored_inputs": []}},
        {"cache": {"enabled": True, "version": "1", "serialize": True, "ignored_inputs": []}},
        {"cache": {"enabled": True, "version": "1", "serialize": False, "ignored_inputs": ["x"]}},
        {"input_defaults": {"x": 4}},
    ],
)
def test_task_fingerprint_changes_with_each_input(mk, overrides):
    base = fp.task_fingerprint(_task(mk), CLOSURE, IMG_FP)
    assert fp.task_fingerprint(_task(mk, **overrides), CLOSURE, IMG_FP) != base


def test_task_fingerprint_changes_with_closure_pins_and_image(mk):
    t = _task(mk)
    base = fp.task_fingerprint(t, CLOSURE, IMG_FP)
    assert fp.task_fingerprint(t, dataclasses.replace(CLOSURE, sources=(A,)), IMG_FP) != base
    assert fp.task_fingerprint(t, dataclasses.replace(CLOSURE, pins=("flytekit==1.16.32",)), IMG_FP) != base
    assert fp.task_fingerprint(t, dataclasses.replace(CLOSURE, requirements=("flytekit", "x")), IMG_FP) != base
    assert fp.task_fingerprint(t, CLOSURE, fp.external_image_fingerprint(ExternalImage("x"))) != base
    # sets: order does not matter
    reordered = Closure(sources=(B, A), requirements=("flytekit",), pins=("flytekit==1.16.31",))
    assert fp.task_fingerprint(t, reordered, IMG_FP) == base
    assert fp.task_fingerprint(_task(mk), CLOSURE, IMG_FP) == base  # deterministic


def test_task_fingerprint_dict_order_is_irrelevant(mk):
    a = _task(mk, config={"retries": 1, "timeout": 5})
    b = _task(mk, config={"timeout": 5, "retries": 1})
    assert fp.task_fingerprint(a, CLOSURE, IMG_FP) == fp.task_fingerprint(b, CLOSURE, IMG_FP)


def test_cache_version_follows_interface(mk):
    base = fp.cache_version(_task(mk))
    assert base.startswith("1-")
    assert fp.cache_version(_task(mk, outputs={"o0": {"type": "str"}})) != base
    assert fp.cache_version(_task(mk, config={"retries": 5})) == base  # not an interface change
    assert fp.cache_version(_task(mk, cache={"enabled": False})) is None


# --- workflows and launch plans --------------------------------------------------------------


def test_workflow_fingerprint_inputs():
    base = fp.workflow_fingerprint("w", {"inputs": {}}, {"nodes": [1]}, {"task:a": "v1", "task:b": "v2"})
    assert fp.workflow_fingerprint("w", {"inputs": {}}, {"nodes": [1]}, {"task:b": "v2", "task:a": "v1"}) == base
    assert fp.workflow_fingerprint("w2", {"inputs": {}}, {"nodes": [1]}, {"task:a": "v1", "task:b": "v2"}) != base
    assert fp.workflow_fingerprint("w", {"inputs": {"x": 1}}, {"nodes": [1]}, {"task:a": "v1", "task:b": "v2"}) != base
    assert fp.workflow_fingerprint("w", {"inputs": {}}, {"nodes": [2]}, {"task:a": "v1", "task:b": "v2"}) != base
    assert fp.workflow_fingerprint("w", {"inputs": {}}, {"nodes": [1]}, {"task:a": "v9", "task:b": "v2"}) != base


def test_launch_plan_fingerprint_inputs():
    args = ("lp", "wv1", {"a": 1}, {"b": 2}, {"schedule": None})
    base = fp.launch_plan_fingerprint(*args)
    for i, changed in enumerate(["lp2", "wv2", {"a": 2}, {"b": 3}, {"schedule": "@daily"}]):
        perturbed = list(args)
        perturbed[i] = changed
        assert fp.launch_plan_fingerprint(*perturbed) != base


# --- files on disk ---------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path):
    files = {f"pkg/m{i}.py": f"print({i})\n".encode() for i in range(20)}
    files["big.bin"] = os.urandom(3 << 20)  # takes the mmap path
    for rel, data in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return tmp_path, files


def test_digest_files_threads_match_serial_and_b3(tree):
    root, files = tree
    serial = fp.digest_files(str(root), files, threads=1)
    parallel = fp.digest_files(str(root), reversed(list(files)), threads=8)
    auto = fp.digest_files(str(root), files)  # small files inline, big.bin in the pool
    assert serial == parallel == auto
    assert [d.path for d in serial] == sorted(files)
    assert {d.path: d.digest for d in serial} == {p: blake3(b).hexdigest() for p, b in files.items()}


def _age(path, seconds=10):
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 1_000_000_000))


def test_stat_cache_warm_run_skips_hashing_and_sees_edits(tree, monkeypatch):
    root, files = tree
    for rel in files:
        _age(root / rel)
    cache_path = root / ".cache" / "stat.json"
    first = fp.digest_files(str(root), files, cache=fp.StatCache(str(cache_path)))
    assert cache_path.exists()

    hashed = []
    real = fp._digest_path
    monkeypatch.setattr(fp, "_digest_path", lambda p: hashed.append(p) or real(p))
    warm = fp.StatCache(str(cache_path))
    assert fp.digest_files(str(root), files, cache=warm) == first
    assert hashed == [] and warm.hits == len(files)

    (root / "pkg/m3.py").write_bytes(b"print('edited')\n")  # size changes too
    after = fp.digest_files(str(root), files, cache=fp.StatCache(str(cache_path)))
    assert [p.rsplit("/", 1)[-1] for p in hashed] == ["m3.py"]
    changed = {d.path for d, e in zip(after, first) if d != e}
    assert changed == {"pkg/m3.py"}


def test_stat_cache_does_not_persist_racy_entries(tmp_path):
    (tmp_path / "f.py").write_text("x")  # mtime = now: could change again unseen
    cache_path = tmp_path / "stat.json"
    fp.digest_files(str(tmp_path), ["f.py"], cache=fp.StatCache(str(cache_path)))
    assert json.loads(cache_path.read_text())["entries"] == {}


def test_stat_cache_survives_corruption(tmp_path):
    (tmp_path / "f.py").write_text("x")
    cache_path = tmp_path / "stat.json"
    cache_path.write_text("{not json")
    (d,) = fp.digest_files(str(tmp_path), ["f.py"], cache=fp.StatCache(str(cache_path)))
    assert d.digest == blake3(b"x").hexdigest()
