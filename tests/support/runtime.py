"""How tests run a runtime command directly (no Pants, no CLI): as both front ends do, through the package's one
entry point, `python src/python/flytebuild/runtime/__main__.py <command> ...`."""
from pathlib import Path

RUNTIME_MAIN = Path(__file__).resolve().parents[2] / "src/python/flytebuild/runtime/__main__.py"


def runtime(command: str) -> list:
    """argv after the interpreter: `[python, *runtime("introspect"), "mod:wf"]`."""
    return [str(RUNTIME_MAIN), command]
