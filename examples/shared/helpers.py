"""Numeric helpers. Imported by baked.stats and mixed.fast_tasks only."""
from typing import List


def normalize(xs: List[float]) -> List[float]:
    """Scale values so that they sum to 1 (an empty or all-zero list is returned unchanged)."""
    total = sum(xs)
    if not total:
        return list(xs)
    return [x / total for x in xs]
