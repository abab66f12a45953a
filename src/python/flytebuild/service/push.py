"""`python -m flytebuild.service.push LAYOUT REF [JOBS]`: push an OCI image layout `package` built.

What `pants publish` runs for a flyte_image (an InteractiveProcess, as Pants' docker backend runs
`docker push`): the push is the only step that talks to the registry, and it happens when the user asks to
publish. Credentials come from the Docker config (`DOCKER_CONFIG`, else `~/.docker/config.json`).
"""
from __future__ import annotations

import sys
from typing import List, Optional

from flytebuild.oci import RegistryError
from flytebuild.oci.publish import publish_layout


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print("usage: python -m flytebuild.service.push LAYOUT REF [JOBS]", file=sys.stderr)
        return 2
    layout, ref = args[0], args[1]
    jobs = int(args[2]) if len(args) == 3 else 4
    try:
        result = publish_layout(layout, ref, jobs=jobs)
    except (RegistryError, OSError, ValueError) as e:
        print(f"error: cannot push {ref}: {e}", file=sys.stderr)
        return 1
    if result.skipped:
        print(f"{ref} already in the registry ({result.digest}): nothing pushed")
    else:
        print(f"pushed {ref} ({result.digest}, {result.bytes_uploaded / 1e6:.1f} MB uploaded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
