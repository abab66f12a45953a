"""The import graph of src/python/flytebuild keeps its layers: front ends (pants_backend, cli) -> service ->
core / oci; runtime apart. Read from every module's imports (ast), lazy imports inside functions included.

- core imports neither pants nor flytekit (nor flyteidl), nor service, a front end or the runtime;
- oci imports nothing above itself: no flytebuild.core, service, front end or runtime, no pants, no flytekit;
- service imports no front end and no pants (the CLI runs it without Pants);
- the CLI imports no pants and nothing of the Pants backend; the Pants backend nothing of the CLI;
- runtime imports no flytebuild at all (it runs in the user's environment, where flytebuild is not installed),
  and its relative imports stay inside the package.
- the Pants backend uses no private Pants name and, of `pants.engine.internals`, only PANTS_INTERNALS_ALLOWED.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

SRC = Path(__file__).resolve().parents[1] / "src/python"
PACKAGE = SRC / "flytebuild"

_FRONT_ENDS = ("flytebuild.pants_backend", "flytebuild.cli")
# layer -> imported names (prefixes) it must not use
FORBIDDEN: Dict[str, Tuple[str, ...]] = {
    "core": ("pants", "flytekit", "flyteidl", "flytebuild.service", *_FRONT_ENDS, "flytebuild.runtime"),
    "oci": ("pants", "flytekit", "flyteidl", "flytebuild.core", "flytebuild.service", *_FRONT_ENDS,
            "flytebuild.runtime"),
    "service": ("pants", *_FRONT_ENDS, "flytebuild.runtime"),
    "cli": ("pants", "flytebuild.pants_backend", "flytebuild.runtime"),
    "pants_backend": ("flytebuild.cli", "flytebuild.runtime"),
    "runtime": ("flytebuild",),
}

# Violations known when this test was written, each owned by a change in flight: (layer, reason).
# An entry here makes that layer's test an expected failure (strict: once fixed, delete the entry).
KNOWN: Dict[str, str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool) -> Iterator[Tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, relative ones resolved against `module`."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level - 1 > len(base) - 1:
                    yield node.lineno, "<relative import above the top-level package>"
                    continue
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target
            if "." not in target:  # `from flytebuild import core` imports flytebuild.core
                for alias in node.names:
                    yield node.lineno, f"{target}.{alias.name}"


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(layer: str, modules: List[Tuple[str, str, bool, str]]) -> List[str]:
    """`file:line: module imports name` for each forbidden import of `layer` among (module, source, is_package,
    file) entries."""
    out = []
    for module, source, is_package, file in modules:
        if layer_of(module) != layer:
            continue
        for line, name in imports_of(source, module, is_package):
            if _matches(name, f"flytebuild.{layer}"):
                continue  # its own package
            if name.startswith("<") or any(_matches(name, p) for p in FORBIDDEN[layer]):
                out.append(f"{file}:{line}: {module} imports {name}")
    return sorted(set(out))


def _all_modules() -> List[Tuple[str, str, bool, str]]:
    return [
        (module_name(p), p.read_text(encoding="utf-8"), p.name == "__init__.py", str(p.relative_to(SRC.parents[1])))
        for p in sorted(PACKAGE.rglob("*.py"))
        if "__pycache__" not in p.parts
    ]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_nothing_it_must_not(layer, request):
    if layer in KNOWN:
        request.applymarker(pytest.mark.xfail(strict=True, reason=KNOWN[layer]))
    modules = _all_modules()
    if layer != "service":  # the service layer is new: absent is fine, every other layer exists
        assert any(layer_of(m) == layer for m, *_ in modules), f"no modules found for layer {layer}"
    found = violations(layer, modules)
    assert not found, f"{layer} imports what its layer forbids:\n" + "\n".join(found)


# Pants 2.17 exports these engine types only from `pants.engine.internals`; Pants' own backends import them from
# there too (core/goals/test.py: RunId; python/dependency_inference/rules.py: Owners). Nothing else of the
# internals, and no private (underscored) name of Pants, is used.
PANTS_INTERNALS_ALLOWED = {
    ("pants.engine.internals.session", "RunId"),
    ("pants.engine.internals.graph", "Owners"),
    ("pants.engine.internals.graph", "OwnersRequest"),
}


def pants_private_uses(source: str) -> Iterator[Tuple[int, str]]:
    """(line, what) of every import of a Pants internal outside PANTS_INTERNALS_ALLOWED or of a private name."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("pants.engine.internals"):
                    yield node.lineno, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "pants":
            for alias in node.names:
                internal = node.module.startswith("pants.engine.internals")
                if alias.name.startswith("_") or (internal and (node.module, alias.name) not in
                                                  PANTS_INTERNALS_ALLOWED):
                    yield node.lineno, f"from {node.module} import {alias.name}"


