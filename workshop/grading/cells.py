"""Find a learner's answer to each exercise and cut out what the grader executes.

A notebook is read as data (its JSON), never run. Its cells are read as IPython reads them
(``IPython.core.inputtransformer2``: ``!ls``, ``x = !ls``, ``obj?``, ``%matplotlib``, ``%%time``), on
``"\\n"`` only (a U+2028 in a comment is not a line break for Python), from files read as ``utf-8-sig``.

*Grade what the kernel ran.* An exercise's function or class is the **last** top-level ``def`` or
``class`` of its name in the notebook, in whichever cell, tagged ``exercise`` or not: that is the
object a learner's kernel holds after running the notebook top to bottom. The tag says where the
answer is expected (and the exercise cell itself may also bind the name another way, an assignment or
an import; elsewhere such a binding counts only when it is the library's answer, since a later
``dice_loss = dice_loss(logits, y)`` while exploring is no answer); it is not the only place an answer
is looked for, because Google Colab cannot tag the cells a learner adds. The grader then builds the *program*: the definitions of that cell (``import``,
``def``, ``class`` and assignments of plain literals; every other top-level statement is dropped),
preceded by the definitions from other cells that those need (the notebook's ``import`` lines, helper
functions). Nothing else of the notebook runs: not its check cells, not its outputs, not its set-up.

Notebooks that do not follow the script get a status instead of a crash:

* ``missing``: no cell defines the exercise (deleted, or never written);
* ``duplicate``: two cells tagged ``exercise`` define it (which one is the answer is not clear);
* ``renamed?``: a tagged cell that belongs to the exercise defines a function under another name.

Cells are numbered from 1 at the top of the notebook, markdown cells included.

Taught in: not taught; instructors use it through ``workshop grade`` (see docs/instructors.md).
"""

from __future__ import annotations

import ast
import builtins
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from workshop.errors import WorkshopError

EXERCISE_TAG = "exercise"
PYTHON_CELL_MAGICS = ("time", "capture")  # cell magics whose body the kernel runs as ordinary cell code
_BUILTINS = frozenset(dir(builtins))
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_KEPT = (ast.Import, ast.ImportFrom, *_DEFS)


class NotebookError(WorkshopError):
    """A submission that cannot be read as a notebook (not JSON, not nbformat)."""


def _transformer():
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # IPython comes with ipywidgets; without it, the small fallback below
        return None
    return TransformerManager()


_TRANSFORMER: list = []


def _plain_python(source: str) -> str:
    """Without IPython: magics, shell and help lines become ``pass`` (``x = !ls`` becomes ``x = None``)."""
    out = []
    for line in source.split("\n"):
        body = line.lstrip()
        indent = line[: len(line) - len(body)]
        if body.startswith(("%", "!", "?")) or (body.endswith("?") and not body.startswith("#")):
            line = indent + "pass"
        elif re.match(r"[\w.,\s\[\]()]+=\s*[!%]", body):
            line = indent + body.split("=", 1)[0] + "= None"
        out.append(line)
    return "\n".join(out)


def to_python(source: str) -> str:
    """The Python an IPython kernel runs for a cell's ``source`` (magics, ``!`` and ``?`` turned into calls).

    ``%%time`` and ``%%capture`` cells give their body (the kernel runs it as a cell); other cell magics
    (``%%bash``, ``%%writefile``...) give one ``run_cell_magic`` call, which defines nothing.
    """
    lines = source.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None:
        magic = re.match(r"%%(\w+)", lines[first])
        if magic and magic.group(1) in PYTHON_CELL_MAGICS:
            return "\n" * (first + 1) + to_python("\n".join(lines[first + 1:]))
    if not _TRANSFORMER:
        _TRANSFORMER.append(_transformer())
    if _TRANSFORMER[0] is None:
        return _plain_python(source)
    with warnings.catch_warnings():  # IPython warns about lines split at characters other than "\n"
        warnings.simplefilter("ignore")
        try:
            return _TRANSFORMER[0].transform_cell(source)
        except Exception:  # a cell IPython cannot tokenize either: left as it is (it will not parse)
            return source


@dataclass
class Cell:
    """One code cell of a learner's notebook (``index``: its place among all cells, from 0)."""

    index: int
    source: str
    tags: list[str]
    meta_exercise: str | None = None
    code: str = ""
    tree: ast.Module | None = None
    syntax_error: str | None = None

    def __post_init__(self) -> None:
        self.code = to_python(self.source)
        try:
            self.tree = ast.parse(self.code)
        except (SyntaxError, ValueError) as exc:  # ValueError: a NUL byte in the source
            self.syntax_error = f"line {getattr(exc, 'lineno', '?')}: {getattr(exc, 'msg', exc)}"

    @property
    def tagged(self) -> bool:
        return EXERCISE_TAG in self.tags

    @property
    def number(self) -> int:
        """The cell's number as a person counts it: from 1 at the top, markdown cells included."""
        return self.index + 1


