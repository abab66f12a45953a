"""Messages in the words of the front end the user is in.

Shared code (core, runtime) words its errors and warnings the Pants way: `[flyte].registry`,
`--flyte-endpoint`, `flyte_image(image_name=...)`, `pants generate-lockfiles`. The CLI and the Bazel
rules (which run the CLI with FLYTEBUILD_FRONT_END=bazel) pass every message through `in_words`,
so a CLI user reads TOML keys and flags, a Bazel user attributes. Pure text rewriting.
"""
from __future__ import annotations

import re
from typing import Callable, List, Tuple, Union

Rule = Tuple["re.Pattern[str]", Union[str, Callable[["re.Match[str]"], str]]]

_SETTINGS_KEYS = (
    "default_image|default_base|registry|project|domain|endpoint|insecure|config|admin_timeout|ledger|environment|"
    "image_cache_dir|image_push_jobs|image_output"
)


def _rules(front_end: str) -> List[Rule]:
    cli = front_end == "cli"
    settings = (lambda k: f"`{k}` in flytebuild.toml") if cli else (lambda k: f"`{k}` of flyte_settings")
    image = "[images.NAME] (image_name = {})" if cli else "a flyte_image(image_name = {})"
    lock = "`flytebuild lock`"
    return [
        # options of the [flyte] scope, however written
        (re.compile(rf"`?\[flyte\][. ]?({_SETTINGS_KEYS})`?"), lambda m: settings(m.group(1))),
        (re.compile(r"\s*\(or --flyte-endpoint, PANTS_FLYTE_ENDPOINT\)"), " (or --endpoint)" if cli else ""),
        (re.compile(r"`?--flyte-(endpoint|insecure)`?"), lambda m: f"--{m.group(1)}"),
        (re.compile(r"`?(?:\./)?pants generate-lockfiles`?"), lock),
        (
            re.compile(r"`?(?:\./)?pants flyte-deploy [^`)]*`?"),
            "`flytebuild deploy NAME`" if cli else "`bazel run //pkg:wf.deploy`",
        ),
        (
            re.compile(r"`?(?:\./)?pants run <target> -- --remote`?"),
            "`flytebuild run --remote NAME`" if cli else "`flytebuild run --remote`",
        ),
        (re.compile(r"`?(?:\./)?pants package`?"), "`flytebuild package`" if cli else "`bazel build`"),
        (re.compile(r"flyte_image\(image_name=([^)]*)\)"), lambda m: image.format(m.group(1))),
        (
            re.compile(r"\ba flyte_image (?:address|target)"),
            "the name of an [images.*] entry" if cli else "a flyte_image label",
        ),
        (re.compile(r"\bflyte_image targets?\b"), "[images.*] entry" if cli else "flyte_image target"),
        (re.compile(r"\bflyte_image\b"), "[images.*] entry" if cli else "flyte_image"),
    ]


def in_words(message: str, front_end: str) -> str:
    """`message` (worded for Pants) as `front_end` ("pants", "cli" or "bazel") names things."""
    if front_end not in ("cli", "bazel"):
        return message
    for pattern, replacement in _rules(front_end):
        message = pattern.sub(replacement, message)
    return message
