"""The worker (runtime/worker.py, which never imports flytebuild) and its client (service/worker.py) each spell the
wire format and the import-relevant environment: they must agree, or every request falls back (or worse)."""
import struct

from flytebuild.runtime import worker as server
from flytebuild.service import worker as client


def test_wire_constants_agree():
    assert server.MAGIC == client.MAGIC
    assert server.STARTED == client.STARTED
    assert server.GRACE == client.GRACE
    assert server._HEADER.format == client._HEADER.format and server._HEADER.size == client._HEADER.size
    # STARTED cannot be mistaken for a reply's first byte (the high byte of a length below 2**56).
    assert client.STARTED[0] != struct.pack(">Q", 2**56 - 1)[0]


def test_import_env_agrees():
    environ = {"PYTHONPATH": "src", "PYTHONHASHSEED": "1", "FLYTE_SDK_LOGGING_LEVEL": "10", "_F_P": "x",
               "HOME": "/h", "TMPDIR": "/t", "LANG": "C", "LC_ALL": "C.UTF-8", "PATH": "/bin",
               "PEX_EXTRA_SYS_PATH": "src", "USER": "u"}
    assert server.import_env(environ) == client.import_env(environ)
    assert set(client.import_env(environ)) == {"PYTHONHASHSEED", "FLYTE_SDK_LOGGING_LEVEL", "_F_P", "HOME",
                                               "TMPDIR", "LANG", "LC_ALL"}
