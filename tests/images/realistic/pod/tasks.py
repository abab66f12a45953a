"""A Pod plugin task: its own pod spec with a sidecar, a shared volume and resources."""
from flytekit import ImageSpec, task, workflow
from flytekitplugins.pod import Pod
from kubernetes.client.models import (
    V1Container,
    V1EmptyDirVolumeSource,
    V1PodSpec,
    V1ResourceRequirements,
    V1Volume,
    V1VolumeMount,
)

image = ImageSpec(
    name="realistic-pod",
    registry="localhost:5000",
    base_image="localhost:5000/flytebuild/python:3.11",
    packages=["flytekitplugins-pod", "kubernetes"],
    source_root=".",
)

pod = Pod(
    pod_spec=V1PodSpec(
        containers=[
            V1Container(
                name="primary",
                resources=V1ResourceRequirements(requests={"cpu": "1"}, limits={"cpu": "1"}),
                volume_mounts=[V1VolumeMount(name="shared", mount_path="/shared")],
            ),
            V1Container(
                name="sidecar",
                image="localhost:5000/flytebuild/python:3.11",
                command=["sh", "-c", "echo hi > /shared/hi && sleep 5"],
                volume_mounts=[V1VolumeMount(name="shared", mount_path="/shared")],
            ),
        ],
        volumes=[V1Volume(name="shared", empty_dir=V1EmptyDirVolumeSource(medium="Memory"))],
    ),
    primary_container_name="primary",
)


@task(task_config=pod, container_image=image)
def read_shared(path: str) -> str:
    return path


@workflow
def wf(path: str = "/shared/hi") -> str:
    return read_shared(path=path)
