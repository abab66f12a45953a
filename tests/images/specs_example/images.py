"""An ImageSpec as real flytekit projects write it; no flyte_image target answers it."""
from flytekit import ImageSpec

etl = ImageSpec(
    name="specs-etl",
    registry="localhost:5000",
    base_image="localhost:5000/flytebuild/python:3.11",
    python_version="3.11",
    packages=["flytekit==1.16.31"],
    env={"SPECS_MODE": "image"},
    source_root=".",  # flytekit would copy the whole folder; flytebuild bakes the tasks' closure
)
