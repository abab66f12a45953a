"""Tasks on the workflow's default image that use nothing from `shared` (`fast`)."""
from typing import List

from flytekit import task


@task
def make_range(n: int) -> List[int]:
    return list(range(1, n + 1))


@task
def total(xs: List[int]) -> int:
    return sum(xs)
