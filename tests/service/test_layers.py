"""The service layer's shape, read from the source: oci imports nothing above itself, the service neither Pants
nor flytekit nor a front end, every Docker engine call is in oci/engine.py, and no private Pants API drives
registry I/O."""
import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src/python/flytebuild"


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_oci_imports_nothing_above_itself():
    for path in sorted((SRC / "oci").glob("*.py")):
        above = [m for m in _imports(path) if m.startswith("flytebuild") and not m.startswith("flytebuild.oci")]
        assert above == [], f"{path.name} imports {above}"


def test_service_imports_only_core_and_oci():
    for path in sorted((SRC / "service").glob("*.py")):
        for m in _imports(path):
            assert not m.startswith(("pants", "flytekit", "flytebuild.cli", "flytebuild.pants_backend",
                                     "flytebuild.runtime")), f"{path.name} imports {m}"


def test_every_docker_engine_call_is_in_oci_engine():
    calls = ('"load", "-i"', '"run", "--rm"', '"build", "--network"', '"image", "inspect"', '"docker", "info"',
             '[docker, "info"]', '"pull", "-q"')
    found = {
        str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
        if p.name != "__init__.py" and any(c in p.read_text() for c in calls)
    }
    assert found == {"oci/engine.py"}


def test_no_private_pants_api_in_the_backend():
    for path in sorted((SRC / "pants_backend").rglob("*.py")):
        text = path.read_text()
        assert "_uncacheable_rule" not in text, path
        private = [m for m in _imports(path) if m.startswith("pants.engine.internals")]
        # No public home in Pants 2.17 for either: Owners/OwnersRequest (closures.py), and RunId (deployment.py:
        # the deploy process is new in each run, as Pants' own `test` goal does it). Neither does registry I/O.
        allowed = {"graph": "util_rules/closures.py", "session": "util_rules/deployment.py"}
        for module in private:
            name = module.rpartition(".")[2]
            assert str(path.relative_to(SRC / "pants_backend")) == allowed.get(name), f"{path}: {module}"
