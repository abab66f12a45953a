"""Hello world, a map task and a conditional, as the flytekit basics examples write them."""
from flytekit import ImageSpec, conditional, map_task, task, workflow
from flytekit.core.task import Echo
from realistic.shared.text import shout

image_spec = ImageSpec(
    name="realistic-basics",
    registry="localhost:5000",
    base_image="localhost:5000/flytebuild/python:3.11",
    packages=["kubernetes==37.0.1"],
    source_root=".",
)

echo = Echo(name="realistic.basics.echo", inputs={"a": int})


@task(container_image=image_spec)
def square(n: int) -> int:
    return n * n


@task(container_image=image_spec)
def greet(name: str) -> str:
    return shout(f"hello {name}")


@task(container_image=image_spec)
def total(xs: list[int]) -> int:
    return sum(xs)


@workflow
def wf(name: str = "flyte", xs: list[int] = [1, 2, 3]) -> int:
    greet(name=name)
    squares = map_task(square)(n=xs)
    s = total(xs=squares)
    return conditional("route").if_(s > 100).then(echo(a=s)).else_().then(total(xs=xs))
