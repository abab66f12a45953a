"""The ImageSpec some mixed tasks declare in code. flytebuild maps it (by name) to the
`spec_image` flyte_image target, which bakes the modules of those tasks."""
from flytekit import ImageSpec

spec = ImageSpec(
    name="mixed-spec",
    registry="localhost:30000",
    packages=["flytekit==1.16.31"],
)
