"""flytebuild: Flyte tasks, images and workflows as build targets (Pants backend, CLI, Bazel rules)."""

# The one place the version is written: pyproject.toml reads it, `flytebuild --version` and
# `pants help flyte` print it.
__version__ = "0.1.0"
