"""workshop.instance reads as the data path: no import circle, and the book imports none of the machinery."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "workshop" / "instance"
BOOK = ("stages", "plan", "polygons", "data", "model", "viz", "engine", "evaluate")
"""What notebook 10 teaches, in the order of the data path (viz draws what data and model give)."""
MACHINERY = ("sizing", "budget", "runs", "predict", "cli")
"""What makes it a command (``workshop train / evaluate / predict``)."""


def instance_imports(path: Path) -> set[str]:
    """The workshop.instance modules a file imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "workshop.instance":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("workshop.instance."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[2] for a in node.names if a.name.startswith("workshop.instance."))
    return found


def graph() -> dict[str, set[str]]:
    return {p.stem: instance_imports(p) - {p.stem} for p in PACKAGE.glob("*.py") if p.stem != "__init__"}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the import graph as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_circle_through_lazy_imports(tmp_path) -> None:
    (tmp_path / "a.py").write_text("def f():\n    from workshop.instance.b import g\n")
    (tmp_path / "b.py").write_text("from workshop.instance import a\n")
    edges = {p.stem: instance_imports(p) for p in tmp_path.glob("*.py")}
    assert edges == {"a": {"b"}, "b": {"a"}}
    assert find_cycle(edges) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle_within_workshop_instance() -> None:
    assert find_cycle(graph()) is None


def test_every_module_is_named_book_or_machinery() -> None:
    assert set(graph()) == set(BOOK) | set(MACHINERY)


@pytest.mark.parametrize("module", BOOK)
def test_the_book_imports_none_of_the_machinery(module: str) -> None:
    assert not graph()[module] & set(MACHINERY), f"workshop/instance/{module}.py imports {graph()[module] & set(MACHINERY)}"


@pytest.mark.parametrize("module", BOOK)
def test_each_book_module_imports_only_what_comes_before_it_on_the_path(module: str) -> None:
    earlier = set(BOOK[:BOOK.index(module)])
    assert graph()[module] <= earlier, f"{module} imports {graph()[module] - earlier}, which come later on the path"
