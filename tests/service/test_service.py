"""The service's pure parts: settings mean the same on every path, paths stay inside, requests are built once."""
import dataclasses

import pytest

from flytebuild.core.errors import FlytebuildError
from flytebuild.core.settings import CACHE_KEY_POLICIES, AdminSettings, Settings
from flytebuild.service.deploy import check_admin, deploy_request
from flytebuild.service.paths import inside


@pytest.mark.parametrize("name", ["../x", "../../escaped", "/abs/x", "a/../../x", ".."])
def test_names_escaping_the_output_directory_are_refused(tmp_path, name):
    with pytest.raises(FlytebuildError) as e:
        inside(tmp_path / "dist", f"{name}.oci" if name != ".." else name, target="t:img", field="image_name",
               value=name)
    text = str(e.value)
    assert f"`image_name` = {name!r} of t:img" in text and "outside the output directory" in text and "Fix:" in text


@pytest.mark.parametrize("name", ["app", "team/app", "a..b", "x/./y"])
def test_names_inside_are_kept(tmp_path, name):
    path = inside(tmp_path / "dist", f"{name}.oci", target="t", field="image_name", value=name)
    assert str(path).startswith(str(tmp_path / "dist") + "/")


def test_insecure_unset_reaches_every_runtime_request_as_unset():
    """One AdminSettings builds the `admin` object of deploy, run --remote, reference runs and the reference
    check: unset stays None (the flytekit config decides, TLS without one), never False or True."""
    from flytebuild.core.run_request import reference_request_json
    from flytebuild.service.references import check_request

    admin = AdminSettings(endpoint="h:1", config="/c.yaml", timeout=3)
    expected = {"endpoint": "h:1", "insecure": None, "config": "/c.yaml", "timeout": 3}
    assert deploy_request(admin, False, [], None)["admin"] == expected
    assert reference_request_json("t", "task", "n", None, "p", "d", {}, admin)["admin"] == expected
    assert check_request([], admin)["admin"] == expected
    assert dataclasses.replace(admin, insecure=True).request_json()["insecure"] is True


def test_cli_and_pants_defaults_are_the_settings_defaults():
    from flytebuild.cli.config import DEFAULTS

    s = Settings()
    assert DEFAULTS == {"default_base": s.default_base, "registry": s.registry, "project": s.project,
                        "domain": s.domain}
    assert CACHE_KEY_POLICIES == ("interface", "code") and s.cache_key == "interface"


def test_deploy_request_and_admin_check(tmp_path):
    req = deploy_request(AdminSettings(endpoint="h:1"), True, [{"file": "wf0/1.pb", "kind": "task", "fast": False}],
                         None)
    # tasks keep their images' content tags on every path: no digest pins (docs/reliability.md)
    assert req["dry_run"] is True and req["bundle"] is None and "pin_images" not in req
    with pytest.raises(FlytebuildError, match="No FlyteAdmin to deploy to"):
        check_admin(AdminSettings(), fix="set it")
    with pytest.raises(FlytebuildError, match="does not exist"):
        check_admin(AdminSettings(config=str(tmp_path / "missing.yaml")), fix="set it")


@pytest.mark.parametrize("output", ["oci", "cache", "docker"])
def test_an_imagespec_needing_docker_build_is_refused_as_anything_but_a_push(tmp_path, output):
    """apt_packages/commands are applied by docker build and pushed: no layout or cache entry of ours can hold the
    result, so `--image-output=oci` (Bazel's imagespec output group) fails clearly before any work."""
    from flytebuild.service.images import ImageJob, Registries, build_and_publish, publisher_for

    job = ImageJob(address="x:wf", describe="ImageSpec `s` (task a.t) of x:wf", name="s", name_field="name",
                   ref="r.example/s:1", base="r.example/base:1", fingerprint="f", python="/usr/bin/python3",
                   dockerfile="FROM r.example/s:1-flytebuild-base\nRUN true\n")
    registries = Registries(tmp_path / "cache")

    def inputs(tmp):
        raise AssertionError("nothing is resolved or pulled")

    with pytest.raises(FlytebuildError) as e:
        build_and_publish(job, inputs, publisher_for(output, registries, 1, tmp_path / "dist"), registries,
                          lambda line: None)
    text = str(e.value)
    assert f"as `{output}` output" in text and "apt_packages/commands" in text and "Fix: push it" in text
    assert not (tmp_path / "dist").exists()
