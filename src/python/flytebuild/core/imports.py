"""First-party closures by import analysis, for builds without a build graph (the CLI).

Reads sources with the stdlib `ast` (never executes them) and follows imports the way Pants'
dependency inference does, so a repo planned by `flytebuild plan` and by `pants flyte-plan` gets
the same closures:
- `import a.b.c` asks for `a.b.c`; `from a.b import c` asks for `a.b.c` and, failing that, its
  direct parent `a.b` (`c` may be a name defined in `a/b.py`); relative imports are made absolute;
- a file depends on the non-blank `__init__.py` of every package it lies in (Pants'
  `[python-infer].init_files = "content_only"` default);
- a name no first-party file provides is matched, longest prefix first, to the declared
  requirements (module → distribution, where the names differ);
- an import line carrying `# pants: no-infer-dep` (or `# flytebuild: no-infer-dep`) is ignored.

Paths are repo-relative with forward slashes.
"""
from __future__ import annotations

import ast
import io
import os
import re
import sys
import sysconfig
import tokenize
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, MutableMapping, Optional, Sequence, Set, Tuple

from blake3 import blake3

from flytebuild.core.errors import FlytebuildError
from flytebuild.core.lockfile import canonical_name

_PRAGMA = re.compile(r"#\s*(?:pants|flytebuild):\s*no-infer-dep")
_SKIP_DIRS = {"__pycache__", "node_modules", "site-packages"}


def _stdlib_names() -> frozenset:
    """Top-level stdlib modules: exact on 3.10+, else the stdlib directory's contents."""
    names = set(getattr(sys, "stdlib_module_names", ())) | set(sys.builtin_module_names)
    if not hasattr(sys, "stdlib_module_names"):
        stdlib = sysconfig.get_paths()["stdlib"]
        for directory in (stdlib, os.path.join(stdlib, "lib-dynload")):
            try:
                entries = os.listdir(directory)
            except OSError:
                continue
            names.update(e.split(".")[0] for e in entries if e != "site-packages")
    return frozenset(names | {"__future__"})


# Never reported as unowned imports.
STDLIB = _stdlib_names()


@dataclass(frozen=True)
class ModuleIndex:
    """Which file provides each first-party module (several files: ambiguous, like Pants)."""

    root: str  # absolute
    source_roots: Tuple[str, ...]  # repo-relative, "" for the root itself
    modules: Mapping[str, Tuple[str, ...]]
    module_of: Mapping[str, str]  # path → module

    def provider(self, module: str) -> Tuple[str, ...]:
        return self.modules.get(module, ())


@dataclass(frozen=True)
class ImportClosure:
    files: Tuple[str, ...]  # first-party files, sorted, the roots included
    requirements: Tuple[str, ...]  # canonical distribution names
    unowned: Tuple[Tuple[str, str], ...] = ()  # (file, module) imported but provided by nothing
    ambiguous: Tuple[Tuple[str, str], ...] = ()  # (file, module) provided by several files


def _rel(path: str) -> str:
    return "" if path in (".", "") else path.replace(os.sep, "/").strip("/")


def index_modules(root: str, source_roots: Sequence[str]) -> ModuleIndex:
    """Walk the source roots for `.py`/`.pyi` files; `a/b/__init__.py` is module `a.b`."""
    base = os.path.abspath(root)
    roots = tuple(_rel(r) for r in source_roots)
    modules: Dict[str, Set[str]] = {}
    module_of: Dict[str, str] = {}
    for source_root in roots:
        top = os.path.join(base, source_root) if source_root else base
        if not os.path.isdir(top):
            raise FlytebuildError(
                f"Source root `{source_root or '.'}` is not a directory under {base}",
                fix="list existing directories in `source_roots`",
            )
        for dirpath, dirnames, filenames in os.walk(top):
            # Nested source roots are indexed on their own; hidden and tool dirs never hold modules.
            dirnames[:] = sorted(
                d
                for d in dirnames
                if not d.startswith(".")
                and d not in _SKIP_DIRS
                and _rel(os.path.relpath(os.path.join(dirpath, d), base)) not in roots
            )
            rel_dir = os.path.relpath(dirpath, top)
            parts = [] if rel_dir == "." else rel_dir.split(os.sep)
            if not all(p.isidentifier() for p in parts):
                dirnames[:] = []
                continue
            for name in filenames:
                stem, ext = os.path.splitext(name)
                if ext not in (".py", ".pyi") or not stem.isidentifier():
                    continue
                module = ".".join(parts if stem == "__init__" else [*parts, stem])
                if not module:
                    continue  # an __init__.py right at a source root is no module
                path = _rel(os.path.relpath(os.path.join(dirpath, name), base))
                modules.setdefault(module, set()).add(path)
                module_of[path] = module
    return ModuleIndex(
        root=base,
        source_roots=roots,
        modules={m: tuple(sorted(p)) for m, p in modules.items()},
        module_of=module_of,
    )


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_imports(source: bytes, module: str, is_package: bool, path: str = "<source>") -> Tuple[str, ...]:
    """Dotted names a module asks for, sorted (`from a import b` gives `a.b`)."""
    try:
        tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError):
        # Syntax newer than this interpreter (the CLI may run on an older Python than the
        # user's code): the import statements themselves are still readable token by token.
        return _parse_imports_tokens(source, module, is_package, path)
    lines = source.decode("utf-8", "replace").splitlines()
    package = module if is_package else module.rpartition(".")[0]
    found: Set[str] = set()

    def ignored(node: ast.AST) -> bool:
        end = getattr(node, "end_lineno", None) or node.lineno
        return any(_PRAGMA.search(lines[i - 1]) for i in range(node.lineno, end + 1) if i - 1 < len(lines))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            if not ignored(node):
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if ignored(node):
                continue
            base = _absolute(node.module, node.level, package)
            if base is None:
                continue
            for alias in node.names:
                found.add(base if alias.name == "*" else f"{base}.{alias.name}" if base else alias.name)
        elif isinstance(node, ast.Call) and node.args and not ignored(node):
            # `importlib.import_module("a.b")` / `__import__("a.b")` with a literal name.
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            arg = node.args[0]
            if name in ("import_module", "__import__") and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                if _is_dotted(arg.value):
                    found.add(arg.value)
    return tuple(sorted(found))


