"""Find a learner's exercise cells and cut out what the grader executes.

A notebook is read as data (its JSON), never run. For every exercise of the notebook the
grader looks for the code cell tagged ``exercise`` that defines the exercise's function or class,
and builds the *program*: the definitions of that cell (``import``, ``def``, ``class`` and
assignments of plain literals; every other top-level statement is dropped), preceded by the
definitions from other cells that those need (the notebook's ``import`` lines, helper functions).
Nothing else of the notebook runs: not its check cells, not its outputs, not its set-up.

Notebooks that do not follow the script get a status instead of a crash:

* ``missing``: no cell tagged ``exercise`` defines the exercise (deleted, or the tag removed);
* ``duplicate``: two tagged cells define it;
* ``renamed?``: a tagged cell that belongs to the exercise defines a function under another name.

Taught in: not taught; instructors use it through ``workshop grade`` (see the README).
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass, field
from pathlib import Path

from workshop.errors import WorkshopError

EXERCISE_TAG = "exercise"
_BUILTINS = frozenset(dir(builtins))
_KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class NotebookError(WorkshopError):
    """A submission that cannot be read as a notebook (not JSON, not nbformat)."""


@dataclass
class Cell:
    """One code cell of a learner's notebook."""

    index: int
    source: str
    tags: list[str]
    meta_exercise: str | None = None
    tree: ast.Module | None = None
    syntax_error: str | None = None

    def __post_init__(self) -> None:
        try:
            self.tree = ast.parse(_without_magics(self.source))
        except SyntaxError as exc:
            self.syntax_error = f"line {exc.lineno}: {exc.msg}"

    @property
    def tagged(self) -> bool:
        return EXERCISE_TAG in self.tags


@dataclass
class Segment:
    """A piece of a cell the grader executes, with its place for tracebacks."""

    source: str
    line: int
    cell: int


@dataclass
class Located:
    """Where an exercise was found in one notebook, and what to run for it."""

    exercise: str
    status: str | None = None  # set when the exercise cannot be run: missing / duplicate / renamed? / error
    message: str = ""
    cell: Cell | None = None
    segments: list[Segment] = field(default_factory=list)


def read_cells(path: str | Path) -> list[Cell]:
    """The code cells of a notebook file; a file that is not a notebook raises ``NotebookError``."""
    import json

    path = Path(path)
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # not JSON, unreadable: one message naming the file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NotebookError(f"{path.name} is not a valid notebook ({first[:160]})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError(f"{path.name} is not a valid notebook (no list of cells; nbformat 4 is expected)")
    cells = []
    for i, cell in enumerate(nb["cells"]):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata", {}) if isinstance(cell.get("metadata"), dict) else {}
        tags = [t for t in meta.get("tags", []) if isinstance(t, str)] if isinstance(meta.get("tags"), list) else []
        name = meta.get("exercise") if isinstance(meta.get("exercise"), str) else None
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(s for s in source if isinstance(s, str))
        cells.append(Cell(i, source if isinstance(source, str) else "", tags, name))
    return cells


