"""Field values checked where they are read, before anything resolves, builds or runs.

Every front end (Pants fields, flytebuild.toml, Bazel attributes) hands the raw values of one
target to these checks; a bad value becomes one paragraph naming the target, the field, the value
and the fix. The grammars are the OCI distribution spec's (repository names, tags, digests) and
Docker's reference grammar for registry hosts, so a value accepted here is accepted by a registry.

Names that become paths (image names → `<dist>/<name>.oci`, CLI target names → `<dist>/<name>/`)
must be a single path component; `inside()` asserts it again where the path is written.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Callable, Iterable, List, Optional, Tuple, Union

from flytebuild.core.errors import FlytebuildError, PlanError

# distribution-spec: <name> components joined by `/`, each [a-z0-9]+ with . _ __ or -+ separators
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REPOSITORY_RE = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[A-Za-z0-9=_-]+$")
SHA256_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
# Docker reference grammar: host components with an optional port, or a bracketed IPv6 address.
_HOST_COMPONENT = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
HOST_RE = re.compile(rf"^(?:{_HOST_COMPONENT}(?:\.{_HOST_COMPONENT})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?$")
# One path component: starts with a letter or digit, so never `.`, `..` or a hidden file.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# FlyteAdmin's project ids are DNS-1123 labels; domains follow the same rule in practice.
PROJECT_RE = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
MAX_NAME = 255  # registry/repository, as registries count it


@dataclass(frozen=True)
class Problem:
    """One bad value: which field, what is wrong with it and what to do."""

    field: str
    value: object
    reason: str
    fix: str


# --------------------------------------------------------------------------- grammars (pure)


def registry_problem(value: str) -> Optional[str]:
    """Why `value` is not `host[:port][/path]`, or None. A scheme is never part of it."""
    if "://" in value:
        return "it has a URL scheme; registries are named without one (plain HTTP is used for localhost only)"
    if not value or any(c.isspace() for c in value):
        return "it is empty or contains whitespace"
    host, _, path = value.rstrip("/").partition("/")
    if not HOST_RE.match(host):
        return f"`{host}` is not a host name with an optional :port"
    port = host.rsplit(":", 1)[1] if ":" in host and not host.endswith("]") else None
    if port is not None and not 0 < int(port) < 65536:
        return f"port {port} is out of range"
    if path and not REPOSITORY_RE.match(path):
        return f"the path `{path}` after the host is not lowercase letters, digits and . _ - separators"
    return None


def repository_problem(value: str) -> Optional[str]:
    if not value:
        return "it is empty"
    if not REPOSITORY_RE.match(value):
        return ("repository names are lowercase letters and digits, separated by `.`, `_`, `__`, `-` "
                "or `/` (OCI distribution spec)")
    return None


def reference_problem(value: str) -> Optional[str]:
    """Why `value` is not `[registry/]repository[:tag][@digest]`, or None."""
    if not value or any(c.isspace() for c in value):
        return "it is empty or contains whitespace"
    if "://" in value:
        return "it has a URL scheme; image references are written without one"
    rest, digest = (value.split("@", 1) + [""])[:2] if "@" in value else (value, "")
    if "@" in value and not DIGEST_RE.match(digest):
        return f"`@{digest}` is not a digest (sha256:<64 hex>)"
    if digest.startswith("sha256:") and not SHA256_RE.match(digest):
        return f"`@{digest}` is not a sha256 digest (sha256:<64 lowercase hex>)"
    tag = ""
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        if not TAG_RE.match(tag):
            return f"the tag `{tag}` is not 1-128 letters, digits, `_`, `.` or `-` (not starting with . or -)"
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        host_reason = registry_problem(first)
        if host_reason:
            return host_reason
        repo = remainder
    else:
        repo = rest
    if len(rest) > MAX_NAME:
        return f"the name is longer than {MAX_NAME} characters"
    reason = repository_problem(repo)
    return f"the repository `{repo}`: {reason}" if reason else None


def name_problem(value: str) -> Optional[str]:
    """Why `value` cannot be one path component (it would escape or hide in the output dir)."""
    if not value:
        return "it is empty"
    if "/" in value or "\\" in value or value in (".", ".."):
        return "it contains a path separator or is `.`/`..`, and it becomes a file name in the output directory"
    if not NAME_RE.match(value):
        return "it must start with a letter or digit and hold only letters, digits, `.`, `_` and `-`"
    return None


def python_problem(value: str) -> Optional[str]:
    """Why `value` is not an absolute interpreter path inside the image."""
    if not value.startswith("/"):
        return "it must be an absolute path inside the image (e.g. /usr/bin/python3)"
    if any(c.isspace() or c == "\0" for c in value):
        return "it contains whitespace or NUL, which a shebang line cannot hold"
    if ".." in PurePosixPath(value).parts or value.endswith("/"):
        return "it must name the interpreter file itself, without `..`"
    return None


def project_problem(value: str) -> Optional[str]:
    if not PROJECT_RE.match(value or ""):
        return "it must be 1-63 lowercase letters, digits or `-`, starting and ending with a letter or digit"
    return None


# --------------------------------------------------------------------------- checks per target kind


Describe = Callable[[str], str]


def _pants_field(field: str) -> str:
    return f"the `{field}` field"


def raise_problems(problems: List[Problem], target: str, describe: Describe, file: Optional[str], kind: str) -> None:
    if not problems:
        return
    first = problems[0]
    field = describe(first.field)
    what = f"{field[0].upper()}{field[1:]} of {kind} {target} is {first.value!r}: {first.reason}"
    others = [f"{describe(p.field)} ({p.value!r}: {p.reason})" for p in problems[1:]]
    if others:
        what += "; also " + "; ".join(others)
    raise PlanError(what, target=target, file=file, fix=first.fix)


def image_problems(
    *,
    image_name: str,
    base: Optional[str],
    registry: Optional[str],
    repository: Optional[str],
    python: Optional[str] = None,
    env: Iterable[Tuple[str, str]] = (),
    repository_defaulted: bool = False,
    base_from: str = "",
    registry_from: str = "",
) -> List[Problem]:
    problems: List[Problem] = []
    reason = name_problem(image_name)
    if reason:
        problems.append(
            Problem(
                "image_name",
                image_name,
                reason,
                "use a plain name such as `app` or `team-app` (it names the image's output files)",
            )
        )
    if base is not None:
        reason = reference_problem(base)
        if reason:
            problems.append(
                Problem(
                    "base",
                    base,
                    f"not a valid image reference: {reason}",
                    "write it as registry/repository:tag, e.g. `localhost:5000/flytebuild/python:3.11`"
                    + (f" (the value comes from {base_from})" if base_from else ""),
                )
            )
    if registry:
        reason = registry_problem(registry)
        if reason:
            problems.append(
                Problem(
                    "registry",
                    registry,
                    f"not a registry host: {reason}",
                    "write host[:port], e.g. `localhost:5000` or `ghcr.io/my-org`"
                    + (f" (the value comes from {registry_from})" if registry_from else ""),
                )
            )
    if repository is not None and not (repository_defaulted and problems and problems[0].field == "image_name"):
        reason = repository_problem(repository)
        if reason:
            fix = "use lowercase letters, digits and . _ - / only, e.g. `team/app`"
            if repository_defaulted:
                fix = f"set `repository` explicitly (it defaults to the image name `{image_name}`) and " + fix
            problems.append(Problem("repository", repository, f"not an OCI repository name: {reason}", fix))
        elif registry and not registry_problem(registry) and len(f"{registry.rstrip('/')}/{repository}") > MAX_NAME:
            problems.append(
                Problem(
                    "repository",
                    repository,
                    f"registry/repository is longer than {MAX_NAME} characters",
                    "use a shorter repository name",
                )
            )
    if python is not None:
        reason = python_problem(python)
        if reason:
            problems.append(
                Problem(
                    "python",
                    python,
                    reason,
                    "set the interpreter's absolute path in the image, e.g. `/usr/bin/python3`",
                )
            )
    for key, value in env:
        if not ENV_NAME_RE.match(key):
            problems.append(
                Problem(
                    "env",
                    key,
                    "not an environment variable name",
                    "use names of letters, digits and `_`, not starting with a digit",
                )
            )
        elif "\0" in value:
            problems.append(Problem("env", f"{key}={value}", "the value contains NUL", "remove the NUL character"))
    return problems


def check_image(target: str, *, describe: Describe = _pants_field, file: Optional[str] = None, **fields) -> None:
    """Raise a PlanError naming the first bad field (and listing the others) of one image target; `fields` are
    `image_problems`' keywords."""
    raise_problems(image_problems(**fields), target, describe, file, "flyte_image")


