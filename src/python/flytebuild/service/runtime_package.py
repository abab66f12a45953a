"""The runtime package (src/python/flytebuild/runtime/, docs/runtime-contract.md) as every front end ships it:
its files (the Pants rules copy them into sandboxes under RUNTIME_DIR) and one fingerprint over them (a result
computed by an older runtime is not reused). Read as package data: nothing here imports the runtime's modules --
except the few that import only the standard library, which a front end may load to run the very code the runtime
runs (`stdlib_module`), so a decision both sides take has one implementation."""
from __future__ import annotations

import functools
import hashlib
import importlib.util
from importlib import resources
from types import ModuleType
from typing import Tuple

# The package's directory in a sandbox: a private top-level name (runtime/__main__.py loads it as such).
RUNTIME_DIR = "_flytebuild_runtime"
# Runtime modules that import nothing but the standard library and run on Python >= 3.9 (tests/test_layering.py
# checks both): loadable where flytekit is not, e.g. in pantsd.
STDLIB_MODULES = ("ledger",)


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


@functools.lru_cache(maxsize=None)
def stdlib_module(name: str) -> ModuleType:
    """A STDLIB_MODULES module of the runtime package, loaded from its file under a private name (never as
    `flytebuild.runtime.*`, which the layers forbid: the rest of that package needs flytekit)."""
    if name not in STDLIB_MODULES:
        raise ValueError(f"runtime module {name!r} is not standard-library only: run it in the user's environment")
    path = resources.files("flytebuild.runtime").joinpath(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"{RUNTIME_DIR}_{name}", str(path))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
