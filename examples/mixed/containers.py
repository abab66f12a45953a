"""A raw container task with no image in code: it never runs Python code from this repo, so it
needs neither a code bundle nor a baked image (mode `container`). The image comes from the
workflow target (or `[flyte] default_image`)."""
from flytekit import ContainerTask, kwtypes

echo = ContainerTask(
    name="mixed.containers.echo",
    image=None,
    input_data_dir="/var/inputs",
    output_data_dir="/var/outputs",
    inputs=kwtypes(n=int),
    outputs=kwtypes(out=str),
    command=["sh", "-c", "echo {{.inputs.n}} > /var/outputs/out"],
)
