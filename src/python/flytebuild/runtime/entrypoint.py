"""Loading the user's entrypoint, and what its failures look like: tracebacks trimmed to the user's frames, paths
relative to the working directory (the repository root), `{"error": {...}}` answers.

Shared by every command that imports user code (introspect, serialize, run, remote, check_references)."""
from __future__ import annotations

import importlib
import os
import sys
import traceback
import typing

from .answers import IntrospectError

_HERE = os.path.dirname(os.path.abspath(__file__))
_CWD = os.getcwd()  # the command's working directory (worker.py resets it in each forked runner)


# ----------------------------------------------------------------------------------------------------------------
# paths and tracebacks


def relpath(path: typing.Optional[str]) -> typing.Optional[str]:
    """Path relative to cwd with forward slashes; None when unknown or outside cwd (varies by machine)."""
    if not path or path.startswith("<"):
        return None
    ap = os.path.abspath(path)
    rel = os.path.relpath(ap, _CWD)
    if rel == ".." or rel.startswith(".." + os.sep):
        return None
    return rel.replace(os.sep, "/")


def _scrub(text: str) -> str:
    """Make absolute paths under cwd relative, so messages do not vary by checkout location."""
    return text.replace(_CWD + os.sep, "")


def _system_dirs() -> typing.List[str]:
    dirs = set()
    for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        if p:
            dirs.add(os.path.abspath(p) + os.sep)
    return sorted(dirs)


def is_user_file(filename: str) -> bool:
    if not filename or filename.startswith("<"):
        return False
    ap = os.path.abspath(filename)
    if os.path.dirname(ap) == _HERE:
        return False  # the runtime package's own modules
    parts = ap.replace(os.sep, "/").split("/")
    if "site-packages" in parts or "dist-packages" in parts:
        return False
    return not any(ap.startswith(d) for d in _system_dirs())


def user_traceback(exc: BaseException) -> typing.Tuple[str, typing.Optional[str]]:
    """The exception's traceback trimmed to frames in user files, and the innermost user file (relative)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if is_user_file(f.filename)]
    last_file = relpath(frames[-1].filename) if frames else None
    if isinstance(exc, SyntaxError) and exc.filename and is_user_file(exc.filename):
        last_file = relpath(exc.filename)
    lines = []
    if frames:
        lines.append("Traceback (most recent call last):\n")
        lines.extend(traceback.format_list(frames))
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return _scrub("".join(lines)), last_file


def exc_message(exc: BaseException) -> str:
    return _scrub("".join(traceback.format_exception_only(type(exc), exc)).strip())


# ----------------------------------------------------------------------------------------------------------------
# loading the entrypoint


def _module_for_file(path: str) -> str:
    """Module name of a .py file: matched against sys.path (the most specific entry wins), else found by walking
    up the package directories (what `pyflyte run file.py` does) and putting that root on sys.path."""
    ap = os.path.abspath(path)
    best = None
    for entry in sys.path:
        root = os.path.abspath(entry or _CWD)
        if not os.path.isdir(root):
            continue
        rel = os.path.relpath(ap, root)
        if rel.startswith(".." + os.sep) or rel == "..":
            continue
        parts = rel[: -len(".py")].split(os.sep)
        if not all(p.isidentifier() for p in parts):
            continue
        if best is None or len(root) > len(best[0]):
            best = (root, parts)
    if best is None:
        root = os.path.dirname(ap)
        parts = [os.path.splitext(os.path.basename(ap))[0]]
        while os.path.exists(os.path.join(root, "__init__.py")):
            parts.insert(0, os.path.basename(root))
            root = os.path.dirname(root)
        sys.path.insert(0, root)
        best = (root, parts)
    parts = best[1]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _find_file(target: str) -> str:
    """A file path is relative to cwd; failing that, relative to a source root on sys.path (so that
    `baked/workflows.py` works with PYTHONPATH=examples, as in `cd examples && pyflyte run baked/workflows.py`)."""
    if os.path.isfile(target) or os.path.isabs(target):
        return target
    for entry in sys.path:
        root = os.path.abspath(entry or _CWD)
        if relpath(root) is None or not is_user_file(os.path.join(root, "x")):
            continue  # only source roots inside the repo, never the interpreter's own dirs
        candidate = os.path.join(root, target)
        if os.path.isfile(candidate):
            return relpath(candidate) or candidate
    return target


def _allow_ellipsis_reference_workflows() -> None:
    """flytekit 1.16's `reference_workflow` checks its function like a real workflow's, so the natural body of a
    reference, `...`, fails at import ("must return a value"); `reference_task` and `reference_launch_plan` pass
    `is_reference_entity=True` and do not. Give reference workflows the same treatment. Only the call made from
    inside `reference_workflow` is changed; real workflows keep flytekit's check."""
    try:
        from flytekit.core import workflow as wf_module
    except Exception:  # flytekit missing: the import of user code reports it
        return
    original = getattr(wf_module, "transform_function_to_interface", None)
    if original is None or getattr(original, "_flytebuild_reference_aware", False):
        return

    def transform_function_to_interface(fn, *args, **kwargs):
        caller = sys._getframe(1).f_code
        if caller.co_name == "wrapper" and "reference_workflow" in getattr(caller, "co_qualname", caller.co_name):
            kwargs["is_reference_entity"] = True
        return original(fn, *args, **kwargs)

    transform_function_to_interface._flytebuild_reference_aware = True  # type: ignore[attr-defined]
    wf_module.transform_function_to_interface = transform_function_to_interface