@dataclass
class Notebook:
    """The code cells of one notebook file, and whether it was saved by Google Colab."""

    cells: list[Cell]
    colab: bool = False


@dataclass
class Segment:
    """A piece of a cell the grader executes, with its place for tracebacks (``cell``: the cell's number)."""

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
    graded: str = ""  # which cell was graded, for the feedback ("untagged cell 14, `def dice_loss…`")


def _is_colab(nb: dict) -> bool:
    """Saved by Google Colab: its metadata keys (``colab``, per-cell ``outputId``) are there."""
    meta = nb.get("metadata") if isinstance(nb.get("metadata"), dict) else {}
    if "colab" in meta:
        return True
    return any(isinstance(c, dict) and isinstance(c.get("metadata"), dict)
               and ("colab" in c["metadata"] or "outputId" in c["metadata"]) for c in nb.get("cells", []))


def read_notebook(path: str | Path) -> Notebook:
    """The code cells of a notebook file; a file that is not a notebook raises ``NotebookError``."""
    path = Path(path)
    try:
        nb = json.loads(path.read_text(encoding="utf-8-sig"))  # a BOM (Notepad) is not part of the JSON
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # not JSON, unreadable: one message naming the file
        first = str(exc).strip().split("\n")[0] if str(exc).strip() else type(exc).__name__
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
        source = source.replace("\r\n", "\n").replace("\r", "\n") if isinstance(source, str) else ""
        cells.append(Cell(i, source, tags, name))
    return Notebook(cells, _is_colab(nb))


def read_cells(path: str | Path) -> list[Cell]:
    """The code cells of a notebook file (see :func:`read_notebook`)."""
    return read_notebook(path).cells


def defined_names(tree: ast.Module) -> dict[str, ast.stmt]:
    """Top-level names a cell binds by ``def``, ``class``, an assignment or an import (the last binding of each)."""
    out: dict[str, ast.stmt] = {}
    for stmt in tree.body:
        if isinstance(stmt, _DEFS):
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
    if isinstance(stmt, _DEFS):
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
            elif isinstance(node, _DEFS):
                bound.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
            elif isinstance(node, ast.ExceptHandler) and node.name:
                bound.add(node.name)
    return loaded - bound - _BUILTINS


def _lines(cell: Cell) -> list[str]:
    return cell.code.split("\n")


def segment(cell: Cell, stmt: ast.stmt) -> Segment:
    """The source lines of ``stmt`` (decorators included) as a ``Segment``."""
    start = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
    return Segment("\n".join(_lines(cell)[start - 1: stmt.end_lineno]), start, cell.number)


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


def _is_check_call(stmt: ast.stmt, name: str) -> bool:
    """``name = tasks.name.check(name)``: the notebook's check cell, which binds the name but is no answer."""
    return isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call) \
        and isinstance(stmt.value.func, ast.Attribute) and stmt.value.func.attr == "check"


def binds(cell: Cell, exercise) -> bool:
    """Whether the cell's top level defines ``exercise`` (an ``Exercise``): by ``def``/``class`` in any cell;
    by an assignment or an import in a cell tagged ``exercise``, or in any cell when that statement uses
    the library's answer (``dice_loss = tasks.dice_loss.reference`` in a cell Colab could not tag)."""
    name = exercise.name
    if cell.tree is None:
        return re.search(rf"^(async\s+def|def|class)\s+{re.escape(name)}\b", cell.code, re.M) is not None
    for stmt in cell.tree.body:
        if isinstance(stmt, _DEFS):
            if stmt.name == name:
                return True
        elif name in _binds_any(stmt) and not _is_check_call(stmt, name):
            if cell.tagged or _uses_reference(stmt, exercise):
                return True
    return False


def _uses_reference(stmt: ast.stmt, exercise) -> bool:
    from workshop.grading.scan import scan

    return any(f.kind == "reference" for f in scan(ast.Module(body=[stmt], type_ignores=[]), exercise))


def _binds_any(stmt: ast.stmt) -> set[str]:
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return {t.id for t in targets if isinstance(t, ast.Name)}
    return bound_by(stmt)


def defined_exercises(cells: list[Cell]) -> set[str]:
    """Names a notebook defines at top level by ``def``/``class``, and the exercises its tagged cells are for."""
    names = {c.meta_exercise for c in cells if c.meta_exercise and c.tagged}
    for c in cells:
        if c.tree is not None:
            names |= {s.name for s in c.tree.body if isinstance(s, _DEFS)}
            if c.tagged:
                names |= {n for s in c.tree.body for n in _binds_any(s)}
        else:
            names |= set(re.findall(r"^(?:async\s+def|def|class)\s+(\w+)", c.code, re.M))
    return names


