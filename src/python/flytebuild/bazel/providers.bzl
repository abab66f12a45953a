"""Providers of the flytebuild Bazel rules (version-neutral Starlark: no Bzlmod-only APIs)."""

FlytePySourcesInfo = provider(
    doc = "The Python build graph below a target, as collected by `flyte_py_aspect`.",
    fields = {
        "nodes": "depset of JSON strings, one per target: {label, srcs, deps, requirements, imports}",
        "files": "depset of File: every source of the closure",
    },
)

FlyteSettingsInfo = provider(
    doc = "What Pants' [flyte] options and [python] resolve hold: interpreters, lockfile, defaults.",
    fields = {
        "python": "the user's interpreter (with flytekit), absolute path",
        "tool_python": "interpreter running flytebuild (with blake3 and pex), absolute path",
        "lockfile": "File or None: Pants/Pex lockfile the requirements are pinned from",
        "requirements": "File or None: requirements file declaring the requirements",
        "project": "default Flyte project",
        "domain": "default Flyte domain",
        "registry": "default registry of images",
        "default_base": "default base image",
        "default_image": "image for tasks naming none (a reference), or empty",
        "environment": "overlay of pod templates to apply, or empty",
        "admin": "dict: FlyteAdmin settings for `bazel run` (endpoint, insecure, config, admin_timeout, ledger; unset keys absent)",
        "env": "dict: extra environment for flytebuild actions (PEX_ROOT, image cache)",
        "worker": "File or None: the persistent worker's executable (flyte_settings.persistent_worker)",
    },
)

FlyteImageInfo = provider(
    doc = "A flyte_image: its configuration and the build graph of what it bakes.",
    fields = {
        "label": "string label",
        "config": "dict: the image's fields, as flytebuild.toml's [images.*] holds them",
        "nodes": "depset of JSON node strings (FlytePySourcesInfo.nodes of its deps)",
        "files": "depset of File",
    },
)

FlytePodTemplateInfo = provider(
    doc = "A flyte_pod_template: its configuration and files.",
    fields = {
        "label": "string label",
        "config": "dict: flytebuild.toml's [pod_templates.*] fields (file paths relative to the root)",
        "short_config": "dict: the same with runfiles (short) paths",
        "files": "list of File: the template and its overlays",
    },
)

FlyteWorkflowInfo = provider(
    doc = "A flyte_workflow as `bazel run` sees it: its configuration and files in the runfiles tree.",
    fields = {
        "label": "string label",
        "run_facts": "File: the CLI's configuration with runfiles (short) paths",
        "runfiles": "runfiles: run_facts, settings files, flytebuild's sources and the workflow's closure",
        "settings": "FlyteSettingsInfo of the workflow",
    },
)
