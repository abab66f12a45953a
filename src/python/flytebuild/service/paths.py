"""Every path the service writes from a name (an image name, a target name) stays inside its output directory."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

from flytebuild.core.errors import FlytebuildError


def inside(root: Union[str, Path], relative: str, *, target: str, field: str, value: str) -> Path:
    """`root/relative`, or a FlytebuildError naming the target and the field whose value would escape `root`
    (`..` components, an absolute path). Checked on the normalized path, before anything is written."""
    base = os.path.abspath(root)
    path = os.path.normpath(os.path.join(base, relative))
    if os.path.isabs(relative) or not (path + os.sep).startswith(base.rstrip(os.sep) + os.sep) or path == base:
        raise FlytebuildError(
            f"`{field}` = {value!r} of {target} would write {relative!r} outside the output directory {base}",
            target=target,
            fix=f"give `{field}` a name without `..` components or a leading `/` (e.g. `team/app`)",
        )
    return Path(path)
