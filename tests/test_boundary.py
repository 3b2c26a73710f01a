"""The house's boundaries, read from the source with ``ast`` (every import, function-level too):
the simulator stays behind its boundary, no step imports another step, and there is no import
cycle among policyrank's own modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("jobs", "udfs", "schemas", "sim")
# One module per step; `cli` and `run_daily` (the pipeline) are the only modules that call steps.
STEPS = {
    f"jobs.{name}"
    for name in (
        "candidates", "sample", "judge", "student", "evaluate", "score", "maintain", "show",
        "catalog",
    )
}  # fmt: skip
ENTRY_POINTS = {"jobs.cli", "jobs.run_daily"}
# The CLI also dispatches the simulator's own commands (generate, gold, the demo bootstrap).
SIMULATOR_DISPATCH = {"jobs.cli"}


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = ROOT) -> dict[str, Path]:
    return {
        _module_name(p, root): p for package in PACKAGES for p in (root / package).rglob("*.py")
    }


def imports(path: Path, known: set[str]) -> set[str]:
    """The known modules ``path`` imports: ``from a.b import c`` counts ``a.b`` and, when it is a
    module, ``a.b.c``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            continue
        found |= {n for n in names if n in known}
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    mods = modules(root)
    return {name: imports(path, set(mods)) - {name} for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def layer_breaches(graph: dict[str, set[str]]) -> list[str]:
    """Imports that cross a boundary: a step importing a step or an entry point, the library
    importing a step or an entry point, production code importing the simulator."""
    breaches = []
    for mod, deps in sorted(graph.items()):
        for dep in sorted(deps):
            if dep in STEPS | ENTRY_POINTS and mod not in ENTRY_POINTS:
                kind = "step" if mod in STEPS else "module"
                breaches.append(f"{kind} {mod} imports {dep}")
            elif dep.split(".")[0] == "sim" and not (
                mod.startswith("sim") or mod in SIMULATOR_DISPATCH
            ):
                breaches.append(f"production module {mod} imports the simulator's {dep}")
    return breaches


GRAPH = import_graph()


def test_the_graph_sees_every_package():
    assert {m.split(".")[0] for m in GRAPH} == set(PACKAGES)
    assert set(GRAPH) >= STEPS | ENTRY_POINTS, "a step module was renamed: update STEPS"


def test_no_import_cycle():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH) or [])


def test_no_step_imports_another_step_and_production_never_imports_the_simulator():
    assert layer_breaches(GRAPH) == []


def test_the_checks_catch_a_planted_cycle_and_a_step_to_step_import(tmp_path: Path):
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "jobs" / "score.py").write_text("def f():\n    from jobs import sample\n")
    (tmp_path / "jobs" / "sample.py").write_text("import jobs.util\n")
    (tmp_path / "jobs" / "util.py").write_text("from jobs.score import f\n")
    (tmp_path / "udfs" / "x.py").write_text("from sim import world\n")
    (tmp_path / "sim" / "world.py").write_text("")
    graph = import_graph(tmp_path)
    assert find_cycle(graph) == ["jobs.sample", "jobs.util", "jobs.score", "jobs.sample"]
    assert layer_breaches(graph) == [
        "step jobs.score imports jobs.sample",
        "module jobs.util imports jobs.score",
        "production module udfs.x imports the simulator's sim",
        "production module udfs.x imports the simulator's sim.world",
    ]


@pytest.mark.parametrize("module", sorted(STEPS))
def test_each_step_is_a_module_with_a_docstring(module: str):
    assert ast.get_docstring(ast.parse(modules()[module].read_text()))
