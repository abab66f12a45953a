"""Docs are tested: every fenced block in README.md, CONTRIBUTING.md and docs/*.md names the test that runs
what it shows (the rule is written in tests/docs/doccheck.py), links resolve, and the README stays a front
page whose two commands are what `make` and CI run."""
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.docs import doccheck

REPO = Path(__file__).resolve().parents[2]


def test_docs_exist():
    docs = {p.name for p in doccheck.doc_files()}
    assert {"README.md", "CONTRIBUTING.md", "design.md", "benchmarks.md"} <= docs


@pytest.mark.parametrize("doc", doccheck.doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_block_names_a_test_that_runs_it(doc):
    problems = [p for b in doccheck.blocks(doc) for p in doccheck.problems_of(b)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", doccheck.doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(doc):
    problems = doccheck.link_problems(doc)
    assert not problems, "\n".join(problems)


def test_readme_is_a_front_page():
    assert len((REPO / "README.md").read_text().splitlines()) <= 200


def test_readme_leads_with_make_demo_and_make_test():
    first = next(doccheck.blocks(REPO / "README.md"))
    assert doccheck.command_lines(first) == ["make demo", "make test"]
    makefile = (REPO / "Makefile").read_text()
    # make demo runs bin/demo; make test runs the whole suite, nothing deselected, and CI runs exactly it.
    assert re.search(r"^demo:.*\n\tbin/demo$", makefile, re.M)
    ci = [ln.strip() for ln in (REPO / ".ci/run").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert ci[-1] == "make test"
    dry = subprocess.run(["make", "-n", "test"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    (command,) = [ln for ln in dry.splitlines() if "-m pytest" in ln]
    assert "-m pytest -q tests" in command and "not slow" not in command
    assert not re.search(r"-m\s+(['\"]|not\b)|--deselect|-k\s", command.split("-m pytest", 1)[1])


def test_make_test_runs_on_xdist_workers_and_serially_with_workers_0():
    """CONTRIBUTING.md: `make test WORKERS=0` runs the same suite in one process."""
    dry = subprocess.run(["make", "-n", "test"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "-m pytest -q tests -n 3 --dist loadgroup --no-loadscope-reorder" in dry
    serial = subprocess.run(["make", "-n", "test", "WORKERS=0"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout
    command = next(ln for ln in serial.splitlines() if "-m pytest" in ln)
    assert "-m pytest -q tests" in command and " -n " not in command and "--dist" not in command


def _collected(*args):
    proc = subprocess.run([str(REPO / ".bootstrap/venv/bin/python"), "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider", *args], cwd=REPO, env={**os.environ, "PYTHONPATH": "src/python"},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {ln.strip() for ln in proc.stdout.splitlines() if "::" in ln}


def test_make_test_fast_runs_all_but_the_slow_tests():
    dry = subprocess.run(["make", "-n", "test-fast"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    command = next(ln for ln in dry.splitlines() if "-m pytest" in ln)
    assert '-m "not slow" tests' in command
    # collecting a few directories is enough to check the marking (the whole suite would cost ~20 s here)
    dirs = ("tests/e2e", "tests/core/test_errors.py", "tests/docs/test_docs.py")
    fast = _collected("-m", "not slow", *dirs)
    everything = _collected(*dirs)
    slow = everything - fast
    assert fast and slow and fast < everything
    # the end-to-end tests are the slow ones; pure logic and the docs stay in the quick loop
    assert any(t.startswith("tests/e2e/") for t in slow) and not any(t.startswith("tests/e2e/") for t in fast)
    assert any(t.startswith("tests/core/") for t in fast) and any(t.startswith("tests/docs/") for t in fast)


def test_one_file_runs_as_contributing_says():
    command = "PYTHONPATH=src/python .bootstrap/venv/bin/python -m pytest -q tests/core/test_errors.py"
    proc = subprocess.run(command + " -p no:cacheprovider", shell=True, cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0 and " passed" in proc.stdout, proc.stdout[-2000:]


# --- the checker itself, on made-up docs: it must fail where a doc cheats -----------------------------------


def _problems(tmp_path, text):
    doc = tmp_path / "doc.md"
    doc.write_text(text)
    return [p for b in doccheck.blocks(doc) for p in doccheck.problems_of(b)]


def test_checker_rejects_unmarked_blocks_and_unknown_tests(tmp_path, monkeypatch):
    monkeypatch.setattr(doccheck, "REPO", tmp_path)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests/test_x.py").write_text('def test_a(repo):\n    repo.pants("flyte-plan", "examples/mixed:wf")\n')
    assert _problems(tmp_path, "```\n$ ./pants flyte-plan examples/mixed:wf\n```\n")
    assert _problems(tmp_path, "<!-- tested: tests/test_x.py::test_b -->\n```\n$ ./pants flyte-plan x\n```\n")
    marker = "<!-- tested: tests/test_x.py::test_a -->\n"
    assert not _problems(tmp_path, marker + "\n```\n$ ./pants flyte-plan examples/mixed:wf\nout\n```\n")
    # another target, or an argument the call does not pass, is not "run by the test"
    assert _problems(tmp_path, marker + "```\n$ ./pants flyte-plan examples/baked:wf\n```\n")
    assert _problems(tmp_path, marker + "```\n$ ./pants --x flyte-plan examples/mixed:wf\n```\n")
    # commands cannot hide as output
    assert _problems(tmp_path, "<!-- output -->\n```\n$ ./pants flyte-plan examples/mixed:wf\n```\n")
    assert _problems(tmp_path, "<!-- output -->\n```toml\nroot = '..'\n```\n")
    assert not _problems(tmp_path, "<!-- output -->\n```\nTASK  IMAGE\n```\n")


def test_checker_reads_snippets_from_files_the_test_names(tmp_path, monkeypatch):
    monkeypatch.setattr(doccheck, "REPO", tmp_path)
    (tmp_path / "tests").mkdir()
    (tmp_path / "ex/proj").mkdir(parents=True)
    (tmp_path / "ex/proj/BUILD").write_text('flyte_workflow(\n    name="wf",\n)\n')
    (tmp_path / "tests/test_y.py").write_text('def test_b(repo):\n    repo.pants("flyte-plan", "ex/proj:wf")\n')
    good = ('<!-- tested: tests/test_y.py::test_b -->\n'
            '```python\n# a comment\nflyte_workflow(\n    name="wf",  # note\n)\n```\n')
    assert not _problems(tmp_path, good)
    assert _problems(tmp_path, good.replace('"wf"', '"other"'))


def test_checker_finds_broken_links(tmp_path, monkeypatch):
    monkeypatch.setattr(doccheck, "REPO", tmp_path)
    links = "[ok](b.md) [bad](missing.md) [anchor](b.md#nope) [self](#title-here)"
    (tmp_path / "a.md").write_text("# Title here\n\n" + links + "\n")
    (tmp_path / "b.md").write_text("# B\n")
    problems = doccheck.link_problems(tmp_path / "a.md")
    assert len(problems) == 2 and "missing.md" in problems[0] and "#nope" in problems[1]
