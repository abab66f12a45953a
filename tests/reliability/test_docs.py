"""docs/reliability.md is the suite's case tables, rendered: regenerating it changes nothing."""
import subprocess
import sys
from pathlib import Path

from tests.reliability.cases import count

REPO = Path(__file__).resolve().parents[2]
# The command docs/reliability.md shows (run here, from the repository root):
REGENERATE = "python -m tests.reliability.cases > docs/reliability.md"


def test_doc_is_generated_from_the_case_tables():
    proc = subprocess.run([sys.executable, "-m", "tests.reliability.cases"], cwd=REPO, capture_output=True,
                          text=True, check=True)
    doc = (REPO / "docs" / "reliability.md").read_text()
    assert doc == proc.stdout, f"docs/reliability.md is stale: run `{REGENERATE}`"
    assert count() >= 100
