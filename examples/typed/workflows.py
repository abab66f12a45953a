"""A workflow whose inputs cover the command-line types: int, float, str, bool, list, dict, a dataclass and a file."""
from typing import Dict, List, Optional

from flytekit import LaunchPlan, task, workflow
from flytekit.types.file import FlyteFile

from typed.models import Config, Report


@task
def read_values(src: Optional[FlyteFile] = None, n: int = 3) -> List[float]:
    if src is None:
        return [float(i) for i in range(1, n + 1)]
    with open(src, encoding="utf-8") as f:
        return [float(line) for line in f.read().split() if line]


@task(cache=True, cache_version="1")
def scale(xs: List[float], cfg: Config) -> List[float]:
    return [x * cfg.scale + cfg.offset for x in xs]


@task
def report(xs: List[float], weights: Dict[str, int], label: str, loud: bool) -> Report:
    note = label.upper() if loud else label
    return Report(count=len(xs), total=sum(xs), scaled=xs, weights=weights, note=note)


@workflow
def wf(
    cfg: Config,
    n: int = 3,
    weights: Dict[str, int] = {"a": 1},
    label: str = "run",
    loud: bool = False,
    src: Optional[FlyteFile] = None,
) -> Report:
    xs = read_values(src=src, n=n)
    return report(xs=scale(xs=xs, cfg=cfg), weights=weights, label=label, loud=loud)


lp = LaunchPlan.get_or_create(
    workflow=wf, name="typed.workflows.lp", fixed_inputs={"label": "nightly"}, default_inputs={"n": 5}
)
