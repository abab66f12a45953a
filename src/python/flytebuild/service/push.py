"""`python -m flytebuild.service.push LAYOUT REF [JOBS]`: push an OCI image layout `package` built.

What `pants publish` runs for a flyte_image (an InteractiveProcess, as Pants' docker backend runs
`docker push`): the push is the only step that talks to the registry, and it happens when the user asks to
publish. Credentials come from the Docker config (`DOCKER_CONFIG`, else `~/.docker/config.json`).
"""
from __future__ import annotations

import signal
import sys
import threading
from typing import List, Optional

from flytebuild.oci import Reference, RegistryClient, RegistryError
from flytebuild.oci.publish import publish_layout


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print("usage: python -m flytebuild.service.push LAYOUT REF [JOBS]", file=sys.stderr)
        return 2
    layout, ref = args[0], args[1]
    jobs = int(args[2]) if len(args) == 3 else 4
    # Ctrl-C (Pants interrupts its InteractiveProcess) stops the uploads still queued or being sent, not only the
    # main thread: the manifest (the tag) is never PUT after it.
    cancelled = threading.Event()

    def interrupt(signum, frame):
        cancelled.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        client = RegistryClient(Reference.parse(ref).registry, cancelled=cancelled)
        result = publish_layout(layout, ref, client=client, jobs=jobs)
    except KeyboardInterrupt:
        print(f"interrupted: {ref} was not tagged", file=sys.stderr)
        return 130
    except (RegistryError, OSError, ValueError) as e:
        if cancelled.is_set():
            print(f"interrupted: {ref} was not tagged", file=sys.stderr)
            return 130
        print(f"error: cannot push {ref}: {e}", file=sys.stderr)
        return 1
    if result.skipped:
        print(f"{ref} already in the registry ({result.digest}): nothing pushed")
    else:
        print(f"pushed {ref} ({result.digest}, {result.bytes_uploaded / 1e6:.1f} MB uploaded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
