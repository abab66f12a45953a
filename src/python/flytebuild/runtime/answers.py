"""How every runtime command answers: one JSON document (or the program's output) alone on stdout, everything user
code and flytekit print on stderr; errors either as `{"error": {...}}` (introspect, serialize, deploy) or as one
paragraph on stderr (run, remote). docs/runtime-contract.md lists each command's answers."""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import typing


class IntrospectError(Exception):
    """User code could not be loaded or walked (introspect, serialize): answered as {"error": to_json()}."""

    def __init__(self, kind: str, message: str, file: typing.Optional[str] = None, tb: str = ""):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.file = file
        self.tb = tb

    def to_json(self) -> dict:
        return {"kind": self.kind, "message": self.message, "file": self.file, "traceback": self.tb}


class RunError(Exception):
    """Bad input or an entity that cannot run (locally or on the cluster): reported as one paragraph, exit 2."""

    def __init__(self, what: str, fix: typing.Optional[str] = None, file: typing.Optional[str] = None):
        super().__init__(what)
        self.what = what
        self.fix = fix
        self.file = file


def paragraph(e: RunError, target: typing.Optional[str]) -> str:
    """`error: <what> (target T, file F). Fix: <fix>.` then the detail after a blank line (a user traceback)."""
    where = ", ".join(x for x in (f"target {target}" if target else "", f"file {e.file}" if e.file else "") if x)
    what, _, detail = e.what.partition("\n\n")
    msg = what.rstrip(".") + (f" ({where})" if where else "") + "."
    if e.fix:
        msg += f" Fix: {e.fix.rstrip('.')}."
    if detail:
        msg += "\n\n" + detail
    return f"error: {msg}"


def log(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def stdout_answer(body: typing.Callable[[], typing.Tuple[str, int]]) -> int:
    """Run `body` -> (text, exit code) and write `text` as the only thing on stdout.

    While `body` runs, fd 1 points at stderr: user prints, flytekit and C extensions cannot corrupt the answer."""
    sys.stdout.flush()
    out_fd = os.dup(1)
    os.dup2(2, 1)
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    try:
        text, code = body()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout = real_stdout
    with os.fdopen(out_fd, "w", encoding="utf-8") as out:
        out.write(text)
    if threading.current_thread() is threading.main_thread():
        # Answered: a Ctrl-C from now on has nothing left to stop. Raised while the interpreter shuts down, it would
        # only print a KeyboardInterrupt traceback ("Exception ignored in ...") under a complete answer.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code


def json_stdout(body: typing.Callable[[], typing.Tuple[typing.Any, int]],
                encode: typing.Callable[[typing.Any], str]) -> int:
    """`stdout_answer` for a JSON answer: `body` -> (result, exit code), `encode(result)` printed."""

    def text() -> typing.Tuple[str, int]:
        result, code = body()
        return encode(result) + "\n", code

    return stdout_answer(text)


def request_answer(argv: typing.List[str], what: str, usage: str,
                   make_request: typing.Callable[[typing.Any, str], typing.Any],
                   run: typing.Callable[[typing.Any, typing.List[str]], typing.Tuple[str, int]]) -> int:
    """`run` and `remote`: read the request file argv[1], run it with the rest of argv, and answer on stdout; a
    RunError is one paragraph on stderr naming the request's target, exit 2."""
    if len(argv) < 2:
        log(f"usage: {usage}")
        return 2

    def body() -> typing.Tuple[str, int]:
        target = None
        try:
            path = argv[1]
            try:
                with open(path, encoding="utf-8") as f:
                    raw = json.load(f)
            except (OSError, ValueError) as e:
                raise RunError(f"cannot read {what} {path}: {e}")
            req = make_request(raw, path)
            target = req.target
            return run(req, argv[2:])
        except RunError as e:
            log(paragraph(e, target))
            return "", 2

    return stdout_answer(body)
