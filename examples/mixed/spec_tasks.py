"""Tasks declaring `container_image=ImageSpec(...)`: their module (and shared.textutil) is baked
into the `mixed-spec` image, so they run in `baked` mode."""
from flytekit import task

from mixed.images import spec
from shared.textutil import shout


@task(container_image=spec)
def square(n: int) -> int:
    return n * n


@task(container_image=spec)
def label(n: int) -> str:
    return shout(f"total {n}")