def _first_line(cell: Cell, name: str) -> str:
    """The line that defines ``name`` in the cell, shortened (``def dice_loss(logits, …``)."""
    stmt = None
    if cell.tree is not None:
        stmt = next((s for s in reversed(cell.tree.body) if (isinstance(s, _DEFS) and s.name == name)
                     or (not isinstance(s, _DEFS) and name in _binds_any(s))), None)
    lines = _lines(cell)
    text = lines[stmt.lineno - 1].strip() if stmt is not None and stmt.lineno <= len(lines) else \
        next((l.strip() for l in lines if l.strip()), "")
    return text if len(text) <= 48 else text[:47].rstrip() + "…"


def describe(cell: Cell, name: str) -> str:
    """Which cell is graded, as the feedback says it: ``untagged cell 14, `def dice_loss(…```."""
    where = f"cell {cell.number} (the exercise cell)" if cell.tagged else f"untagged cell {cell.number}"
    return f"{where}, `{_first_line(cell, name)}`"


def locate(exercises: list, cells: list[Cell], colab: bool = False) -> list[Located]:
    """Find each exercise's answer among ``cells``; see the module docstring for the statuses.

    ``colab``: the notebook was saved by Google Colab, which cannot tag cells, so no message asks for a tag.
    """
    tagged = [c for c in cells if c.tagged]
    names = {ex.name for ex in exercises}
    claimed: set[int] = set()
    out = []
    for ex in exercises:
        holders = [c for c in cells if binds(c, ex)]
        claimed |= {id(c) for c in holders}
        in_tagged = [c for c in holders if c.tagged]
        if len(in_tagged) > 1:
            where = ", ".join(f"cell {c.number}" for c in in_tagged)
            keep = "keep one of them" if colab else "keep exactly one cell tagged `exercise` for it"
            out.append(Located(ex.name, "duplicate", f"{ex.name} is defined in more than one exercise cell ({where}); "
                               + keep))
            continue
        if holders:
            cell = holders[-1]  # the last definition: the one the kernel holds after running the notebook
            graded = describe(cell, ex.name)
            earlier = [c for c in in_tagged if c is not cell]
            if earlier:
                graded += f" (the last definition in the notebook, after the one in the exercise cell {earlier[0].number})"
            if cell.syntax_error:
                out.append(Located(ex.name, "error", f"the cell that defines {ex.name} (cell {cell.number}) does not "
                                   f"parse: {cell.syntax_error}", cell, graded=graded))
            else:
                out.append(Located(ex.name, None, "", cell, build_program(cell, cells), graded))
            continue
        out.append(_not_defined(ex, cells, tagged, claimed, names, colab))
    return out


def _not_defined(ex, cells: list[Cell], tagged: list[Cell], claimed: set[int], names: set[str],
                 colab: bool) -> Located:
    """No cell defines the exercise: its own cell doing something else, a renamed function, or missing."""
    labelled = [c for c in tagged if id(c) not in claimed and c.meta_exercise == ex.name and c.tree is not None
                and not any(isinstance(s, _DEFS) for s in c.tree.body)]
    if labelled:  # the exercise's own cell, with no definition at all (``exec(...)``, ``solution()``...)
        claimed.add(id(labelled[0]))
        return Located(ex.name, None, "", labelled[0], build_program(labelled[0], cells),
                       f"cell {labelled[0].number} (the exercise cell)")
    renamed = _renamed(ex, [c for c in tagged if id(c) not in claimed], names)
    if renamed is not None:
        cell, other = renamed
        claimed.add(id(cell))
        return Located(ex.name, "renamed?", f"the exercise cell (cell {cell.number}) defines {other!r}, not "
                       f"{ex.name!r}: the grader looks for {ex.name}; name it back", cell, graded=describe(cell, other))
    if colab:
        return Located(ex.name, "missing", f"no cell defines {ex.name} (the exercise's cell was deleted, or the "
                       f"function has another name); write it in a code cell as `def {ex.name}(...)`")
    return Located(ex.name, "missing", f"no cell defines {ex.name} (the exercise cell, tagged `exercise`, was "
                   "deleted, or the function has another name)")


def _renamed(ex, candidates: list[Cell], names: set[str]) -> tuple[Cell, str] | None:
    """A tagged cell that is this exercise's under another name: by its metadata, else by the stub's parameters."""
    want = stub_params(ex.stub, ex.name)
    for by_meta in (True, False):
        for cell in candidates:
            if cell.tree is None or (by_meta and cell.meta_exercise != ex.name):
                continue
            defs = [s for s in cell.tree.body if isinstance(s, _DEFS) and s.name not in names]
            for stmt in defs:
                if by_meta or (want and _params(stmt) == want):
                    return cell, stmt.name
    return None
