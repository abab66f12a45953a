from typing import List

from flytekit import task


@task
def clean(xs: List[float]) -> List[float]:
    return [x for x in xs if x >= 0]
