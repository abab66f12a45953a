"""Tasks that use nothing from `shared` (their module's closure is baked/ only)."""
from typing import List

from flytekit import task

from baked.models import Summary


@task
def make_values(x: int) -> List[float]:
    return [float(i) for i in range(1, x + 1)]


@task(cache=True, cache_version="1")
def log_summary(s: Summary) -> None:
    print(f"summary: count={s.count} mean={s.mean:.3f} label={s.label}")
