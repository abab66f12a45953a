"""A data task on an ImageSpec without a name (flytekit calls it `flytekit`) that copies its module."""
from flytekit import ImageSpec, task, workflow
from realistic.data.transform import normalize

image = ImageSpec(
    registry="localhost:5000",
    base_image="localhost:5000/flytebuild/python:3.11",
    copy=["tasks.py"],
)


@task(container_image=image)
def scale(values: list[float]) -> list[float]:
    return normalize(values)


@workflow
def wf(values: list[float] = [1.0, 2.0, 4.0]) -> list[float]:
    return scale(values=values)
