"""`session <entrypoint>...`: introspection, then serialization in the same process, so a CLI command that needs
both (`flytebuild deploy`, `package`) imports flytekit and the user's modules once (docs/runtime-contract.md).

stdout, line 1: `introspect --batch <entrypoint>...`'s answer, on one line. Then the caller, having planned, writes
one line on stdin: {"serialize": [["<request.json>", "<out_dir>"], ...]} (an empty line or EOF: nothing to
serialize, exit 0), optionally with "files": {"<relative path>": "<base64>"}, written (under the working directory)
before serializing: a caller that has the requests as contents, not paths (Pants, through the warm worker); stdout,
line 2: `serialize --batch`'s answer for those, on one line. Everything user code and flytekit print goes to stderr.
Exit 0 (each answer reports its own errors), 2 for a malformed stdin line.
"""
from __future__ import annotations

import base64
import json
import os
import sys
import typing

from . import introspect, serialize


def _line(out: typing.TextIO, text: str) -> None:
    # JSON strings hold no raw newline: joining the pretty-printed lines keeps the value and makes it one line.
    out.write(" ".join(text.splitlines()) + "\n")
    out.flush()


def _write_files(files: typing.Mapping[str, str]) -> None:
    top = os.getcwd()
    for rel, data in files.items():
        path = os.path.normpath(os.path.join(top, rel))
        if os.path.isabs(rel) or not path.startswith(top.rstrip(os.sep) + os.sep):
            raise ValueError(f"path outside the working directory: {rel}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))


def main(argv: typing.List[str]) -> int:
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # user prints (and C extensions writing to fd 1) land on stderr, never in our answers
    sys.stdout = sys.stderr
    answer, _ = introspect.answer(["introspect", "--batch", *argv[1:]])
    _line(out, introspect.dumps(answer))
    request = sys.stdin.readline()
    if not request.strip():
        return 0
    try:
        line = json.loads(request)
        pairs = line["serialize"]
        argv2 = ["serialize", "--batch", *(p for pair in pairs for p in pair)]
        _write_files(line.get("files") or {})
    except (ValueError, KeyError, TypeError) as e:
        _line(out, json.dumps({"error": {"kind": "bad_request", "message": f"session: bad serialize line: {e}"}}))
        return 2
    answer, _ = serialize.answer(argv2)
    _line(out, json.dumps(answer, sort_keys=True))
    return 0
