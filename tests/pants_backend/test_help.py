"""`./pants help` works for every flytebuild target type and for `help targets` (it once crashed on a field's
`compute_value` without type hints, so a Pants user could not read the help of `flyte_workflow`)."""
import pytest

from flytebuild.pants_backend import register
from tests.e2e.conftest import pants_repo  # noqa: F401 - re-exported fixture

ALIASES = sorted(t.alias for t in register.target_types())


@pytest.mark.parametrize("alias", ALIASES)
def test_help_of_every_target_type(pants_repo, alias):  # noqa: F811
    proc = pants_repo.pants("help", alias)
    assert proc.returncode == 0, proc.stderr
    assert f"`{alias}` target" in proc.stdout and "[ERROR]" not in proc.stderr
    target = next(t for t in register.target_types() if t.alias == alias)
    for field in target.core_fields:
        if field.alias.startswith("_"):
            continue
        assert f"\n{field.alias}\n" in proc.stdout, f"{alias}: field {field.alias} missing from help"


def test_help_targets_lists_them_all(pants_repo):  # noqa: F811
    proc = pants_repo.pants("help", "targets")
    assert proc.returncode == 0, proc.stderr
    for alias in ALIASES:
        assert alias in proc.stdout


def test_help_of_the_flyte_options_and_goals(pants_repo):  # noqa: F811
    for topic in ("flyte", "flyte-plan", "flyte-deploy", "publish"):
        proc = pants_repo.pants("help", topic)
        assert proc.returncode == 0 and "[ERROR]" not in proc.stderr, f"{topic}: {proc.stderr}"
    assert "insecure" in pants_repo.pants("help", "flyte").stdout
