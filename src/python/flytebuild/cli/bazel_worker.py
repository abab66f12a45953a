"""`python -m flytebuild.cli.bazel_worker`: the `flytebuild` CLI as a Bazel persistent worker (JSON protocol).

`flyte_settings(persistent_worker = True)` runs the plan and package actions through it (docs/worker.md#bazel).
Bazel starts it with `--persistent_worker` and writes work requests on stdin (`{"arguments": [...], "inputs":
[{"path", "digest"}], "requestId": n}`); it answers each with one line on stdout (`{"exitCode", "output",
"requestId"}`). Without `--persistent_worker` (a strategy other than `worker` ran the action) it is the CLI with
its arguments in the `@file`.

Why it is built this way:
- Bazel 4.2.3 writes a request as one JSON object and *no newline* after it: reading lines waits forever (the hang
  of the first attempt). Requests are decoded from raw reads, whatever separates them.
- stdout belongs to the protocol: a stray print (ours, a module's, the CLI's) would corrupt it, so fd 1 is pointed
  at stderr (Bazel's worker log) and responses go to a private copy of the original pipe.
- Each request runs the CLI in a fork of this process (flytebuild's modules imported once; the CLI's per-process
  memos start empty every time), stdin /dev/null as in a plain action, stdout+stderr captured as the `output`.
  The user's code is forked from the warm worker of the user's environment (runtime/worker.py), whose socket
  lives in the output base, so user modules are imported fresh per request. flytebuild is imported from the real
  files behind the sandbox's symlinks, so every Bazel worker of the build (one per mnemonic and instance) shares
  that one warm process.
- Bazel 4.2.3 keeps a worker alive when its tool files change: when the digests of flytebuild's own sources in a
  request differ from the first request's, the loaded code is stale, so that request runs in a fresh
  interpreter and the worker then re-executes itself.
- An unsandboxed worker runs in the execroot, which shows every file of the workspace: a module missing from
  `deps` would import there and fail in a sandboxed action. The worker refuses to run without
  `--worker_sandboxing` rather than answer what a plain action would not.
"""
from __future__ import annotations

import codecs
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import traceback
from typing import Iterator, List, Optional, Tuple

_PRELOAD = ("flytebuild.cli.main", "flytebuild.cli.planning", "flytebuild.cli.registration",
            "flytebuild.cli.userenv", "flytebuild.core.report")
SANDBOX_FLAG = "--worker_sandboxing"


@dataclasses.dataclass(frozen=True)
class WorkRequest:
    arguments: Tuple[str, ...]
    request_id: int
    tools: Tuple[Tuple[str, str], ...]  # (path, digest) of flytebuild's own sources among the inputs


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where Bazel started the worker: `output_base` holds the user-environment workers' sockets (shared by every
    worker of the build, gone with `bazel clean --expunge`)."""

    output_base: str
    sandboxed: bool


def layout(cwd: str) -> Optional[Layout]:
    """Bazel 4.2.3 starts a sandboxed worker in `<output_base>/bazel-workers/worker-<id>-<mnemonic>/<workspace>`,
    an unsandboxed one in `<output_base>/execroot/<workspace>`; None for anything else."""
    parent = os.path.dirname(os.path.abspath(cwd))
    if os.path.basename(parent) == "execroot":
        return Layout(os.path.dirname(parent), False)
    if os.path.basename(os.path.dirname(parent)) == "bazel-workers":
        return Layout(os.path.dirname(os.path.dirname(parent)), True)
    return None


def read_requests(fd: int, package_dir: str) -> Iterator[WorkRequest]:
    """The work requests on `fd` until EOF, however Bazel separates them (nothing, a newline)."""
    decoder, text = json.JSONDecoder(), codecs.getincrementaldecoder("utf-8")()
    buffer = ""
    while True:
        buffer = buffer.lstrip()
        obj = None
        # A request can only be complete when the text so far ends with "}": decoding only then parses a large
        # request (tens of thousands of inputs) once, not once per read.
        if buffer.endswith("}"):
            try:
                obj, end = decoder.raw_decode(buffer)
            except json.JSONDecodeError as e:
                if e.pos < len(buffer):  # not cut short but wrong: no read will ever complete it
                    raise SystemExit(f"flytebuild Bazel worker: malformed work request ({e.msg} at character "
                                     f"{e.pos}); Bazel and this worker disagree on the JSON worker protocol")
        if obj is None:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return
            buffer += text.decode(chunk)
            continue
        buffer = buffer[end:]
        if obj.get("cancel"):  # a cancel request (only with supports-worker-cancellation, which we do not declare)
            continue
        yield _request(obj, package_dir)


def _request(obj: dict, package_dir: str) -> WorkRequest:
    prefix = package_dir.rstrip("/") + "/"
    tools = sorted((i.get("path", ""), i.get("digest", "")) for i in obj.get("inputs") or ()
                   if i.get("path", "").startswith(prefix))
    return WorkRequest(tuple(obj.get("arguments") or ()), int(obj.get("requestId") or 0), tuple(tools))


def expand(argv: List[str]) -> List[str]:
    """A trailing `@file` (the action's param file, one argument per line) becomes its arguments."""
    if argv and argv[-1].startswith("@"):
        with open(argv[-1][1:], encoding="utf-8") as f:
            return argv[:-1] + f.read().splitlines()
    return argv


def _cli(args: List[str]) -> int:
    from flytebuild.cli.main import main

    try:
        return main(args)
    except SystemExit as e:  # argparse; the code is what `python -m flytebuild.cli` would exit with
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)


