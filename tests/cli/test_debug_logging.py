"""FLYTEBUILD_DEBUG=1: the worker client's debug lines go to stderr through one handler, set up once by the CLI's
main (not by every worker_env() call)."""
import logging

from flytebuild.cli import main as cli_main
from flytebuild.service import worker


def test_debug_handler_is_installed_once_by_main(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FLYTEBUILD_DEBUG", "1")
    monkeypatch.setenv("FLYTEBUILD_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(worker.log, "handlers", [])
    monkeypatch.setattr(worker.log, "level", logging.NOTSET)
    for _ in range(2):
        assert cli_main.main(["worker", "stop"]) == 0
    assert len(worker.log.handlers) == 1
    worker.log.debug("worker: a line")
    assert "flytebuild: debug: worker: a line" in capsys.readouterr().err


def test_without_debug_no_handler(monkeypatch, tmp_path):
    monkeypatch.delenv("FLYTEBUILD_DEBUG", raising=False)
    monkeypatch.setenv("FLYTEBUILD_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(worker.log, "handlers", [])
    assert cli_main.main(["worker", "stop"]) == 0
    assert worker.log.handlers == []
