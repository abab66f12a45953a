"""Pure flytebuild logic: model, fingerprints, lockfile pins, planning and reports.

Runs inside Pants' own CPython 3.9 process and inside the CLI, so it imports neither pants nor
flytekit; the only third-party dependency is `blake3`.
"""