def _absolute(module: Optional[str], level: int, package: str) -> Optional[str]:
    if not level:
        return module
    parts = package.split(".") if package else []
    if level - 1 > len(parts):
        return None  # beyond the top-level package: Python would fail too
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, module] if module else base) or None


def _is_dotted(name: str) -> bool:
    return bool(name) and all(p.isidentifier() for p in name.split("."))


def _parse_imports_tokens(source: bytes, module: str, is_package: bool, path: str) -> Tuple[str, ...]:
    try:
        tokens = list(tokenize.tokenize(io.BytesIO(source).readline))
    except (tokenize.TokenError, SyntaxError) as e:
        raise FlytebuildError(
            f"Cannot read the imports of {path}: {e}", file=path, fix="fix the syntax error"
        ) from None
    package = module if is_package else module.rpartition(".")[0]
    found: Set[str] = set()
    statement: List[tokenize.TokenInfo] = []
    for tok in tokens:
        if tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER) or (tok.type == tokenize.OP and tok.string == ";"):
            _statement_imports(statement, package, found)
            statement = []
        elif tok.type == tokenize.COMMENT:
            if _PRAGMA.search(tok.string):
                statement = [tok]  # poisons the statement
        elif tok.type not in (tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING):
            statement.append(tok)
    return tuple(sorted(found))


def _statement_imports(tokens: List[tokenize.TokenInfo], package: str, found: Set[str]) -> None:
    words = [t.string for t in tokens if t.type != tokenize.COMMENT]
    if not words or any(t.type == tokenize.COMMENT for t in tokens):
        return
    if words[0] == "import":
        for part in " ".join(words[1:]).replace(" . ", ".").replace(" .", ".").split(","):
            name = part.split(" as ")[0].replace(" ", "")
            if _is_dotted(name):
                found.add(name)
    elif words[0] == "from" and "import" in words:
        i = words.index("import")
        head = "".join(words[1:i])
        level = len(head) - len(head.lstrip("."))
        base = _absolute(head.lstrip(".") or None, level, package)
        if base is None:
            return
        names = [w for w in words[i + 1 :] if w not in ("(", ")")]
        for part in " ".join(names).split(","):
            name = part.strip().split(" as ")[0].strip()
            if name == "*":
                found.add(base)
            elif name.isidentifier():
                found.add(f"{base}.{name}")


# ---------------------------------------------------------------------------------------------
# Requirements


def requirement_modules(
    requirements: Iterable[str],
    installed: Optional[Mapping[str, Sequence[str]]] = None,
    overrides: Optional[Mapping[str, Sequence[str]]] = None,
) -> Dict[str, Tuple[str, ...]]:
    """Module (dotted prefix) → declared distributions providing it.

    Per declared distribution: its `overrides` modules if given (the user knows best); else
    the top-level modules the installed environment reports for it (`installed`: module →
    distributions, as `importlib.metadata.packages_distributions()` gives) plus the default
    `Foo-Bar` → `foo_bar` (what Pants assumes).
    """
    declared = {canonical_name(r) for r in requirements}
    overrides = {canonical_name(k): tuple(v) for k, v in (overrides or {}).items()}
    provides: Dict[str, Set[str]] = {}
    for dist in declared:
        if dist in overrides:
            for module in overrides[dist]:
                provides.setdefault(module, set()).add(dist)
        else:
            provides.setdefault(dist.replace("-", "_"), set()).add(dist)
    for module, dists in (installed or {}).items():
        for dist in dists:
            name = canonical_name(dist)
            if name in declared and name not in overrides:
                provides.setdefault(module, set()).add(name)
    return {m: tuple(sorted(d)) for m, d in provides.items()}


