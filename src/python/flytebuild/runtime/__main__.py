"""The one way into the runtime: `python <this directory>/__main__.py <command> [args...]` (or `python <this
directory> <command> ...`), in the user's environment, cwd = the repository root (or a sandbox laid out like it),
the source roots on PYTHONPATH. docs/runtime-contract.md describes each command's request and answer.

The directory is loaded as the package `_flytebuild_runtime`, whatever it is called on disk (`flytebuild/runtime`
in a checkout or an installed wheel, `_flytebuild_runtime` in a Pants sandbox): a private top-level name, so it can
neither collide with a user module nor reach `flytebuild`, which is not installed in the user's environment.
"""
import importlib
import importlib.util
import os
import sys

PACKAGE = "_flytebuild_runtime"
COMMANDS = ("introspect", "serialize", "session", "deploy", "run", "remote", "check_references", "validate_pod",
            "worker")


def _load_package(here: str) -> None:
    spec = importlib.util.spec_from_file_location(
        PACKAGE, os.path.join(here, "__init__.py"), submodule_search_locations=[here])
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    spec.loader.exec_module(package)


def _drop_own_dir_from_path(here: str) -> None:
    """`python <dir>/__main__.py` puts <dir> first on sys.path; user code must not see it (a user module named
    `run` or `deploy` would be shadowed by ours) unless it is also on PYTHONPATH."""
    pythonpath = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if sys.path and os.path.abspath(sys.path[0] or os.getcwd()) == here and here not in pythonpath:
        del sys.path[0]


def main(argv):
    # Run as a script, `__file__` is this file; run by a pex venv's interpreter, whatever path it was given
    # (this file, or its directory).
    here = os.path.abspath(__file__)
    if not os.path.isdir(here):
        here = os.path.dirname(here)
    _drop_own_dir_from_path(here)
    if len(argv) < 2 or argv[1] not in COMMANDS:
        sys.stderr.write(f"usage: python {argv[0]} <{'|'.join(COMMANDS)}> [args...]\n")
        return 2
    _load_package(here)
    module = importlib.import_module(f"{PACKAGE}.{argv[1]}")
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
