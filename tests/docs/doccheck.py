"""The rule every fenced code block in README.md, CONTRIBUTING.md and docs/*.md follows (checked by
tests/docs/test_docs.py; see CONTRIBUTING.md "Docs are tested"):

- the block is preceded (blank lines aside) by `<!-- tested: tests/<path>.py::<test_name> -->` or, for
  output samples and listings only, `<!-- output -->`;
- a tested block names a test function that exists in that file, and what the block shows appears in that
  test's file or in a file the test reads:
  * command lines (`$ ...` lines; in `sh`/`bash`/untagged blocks without `$`, every line that is not a
    comment): either the whole line appears in the test file / a file it reads (whitespace-normalized), or
    each of its arguments after the program (`./pants`, `flytebuild`, `bazel`, ...) is a string literal the
    named test function passes (`repo.pants("flyte-plan", "examples/mixed:wf")`), counting the helpers and
    fixtures of its file and conftest.py files that it calls or takes, and module-level string constants it
    uses; an f-string matches an argument that starts with its literal prefix (`f"--flyte-endpoint={x}"`);
  * BUILD/TOML/YAML/Python snippets (`python`, `toml`, `yaml`, `starlark` blocks): every line that is not
    blank or a comment appears in the test file or a file it reads;
  * "a file the test reads" is any repo file whose path (or directory, then its BUILD/TOML/YAML/Markdown
    files) is written in the test file's source: a test that loads its commands from the doc itself names
    the doc, and the doc is the script;
- an output block has no `$ ` lines and no command/snippet language tag;
- relative links resolve (files, and `#anchors` into Markdown headings).
"""
from __future__ import annotations

import ast
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

REPO = Path(__file__).resolve().parents[2]

COMMAND_LANGS = {"sh", "bash", "shell", "console", "shell-session"}
SNIPPET_LANGS = {"python", "py", "toml", "yaml", "yml", "starlark", "bzl", "bazel", "ini"}
TESTED = re.compile(r"^<!--\s*tested:\s*(tests/[\w./-]+\.py)::([\w:\[\]-]+)\s*-->$")
OUTPUT = re.compile(r"^<!--\s*output\s*-->$")
FENCE = re.compile(r"^( {0,3})(```+|~~~+)\s*([\w+-]*)")
TRAILING_COMMENT = re.compile(r"\s+#(\s.*)?$")
PATHLIKE = re.compile(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+"
                      r"|[A-Za-z0-9_-]+\.(?:md|toml|yaml|yml|py|bzl|lock|txt)\b|Makefile")
# Guides linked before they exist (while someone writes them): none now, so every relative link must resolve.
PENDING: Set[str] = set()
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def doc_files() -> List[Path]:
    found = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]
    return [p for p in found if p.exists()]


@dataclass
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    lang: str
    lines: List[str]
    marker: Optional[str]  # the marker line, or None

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"

    @property
    def tested(self) -> Optional[Tuple[str, str]]:
        m = TESTED.match(self.marker or "")
        return (m.group(1), m.group(2)) if m else None

    @property
    def is_output(self) -> bool:
        return bool(OUTPUT.match(self.marker or ""))


def blocks(doc: Path) -> Iterator[Block]:
    lines = doc.read_text().split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group(2), m.group(3).lower(), i
        j = i + 1
        while j < len(lines) and not lines[j].lstrip().startswith(fence[:3] if fence[0] == "`" else fence):
            j += 1
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = lines[k].strip() if k >= 0 and lines[k].strip().startswith("<!--") else None
        yield Block(doc, start + 1, lang, lines[start + 1:j], marker)
        i = j + 1


def _strip_comment(line: str) -> str:
    return TRAILING_COMMENT.sub("", line).rstrip()


def command_lines(block: Block) -> List[str]:
    """The commands a block shows ('$ ' lines, else every non-comment line), continuations joined."""
    if any(ln.startswith("$ ") for ln in block.lines):
        raw = [ln[2:] for ln in block.lines if ln.startswith("$ ")]
    else:
        raw = [ln for ln in block.lines if ln.strip() and not ln.lstrip().startswith("#")]
    out, pending = [], ""
    for line in raw:
        line = _strip_comment(line.strip())
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append((pending + line).strip())
        pending = ""
    if pending:
        out.append(pending.strip())
    return [ln for ln in out if ln]


def snippet_lines(block: Block) -> List[str]:
    out = []
    for line in block.lines:
        s = line.strip()
        if not s or s.startswith(("#", "//")):
            continue
        s = _strip_comment(s)
        if s:
            out.append(s)
    return out


def is_command_block(block: Block) -> bool:
    return block.lang in COMMAND_LANGS or any(ln.startswith("$ ") for ln in block.lines) or (
        block.lang not in SNIPPET_LANGS)