def _without_magics(source: str) -> str:
    """IPython magics and shell lines (``%pip``, ``!ls``) as comments, so the cell parses."""
    return "\n".join("#" + line if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def defined_names(tree: ast.Module) -> dict[str, ast.stmt]:
    """Top-level names a cell binds by ``def``, ``class``, an assignment or an import."""
    out: dict[str, ast.stmt] = {}
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[stmt.name] = stmt
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    out[target.id] = stmt
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for name in bound_by(stmt):
                out[name] = stmt
    return out


def _is_literal_assign(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Assign):
        targets, value = stmt.targets, stmt.value
    elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
        targets, value = [stmt.target], stmt.value
    else:
        return False
    if not all(isinstance(t, ast.Name) for t in targets):
        return False
    try:
        ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def definitions(tree: ast.Module) -> list[ast.stmt]:
    """The statements of a cell the grader may execute: imports, defs, classes, literal constants."""
    return [s for s in tree.body if isinstance(s, _KEPT) or _is_literal_assign(s)]


def bound_by(stmt: ast.stmt) -> set[str]:
    """Top-level names one kept statement binds."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in stmt.names if a.name != "*"}
    if isinstance(stmt, ast.Assign):
        return {t.id for t in stmt.targets if isinstance(t, ast.Name)}
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return {stmt.target.id}
    return set()


def free_names(stmts: list[ast.stmt]) -> set[str]:
    """Names the statements read but never bind anywhere (an over-approximation of scopes)."""
    loaded, bound = set(), set()
    for stmt in stmts:
        bound |= bound_by(stmt)
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name):
                (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
            elif isinstance(node, ast.arg):
                bound.add(node.arg)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
            elif isinstance(node, ast.ExceptHandler) and node.name:
                bound.add(node.name)
    return loaded - bound - _BUILTINS


def segment(cell: Cell, stmt: ast.stmt) -> Segment:
    """The source lines of ``stmt`` (decorators included) as a ``Segment``."""
    start = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
    lines = cell.source.splitlines()[start - 1: stmt.end_lineno]
    return Segment("\n".join(lines), start, cell.index)


def build_program(target: Cell, cells: list[Cell]) -> list[Segment]:
    """The definitions of ``target`` and, before them, what they need from the notebook's other cells.

    A free name is looked up in the other cells, nearest earlier cell first, then later cells; only
    imports, defs, classes and literal constants are taken, and their own needs are followed too.
    """
    assert target.tree is not None
    own = definitions(target.tree)
    needed = free_names(own)
    order = sorted((c for c in cells if c is not target and c.tree is not None),
                   key=lambda c: (c.index > target.index, abs(c.index - target.index)))
    chosen: dict[tuple[int, int], tuple[Cell, ast.stmt]] = {}
    have: set[str] = set().union(*(bound_by(s) for s in own)) if own else set()
    todo = sorted(needed - have)
    while todo:
        name = todo.pop()
        for cell in order:
            provider = next((s for s in reversed(definitions(cell.tree)) if name in bound_by(s)), None)
            if provider is not None:
                chosen[(cell.index, provider.lineno)] = (cell, provider)
                have |= bound_by(provider)
                todo.extend(sorted(free_names([provider]) - have - set(todo)))
                break
    segments = [segment(c, s) for _, (c, s) in sorted(chosen.items(), key=lambda kv: kv[0])]
    return segments + [segment(target, s) for s in own]


def _params(stmt: ast.stmt | None) -> list[str]:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return [a.arg for a in stmt.args.posonlyargs + stmt.args.args]
    if isinstance(stmt, ast.ClassDef):
        init = next((s for s in stmt.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
        return ["class"] + _params(init)
    return []


def stub_params(stub: str, name: str) -> list[str]:
    """The parameter names of the stub's function (or its class's ``__init__``)."""
    return _params(defined_names(ast.parse(stub)).get(name))


def locate(exercises: list, cells: list[Cell]) -> list[Located]:
    """Find each exercise's cell among ``cells``; see the module docstring for the statuses."""
    tagged = [c for c in cells if c.tagged]
    names = {ex.name for ex in exercises}
    holders = {ex.name: [c for c in tagged if _defines(c, ex.name)] for ex in exercises}
    claimed = {id(c) for cs in holders.values() for c in cs}
    out = []
    for ex in exercises:
        found = holders[ex.name]
        if len(found) > 1:
            where = ", ".join(f"cell {c.index}" for c in found)
            out.append(Located(ex.name, "duplicate", f"{ex.name} is defined in more than one exercise cell ({where}); "
                               "keep exactly one cell tagged `exercise` for it"))
            continue
        if len(found) == 1:
            cell = found[0]
            if cell.syntax_error:
                out.append(Located(ex.name, "error", f"the exercise cell (cell {cell.index}) does not parse: "
                                   f"{cell.syntax_error}", cell))
            else:
                out.append(Located(ex.name, None, "", cell, build_program(cell, cells)))
            continue
        labelled = [c for c in tagged if id(c) not in claimed and c.meta_exercise == ex.name and c.tree is not None
                    and not any(isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                                for s in c.tree.body)]
        if labelled:  # the exercise's own cell, with no definition at all (``exec(...)``, an assignment...)
            claimed.add(id(labelled[0]))
            out.append(Located(ex.name, None, "", labelled[0], build_program(labelled[0], cells)))
            continue
        renamed = _renamed(ex, [c for c in tagged if id(c) not in claimed], names)
        if renamed is not None:
            cell, other = renamed
            claimed.add(id(cell))
            out.append(Located(ex.name, "renamed?", f"the exercise cell (cell {cell.index}) defines {other!r}, not "
                               f"{ex.name!r}: the grader looks for {ex.name}; name it back", cell))
            continue
        untagged = [c for c in cells if not c.tagged and _defines(c, ex.name, defs_only=True)]
        if untagged:
            out.append(Located(ex.name, "missing", f"cell {untagged[-1].index} defines {ex.name} but is not tagged "
                               f"`exercise`; the grader only reads tagged cells (add the tag back)"))
        else:
            out.append(Located(ex.name, "missing", f"no cell tagged `exercise` defines {ex.name} (the cell was "
                               "deleted, or its tag removed)"))
    return out


def _defines(cell: Cell, name: str, defs_only: bool = False) -> bool:
    if cell.tree is None:
        return re.search(rf"^(def|class)\s+{re.escape(name)}\b", cell.source, re.M) is not None
    stmt = defined_names(cell.tree).get(name)
    if stmt is None:
        return False
    return not defs_only or isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))


def _renamed(ex, candidates: list[Cell], names: set[str]) -> tuple[Cell, str] | None:
    """A tagged cell that is this exercise's under another name: by its metadata, else by the stub's parameters."""
    want = stub_params(ex.stub, ex.name)
    for by_meta in (True, False):
        for cell in candidates:
            if cell.tree is None or (by_meta and cell.meta_exercise != ex.name):
                continue
            defs = [s for s in cell.tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                    and s.name not in names]
            for stmt in defs:
                if by_meta or (want and _params(stmt) == want):
                    return cell, stmt.name
    return None
