"""The simulator stays behind its boundary: no production module imports it."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The CLI dispatches the simulator's own commands (generate, gold, the demo bootstrap).
ENTRY_POINTS = {ROOT / "jobs" / "cli.py"}
PRODUCTION = sorted(
    p
    for package in ("jobs", "udfs", "schemas")
    for p in (ROOT / package).glob("*.py")
    if p not in ENTRY_POINTS
)


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", PRODUCTION, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_production_code_never_imports_the_simulator(path):
    assert not {m for m in _imports(path) if m == "sim" or m.startswith("sim.")}


def test_the_checker_sees_an_import(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("from sim import world\nimport sim.judge\n")
    assert {"sim", "sim.judge"} <= _imports(planted)