def test_pants_backend_uses_no_private_pants_api():
    modules = [m for m in _all_modules() if layer_of(m[0]) == "pants_backend"]
    assert modules, "no Pants backend modules found"
    found = [f"{where}:{line}: {what}" for _, source, _, where in modules for line, what in pants_private_uses(source)]
    assert not found, "the Pants backend uses Pants internals:\n" + "\n".join(found)
    # the checker itself: an internal not allowed, a private name, an allowed one
    probe = ("from pants.engine.internals.selectors import Get\nfrom pants.engine.rules import _uncacheable_rule\n"
             "from pants.engine.internals.session import RunId\nimport pants.engine.internals.graph\n")
    assert [line for line, _ in pants_private_uses(probe)] == [1, 2, 4]


def test_checker_sees_lazy_relative_and_from_imports():
    """The checker itself: a forbidden import inside a function, a `from flytebuild import x`, and a relative
    import that leaves the runtime package are each reported."""
    core_src = "def f():\n    import flytekit\n"
    oci_src = "from flytebuild import core\n"
    runtime_src = "from .. import cli\nfrom . import introspect\n"
    modules = [
        ("flytebuild.core.x", core_src, False, "core/x.py"),
        ("flytebuild.oci.y", oci_src, False, "oci/y.py"),
        ("flytebuild.runtime.z", runtime_src, False, "runtime/z.py"),
    ]
    assert violations("core", modules) == ["core/x.py:2: flytebuild.core.x imports flytekit"]
    assert violations("oci", modules) == ["oci/y.py:1: flytebuild.oci.y imports flytebuild.core"]
    assert violations("runtime", modules) == [
        "runtime/z.py:1: flytebuild.runtime.z imports flytebuild",
        "runtime/z.py:1: flytebuild.runtime.z imports flytebuild.cli",
    ]


def _stdlib(name: str) -> bool:
    """A top-level module of the standard library (built in, or under the running interpreter's stdlib)."""
    import importlib.util
    import sys
    import sysconfig

    if name in sys.builtin_module_names:
        return True
    spec = importlib.util.find_spec(name)
    origin = (spec.origin or "") if spec else ""
    return origin in ("built-in", "frozen") or (
        origin.startswith(sysconfig.get_paths()["stdlib"]) and "site-packages" not in origin)


def test_runtime_modules_front_ends_load_import_only_the_standard_library():
    """service/runtime_package.py `stdlib_module` loads these runtime modules in pantsd and the CLI (one
    implementation of what both sides decide, e.g. the deploy ledger): they may import the standard library only
    (no flytekit, no relative import of the rest of the runtime), and must compile for Python 3.9."""
    from flytebuild.service.runtime_package import STDLIB_MODULES, stdlib_module

    for name in STDLIB_MODULES:
        path = PACKAGE / "runtime" / f"{name}.py"
        source = path.read_text(encoding="utf-8")
        ast.parse(source, feature_version=(3, 9))
        found = sorted({n for _, n in imports_of(source, f"flytebuild.runtime.{name}", False)})
        assert found and all(not n.startswith("flytebuild") and _stdlib(n.split(".")[0]) for n in found), found
        assert stdlib_module(name).__file__ == str(path)
    with pytest.raises(ValueError):
        stdlib_module("deploy")
