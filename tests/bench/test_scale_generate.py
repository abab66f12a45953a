"""bench/scale/generate.py writes a monorepo every front end plans: projects x modules x tasks, a shared lib, assets."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench" / "scale"))

import generate  # noqa: E402


def test_the_generated_tree_plans_with_the_cli_and_is_reproducible(tmp_path, user_python):
    root = tmp_path / "repo"
    (root / "examples").mkdir(parents=True)
    shutil.copytree(REPO / "examples/3rdparty", root / "examples/3rdparty")
    shape = generate.generate(root, projects=2, modules=2, tasks=3, asset_kb=16)
    assert shape == {"projects": 2, "modules": 2, "tasks_per_module": 3, "tasks": 12, "asset_bytes": 32768,
                     "entities_per_project": 9}
    assert (root / "examples/scale/p01/assets/data.bin").stat().st_size == 16 * 1024
    again = tmp_path / "again"
    (again / "examples").mkdir(parents=True)
    generate.generate(again, projects=2, modules=2, tasks=3, asset_kb=16)
    for path in (root / "examples/scale").rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (again / path.relative_to(root)).read_bytes(), path
    env = {**os.environ, "PYTHONPATH": str(REPO / "src/python"), "FLYTEBUILD_PYTHON": user_python,
           "FLYTEBUILD_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "flytebuild.cli", "-c", str(root / "scale.toml"), "plan",
                           "--format=json"], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    workflows = {w["address"]: w for w in plan["workflows"]}
    assert sorted(workflows) == ["p00-lp", "p00-wf", "p01-lp", "p01-wf"]
    tasks = {t["name"]: t for t in workflows["p01-wf"]["tasks"]}
    assert len(tasks) == 6 and all(t["mode"] == "baked" for t in tasks.values())
    # every task needs the shared lib, which its project's image bakes
    assert all("examples/scale/lib/common.py" in t["sources"] for t in tasks.values())