def load_entrypoint(entrypoint: str) -> typing.Tuple[str, str, typing.Any]:
    """Return (module name, attr, object)."""
    _allow_ellipsis_reference_workflows()
    target, sep, attr = entrypoint.rpartition(":")
    if not sep or not target or not attr:
        raise IntrospectError(
            "attr_not_found",
            f"entrypoint {entrypoint!r} must be 'module.path:attr' or 'path/to/file.py:attr'",
        )
    given_file = None
    if target.endswith(".py") or "/" in target or os.sep in target:
        given_file = target = _find_file(target)
        if not os.path.isfile(target):
            raise IntrospectError(
                "module_not_found",
                f"file {target!r} of entrypoint {entrypoint!r} does not exist (paths are relative to the "
                f"working directory, the repository root)",
                file=relpath(target) if relpath(target) else target,
            )
        modname = _module_for_file(target)
    else:
        modname = target
    try:
        module = importlib.import_module(modname)
    except ModuleNotFoundError as e:
        missing = e.name or ""
        if missing and (modname == missing or modname.startswith(missing + ".")) and not has_user_frames(e):
            raise IntrospectError(
                "module_not_found",
                f"module {modname!r} of entrypoint {entrypoint!r} cannot be found on the source roots "
                f"(source roots on sys.path: {', '.join(sorted(set(filter(None, map(relpath, sys.path))))) or 'none'})",
                file=relpath(given_file) if given_file else None,
            )
        tb, f = user_traceback(e)
        raise IntrospectError("import_error", exc_message(e), file=f, tb=tb)
    except BaseException as e:  # noqa: B902 - SystemExit in user code too
        if isinstance(e, KeyboardInterrupt):
            raise
        tb, f = user_traceback(e)
        raise IntrospectError("import_error", exc_message(e), file=f or relpath(given_file), tb=tb)
    module_file = relpath(getattr(module, "__file__", None))
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise IntrospectError(
                "attr_not_found", f"module {modname!r} has no attribute {attr!r}", file=module_file
            )
        obj = getattr(obj, part)
    return modname, attr, obj


def has_user_frames(exc: BaseException) -> bool:
    return any(is_user_file(f.filename) for f in traceback.extract_tb(exc.__traceback__))


def module_file(module: typing.Optional[str]) -> typing.Optional[str]:
    """The file of an imported module, relative to cwd (None when unknown or outside it)."""
    if not module:
        return None
    m = sys.modules.get(module)
    return relpath(getattr(m, "__file__", None)) if m is not None else None


def result_or_error(fn: typing.Callable[[], dict], kind: str) -> typing.Tuple[dict, int]:
    """(fn(), 0), or ({"error": ...}, 2): our own errors as they are, anything else user code raised (a SystemExit
    too) as a `kind` error with the user's traceback."""
    try:
        return fn(), 0
    except IntrospectError as e:
        return {"error": e.to_json()}, 2
    except BaseException as e:  # noqa: B902 - a user SystemExit while walking is still an error report
        if isinstance(e, KeyboardInterrupt):
            raise
        tb, f = user_traceback(e)
        return {"error": {"kind": kind, "message": exc_message(e), "file": f, "traceback": tb}}, 2
