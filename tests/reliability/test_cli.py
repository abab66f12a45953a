"""`flytebuild` (a real subprocess, as users run it) under user code that blocks, targets that are broken but
not needed, and target names that would escape --dist."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability.test_fields import cli_project

REPO = Path(__file__).resolve().parents[2]
TRACEBACK = "Traceback (most recent call last)"


def flytebuild(config: Path, *args: str, env=None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flytebuild.cli", "-c", str(config), *args],
        env={**os.environ, "PYTHONPATH": str(REPO / "src/python"), **(env or {})},
        capture_output=True, text=True, timeout=timeout,
    )


@pytest.mark.parametrize("command", ["plan", "deploy"])  # deploy introspects in a session that serializes next
def test_user_module_blocking_at_import_is_stopped(tmp_path, user_python, command):
    root = cli_project(tmp_path, None, user_python)
    tasks = root / "src/proj/tasks.py"
    tasks.write_text("import time\ntime.sleep(3600)\n" + tasks.read_text())
    start = time.monotonic()
    proc = flytebuild(root / "flytebuild.toml", command, env={"FLYTEBUILD_USER_CODE_TIMEOUT": "4"})
    took = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr
    assert "did not finish within 4 s" in proc.stderr and "target wf" in proc.stderr, proc.stderr
    assert "user_code_timeout" in proc.stderr and TRACEBACK not in proc.stderr
    assert took < 120, took


def test_bad_timeout_setting_is_a_clear_error(tmp_path, user_python):
    root = cli_project(tmp_path, None, user_python)
    proc = flytebuild(root / "flytebuild.toml", "plan", env={"FLYTEBUILD_USER_CODE_TIMEOUT": "soon"})
    assert proc.returncode == 1 and "FLYTEBUILD_USER_CODE_TIMEOUT is 'soon'" in proc.stderr, proc.stderr


def test_a_broken_image_nobody_uses_does_not_fail_another_workflow(tmp_path, user_python):
    root = cli_project(tmp_path, None, user_python)
    with open(root / "flytebuild.toml", "a") as f:
        f.write('\n[images.broken]\nbase = "http://exa mple:abc/x"\nrequirements = ["flytekit"]\n')
    proc = flytebuild(root / "flytebuild.toml", "plan", "wf", "--format=json")
    assert proc.returncode == 0, proc.stderr
    # ... while asking for it fails, naming it
    proc = flytebuild(root / "flytebuild.toml", "plan", "broken")
    assert proc.returncode == 1 and "[images.broken]" in proc.stderr and "`base`" in proc.stderr, proc.stderr


@pytest.mark.parametrize("table,name", [("workflows", ".."), ("workflows", "../evil"), ("images", ".."),
                                        ("images", "../evil")])
def test_table_named_dotdot_never_writes_outside_dist(tmp_path, user_python, table, name):
    """Table names become `<dist>/<name>/` (workflows) and `<dist>/<name>.image.json` (images)."""
    root = cli_project(tmp_path, None, user_python)
    config = root / "flytebuild.toml"
    text = config.read_text().replace(f"[{table}.{'wf' if table == 'workflows' else 'img'}]", f'[{table}."{name}"]')
    config.write_text(text.replace('image = "img"', f'image = "{name}"') if table == "images" else text)
    dist = root / "dist"
    proc = flytebuild(config, "package", "--dist", str(dist), "--image-output=oci", name)
    assert proc.returncode == 1, proc.stderr
    assert f'The table name [{table}."{name}"]' in proc.stderr and f"is '{name}'" in proc.stderr, proc.stderr
    assert "Fix:" in proc.stderr and TRACEBACK not in proc.stderr
    assert not dist.exists() and not list(tmp_path.rglob("*.tgz")) and not list(tmp_path.rglob("*.image.json"))
