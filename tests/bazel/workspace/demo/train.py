from typing import List

from flytekit import task

from demo.util import mean


@task
def fit(xs: List[float]) -> float:
    return mean(xs)
