"""What an ImageSpec build needs besides the common image flow (service/images.py), decided once for Pants
and the CLI: whether the lockfile answers them all, its index arguments, and the check
that the plan and the build name the same tag."""
from __future__ import annotations

from typing import Iterable, Optional, Sequence, Set, Tuple

from flytebuild.core.errors import FlytebuildError
from flytebuild.core.imagespec import SpecImage
from flytebuild.core.lockfile import canonical_name, locked_pins, requirement_name


def missing_requirements_file(image: SpecImage, workflow: str, file: Optional[str] = None) -> FlytebuildError:
    return FlytebuildError(
        f"ImageSpec `{image.name}` names requirements file `{image.requirements_file}`, which does not exist",
        target=workflow, file=file,
        fix="fix ImageSpec(requirements=...) (a path relative to the repository root or the module)",
    )


def names(reqs: Iterable[str]) -> Set[str]:
    return {canonical_name(requirement_name(r)) for r in reqs}


def all_locked(reqs: Sequence[str], lock_text: Optional[str]) -> bool:
    """Every requirement is pinned in the lockfile: the pex is a subset of it (else resolved from the index)."""
    wanted = names(reqs)
    if not wanted or lock_text is None:
        return False
    locked = {canonical_name(p.split("==", 1)[0]) for p in locked_pins(lock_text, wanted, strict=False)}
    return wanted <= locked


def index_args(image: SpecImage) -> Tuple[str, ...]:
    args = [f"--index-url={image.pip_index}"] if image.pip_index else []
    args += [f"--index-url={u}" for u in image.pip_extra_index_url]
    return tuple(args)


def check_planned(image: SpecImage, planned_refs: Iterable[Optional[str]], workflow: str) -> None:
    """The plan gave the spec's tasks the ref this build pushes (both come from core/imagespec.py)."""
    planned = set(planned_refs)
    if planned != {image.ref}:
        raise FlytebuildError(
            f"ImageSpec `{image.name}`: planned as {', '.join(sorted(filter(None, planned)))} but would be built "
            f"as {image.ref}", target=workflow, fix="report this as a flytebuild bug")
