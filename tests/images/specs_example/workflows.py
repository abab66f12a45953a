from flytekit import workflow
from specs.etl import clean, count


@workflow
def wf(text: str = " hello ") -> int:
    return count(text=clean(text=text))
