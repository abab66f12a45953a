"""`flyte-plan` checks the reference entities workflows use against the configured cluster: the stand-in FlyteAdmin
over real gRPC, with the referenced entities registered by flytekit itself (tests/run/conftest.py `cluster`).

Differences, missing entities and an unreachable cluster are warnings of the plan (exit 0); without a cluster
configured nothing is checked and no process starts."""
import json
import socket
import subprocess
from pathlib import Path

import pytest

from tests.run.conftest import D, P, user_env
from tests.support.runtime import runtime

REPO = Path(__file__).resolve().parents[2]
CHECK = runtime("check_references")

# The registered side (tests/run/fixtures/remote): scale(xs: List[float], factor: float) -> List[float] (v1),
# pipeline(n: int, factor: float = 2.0) -> int (v2), remote.lp: n (default 7), factor fixed -> int (v3, production).
REFS = '''
from typing import List

from flytekit import reference_launch_plan, reference_task, reference_workflow, task, workflow


@reference_task(project="flytesnacks", domain="development", name="remote.tasks.scale", version="v1")
def scale(xs: List[float], factor: float) -> List[float]:
    ...


@reference_task(project="flytesnacks", domain="development", name="remote.tasks.scale", version="v1")
def scale_changed(xs: List[float], factor: int) -> List[float]:
    ...


@reference_workflow(project="flytesnacks", domain="development", name="remote.workflows.pipeline", version="v2")
def pipeline(n: int, factor: float) -> int:
    ...


@reference_workflow(project="flytesnacks", domain="development", name="remote.workflows.pipeline", version="v2")
def pipeline_short(n: int) -> int:
    ...


@reference_task(project="flytesnacks", domain="development", name="remote.tasks.gone", version="v9")
def gone(n: int) -> int:
    ...


@task
def make(n: int) -> List[float]:
    return [float(i) for i in range(n)]


@workflow
def ok(n: int = 2) -> int:
    scale(xs=make(n=n), factor=2.0)
    return pipeline(n=n, factor=1.5)


@workflow
def off(n: int = 2) -> int:
    scale_changed(xs=make(n=n), factor=2)
    return pipeline_short(n=n)


@workflow
def missing(n: int = 2) -> int:
    return gone(n=n)


@workflow
def plain(n: int = 2) -> List[float]:
    return make(n=n)
'''

BUILD = "".join(
    f'flyte_workflow(name="{name}", entrypoint="refplan.py:{name}")\n' for name in ("ok", "off", "missing", "plain")
)
CHECK_LINE = "reference entit"  # the check's process description: "Check N reference entities against ..."


def closed_port() -> int:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def refplan(pants_repo):
    pants_repo.write("examples/refplan/refplan.py", REFS)
    pants_repo.write("examples/refplan/BUILD", "python_sources()\n" + BUILD)
    yield pants_repo
    for name in ("refplan.py", "BUILD"):
        (pants_repo.root / "examples/refplan" / name).unlink()


def plan(repo, *options, fmt="json"):
    return repo.pants(*options, "flyte-plan", f"--format={fmt}", "examples/refplan:")