def check_workflow(
    target: str,
    *,
    project: Optional[str],
    domain: Optional[str],
    describe: Describe = _pants_field,
    file: Optional[str] = None,
    project_from: str = "",
    domain_from: str = "",
) -> None:
    problems: List[Problem] = []
    for field, value, origin in (("project", project, project_from), ("domain", domain, domain_from)):
        if value is None or value == "":
            continue
        reason = project_problem(value)
        if reason:
            problems.append(
                Problem(
                    field,
                    value,
                    reason,
                    f"use a Flyte {field} id such as "
                    + ("`flytesnacks`" if field == "project" else "`development`")
                    + (f" (the value comes from {origin})" if origin else ""),
                )
            )
    raise_problems(problems, target, describe, file, "flyte_workflow")


def inside(root: Union[str, "os.PathLike[str]"], *parts: str) -> str:
    """`root/parts...`, refusing any result outside `root` (the last line of defence for writes)."""
    base = os.path.realpath(os.fspath(root))
    path = os.path.realpath(os.path.join(base, *parts))
    if path != base and not path.startswith(base.rstrip(os.sep) + os.sep):
        raise FlytebuildError(
            f"Refusing to write {os.path.join(*parts)!r}: it resolves to {path}, outside the output directory {base}",
            fix="use plain names (no `/`, `..` or symlinks out) for images and targets",
        )
    return path


