from flytekit import task
from shared.textutil import shout
from specs.images import etl


@task(container_image=etl)
def clean(text: str) -> str:
    return shout(text.strip())


@task(container_image=etl)
def count(text: str) -> int:
    return len(text)
