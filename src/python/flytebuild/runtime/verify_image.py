"""Run INSIDE a built image by `flyte-verify`: import each task module, find pyflyte-execute.

Usage:  python3 - MODULE [MODULE ...]   (the script is piped on stdin; nothing is added to the image)

Self-contained (stdlib only) and Python 3 compatible with any base: not a command of the runtime's entry point.
Prints one JSON object (docs/runtime-contract.md, verify_image.py).
"""
import importlib
import json
import shutil
import sys


def main(modules):
    results = {}
    for name in modules:
        try:
            importlib.import_module(name)
            results[name] = None
        except BaseException as e:  # a module may call sys.exit or raise anything at import
            results[name] = "%s: %s" % (type(e).__name__, e)
    print(json.dumps({"python": sys.executable, "pyflyte_execute": shutil.which("pyflyte-execute"),
                      "pyflyte_fast_execute": shutil.which("pyflyte-fast-execute"), "modules": results},
                     sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1:])