def _norm(text: str) -> str:
    return " ".join(text.split())


@dataclass
class TestSource:
    path: Path
    text: str
    tree: ast.Module
    read_texts: Dict[Path, str] = field(default_factory=dict)  # files the test names
    defs: Dict[str, ast.AST] = field(default_factory=dict)  # helper functions and fixtures by name
    names: Dict[str, List[object]] = field(default_factory=dict)  # module-level string tuples by name
    # Computed once per test file and test (each was recomputed per line of a block: seconds per guide).
    normalized: List[str] = field(default_factory=list)
    literals: Dict[str, List[object]] = field(default_factory=dict)


def _module_strings(tree: ast.Module) -> Dict[str, List[object]]:
    """Module-level NAME = ("a", "b") / ["a", ...] / "a": what a function means when it uses NAME."""
    found: Dict[str, List[object]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            seq = _literals(node.value, {}, {}, 0)
            if seq and all(isinstance(x, str) for x in seq):
                found[node.targets[0].id] = seq
    return found


def _literals(node: ast.AST, names: Dict[str, List[object]], defs: Dict[str, ast.AST], depth: int) -> List[object]:
    """The string literals under `node` (an f-string gives ("prefix", its literal start)); names of module-level
    string tuples are expanded where used, and helper functions of the test file or its conftest.py files that
    it calls (`plan(repo)`, `repo.deploy(admin)`) are followed, a few calls deep."""
    out: List[object] = []

    def visit(n: ast.AST) -> None:
        if isinstance(n, ast.Constant) and isinstance(n.value, str):
            out.append(n.value)
        elif isinstance(n, ast.JoinedStr):
            first = n.values[0] if n.values else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and len(first.value) >= 2:
                out.append(("prefix", first.value))
        elif isinstance(n, ast.Name) and n.id in names:
            out.extend(names[n.id])
        else:
            if isinstance(n, ast.Call) and depth < 4:
                callee = n.func.id if isinstance(n.func, ast.Name) else getattr(n.func, "attr", None)
                if callee in defs:
                    out.extend(_literals(defs[callee], names, defs, depth + 1))
            for child in ast.iter_child_nodes(n):
                visit(child)

    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
            body = body[1:]  # not the docstring
        for stmt in body:
            visit(stmt)
    else:
        visit(node)
    return out


def _definitions(trees: Sequence[ast.Module]) -> Dict[str, ast.AST]:
    """Functions and methods by name, the test file's first (it shadows its conftest.py files)."""
    defs: Dict[str, ast.AST] = {}
    for tree in trees:
        for n in ast.walk(tree):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and not n.name.startswith("test_"):
                defs.setdefault(n.name, n)
    return defs


def _files_named_in(text: str, base: Path) -> Set[Path]:
    found: Set[Path] = set()
    for s in set(PATHLIKE.findall(text)):
        for root in (REPO, base):
            p = (root / s).resolve()
            if not str(p).startswith(str(REPO)) or not p.exists():
                continue
            if p.is_file():
                found.add(p)
            elif p.is_dir() and p != REPO and not _hidden_or_output(p):
                # a directory the test works on: its build and config files, all the way down; not into hidden or
                # output directories (a test naming `.bootstrap/cache` would walk 190,000 cached files)
                for top, dirs, files in os.walk(p):
                    dirs[:] = [d for d in dirs if not _hidden_or_output(Path(top) / d)]
                    found.update(Path(top) / f for f in files if f in ("BUILD", "BUILD.bazel", "WORKSPACE") or
                                 os.path.splitext(f)[1] in (".toml", ".yaml", ".yml", ".md"))
    return found


def _hidden_or_output(path: Path) -> bool:
    return any(part.startswith(".") or part in ("dist", "__pycache__") for part in path.relative_to(REPO).parts)


_SOURCES: Dict[Path, TestSource] = {}


def test_source(path: Path) -> TestSource:
    if path in _SOURCES:
        return _SOURCES[path]
    text = path.read_text()
    src = TestSource(path, text, ast.parse(text))
    conftests = [p / "conftest.py" for p in path.parents if str(p).startswith(str(REPO / "tests"))]
    conftests = [c for c in conftests if c.exists()]
    trees = [src.tree] + [ast.parse(c.read_text()) for c in conftests]
    src.defs = _definitions(trees)
    src.names = {k: v for tree in reversed(trees) for k, v in _module_strings(tree).items()}
    named = _files_named_in(text, path.parent)
    for c in conftests:
        named |= _files_named_in(c.read_text(), c.parent)
    for f in named:
        try:
            src.read_texts[f] = f.read_text()
        except (UnicodeDecodeError, OSError):
            continue
    _SOURCES[path] = src
    return src


def test_literals(src: TestSource, name: str) -> List[object]:
    """Every string literal the test function uses, helpers it calls included."""
    if name not in src.literals:
        src.literals[name] = _test_literals(src, name)
    return src.literals[name]


def _test_literals(src: TestSource, name: str) -> List[object]:
    parts = name.split("::")
    body: Sequence[ast.stmt] = src.tree.body
    for part in parts[:-1]:
        body = next(n for n in body if isinstance(n, ast.ClassDef) and n.name == part).body
    fn = next(n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == parts[-1])
    # fixtures the test takes are helpers too: their setup runs the commands (e.g. a module-scoped baseline plan)
    lits = _literals(fn, src.names, src.defs, 0)
    for arg in fn.args.args:
        if arg.arg in src.defs:
            lits += _literals(src.defs[arg.arg], src.names, src.defs, 1)
    return lits


def defines_test(src: TestSource, name: str) -> bool:
    parts = name.split("::")
    body: Sequence[ast.stmt] = src.tree.body
    for part in parts[:-1]:
        cls = next((n for n in body if isinstance(n, ast.ClassDef) and n.name == part), None)
        if cls is None:
            return False
        body = cls.body
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == parts[-1] for n in body)


