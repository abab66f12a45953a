"""A two-task Flyte workflow built by Bazel with the flytebuild rules."""
