"""Everything the CLI learns from the user's own Python runs there as a subprocess.

flytekit (and the user's code) is imported only by the runtime package (`runtime/`), run with the
configured interpreter, cwd = the repository root and the source roots on PYTHONPATH — the same
layout the Pants adapter gives it in its sandbox, so both report identical paths.
"""
from __future__ import annotations

import atexit
import contextlib
import glob
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from typing import Dict, Mapping, Optional, Sequence, Tuple

from flytebuild.core.errors import FlytebuildError, IntrospectionError, UserCodeTimeout
from flytebuild.service import worker

_RUNTIME = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "runtime")

# Top-level module → distributions of the environment. packages_distributions() is 3.10+;
# older interpreters answer from each distribution's top_level.txt.
_INSTALLED = r"""
import importlib.metadata as m, json, sys
try:
    found = m.packages_distributions()
except AttributeError:
    found = {}
    for d in m.distributions():
        for top in (d.read_text("top_level.txt") or "").split():
            found.setdefault(top, []).append(d.metadata["Name"])
json.dump({k: sorted(set(v)) for k, v in found.items()}, sys.stdout)
"""


def runtime_command(command: str) -> list:
    """argv (after the interpreter) of a runtime command: the package runs from where flytebuild is installed."""
    main = os.path.join(_RUNTIME, "__main__.py")
    if not os.path.isfile(main):
        raise FlytebuildError(f"flytebuild's runtime package is missing from {_RUNTIME}", fix="reinstall flytebuild")
    return [main, command]


def runtime_fingerprint() -> str:
    """Over every module of the runtime package: part of each result-cache key (a newer runtime recomputes)."""
    from flytebuild.service.runtime_package import fingerprint

    return fingerprint()


def env_identity(python: Optional[str]) -> Optional[str]:
    """What identifies the user's environment without starting it: the interpreter and the distributions its
    site-packages directories hold (their `*.dist-info` names carry the versions; `.pth` files with their change
    times). None when the layout is not a recognisable prefix: then nothing is cached."""
    if not python:
        return None
    path = python if os.sep in python else shutil.which(python)
    if not path or not os.path.exists(path):
        return None
    prefix = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    parts = [os.path.abspath(path), os.path.realpath(path)]
    for site in sorted(glob.glob(os.path.join(prefix, "lib", "python*", "site-packages"))):
        for name in sorted(os.listdir(site)):
            if name.endswith((".dist-info", ".egg-info", ".egg-link")):
                parts.append(name)
            elif name.endswith(".pth"):
                parts.append(f"{name}:{os.stat(os.path.join(site, name)).st_mtime_ns}")
    if len(parts) == 2:
        return None
    cfg = os.path.join(prefix, "pyvenv.cfg")
    if os.path.exists(cfg):
        parts.append(f"{cfg}:{os.stat(cfg).st_mtime_ns}")
    return "|".join(parts)


def check_python(python: Optional[str], config_file: str) -> str:
    if not python:
        raise FlytebuildError(
            "No user Python is configured: flytebuild imports your workflows in your own environment",
            file=config_file,
            fix='set `python = ".venv/bin/python"` (an interpreter with flytekit) or FLYTEBUILD_PYTHON',
        )
    if os.sep not in python and shutil.which(python) is None:
        raise FlytebuildError(f"`{python}` is not on PATH", file=config_file, fix="set `python` to an interpreter path")
    return python


_NOT_USER_INPUT = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")
# What the shell or terminal changes from one command to the next, and our own switches: user code does not
# answer differently for them, so a new shell does not re-import every workflow.
_VOLATILE = frozenset({"_", "SHLVL", "PWD", "OLDPWD", "TERM", "COLUMNS", "LINES", "WINDOWID", "DISPLAY", "TMUX",
                       "TMUX_PANE", "STY", "SSH_AUTH_SOCK", "SSH_AGENT_PID", "SSH_CLIENT", "SSH_CONNECTION", "SSH_TTY",
                       "XDG_SESSION_ID"})


def user_env(root: str, source_roots: Sequence[str]) -> Dict[str, str]:
    paths = [os.path.join(root, r) if r else root for r in source_roots]
    env = {k: v for k, v in os.environ.items() if k not in _NOT_USER_INPUT}
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # keep the user's tree as it was
    return env


def user_env_inputs() -> Dict[str, str]:
    """The environment variables user code sees that can change its answers (`ImageSpec(registry=os.environ[...])`
    at import): part of every cached introspection's key. Pants gives its sandboxes a clean environment instead."""
    return {k: v for k, v in sorted(os.environ.items())
            if k not in _NOT_USER_INPUT and k not in _VOLATILE and not k.startswith("FLYTEBUILD_")}