def warnings_of(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {w["address"].split(":")[1]: w["warnings"] for w in json.loads(proc.stdout)["workflows"]}


def on(cluster):
    return (f"--flyte-endpoint={cluster.endpoint}", "--flyte-insecure", "--flyte-admin-timeout=5")


def test_plan_reports_reference_differences_against_the_cluster(refplan, cluster):
    proc = plan(refplan, *on(cluster))
    warnings = warnings_of(proc)
    assert warnings["ok"] == [] and warnings["plain"] == []
    assert warnings["off"] == [
        "input `factor`: reference task remote.tasks.scale declares int, registered float",
        "the registered entity has input `factor`, which reference workflow remote.workflows.pipeline does not declare",
    ]
    (line,) = warnings["missing"]
    assert line.startswith(f"reference task remote.tasks.gone ({P}/{D}, version v9) is not registered on "
                           f"{cluster.endpoint}"), line
    # One process for the whole plan (3 workflows with references, one resolve).
    assert proc.stderr.count(f"Completed: Check 5 {CHECK_LINE}") == 1, proc.stderr[-3000:]

    table = plan(refplan, *on(cluster), fmt="table")
    assert table.returncode == 0, table.stderr[-3000:]
    assert "  warning: input `factor`: reference task remote.tasks.scale declares int, registered float" in table.stdout
    assert f"  warning: reference task remote.tasks.gone ({P}/{D}, version v9) is not registered" in table.stdout


def test_unreachable_cluster_is_one_warning_and_the_plan_succeeds(refplan):
    port = closed_port()
    proc = plan(refplan, f"--flyte-endpoint=127.0.0.1:{port}", "--flyte-insecure", "--flyte-admin-timeout=2")
    warnings = warnings_of(proc)
    expected = f"references not checked: cannot reach FlyteAdmin at 127.0.0.1:{port} (insecure) within 2s"
    for name in ("ok", "off", "missing"):
        assert warnings[name] == [expected], warnings
    assert warnings["plain"] == []
    assert "Traceback" not in proc.stderr


def test_no_cluster_configured_checks_nothing(refplan):
    proc = plan(refplan)
    warnings = warnings_of(proc)
    assert all(w == [] for w in warnings.values()), warnings
    assert CHECK_LINE not in proc.stderr


def test_no_references_starts_no_check(refplan, cluster):
    proc = refplan.pants(*on(cluster), "flyte-plan", "--format=json", "examples/refplan:plain")
    assert warnings_of(proc) == {"plain": []}
    assert CHECK_LINE not in proc.stderr


# ---------------------------------------------------------------------------------------------------------------
# the runtime script alone (what the process above runs), on tests/runtime/fixtures/fx_refs.py


def check(user_python, tmp_path, endpoint, workflows, timeout=5):
    req = tmp_path / "check-request.json"
    req.write_text(json.dumps({"admin": {"endpoint": endpoint, "insecure": True, "timeout": timeout},
                               "workflows": workflows}))
    proc = subprocess.run([user_python, *CHECK, str(req)], env=user_env(), cwd=str(REPO),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)["warnings"]


FX_REFS = [
    {"kind": "task", "project": P, "domain": D, "name": "remote.tasks.scale", "version": "v1"},
    {"kind": "workflow", "project": P, "domain": D, "name": "remote.workflows.pipeline", "version": "v2"},
    {"kind": "launch_plan", "project": P, "domain": "production", "name": "remote.lp", "version": "v3"},
]


def test_runtime_check_matches_run_remote_wording(cluster, user_python, tmp_path):
    # fx_refs.wf: scale as registered; pipeline(n) (registered: n, factor); remote_lp(n) -> str (registered -> int)
    warnings = check(user_python, tmp_path, cluster.endpoint,
                     [{"address": "x:wf", "entrypoint": "fx_refs:wf", "references": FX_REFS}])
    assert warnings == {"x:wf": [
        "the registered entity has input `factor`, which reference workflow remote.workflows.pipeline does not declare",
        "the registered entity has input `factor`, which reference launch plan remote.lp does not declare",
        "output `o0`: reference launch plan remote.lp declares str, registered int",
    ]}


def test_runtime_check_unreachable_asks_once(user_python, tmp_path):
    port = closed_port()
    warnings = check(user_python, tmp_path, f"127.0.0.1:{port}",
                     [{"address": "x:wf", "entrypoint": "fx_refs:wf", "references": FX_REFS}], timeout=1)
    assert warnings == {"x:wf": [f"references not checked: cannot reach FlyteAdmin at 127.0.0.1:{port} (insecure) "
                                 "within 1s"]}


# ---------------------------------------------------------------------------------------------------------------
# the CLI: the same check through the same service, the same settings meaning the same thing

from tests.cli.conftest import cli  # noqa: E402,F401 - re-exported fixture

TOML = """
root = "../.."
source_roots = [".."]
requirements = "../3rdparty/requirements.txt"
lockfile = "../3rdparty/flyte.lock"
{admin}
""" + "".join(f'[workflows.{n}]\nentrypoint = "refplan.py:{n}"\n' for n in ("ok", "off", "missing", "plain"))


def cli_plan(cli, repo, user_python, admin: str):  # noqa: F811
    config = repo.root / "examples/refplan/flytebuild.toml"
    config.write_text(TOML.format(admin=admin))
    try:
        proc = cli("-c", str(config), "plan", "--format=json", cwd=repo.root)
    finally:
        config.unlink()
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {w["address"]: w["warnings"] for w in json.loads(proc.stdout)["workflows"]}


def test_cli_plan_checks_references_like_pants(refplan, cluster, cli, user_python):  # noqa: F811
    admin = f'endpoint = "{cluster.endpoint}"\ninsecure = true\nadmin_timeout = 5'
    assert cli_plan(cli, refplan, user_python, admin) == warnings_of(plan(refplan, *on(cluster)))
    # Without a cluster nothing is checked, as in Pants.
    assert all(w == [] for w in cli_plan(cli, refplan, user_python, "").values())


def test_insecure_unset_means_the_same_on_both_front_ends(refplan, cluster, cli, user_python):  # noqa: F811
    """`insecure` unset (no flytekit config) is TLS on every path: against the plaintext stand-in both front ends
    report the same TLS failure, in the same words; set, both reach it."""
    pants = warnings_of(plan(refplan, f"--flyte-endpoint={cluster.endpoint}", "--flyte-admin-timeout=2"))
    ours = cli_plan(cli, refplan, user_python, f'endpoint = "{cluster.endpoint}"\nadmin_timeout = 2')
    assert ours == pants
    expected = f"references not checked: cannot reach FlyteAdmin at {cluster.endpoint} (TLS) within 2s"
    assert pants["off"] == [expected] and pants["plain"] == []

    # Unset with a flytekit config that says `insecure: true`: the config decides, on both front ends.
    config = cluster.write_config(refplan.root / "examples/refplan/config.yaml")
    try:
        pants = warnings_of(plan(refplan, f"--flyte-config={config}", "--flyte-admin-timeout=5"))
        ours = cli_plan(cli, refplan, user_python, f'config = "{config}"\nadmin_timeout = 5')
    finally:
        config.unlink()
    assert ours == pants
    assert pants["off"][0] == "input `factor`: reference task remote.tasks.scale declares int, registered float"
