"""Another unnamed ImageSpec, in an unrelated package, with other packages."""
from flytekit import ImageSpec, task, workflow

image = ImageSpec(
    registry="localhost:5000",
    base_image="localhost:5000/flytebuild/python:3.11",
    packages=["numpy"],
    source_root="examples/realistic/ml",
)


@task(container_image=image)
def fit(xs: list[float]) -> float:
    import numpy as np

    return float(np.mean(np.array(xs)))


@workflow
def wf(xs: list[float] = [1.0, 2.0, 3.0]) -> float:
    return fit(xs=xs)
