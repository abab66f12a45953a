"""Tasks on the workflow's default image (requirements only): shipped as a code bundle (`fast`).
This module uses shared.helpers."""
from typing import List

from flytekit import task

from shared.helpers import normalize


@task
def weights(xs: List[int]) -> List[float]:
    return normalize([float(x) for x in xs])