TIMEOUT_SETTING = "`user_code_timeout` in flytebuild.toml (or FLYTEBUILD_USER_CODE_TIMEOUT)"


def debug_logging() -> None:
    """FLYTEBUILD_DEBUG=1: the worker client's debug lines (which requests it answered, why it fell back) on
    stderr. Called once, by cli/main.py."""
    if os.environ.get("FLYTEBUILD_DEBUG") and not worker.log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("flytebuild: debug: %(message)s"))
        worker.log.addHandler(handler)
        worker.log.setLevel(logging.DEBUG)


def worker_env(python: str) -> Optional[worker.UserEnv]:
    """The warm worker for `python` (docs/worker.md); None when it is turned off (FLYTEBUILD_WORKER=0, or no cache
    directory: FLYTEBUILD_CACHE_DIR="" and no FLYTEBUILD_WORKER_DIR) or the environment cannot be identified without
    starting it."""
    from flytebuild.cli.cache import cache_path

    if os.environ.get("FLYTEBUILD_WORKER", "1").strip().lower() in ("0", "", "off", "false", "no"):
        return None
    # FLYTEBUILD_WORKER_DIR: set by the Bazel persistent worker (cli/bazel_worker.py), whose actions turn the
    # cache directory off but may share one warm worker per output base
    socket_dir = os.environ.get("FLYTEBUILD_WORKER_DIR") or cache_path("workers")
    identity = env_identity(python)
    if not socket_dir or identity is None:
        return None
    try:
        idle = float(os.environ.get("FLYTEBUILD_WORKER_IDLE_TIMEOUT") or worker.UserEnv.idle_timeout)
    except ValueError:
        raise FlytebuildError(
            f"FLYTEBUILD_WORKER_IDLE_TIMEOUT={os.environ['FLYTEBUILD_WORKER_IDLE_TIMEOUT']!r} is not a number",
            fix="set it to the seconds an idle worker waits before exiting (default 600)") from None
    return worker.UserEnv(python, _RUNTIME, f"{identity}|{runtime_fingerprint()}", socket_dir, idle)


def _cold_env(python: str) -> worker.UserEnv:
    return worker.UserEnv(python, _RUNTIME, "", "")


def run_runtime(
    python: str, command: str, args: Sequence[str], root: str, source_roots: Sequence[str], cwd: str,
    *, timeout: Optional[float] = None, what: str = "", target: Optional[str] = None,
) -> worker.Result:
    """A runtime command in the user's environment (the source roots on PYTHONPATH), its output captured as text:
    forked from the warm worker when there is one, else a subprocess.

    Past `timeout` seconds the process is killed and a UserCodeTimeout names `what` and `target`."""
    runtime_command(command)  # the package is there
    env = worker_env(python)
    try:
        return worker.run(env or _cold_env(python), [command, *args], environ=user_env(root, source_roots),
                          cwd=cwd, timeout=timeout, text=True, warm=env is not None)
    except subprocess.TimeoutExpired:
        raise UserCodeTimeout(what or f"runtime {command}", timeout or 0, target=target,
                              setting=TIMEOUT_SETTING) from None


def popen_runtime(python: str, argv: Sequence[str], root: str, source_roots: Sequence[str], **kw):
    """subprocess.Popen of a runtime command (`argv`: the command and its arguments), forked from the warm worker
    when there is one. A worker process that comes back `lost` (the worker died) is run again by the caller."""
    runtime_command(argv[0])
    env = worker_env(python)
    return worker.popen(env or _cold_env(python), list(argv), environ=user_env(root, source_roots), cwd=root,
                        warm=env is not None, **kw)


