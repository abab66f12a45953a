"""Orchestration written once for every front end (Pants, the CLI, Bazel through the CLI).

Front ends gather inputs (build-graph facts, settings, files) and render outputs; what happens in
between — publishing an image, building a registration archive, building the deploy request,
verifying images — lives here, over `core` (decisions) and `oci` (images). Imports neither pants
nor flytekit.
"""
