"""Workflows of the baked project: a sub-workflow, the main workflow `wf` and a launch plan `lp`."""
from typing import List

from flytekit import LaunchPlan, workflow

from baked.data import log_summary, make_values
from baked.models import Summary
from baked.stats import normalize_values, summarize


@workflow
def prepare(x: int) -> List[float]:
    return normalize_values(xs=make_values(x=x))


@workflow
def wf(x: int) -> Summary:
    xs = prepare(x=x)
    s = summarize(xs=xs)
    log_summary(s=s)
    return s


lp = LaunchPlan.get_or_create(workflow=wf, name="baked.workflows.lp", default_inputs={"x": 3})
