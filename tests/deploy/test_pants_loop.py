"""`./pants --loop flyte-deploy`: Pants' own watch loop over the flyte-deploy goal (real Pants, the session's repo
copy and pantsd, the stand-in FlyteAdmin over gRPC): the first round registers the project, a save re-runs the
goal and registers exactly the entities whose closure the edit is in, Ctrl-C stops the loop."""
import os

from tests.support.background import Background
from tests.support.repo_copy import PANTS_ENV

KINDS = ("task", "workflow", "launch_plan")
EDITED = "examples/baked/data.py"


def _created(admin, mark) -> dict:
    delta = admin.since(mark)
    return {k: delta["counters"].get(k, {}).get("created", 0) for k in KINDS}


def test_pants_loop_flyte_deploy_registers_each_save(deploy_repo, fresh_admin):
    admin = fresh_admin
    original = deploy_repo.read(EDITED)
    loop = Background([deploy_repo.root / "pants", f"--flyte-endpoint={admin.endpoint}", "--flyte-insecure",
                       "--loop", "flyte-deploy", "--no-push-images", "examples/baked::"],
                      deploy_repo.root, {**os.environ, **PANTS_ENV})
    try:
        first = loop.until("bytes uploaded:", timeout=600)
        assert any("9 registered, 0 unchanged, 0 failed" in line for line in first), first
        mark = admin.mark()
        # the image bakes every module of examples/baked: all its tasks get a new version, nothing else changes
        deploy_repo.write(EDITED, original + "\n_EDITED_BY_THE_LOOP_TEST = 1\n")
        again = loop.until("bytes uploaded:", timeout=600)
        assert any("9 registered, 0 unchanged, 0 failed" in line for line in again), again
        assert _created(admin, mark) == {"task": 4, "workflow": 2, "launch_plan": 3}
        assert {t["name"] for t in admin.store.ids("task")} == {
            "baked.data.log_summary", "baked.data.make_values", "baked.stats.normalize_values",
            "baked.stats.summarize"}
        loop.interrupt()  # Pants ends a loop on Ctrl-C ("Interrupted by user.", exit 1)
        assert loop.proc.returncode is not None
    finally:
        loop.kill()
        deploy_repo.write(EDITED, original)
