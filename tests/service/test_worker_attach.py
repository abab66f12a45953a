"""The two clients of the warm worker agree on the protocol: service/worker.py (pantsd, the CLI) and
runtime/attach.py (`pants run`, in the user's environment: it may not import flytebuild, so each side keeps its own
copy of the socket name and framing)."""
import importlib.util
import os
from pathlib import Path

import pytest

from flytebuild.service import worker as service

RUNTIME = Path(service.__file__).resolve().parents[1] / "runtime"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_attach_test_{name}", RUNTIME / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("environ", [
    {},
    {"HOME": "/home/u", "LANG": "C.UTF-8", "PYTHONPATH": "src", "PEX_ROOT": "/x", "FLYTE_SDK_LOGGING_LEVEL": "20"},
    {"LC_ALL": "C", "TMPDIR": "/tmp/t", "_F_X": "1", "PYTHONHASHSEED": "0", "UNRELATED": "y"},
])
def test_attach_names_the_socket_as_the_service_client_does(tmp_path, environ):
    attach, runtime_worker = _load("attach"), _load("worker")
    python = str(tmp_path / "venv/bin/python")
    env = service.UserEnv(python, str(RUNTIME), f"{python}|fp", str(tmp_path / "sockets"))
    assert attach.socket_path(python, env.runtime_dir, env.identity, env.socket_dir, environ,
                              runtime_worker.import_env) == service.socket_path(env, environ)
    assert runtime_worker.import_env(environ) == service.import_env(environ)


def test_attach_frames_a_request_as_the_worker_reads_it():
    runtime_worker = _load("worker")
    assert runtime_worker.MAGIC == service.MAGIC
    assert runtime_worker.STARTED == service.STARTED
    assert runtime_worker._HEADER.format == service._HEADER.format


def test_attach_is_standard_library_only():
    source = (RUNTIME / "attach.py").read_text()
    assert "flytebuild" not in "".join(line for line in source.splitlines() if line.startswith(("import", "from")))
    assert os.path.isfile(RUNTIME / "worker.py")
