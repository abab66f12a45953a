from typing import List

from flytekit import workflow

from demo.prep import clean
from demo.train import fit


@workflow
def wf(xs: List[float] = [1.0, -2.0, 3.0]) -> float:
    return fit(xs=clean(xs=xs))
