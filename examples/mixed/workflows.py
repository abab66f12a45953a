"""Workflows of the mixed project.

`wf` runs locally with plain `pyflyte run`; `container_wf` holds the raw container task, which
needs a Docker engine to run locally (and an image), so it lives in its own workflow."""
from flytekit import PodTemplate, Resources, conditional, map_task, workflow
from kubernetes.client import V1Container, V1EnvVar, V1PodSpec

from mixed.containers import echo
from mixed.fast_tasks import weights
from mixed.plain_tasks import make_range, total
from mixed.spec_tasks import label, square


@workflow
def wf(n: int = 4) -> str:
    xs = make_range(n=n)
    squares = map_task(square, concurrency=2)(n=xs)
    # Merged on top of the workflow's pod template (examples/mixed:pod), not replacing it.
    t = total(xs=squares).with_overrides(
        retries=2,
        requests=Resources(cpu="1", mem="200Mi"),
        pod_template=PodTemplate(
            pod_spec=V1PodSpec(
                containers=[V1Container(name="primary", env=[V1EnvVar(name="TOTAL_MODE", value="strict")])],
                node_selector={"disk": "ssd"},
            )
        ),
    )
    weights(xs=squares)
    return conditional("size").if_(t > 10).then(label(n=t)).else_().then(label(n=0))


@workflow
def container_wf(n: int = 3) -> str:
    return echo(n=n)
