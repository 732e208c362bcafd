"""The import graph of a package, read statically (``ast``), and the cycles in it.

Used by the layer tests: ``import_graph("workshop")`` maps every module to the modules it imports,
at module level and inside functions (``TYPE_CHECKING`` blocks are left out: they never run).
``from pkg import name`` counts as an import of ``pkg.name`` when that is a module, else of ``pkg``.
A module's own parent packages are not counted (Python runs a package's ``__init__`` before any of
its modules, so that edge is in every package and is no circle of the code's making).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_files(package: str, root: Path = ROOT) -> dict[str, Path]:
    """``{dotted module name: file}`` for every ``.py`` file under ``root / package``."""
    base = root / package.replace(".", "/")
    found = {}
    for file in sorted(base.rglob("*.py")):
        parts = list(file.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = file
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool, function_level: bool) -> list[str]:
    """Dotted names imported by ``tree`` (absolute, relative imports resolved)."""
    names: list[str] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child, in_function)
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            in_function = True
            if not function_level:
                return
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                here = module.split(".") if is_package else module.split(".")[:-1]
                here = here[: len(here) - (node.level - 1)]
                base = ".".join(here + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.extend(f"{base}.{a.name}" for a in node.names)
            names.append(base)
        for child in ast.iter_child_nodes(node):
            visit(child, in_function)

    visit(tree, False)
    return names


def import_graph(package: str = "workshop", function_level: bool = True, root: Path = ROOT) -> dict[str, set[str]]:
    """``{module: {modules of the package it imports}}``.

    Args:
        package: the top package (``"workshop"``) or a sub-package (``"workshop.data"``): only
            modules under it are nodes.
        function_level: also count imports inside functions (lazy imports still make a circle
            of dependencies, even when Python tolerates it).
    """
    files = module_files(package.split(".")[0], root)
    graph: dict[str, set[str]] = {}
    for module, file in files.items():
        if not (module == package or module.startswith(package + ".")):
            continue
        tree = ast.parse(file.read_text(), str(file))
        targets = set()
        for name in _imports(tree, module, file.name == "__init__.py", function_level):
            # ``from pkg import name``: the module pkg.name when it exists, else pkg itself
            if name in files:
                targets.add(name)
            elif name.rpartition(".")[0] in files and name.rpartition(".")[2] not in ("*",):
                parent = name.rpartition(".")[0]
                if f"{parent}.{name.rpartition('.')[2]}" not in files:
                    targets.add(parent)
        parents = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        graph[module] = {t for t in targets if t != module and t not in parents
                         and (t == package or t.startswith(package + "."))}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of ``graph``: one list per strongly connected group of two or more modules,
    each shown as a path that closes on itself (``[a, b, a]``), sorted for a stable message."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0

    def strongconnect(v: str) -> None:  # Tarjan's algorithm, iterative over the edges
        nonlocal counter
        work = [(v, iter(sorted(graph.get(v, ()))))]
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, edges = work[-1]
            advanced = False
            for w in edges:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    advanced = True
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    group.append(w)
                    if w == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return sorted(_a_loop(graph, g) for g in groups)


def _a_loop(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """A closed path through the first module of ``group`` (breadth-first, inside the group)."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, ()) & members):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    return group


def format_cycles(cycles: list[list[str]]) -> str:
    return "\n".join(" -> ".join(c) for c in cycles)