def _texts(src: TestSource) -> List[str]:
    if not src.normalized:
        src.normalized = [_norm(src.text)] + [_norm(t) for t in src.read_texts.values()]
    return src.normalized


def _has(lits: List[object], token: str) -> bool:
    return any(ln == token or (isinstance(ln, tuple) and token.startswith(ln[1])) for ln in lits)


def command_found(src: TestSource, test: str, line: str) -> bool:
    if any(_norm(line) in t for t in _texts(src)):
        return True
    try:
        tokens = shlex.split(line)
    except ValueError:
        return False
    while tokens and re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[0]):  # VAR=value prefixes
        tokens = tokens[1:]
    tokens = tokens[1:]  # the program
    if not tokens:
        return False
    lits = test_literals(src, test)
    return all(_has(lits, t) for t in tokens)


def snippet_line_found(src: TestSource, line: str) -> bool:
    return any(_norm(line) in t for t in _texts(src))


def problems_of(block: Block) -> List[str]:
    if block.marker is None or not (block.tested or block.is_output):
        return [f"{block.where}: fenced block without `<!-- tested: tests/<path>.py::<test> -->` or `<!-- output -->` "
                f"right before it (marker seen: {block.marker!r})"]
    if block.is_output:
        snippet_langs = COMMAND_LANGS | SNIPPET_LANGS - {"yaml", "yml"}
        if any(ln.startswith("$ ") for ln in block.lines) or block.lang in snippet_langs:
            return [f"{block.where}: marked `<!-- output -->` but shows commands or a {block.lang or 'command'} "
                    f"snippet; name the test that runs it"]
        return []
    rel, name = block.tested  # type: ignore[misc]
    path = REPO / rel
    if not path.is_file():
        return [f"{block.where}: names {rel}, which does not exist"]
    src = test_source(path)
    if not defines_test(src, name):
        return [f"{block.where}: {rel} defines no test `{name}`"]
    out = []
    if is_command_block(block):
        lines = command_lines(block)
        missing = [ln for ln in lines if not command_found(src, name, ln)]
        what = "command"
    else:
        lines = snippet_lines(block)
        missing = [ln for ln in lines if not snippet_line_found(src, ln)]
        what = "snippet line"
    if not lines:
        out.append(f"{block.where}: marked tested but shows no command or snippet line")
    for ln in missing:
        out.append(f"{block.where}: {what} `{ln}` appears neither in {rel} nor in a file it names")
    return out


def github_slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(doc: Path) -> Set[str]:
    found: Set[str] = set()
    counts: Dict[str, int] = {}
    inside = False
    for line in doc.read_text().split("\n"):
        if FENCE.match(line):
            inside = not inside
            continue
        m = re.match(r"^#{1,6}\s+(.*)$", line)
        if m and not inside:
            slug = github_slug(m.group(1))
            n = counts.get(slug, 0)
            counts[slug] = n + 1
            found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def link_problems(doc: Path) -> List[str]:
    out = []
    inside = False
    for no, line in enumerate(doc.read_text().split("\n"), 1):
        if FENCE.match(line):
            inside = not inside
            continue
        if inside:
            continue
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            dest = (doc.parent / path_part).resolve() if path_part else doc
            where = f"{doc.relative_to(REPO)}:{no}"
            rel = str(dest.relative_to(REPO)) if str(dest).startswith(str(REPO)) else str(dest)
            if not dest.exists() and rel in PENDING:
                continue
            if not dest.exists():
                out.append(f"{where}: link to {target}: {path_part} does not exist")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                out.append(f"{where}: link to {target}: no heading `#{anchor}` in {dest.relative_to(REPO)}")
    return out