def _die_with(parent: int) -> None:
    """When Bazel kills the worker (`bazel shutdown`; on Ctrl-C Bazel 4.2.3 lets a busy worker finish), the fork
    must not run on: its hang-up then stops the user's code in the user-environment worker, as Ctrl-C does for the
    CLI. Linux only; elsewhere the command runs to its end."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the worker died before prctl
        os._exit(1)


def _forked(args: List[str], protocol_fd: int) -> Tuple[int, str]:
    """The CLI in a child of this process, as `python -m flytebuild.cli` in a plain action would run it."""
    with tempfile.TemporaryFile() as out:
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child leaves through os._exit
            code = 1
            try:
                _die_with(parent)
                os.close(protocol_fd)
                devnull = os.open(os.devnull, os.O_RDONLY)
                os.dup2(devnull, 0)  # never the request pipe: a command reading stdin would eat Bazel's requests
                os.dup2(out.fileno(), 1)
                os.dup2(out.fileno(), 2)
                code = _cli(args)
            except BaseException:  # what an uncaught exception prints, and its exit status
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        return os.waitstatus_to_exitcode(status), out.read().decode("utf-8", "replace")


def _fresh(args: List[str]) -> Tuple[int, str]:
    """The CLI in a new interpreter: flytebuild's sources changed under this worker."""
    proc = subprocess.run([sys.executable, "-m", "flytebuild.cli", *args], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc.returncode, proc.stdout.decode("utf-8", "replace")


def refusal(where: Optional[Layout], cwd: str) -> Optional[str]:
    if where is not None and where.sandboxed:
        return None
    return (f"flytebuild's Bazel worker runs only in a worker sandbox (it was started in {cwd}): build with "
            f"`{SANDBOX_FLAG}` (e.g. `build {SANDBOX_FLAG}` in .bazelrc, next to "
            "`--experimental_worker_allow_json_protocol`), or set `persistent_worker = False` on flyte_settings. "
            "An unsandboxed worker sees every file of the workspace, so a module missing from `deps` would import "
            "there and fail in a plain action.\n")


def _respond(protocol, request: WorkRequest, code: int, output: str) -> None:
    protocol.write(json.dumps({"exitCode": code, "output": output, "requestId": request.request_id}) + "\n")
    protocol.flush()


def _worker_argv(package_dir: str) -> List[str]:
    return [sys.executable, "-m", "flytebuild.cli.bazel_worker", "--persistent_worker", "--sources", package_dir]


def _restart(protocol_fd: int, package_dir: str) -> None:
    """This process again, with today's sources: the same pid and pipes, so Bazel sees the same worker. Bazel sends
    the next request only after this answer, so no read-ahead is lost."""
    print("flytebuild: bazel worker: flytebuild's sources changed; restarting", file=sys.stderr, flush=True)
    os.dup2(protocol_fd, 1)
    os.execv(sys.executable, _worker_argv(package_dir))


def serve(package_dir: str) -> int:
    cwd = os.getcwd()
    where = layout(cwd)
    if where is not None:
        # the CLI's warm user-environment worker (Bazel actions turn the CLI's cache directory off, not this)
        os.environ.setdefault("FLYTEBUILD_WORKER_DIR", os.path.join(where.output_base, "flytebuild-workers"))
    protocol_fd = os.dup(1)
    os.dup2(2, 1)  # whatever prints on stdout from now on lands in the worker log, not in the protocol
    protocol = os.fdopen(protocol_fd, "w", encoding="utf-8")
    for name in _PRELOAD:
        __import__(name)
    loaded = None
    for request in read_requests(0, package_dir):
        refused = refusal(where, cwd)
        loaded = request.tools if loaded is None else loaded
        if refused:
            _respond(protocol, request, 1, refused)
        elif request.tools != loaded:
            _respond(protocol, request, *_fresh(list(request.arguments)))
            _restart(protocol_fd, package_dir)
        else:
            _respond(protocol, request, *_forked(list(request.arguments), protocol_fd))
    return 0


def _from_real_sources() -> None:
    """Start again with flytebuild imported from the files the sandbox's symlinks point at: the runtime directory,
    part of the user-environment worker's key, is then the same for every Bazel worker of the build (one per
    mnemonic and instance, each in its own sandbox), so they share one warm process. `--sources` keeps the path the
    requests name flytebuild's sources by (relative to the working directory)."""
    import flytebuild

    package_dir = os.path.relpath(os.path.dirname(os.path.abspath(flytebuild.__file__)))
    real_root = os.path.dirname(os.path.dirname(os.path.realpath(flytebuild.__file__)))
    os.execve(sys.executable, _worker_argv(package_dir), {**os.environ, "PYTHONPATH": real_root})


def main(argv: List[str]) -> int:
    if "--persistent_worker" not in argv:
        return _cli(expand(argv))
    if "--sources" not in argv:
        _from_real_sources()
    return serve(argv[argv.index("--sources") + 1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