# ---------------------------------------------------------------------------------------------
# Closures


class ImportGraph:
    """Import edges of first-party files, parsed once each and memoized (one graph per run)."""

    def __init__(
        self,
        index: ModuleIndex,
        requirement_map: Mapping[str, Tuple[str, ...]],
        stdlib: Iterable[str] = STDLIB,
        parsed: Optional[MutableMapping[str, List[str]]] = None,
    ) -> None:
        """`parsed`: `parse_imports` answers by content digest, module and kind, kept across runs by a front end
        (keyed by content, so an edited file is a new key and is parsed again; never stale)."""
        self.index = index
        self.parsed = parsed
        self.requirement_map = requirement_map
        self.stdlib = frozenset(stdlib)
        self._blank: Dict[str, bool] = {}
        self._edges: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...], Tuple[str, ...], Tuple[str, ...]]] = {}

    def _read(self, path: str) -> bytes:
        try:
            with open(os.path.join(self.index.root, path), "rb") as f:
                return f.read()
        except OSError as e:
            raise FlytebuildError(f"Cannot read {path}: {e.strerror}", file=path) from None

    def _init_files(self, path: str) -> List[str]:
        """Non-blank `__init__.py(i)` of the packages `path` lies in (Pants' content_only)."""
        found = []
        directory = path.rpartition("/")[0]
        while True:
            for name in ("__init__.py", "__init__.pyi"):
                candidate = f"{directory}/{name}" if directory else name
                if candidate != path and candidate in self.index.module_of and not self._is_blank(candidate):
                    found.append(candidate)
            if not directory:
                return found
            directory = directory.rpartition("/")[0]

    def _is_blank(self, path: str) -> bool:
        if path not in self._blank:
            self._blank[path] = not self._read(path).strip()
        return self._blank[path]

    def edges(self, path: str):
        """(first-party files, requirements, unowned modules, ambiguous modules) `path` imports."""
        cached = self._edges.get(path)
        if cached is not None:
            return cached
        files: Set[str] = set(self._init_files(path)) if path.endswith((".py", ".pyi")) else set()
        requirements: Set[str] = set()
        unowned: Set[str] = set()
        ambiguous: Set[str] = set()
        module = self.index.module_of.get(path)
        if module is not None:
            is_package = path.rsplit("/", 1)[-1].startswith("__init__.")
            for name in self._parse(path, module, is_package):
                providers = self.index.provider(name)
                if not providers and "." in name:
                    providers = self.index.provider(name.rpartition(".")[0])
                if len(providers) == 1:
                    files.add(providers[0])
                    continue
                if providers:
                    ambiguous.add(name)
                    continue
                dists = self._third_party(name)
                if dists:
                    requirements.update(dists)
                elif name.partition(".")[0] not in self.stdlib:
                    unowned.add(name)
        files.discard(path)
        result = (tuple(sorted(files)), tuple(sorted(requirements)), tuple(sorted(unowned)), tuple(sorted(ambiguous)))
        self._edges[path] = result
        return result

    def _parse(self, path: str, module: str, is_package: bool) -> Sequence[str]:
        source = self._read(path)
        if self.parsed is None:
            return parse_imports(source, module, is_package, path)
        key = f"{blake3(source).hexdigest()}:{module}:{int(is_package)}"
        found = self.parsed.get(key)
        if found is None:
            found = self.parsed[key] = list(parse_imports(source, module, is_package, path))
        return found

    def _third_party(self, name: str) -> Tuple[str, ...]:
        parts = name.split(".")
        for n in range(len(parts), 0, -1):
            dists = self.requirement_map.get(".".join(parts[:n]))
            if dists:
                return dists
        return ()

    def closure(self, paths: Iterable[str]) -> ImportClosure:
        """Every first-party file reachable from `paths` and the requirements they import."""
        seen: Set[str] = set()
        requirements: Set[str] = set()
        unowned: Set[Tuple[str, str]] = set()
        ambiguous: Set[Tuple[str, str]] = set()
        stack = sorted(set(paths))
        while stack:
            path = stack.pop()
            if path in seen:
                continue
            seen.add(path)
            files, reqs, not_found, several = self.edges(path)
            requirements.update(reqs)
            unowned.update((path, m) for m in not_found)
            ambiguous.update((path, m) for m in several)
            stack.extend(f for f in files if f not in seen)
        return ImportClosure(
            files=tuple(sorted(seen)),
            requirements=tuple(sorted(requirements)),
            unowned=tuple(sorted(unowned)),
            ambiguous=tuple(sorted(ambiguous)),
        )