def check_options(
    default_base: Optional[str],
    registry: Optional[str],
    base_option: str,
    registry_option: str,
    *,
    file: Optional[str] = None,
) -> None:
    """The defaults every image (and every ImageSpec without a target) falls back to."""
    for option, value, problem in (
        (base_option, default_base, reference_problem),
        (registry_option, registry, registry_problem),
    ):
        reason = problem(value) if value else None
        if reason:
            raise FlytebuildError(
                f"{option} is {value!r}: not a valid "
                f"{'image reference' if option == base_option else 'registry'}: {reason}",
                file=file,
                fix="write it as registry/repository:tag (default_base) or host[:port] (registry), "
                "e.g. `localhost:5000/flytebuild/python:3.11` and `localhost:5000`",
            )


REFERENCE_KINDS = ("task", "workflow", "launch_plan")


def check_reference(
    target: str,
    *,
    kind: Optional[str],
    entity_name: Optional[str],
    project: Optional[str],
    domain: Optional[str],
    describe: Describe = _pants_field,
    file: Optional[str] = None,
) -> None:
    """A `flyte_reference` (a registered entity), checked when something runs or plans with it."""
    problems: List[Problem] = []
    if kind not in REFERENCE_KINDS:
        problems.append(
            Problem(
                "kind",
                kind,
                f"not one of {', '.join(REFERENCE_KINDS)}",
                "set `kind` to what is registered under `entity_name`",
            )
        )
    if not entity_name or any(c.isspace() for c in entity_name):
        problems.append(
            Problem(
                "entity_name",
                entity_name,
                "empty or contains whitespace",
                "use the registered name, e.g. `my_project.workflows.train`",
            )
        )
    for field, value in (("project", project), ("domain", domain)):
        reason = project_problem(value) if value else None
        if reason:
            problems.append(Problem(field, value, reason, f"use a Flyte {field} id"))
    raise_problems(problems, target, describe, file, "flyte_reference")
