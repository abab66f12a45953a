"""A long-running command (a watch loop: `flytebuild dev`, `./pants --loop ...`) in the background, its output read
line by line as it comes, for tests and benches that act on it while it runs (standard library only)."""
from __future__ import annotations

import queue
import signal
import subprocess
import threading
import time
from typing import List


class Background:
    """`cmd` started now; stdout and stderr merged, each line queued as it is printed."""

    def __init__(self, cmd, cwd, env):
        self.proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.seen: List[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def _next(self, timeout: float):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return None
        self.seen.append(line)
        return line

    def until(self, needle: str, timeout: float = 300) -> List[str]:
        """The lines up to and including the first one containing `needle` (AssertionError after `timeout`)."""
        got: List[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self._next(0.2)
            if line is None:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            got.append(line)
            if needle in line:
                return got
        raise AssertionError(f"no line with {needle!r} from {self.proc.args[:3]}; output so far:\n"
                             + "\n".join(self.seen[-60:]))

    def drain(self, seconds: float) -> List[str]:
        """Whatever is printed during the next `seconds`."""
        deadline, got = time.monotonic() + seconds, []
        while time.monotonic() < deadline:
            line = self._next(0.1)
            if line is not None:
                got.append(line)
        return got

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C, as a terminal sends it; the exit code (killed after `timeout`: AssertionError)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.proc.args[:3]} did not exit within {timeout} s of Ctrl-C") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        # what is left of the output, for a failure message
        self.drain(0.2)
