import json

import pytest

from flytebuild.core.errors import LockfileError
from flytebuild.core.lockfile import canonical_name, locked_pins, requirement_name


@pytest.fixture(scope="module")
def flyte_lock(repo_root):
    return (repo_root / "examples/3rdparty/flyte.lock").read_text()


@pytest.mark.parametrize(
    "raw, canonical",
    [
        ("Flask", "flask"),
        ("typing_extensions", "typing-extensions"),
        ("zope.interface", "zope-interface"),
        ("A__b-.C", "a-b-c"),
    ],
)
def test_canonical_name(raw, canonical):
    assert canonical_name(raw) == canonical


@pytest.mark.parametrize(
    "req, name",
    [
        ("azure-storage-blob[aio]>=12.17.0", "azure-storage-blob"),
        ('pytest; extra == "tests"', "pytest"),
        ("Jinja2 (>=3)", "jinja2"),
        ("grpcio", "grpcio"),
    ],
)
def test_requirement_name(req, name):
    assert requirement_name(req) == name


def test_real_lockfile_flytekit_closure(flyte_lock):
    pins = locked_pins(flyte_lock, ["flytekit"])
    assert "flytekit==1.16.31" in pins
    names = {p.split("==")[0] for p in pins}
    assert {"protobuf", "grpcio", "flyteidl", "fsspec", "click"} <= names
    assert list(pins) == sorted(pins)
    assert len(pins) > 80  # flytekit pulls in most of the lock


def test_real_lockfile_leaf_and_small_closure(flyte_lock):
    assert locked_pins(flyte_lock, ["protobuf"]) == ("protobuf==7.36.2",)
    pins = locked_pins(flyte_lock, ["Requests"])  # names are canonicalized
    assert pins[0].startswith("certifi==") and any(p.startswith("requests==") for p in pins)
    assert not any(p.startswith("flytekit==") for p in pins)


def test_hashes_and_bytes_input(flyte_lock):
    (pin,) = locked_pins(flyte_lock.encode(), ["protobuf"], with_hashes=True)
    assert pin.startswith("protobuf==7.36.2#sha256:") and len(pin.split(":")[-1]) == 64


def _lock(entries):
    body = {"locked_resolves": [{"locked_requirements": entries}]}
    return "// header\n//   more header\n" + json.dumps(body)


def _entry(name, version, deps=()):
    return {
        "project_name": name,
        "version": version,
        "requires_dists": list(deps),
        "artifacts": [{"algorithm": "sha256", "hash": "ab"}],
    }


def test_transitive_conservative_and_cycles():
    lock = _lock(
        [
            _entry("A_pkg", "1", ["b>=1", 'c; extra == "x"', "not-locked"]),
            _entry("b", "2", ["a-pkg"]),  # cycle back to a
            _entry("c", "3"),
            _entry("d", "4"),
        ]
    )
    assert locked_pins(lock, ["a-pkg"]) == ("a-pkg==1", "b==2", "c==3")
    assert locked_pins(json.loads(lock.split("\n", 2)[2]), []) == ()


def test_unknown_requirement_is_a_clear_error():
    lock = _lock([_entry("a", "1")])
    with pytest.raises(LockfileError, match="does not lock zzz.*generate-lockfiles"):
        locked_pins(lock, ["a", "zzz"])
    assert locked_pins(lock, ["a", "zzz"], strict=False) == ("a==1",)


def test_garbage_lockfile():
    with pytest.raises(LockfileError, match="not valid JSON"):
        locked_pins("// hi\n{nope", ["a"])
    with pytest.raises(LockfileError, match="locked_resolves"):
        locked_pins("{}", ["a"])
