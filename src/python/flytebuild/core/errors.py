"""Errors users see. Each renders as one paragraph: what went wrong, where, and the fix."""
from __future__ import annotations

from typing import Mapping, Optional


class FlytebuildError(Exception):
    """Base of every error flytebuild reports to a user instead of a traceback.

    Adapters catch this and print `str(err)`; callers may pass a complete message, or `what` plus
    `target`/`file`/`fix` so the paragraph always has the same shape.
    """

    def __init__(
        self,
        what: str,
        *,
        target: Optional[str] = None,
        file: Optional[str] = None,
        fix: Optional[str] = None,
    ) -> None:
        self.what = what
        self.target = target
        self.file = file
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        where = [f"target {self.target}" if self.target else "", f"file {self.file}" if self.file else ""]
        where_text = ", ".join(w for w in where if w)
        text = self.what.rstrip()
        if where_text:
            text = f"{text.rstrip('.')} ({where_text})."
        elif not text.endswith((".", "!", "?")):
            text += "."
        if self.fix:
            text += f" Fix: {self.fix.rstrip('.')}."
        return text

    def __str__(self) -> str:
        return self.message


class PlanError(FlytebuildError):
    """The build graph and the code disagree (an image name nobody defines, a cycle, ...)."""


class LockfileError(FlytebuildError):
    """A lockfile cannot be read, or lacks a requirement the build graph asks for."""


# What a user should do about each failure kind the runtime introspector reports.
_INTROSPECTION_FIXES = {
    "module_not_found": (
        "check the module path of the entrypoint (`module.path:attr` or `path/to/file.py:attr`) "
        "and that the file lies under a source root ([source] root_patterns)"
    ),
    "import_error": "fix the exception raised while importing your code (traceback below)",
    "attr_not_found": "check the attribute after `:` in the entrypoint; the module has no such name",
    "not_a_flyte_entity": (
        "point the entrypoint at a @workflow, @task, LaunchPlan or reference entity"
    ),
    "introspection_failed": "see the details below; if the code runs with pyflyte, report it as a flytebuild bug",
}


class IntrospectionError(FlytebuildError):
    """The user's code could not be imported or inspected (the runtime's `{"error": {...}}`)."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        file: Optional[str] = None,
        traceback: Optional[str] = None,
        target: Optional[str] = None,
        entrypoint: Optional[str] = None,
    ) -> None:
        self.kind = kind
        self.error_message = message
        self.traceback = traceback
        self.entrypoint = entrypoint
        what = f"Cannot introspect entrypoint `{entrypoint}`: " if entrypoint else "Introspection failed: "
        what += f"{kind.replace('_', ' ')}: {message}".rstrip()
        super().__init__(
            what,
            target=target,
            file=file,
            fix=_INTROSPECTION_FIXES.get(kind, _INTROSPECTION_FIXES["introspection_failed"]),
        )

    @property
    def message(self) -> str:
        # The user's own traceback (already trimmed to user frames by the runtime) is the most
        # useful detail there is; ours never appears.
        text = super().message
        if self.traceback:
            text += "\n\n" + self.traceback.rstrip()
        return text

    @classmethod
    def from_runtime(
        cls, target: Optional[str], entrypoint: Optional[str], error: Mapping[str, object]
    ) -> "IntrospectionError":
        """Build from the runtime's `{"error": {...}}` payload (the inner mapping)."""

        def text(key: str) -> Optional[str]:
            value = error.get(key)
            return None if value is None else str(value)

        return cls(
            text("kind") or "introspection_failed",
            text("message") or "no message",
            file=text("file"),
            traceback=text("traceback"),
            target=target,
            entrypoint=entrypoint,
        )


# User code (imports at introspection, serialization, pod validation) may block forever on a
# network call, input() or a lock; every such process gets this budget unless configured.
DEFAULT_USER_CODE_TIMEOUT = 600


class UserCodeTimeout(FlytebuildError):
    """A process running the user's code did not finish within the configured time."""

    def __init__(self, what: str, seconds: float, *, target: Optional[str] = None, setting: str) -> None:
        self.seconds = seconds
        super().__init__(
            f"{what} did not finish within {seconds:g} s and was stopped (the user code blocks or is very slow, "
            f"e.g. a network call, input() or a lock at import time)",
            target=target,
            fix=f"make importing the module return promptly (move work into the task body), or raise {setting}",
        )
