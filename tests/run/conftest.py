"""Fixtures of tests/run: the session's throwaway Pants repo (`pants_repo`, tests/support/fixtures.py), and a
stand-in FlyteAdmin holding the registered side of the reference entities (registered by flytekit itself)."""
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.support.flyteadmin.fixture import flyteadmin

FIXTURES = Path(__file__).resolve().parent / "fixtures"
P, D = "flytesnacks", "development"

REGISTER = textwrap.dedent(
    """
    import sys
    from flytekit.configuration import Config, ImageConfig, PlatformConfig, SerializationSettings
    from flytekit.remote import FlyteRemote
    from remote.tasks import configure, scale
    from remote.workflows import lp, pipeline

    platform = PlatformConfig(endpoint=sys.argv[1], insecure=True)
    for domain in ("development", "production"):
        remote = FlyteRemote(Config(platform=platform), default_project="flytesnacks", default_domain=domain)
        def settings(version):
            return SerializationSettings(project="flytesnacks", domain=domain, version=version,
                                         image_config=ImageConfig.auto(img_name="example.com/img:1"))
        remote.register_task(scale, settings("v1"), version="v1")
        remote.register_task(configure, settings("v1"), version="v1")
        remote.register_task(configure, settings("v2"), version="v2")  # the latest
        remote.register_workflow(pipeline, settings("v2"), version="v2")  # with its default launch plan
        remote.register_launch_plan(lp, version="v3", project="flytesnacks", domain=domain)
    """
)


def user_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "FLYTE"))}
    # the registered entities (remote/) and the references to them declared in code (fx_refs.py)
    env["PYTHONPATH"] = os.pathsep.join([str(FIXTURES), str(FIXTURES.parents[1] / "runtime/fixtures")])
    return env


@pytest.fixture(scope="module")
def cluster(user_python, tmp_path_factory):
    with flyteadmin(user_python, projects=(P,)) as admin:
        script = tmp_path_factory.mktemp("register") / "register.py"
        script.write_text(REGISTER)
        proc = subprocess.run([user_python, str(script), admin.endpoint], env=user_env(), cwd=str(script.parent),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        yield admin


