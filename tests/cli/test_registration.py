"""`flytebuild package` and `flytebuild deploy` on the examples: reproducible archives holding only
what the fast tasks need, and incremental registration against the stand-in FlyteAdmin (real gRPC)."""
import hashlib
import json
import tarfile

from tests.support.flyteadmin.fixture import flyteadmin

CONFIG = "examples/flytebuild.toml"


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_package_is_reproducible_and_bundles_only_fast_code(cli, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    proc = cli("-c", CONFIG, "package", "mixed-wf", "baked-wf", "--dist", str(first), check=True)
    assert "no code bundle: every task runs from its image" in proc.stdout  # baked-wf
    cli("-c", CONFIG, "package", "mixed-wf", "baked-wf", "--dist", str(second), check=True)
    files = sorted(p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second).as_posix() for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert _sha(first / rel) == _sha(second / rel), rel

    assert [f for f in files if f.startswith("baked-wf/")] == ["baked-wf/flyte-package.tgz"]
    (bundle,) = [f for f in files if f.startswith("mixed-wf/fast")]
    with tarfile.open(first / bundle) as tar:
        # weights (shared.helpers) and make_range/total: their modules and imports, nothing baked.
        assert sorted(m.name for m in tar.getmembers() if m.isfile()) == [
            "mixed/__init__.py",
            "mixed/fast_tasks.py",
            "mixed/plain_tasks.py",
            "shared/__init__.py",
            "shared/helpers.py",
        ]
    with tarfile.open(first / "mixed-wf/flyte-package.tgz") as tar:
        names = tar.getnames()
    assert bundle.split("/")[1] in names and any(n.endswith("_1.pb") for n in names)


def test_deploy_registers_once_then_nothing(cli, user_python, tmp_path):
    with flyteadmin(user_python) as admin:
        # Images are pushed first by default (tested with a registry in test_images.py); not here.
        args = [
            "-c",
            CONFIG,
            "deploy",
            "mixed-wf",
            "--endpoint",
            admin.endpoint,
            "--insecure",
            "--format=json",
            "--no-push-images",
        ]
        dry = json.loads(cli(*args, "--dry-run", check=True).stdout)
        assert dry["dry_run"] and admin.store.ids("task") == [] and admin.uploads.count == 0

        first = json.loads(cli(*args, check=True).stdout)
        statuses = {e["name"]: e["status"] for e in first["entities"]}
        assert set(statuses.values()) == {"registered"}
        assert "mixed.workflows.wf" in statuses and "mixed.fast_tasks.weights" in statuses
        assert admin.uploads.count == 1  # the fast tasks' bundle, once
        plan = json.loads(cli("-c", CONFIG, "plan", "--format=json", "mixed-wf", check=True).stdout)
        versions = {t["name"]: t["version"] for t in plan["workflows"][0]["tasks"]}
        registered = {i["name"]: i["version"] for i in admin.store.ids("task")}
        assert all(registered[name] == version for name, version in versions.items() if name in registered)

        mark = admin.mark()
        again = json.loads(cli(*args, check=True).stdout)
        assert {e["status"] for e in again["entities"]} == {"unchanged"}
        since = admin.since(mark)
        assert since["uploads"] == 0 and since["counters"]["task"]["created"] == 0
        # the deploy ledger in the CLI's cache dir vouches for every entity: FlyteAdmin is not asked at all
        assert since["rpcs"] == 0 and again["ledger"]["hits"] == len(again["entities"])

        table = cli(*[a for a in args if a != "--format=json"])
        assert table.returncode == 0 and "unchanged" in table.stdout

        # The ledger's trade: a wiped server is not asked while nothing changed; `--no-ledger` asks about every
        # entity and registers them again (and leaves the ledger as it was: the next deploy trusts it again).
        admin.wipe()
        mark = admin.mark()
        assert {e["status"] for e in json.loads(cli(*args, check=True).stdout)["entities"]} == {"unchanged"}
        assert admin.since(mark)["rpcs"] == 0
        asked = json.loads(cli(*args, "--no-ledger", check=True).stdout)
        assert {e["status"] for e in asked["entities"]} == {"registered"} and "ledger" not in asked
        assert len(admin.store.ids("task")) == len(registered) and admin.since(mark)["rpcs"] > len(asked["entities"])


def test_deploy_without_an_admin_is_a_clear_error(cli):
    proc = cli("-c", CONFIG, "deploy", "baked-wf", "--dry-run")
    assert proc.returncode == 1 and "No FlyteAdmin to deploy to" in proc.stderr and "Fix:" in proc.stderr
    proc = cli("-c", CONFIG, "deploy", "baked-image")
    assert proc.returncode == 1 and "baked-image is an image" in proc.stderr
