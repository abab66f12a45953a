"""The runtime: the code flytebuild runs in the user's environment (their interpreter, their flytekit), never in
Pants' or flytebuild's own. A package of its own that imports no `flytebuild`: shipped whole (this directory) into
sandboxes and run as `python <dir>/__main__.py <command> ...` (see __main__.py, docs/runtime-contract.md)."""