def interrupt(proc) -> None:
    """After Ctrl-C: a worker's command gets SIGINT through the worker (its own session never sees the terminal's);
    a subprocess got it from the terminal. Either has the worker's grace to exit, then is killed."""
    if isinstance(proc, worker.WorkerProcess):
        proc.interrupt()
        return
    try:
        proc.wait(worker.GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()


def lost(proc) -> bool:
    """The warm worker died under `proc` (no exit status): run it again, as a plain subprocess."""
    if getattr(proc, "lost", False):
        worker.log.debug("worker: went away mid-request; running a subprocess instead")
        return True
    return False


def start_installed_query(python: str, config_file: str) -> subprocess.Popen:
    python = check_python(python, config_file)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.Popen(
        [python, "-I", "-c", _INSTALLED], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )


def finish_installed_query(proc: subprocess.Popen, python: str) -> Mapping[str, Tuple[str, ...]]:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise FlytebuildError(
            f"Cannot list the distributions installed for {python}: {err.strip()[-500:]}",
            fix="check that `python` in the configuration is a working interpreter",
        )
    return {k: tuple(v) for k, v in json.loads(out).items()}


def start_introspection(
    python: str, config_file: str, root: str, source_roots: Sequence[str], entrypoints: Sequence[str]
):
    python = check_python(python, config_file)
    argv = ["introspect", "--batch", *entrypoints]
    return popen_runtime(python, argv, root, source_roots, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Session:
    """A runtime `session` process: it introspected, and waits to serialize in the same interpreter, so a command
    that needs both imports flytekit and the user's modules once. Closed at the latest when the CLI exits."""

    def __init__(self, proc: subprocess.Popen, stderr_file) -> None:
        self.proc = proc
        self._stderr = stderr_file
        self.timeout: Optional[float] = None  # per answer (user_code_timeout), set by the first reader
        self._sent: list = []  # the lines written on stdin, replayed if the warm worker dies mid-session
        atexit.register(self.close)

    def stderr(self) -> str:
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()

    def _readline(self, what: str, target: Optional[str]) -> str:
        """The next stdout line ("" when the process ended first). Past `self.timeout` (the user's code blocks) the
        process is killed and a UserCodeTimeout names `what` and `target`."""
        box: Dict[str, str] = {}
        stdout = self.proc.stdout
        reader = threading.Thread(target=lambda: box.setdefault("line", stdout.readline()), daemon=True)
        reader.start()
        try:
            reader.join(self.timeout)
        except BaseException:  # Ctrl-C: the user's code must not run on without us
            self.proc.kill()
            raise
        if reader.is_alive():
            self.proc.kill()
            reader.join(10)
            self.close()
            raise UserCodeTimeout(what, self.timeout or 0, target=target, setting=TIMEOUT_SETTING)
        return box.get("line", "")

    def read_answer(self, what: str = "The runtime session", target: Optional[str] = None) -> Tuple[dict, str]:
        """The next answer line ({} when the process died first) and its stderr so far."""
        line = self._readline(what, target)
        if not line and getattr(self.proc, "fallback", None) is not None:
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
            if lost(self.proc):  # the warm worker died: the same conversation again with a subprocess
                dead = self.proc
                for stream in (dead.stdin, dead.stdout):
                    if stream is not None:
                        with contextlib.suppress(OSError, ValueError):
                            stream.close()
                self._stderr.seek(0)
                self._stderr.truncate()  # the replay's stderr only, as if the worker had never been there
                self.proc = dead.fallback()
                for sent in self._sent:
                    self._readline(what, target)
                    self.proc.stdin.write(sent)
                    self.proc.stdin.flush()
                line = self._readline(what, target)
        try:
            return json.loads(line), self.stderr()
        except ValueError:
            self.close()
            return {}, self.stderr()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None and not self.proc.stdin.closed

    def serialize(self, pairs: Sequence[Tuple[str, str]]) -> Tuple[dict, str]:
        """`serialize --batch` for (request.json, out_dir) pairs, in this process: (its answer, stderr)."""
        line = json.dumps({"serialize": [list(p) for p in pairs]}) + "\n"
        self._sent.append(line)
        try:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
        except OSError:
            self.close()
            return {}, self.stderr()
        answer = self.read_answer("Serialization", None)
        self.close()
        return answer

    def close(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()  # EOF: nothing (more) to serialize, the process exits
            except OSError:
                pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()


def start_session(
    python: str, config_file: str, root: str, source_roots: Sequence[str], entrypoints: Sequence[str]
) -> Session:
    python = check_python(python, config_file)
    stderr_file = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
    # stderr to a file: a chatty user module cannot block the process on a full pipe
    proc = popen_runtime(python, ["session", *entrypoints], root, source_roots, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=stderr_file, text=True)
    return Session(proc, stderr_file)


def finish_session_introspection(
    session: Session, targets: Sequence[Tuple[str, str]], timeout: Optional[float] = None
) -> Dict[str, dict]:
    """The session's introspection answer, as `finish_introspection` reads it."""
    session.timeout = timeout
    answer, err = session.read_answer(f"Introspection of {', '.join(e for _, e in targets)}",
                                      ", ".join(t for t, _ in targets))
    return _introspection_answers(answer, err, session.proc.returncode, targets)


def finish_introspection(
    proc: subprocess.Popen, targets: Sequence[Tuple[str, str]], timeout: Optional[float] = None
) -> Dict[str, dict]:
    """`targets`: (target name, module-form entrypoint). Returns entrypoint → introspection data."""
    try:
        out, err = proc.communicate(timeout=timeout)
        if lost(proc):
            proc = proc.fallback()
            out, err = proc.communicate(timeout=timeout)
    except BaseException as e:  # a timeout or Ctrl-C: the user's code must not run on without us
        proc.kill()
        proc.communicate()
        if not isinstance(e, subprocess.TimeoutExpired):
            raise
        names = ", ".join(t for t, _ in targets)
        raise UserCodeTimeout(f"Introspection of {', '.join(e for _, e in targets)}", timeout or 0, target=names,
                              setting=TIMEOUT_SETTING) from None
    try:
        answer = json.loads(out)
    except ValueError:
        answer = {}
    return _introspection_answers(answer, err, proc.returncode, targets)


def _introspection_answers(
    answer: dict, err: str, returncode: Optional[int], targets: Sequence[Tuple[str, str]]
) -> Dict[str, dict]:
    try:
        results = answer["results"]
    except (KeyError, TypeError):
        results = {}
    found: Dict[str, dict] = {}
    for target, entrypoint in targets:
        data = results.get(entrypoint)
        if data is None:
            error = {
                "kind": "introspection_failed",
                "message": err.strip()[-2000:] or f"no output (exit code {returncode})",
            }
            raise IntrospectionError.from_runtime(target, entrypoint, error)
        # A workflow's own error stays with it (parse_introspection raises it): the others still plan.
        found[entrypoint] = data
    return found


_VERSIONS: Dict[str, Optional[str]] = {}


def python_version(python: str) -> Optional[str]:
    """major.minor of an interpreter (None if it does not answer); asked once per process."""
    if python not in _VERSIONS:
        try:
            out = subprocess.run([python, "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=60)
            _VERSIONS[python] = out.stdout.strip() if out.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            _VERSIONS[python] = None
    return _VERSIONS[python]


def warn(message: str) -> None:
    """A warning on stderr, worded for the CLI (or the Bazel rules running it)."""
    from flytebuild.core.wording import in_words

    print(in_words(f"flytebuild: warning: {message}", os.environ.get("FLYTEBUILD_FRONT_END", "cli")),
          file=sys.stderr, flush=True)


def progress(message: str) -> None:
    """One line of progress on stderr, for people (not when stderr is a file or pipe)."""
    if sys.stderr.isatty():
        print(message, file=sys.stderr, flush=True)



def validate_pod_templates(project, plans) -> None:
    """runtime/validate_pod.py over every pod template of `plans` (the `kubernetes` client of the
    user's environment); the first invalid one raises, as the Pants adapter reports it."""
    from flytebuild.core.pod_templates import validation_batch, validation_error, validation_run_error

    per_plan = {plan.address: validation_batch(plan) for plan in plans}
    batch = {
        f"{address}|{key}": {"file": e["file"], "spec": e["spec"]}
        for address, entries in per_plan.items()
        for key, e in entries.items()
    }
    if not batch:
        return
    python = check_python(project.python, project.config_file)
    # The same templates in the same environment get the same answer (core/result_cache.py).
    from flytebuild.cli.cache import cache_path
    from flytebuild.core.result_cache import ResultCache, result_key

    cache = ResultCache(cache_path("results"))
    env = env_identity(python)
    key = result_key("validate_pod", batch, env, runtime_fingerprint()) if env else None
    cached = cache.get(key) if key else None
    if cached is not None:
        out = json.loads(cached)
    else:
        with tempfile.TemporaryDirectory(prefix="flytebuild-pods-") as tmp:
            request = os.path.join(tmp, "pods.json")
            with open(request, "w", encoding="utf-8") as f:
                json.dump(batch, f, sort_keys=True)
            proc = run_runtime(python, "validate_pod", ["--batch", request], project.root, (), tmp,
                               timeout=project.user_code_timeout, what="Pod template validation",
                               target=", ".join(sorted(per_plan)))
        try:
            out = json.loads(proc.stdout)
        except ValueError:
            raise FlytebuildError(
                "Pod template validation failed: " + (proc.stderr.strip()[-2000:] or "no output"),
                fix="pod templates are checked with the `kubernetes` client: install it in the environment of "
                "`python`",
            ) from None
        if key and "error" not in out:
            cache.put(key, json.dumps(out, sort_keys=True))
    run_error = validation_run_error(out)
    if run_error is not None:
        raise run_error
    results = out.get("results") or {}
    for address, entries in sorted(per_plan.items()):
        mine = {k.split("|", 1)[1]: v for k, v in results.items() if k.split("|", 1)[0] == address}
        problem = validation_error(entries, mine, target=address)
        if problem is not None:
            raise problem
