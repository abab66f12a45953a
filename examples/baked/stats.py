"""Tasks that use shared.helpers (their module's closure includes shared/helpers.py)."""
from typing import List

from flytekit import task

from baked.models import Range, Summary
from shared.helpers import normalize


@task
def normalize_values(xs: List[float]) -> List[float]:
    return normalize(xs)


@task
def summarize(xs: List[float]) -> Summary:
    mean = sum(xs) / len(xs) if xs else 0.0
    spread = Range(low=min(xs), high=max(xs)) if xs else Range(low=0.0, high=0.0)
    return Summary(count=len(xs), mean=mean, spread=spread, label="normalized", values=xs)
