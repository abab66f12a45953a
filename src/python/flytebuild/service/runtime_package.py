"""The runtime package (src/python/flytebuild/runtime/, docs/runtime-contract.md) as every front end ships it:
its files (the Pants rules copy them into sandboxes under RUNTIME_DIR) and one fingerprint over them (a result
computed by an older runtime is not reused). Read as package data: nothing here imports the runtime's modules."""
from __future__ import annotations

import hashlib
from importlib import resources
from typing import Tuple

# The package's directory in a sandbox: a private top-level name (runtime/__main__.py loads it as such).
RUNTIME_DIR = "_flytebuild_runtime"


def package_files() -> Tuple[Tuple[str, bytes], ...]:
    """(file name, bytes) of every module of the runtime package, sorted by name."""
    package = resources.files("flytebuild.runtime")
    return tuple(sorted((f.name, f.read_bytes()) for f in package.iterdir() if f.name.endswith(".py")))


def fingerprint() -> str:
    h = hashlib.sha256()
    for name, data in package_files():
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()
