"""runtime/answers.py: how every runtime command answers, in a process of its own."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src/python"


def test_a_ctrl_c_after_the_answer_is_ignored():
    """Once a command has written its answer nothing is left to stop: a SIGINT then (Pants' Ctrl-C arriving late, or
    while the interpreter shuts down) neither changes the exit code nor prints a traceback under the answer."""
    script = textwrap.dedent("""
        import os, signal, sys
        from flytebuild.runtime.answers import stdout_answer
        code = stdout_answer(lambda: ('{"ok": true}\\n', 0))
        os.kill(os.getpid(), signal.SIGINT)
        print("still here", file=sys.stderr)
        sys.exit(code)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(SRC)},
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, '{"ok": true}\n', "still here\n")
