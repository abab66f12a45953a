"""Import analysis (core/imports.py): the closures the CLI uses instead of a build graph."""
import textwrap

import pytest

from flytebuild.core.errors import FlytebuildError
from flytebuild.core.imports import ImportGraph, index_modules, parse_imports, requirement_modules


def _tree(tmp_path, files):
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def _graph(root, source_roots=("src",), requirements=(), installed=None, overrides=None):
    index = index_modules(str(root), source_roots)
    return ImportGraph(index, requirement_modules(requirements, installed, overrides))


def test_parse_imports_forms():
    src = textwrap.dedent(
        """
        import os, a.b as ab
        from c.d import e, f as g
        from . import sibling
        from ..up import thing
        from .pkgmod import *
        import importlib
        mod = importlib.import_module("dyn.mod")
        def later():
            import inside.func
        try:
            import optional_dep
        except ImportError:
            pass
        import skipped  # pants: no-infer-dep
        """
    ).encode()
    names = parse_imports(src, "pkg.sub.mod", is_package=False)
    assert set(names) == {
        "os", "a.b", "c.d.e", "c.d.f", "pkg.sub.sibling", "pkg.up.thing", "pkg.sub.pkgmod",
        "importlib", "dyn.mod", "inside.func", "optional_dep",
    }


def test_relative_imports_in_a_package_init():
    names = parse_imports(b"from . import a\nfrom .b import c\n", "pkg", is_package=True)
    assert set(names) == {"pkg.a", "pkg.b.c"}


def test_syntax_the_running_parser_does_not_know_falls_back_to_tokens():
    # Valid for the token reader on any version; `ast` of 3.9 rejects `match`, 3.10+ accepts it.
    src = textwrap.dedent(
        """
        from pkg.helpers import (
            one,
            two as deux,
        )
        import x.y
        match command:
            case [a]:
                pass
        def f[T](v: T) -> T:  # PEP 695: a syntax error before 3.12
            return v
        import quiet  # flytebuild: no-infer-dep
        """
    ).encode()
    assert set(parse_imports(src, "pkg.m", is_package=False)) == {"pkg.helpers.one", "pkg.helpers.two", "x.y"}


def test_unreadable_source_names_the_file():
    with pytest.raises(FlytebuildError) as err:
        parse_imports(b'x = """never closed\n', "m", False, "src/m.py")
    assert "src/m.py" in str(err.value)


def test_closure_follows_pants_rules(tmp_path):
    root = _tree(
        tmp_path,
        {
            "src/app/__init__.py": '"""docstring counts as content"""\n',
            "src/app/tasks.py": "from app.models import Thing\nfrom lib import util\nimport flytekit\nimport yaml\n",
            "src/app/models.py": "import dataclasses\n",
            "src/app/unused.py": "",
            "src/lib/__init__.py": "\n   \n",  # blank: not a dependency (content_only)
            "src/lib/util.py": (
                "from lib.deep.inner import f  # from-import of a name in a module\nimport notinstalled\n"
            ),
            "src/lib/deep/__init__.py": "X = 1\n",
            "src/lib/deep/inner.py": "def f(): pass\n",
        },
    )
    graph = _graph(root, requirements=["flytekit", "PyYAML"], installed={"yaml": ["PyYAML"], "flytekit": ["flytekit"]})
    closure = graph.closure(["src/app/tasks.py"])
    assert closure.files == (
        "src/app/__init__.py",
        "src/app/models.py",
        "src/app/tasks.py",
        "src/lib/deep/__init__.py",
        "src/lib/deep/inner.py",
        "src/lib/util.py",
    )
    assert closure.requirements == ("flytekit", "pyyaml")
    assert closure.unowned == (("src/lib/util.py", "notinstalled"),)  # stdlib is never unowned


def test_module_mapping_override_and_default_names(tmp_path):
    root = _tree(tmp_path, {"src/m.py": "import google.protobuf\nimport attr\nimport my_dist\n"})
    graph = _graph(
        root,
        requirements=["protobuf", "attrs", "my-dist"],
        installed={"google": ["protobuf", "googleapis-common-protos"]},
        overrides={"attrs": ["attr"]},
    )
    assert graph.closure(["src/m.py"]).requirements == ("attrs", "my-dist", "protobuf")
    # Undeclared distributions are never returned, even when installed.
    graph = _graph(root, requirements=[], installed={"google": ["protobuf"]})
    assert graph.closure(["src/m.py"]).requirements == ()


def test_ambiguous_module_is_reported_not_guessed(tmp_path):
    root = _tree(tmp_path, {"a/pkg/m.py": "", "b/pkg/m.py": "", "a/main.py": "import pkg.m\n"})
    closure = _graph(root, source_roots=("a", "b")).closure(["a/main.py"])
    assert closure.files == ("a/main.py",)
    assert closure.ambiguous == (("a/main.py", "pkg.m"),)


def test_missing_source_root_is_an_error(tmp_path):
    with pytest.raises(FlytebuildError, match="Source root `nope`"):
        index_modules(str(tmp_path), ["nope"])


def test_stdlib_names_are_known_on_every_supported_python():
    from flytebuild.core.imports import STDLIB

    assert {"asyncio", "json", "dataclasses", "typing", "sys", "__future__"} <= STDLIB
    assert "flytekit" not in STDLIB and "site-packages" not in STDLIB
