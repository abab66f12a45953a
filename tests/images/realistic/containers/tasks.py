"""A raw ContainerTask on an ImageSpec that copies the script its command runs."""
from flytekit import ContainerTask, ImageSpec, kwtypes, workflow

image = ImageSpec(
    name="realistic-script",
    registry="localhost:5000",
    base_image="localhost:5000/flytebuild/python:3.11",
    copy=["script.py"],
)

triple = ContainerTask(
    name="realistic.containers.triple",
    image=image,
    input_data_dir="/var/inputs",
    output_data_dir="/var/outputs",
    inputs=kwtypes(n=int),
    outputs=kwtypes(out=str),
    command=["python3", "script.py", "{{.inputs.n}}", "/var/outputs/out"],
)


@workflow
def wf(n: int = 2) -> str:
    return triple(n=n)
