"""Retries on transient errors and bearer-token auth, through a fault-injecting front of the real registry."""
import pytest

from flytebuild.oci import RegistryClient, RegistryError, build_image, build_layer, publish


def _image(tag: bytes):
    return build_image([build_layer([("f.txt", tag)], name="f")])


def test_transient_errors_are_retried(proxy):
    img = _image(b"retry me")
    proxy.failures = ["503", "reset", "429", "503"]
    client = RegistryClient(proxy.host, credentials=None, backoff=0.01, retries=4)
    res = publish(img, proxy.ref("flaky/app:1"), client=client, jobs=1)
    assert res.digest == img.manifest_digest
    assert [f for _, _, f in proxy.seen if f] == ["503", "reset", "429", "503"]
    assert client.head_manifest("flaky/app", "1").digest == img.manifest_digest


def test_retries_give_up_with_a_clear_error(proxy):
    proxy.failures = ["503"] * 10
    client = RegistryClient(proxy.host, credentials=None, backoff=0.01, retries=2)
    with pytest.raises(RegistryError) as e:
        client.head_manifest("flaky/app", "1")
    assert e.value.status == 503 and proxy.host in str(e.value) and "Fix:" in str(e.value)
    assert len(proxy.seen) == 3


def test_bearer_token_challenge(proxy):
    proxy.bearer = ("robot", "pw")
    img = _image(b"bearer")
    res = publish(img, proxy.ref("tok/app:1"), client=RegistryClient(proxy.host, credentials=("robot", "pw")))
    assert res.digest == img.manifest_digest
    assert any("scope=repository%3Atok%2Fapp%3Apull%2Cpush" in s for s in proxy.token_scopes)
    with pytest.raises(RegistryError) as e:
        RegistryClient(proxy.host, credentials=("robot", "bad")).pull(proxy.ref("tok/app:1"))
    assert e.value.status == 401 and "docker login" in str(e.value) and "tok/app" in str(e.value)
