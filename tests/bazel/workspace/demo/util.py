from typing import List


def mean(xs: List[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0
