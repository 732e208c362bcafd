"""Read an exercise cell's code (without running it) for reference copying and checker tampering.

Two kinds of finding:

* ``reference``: the cell uses the library's answer instead of writing one: it reads
  ``.reference`` or calls ``solution()``, imports the implementation from ``workshop`` (under any
  name, or reaches it by an attribute chain such as ``workshop.losses.dice_loss``), or contains a
  definition equal to the reference once both are normalised (docstrings, annotations and comments
  dropped; the function, its parameters and its local variables renamed in order of appearance).
  Equality counts as copying only for a *non-trivial* reference, one whose body holds at least
  ``MIN_COPY_STATEMENTS`` statements (nested ones counted, the docstring not): a one- or two-line
  answer (``return np.ascontiguousarray(image[:, ::-1]), ...``) is what honest learners write too,
  so such an answer is graded on its behaviour, like any other. The other findings are evidence
  on their own (nobody assigns ``.reference`` or calls ``solution()`` by accident).
* ``tamper``: the cell reaches into the checker or the interpreter: it touches ``.checks``,
  ``.run_checks`` or ``workshop.tasks``' internals, assigns to an attribute of an imported module
  (monkeypatching ``torch``, ``math``, ``workshop``...), imports introspection and process modules
  (``gc``, ``inspect``, ``ctypes``, ``importlib``, ``builtins``, ``unittest.mock``...), calls
  ``exec``/``eval``/``compile``/``__import__``/``globals``, or walks dunder and frame attributes
  (``__globals__``, ``__subclasses__``, ``f_back``...).

The scan is one layer of several (see ``workshop.grading``): code it misses still runs in a box,
with the checker's integrity verified around it.

Taught in: not taught (instructor tooling).
"""

from __future__ import annotations

import ast
import copy
import importlib
import inspect
import textwrap
from dataclasses import dataclass
from typing import Any

_CHECKER_ATTRS = {"checks", "run_checks", "reference", "solution", "_REGISTRY", "all_exercises", "get_exercise"}
_TAMPER_MODULES = {"gc", "inspect", "ctypes", "importlib", "builtins", "__builtin__", "unittest.mock", "mock", "marshal",
                   "code", "codeop", "types", "_thread", "signal", "atexit", "sitecustomize", "faulthandler", "dis",
                   "workshop.tasks.core", "workshop.grading"}
_TAMPER_NAMES = {"exec", "eval", "compile", "__import__", "globals", "locals", "vars", "breakpoint", "__builtins__",
                 "__loader__", "__spec__"}
_FRAME_ATTRS = {"f_back", "f_globals", "f_locals", "f_builtins", "f_code", "tb_frame", "tb_next", "gi_frame",
                "cr_frame", "ag_frame", "co_code", "_getframe", "settrace", "setprofile", "meta_path",
                "addaudithook", "ctypeslib"}
_ALLOWED_DUNDERS = {"__init__", "__len__", "__getitem__", "__name__", "__class__", "__call__", "__repr__", "__str__",
                    "__iter__", "__next__", "__enter__", "__exit__", "__doc__", "__module__", "__setitem__",
                    "__contains__", "__eq__", "__hash__", "__post_init__", "__qualname__"}


MIN_COPY_STATEMENTS = 3


@dataclass
class Finding:
    """One thing the scan noticed, with the line it is on (in the cell)."""

    kind: str  # "reference" or "tamper"
    line: int
    what: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.what}"


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _imported(tree: ast.AST) -> dict[str, str]:
    """Name -> what it is bound to by an import anywhere in ``tree`` (``np`` -> ``numpy``, ``f`` -> ``a.b.f``)."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    out[a.asname] = a.name
                else:
                    out[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                if a.name != "*":
                    out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def resolve(dotted: str) -> Any:
    """The object a ``workshop...`` dotted path names, imported in this (trusted) process; None if none."""
    if not (dotted == "workshop" or dotted.startswith("workshop.")):
        return None
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except Exception:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


def scan(tree: ast.Module, exercise) -> list[Finding]:
    """Every reference and tamper finding in one parsed cell, for ``exercise`` (an ``Exercise``)."""
    findings: list[Finding] = []
    imported = _imported(tree)
    modules = {n for n, target in imported.items() if resolve(target) is None or inspect.ismodule(resolve(target))}

    def full(node: ast.AST) -> str | None:
        dotted = _dotted(node)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        return imported[head] + ("." + rest if rest else "") if head in imported else dotted

    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            for mod in mods:
                if any(mod == m or mod.startswith(m + ".") for m in _TAMPER_MODULES):
                    findings.append(Finding("tamper", line, f"imports {mod}"))
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("workshop"):
                for a in node.names:
                    if a.name == "*":
                        findings.append(Finding("reference", line, f"`from {node.module} import *` brings in the "
                                                                   f"library's implementation"))
                    elif resolve(f"{node.module}.{a.name}") is exercise.reference:
                        findings.append(Finding("reference", line, f"imports the library's {exercise.name} "
                                                                   f"({node.module}.{a.name})"))
        elif isinstance(node, ast.Name) and node.id in _TAMPER_NAMES:
            findings.append(Finding("tamper", line, f"uses {node.id}"))
        elif isinstance(node, ast.Attribute):
            attr = node.attr
            if attr == "reference" or attr == "solution":
                findings.append(Finding("reference", line, f"uses .{attr} (the library's answer)"))
            elif attr in _CHECKER_ATTRS:
                findings.append(Finding("tamper", line, f"touches the checker (.{attr})"))
            elif attr == "modules" and full(node) == "sys.modules":  # (model.modules() is fine)
                findings.append(Finding("tamper", line, "uses sys.modules (interpreter internals)"))
            elif attr in _FRAME_ATTRS:
                findings.append(Finding("tamper", line, f"uses .{attr} (interpreter internals)"))
            elif attr.startswith("__") and attr.endswith("__") and attr not in _ALLOWED_DUNDERS:
                findings.append(Finding("tamper", line, f"uses .{attr}"))
            if isinstance(node.ctx, (ast.Store, ast.Del)):
                root = _dotted(node)
                if root is not None and root.split(".")[0] in modules | {"tasks"}:
                    findings.append(Finding("tamper", line, f"changes {root} (monkeypatching a library)"))
            elif isinstance(node.ctx, ast.Load) and full(node) and resolve(full(node)) is exercise.reference:
                findings.append(Finding("reference", line, f"uses the library's {exercise.name} ({full(node)})"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "solution":
                findings.append(Finding("reference", line, "calls solution()"))
            if node.func.id in {"setattr", "delattr"} and node.args:
                root = _dotted(node.args[0])
                if root is not None and root.split(".")[0] in modules | {"tasks"}:
                    findings.append(Finding("tamper", line, f"{node.func.id} on {root} (monkeypatching a library)"))
    if _copies_reference(tree, exercise):
        findings.append(Finding("reference", 1, f"a definition is the library's {exercise.name} with names changed "
                                                f"(equal after normalisation)"))
    unique = {(f.kind, f.line, f.what): f for f in findings}
    return sorted(unique.values(), key=lambda f: (f.line, f.kind, f.what))


# ------------------------------------------------------------------ the normalised comparison

class _Normaliser(ast.NodeTransformer):
    """Drop docstrings and annotations; rename what a definition binds, in order of appearance."""

    def __init__(self, bound: set[str], attrs: set[str]) -> None:
        self.bound = bound
        self.attrs = attrs
        self.names: dict[str, str] = {}
        self.attr_names: dict[str, str] = {}

    def _new(self, name: str) -> str:
        if name not in self.names:
            self.names[name] = f"_v{len(self.names)}"
        return self.names[name]

    def _new_attr(self, name: str) -> str:
        if name not in self.attr_names:
            self.attr_names[name] = f"_a{len(self.attr_names)}"
        return self.attr_names[name]

    def _strip_doc(self, node):
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        return node

    def visit_FunctionDef(self, node):
        node.name = self._new(node.name)
        node.returns = None
        self._strip_doc(node)
        return self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        node.name = self._new(node.name)
        self._strip_doc(node)
        return self.generic_visit(node)

    def visit_arg(self, node):
        node.arg = self._new(node.arg)
        node.annotation = None
        return node

    def visit_Name(self, node):
        if node.id in self.bound:
            node.id = self._new(node.id)
        return node

    def visit_Attribute(self, node):
        self.generic_visit(node)
        if isinstance(node.value, ast.Name) and node.attr in self.attrs:
            node.attr = self._new_attr(node.attr)
        return node

    def visit_AnnAssign(self, node):
        self.generic_visit(node)
        if node.value is None:
            return None
        return ast.Assign(targets=[node.target], value=node.value, lineno=node.lineno)

    def visit_Expr(self, node):  # a bare string is a comment-like docstring: drop it
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return None
        return self.generic_visit(node)


def _attrs_in(node: ast.AST) -> set[str]:
    """Attribute names the definition stores on a name (``self.image_paths = ...``): its own object's."""
    return {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
            and isinstance(n.value, ast.Name)}


def _bound_in(node: ast.AST) -> set[str]:
    bound: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            bound.add(n.id)
        elif isinstance(n, ast.arg):
            bound.add(n.arg)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(n.name)
        elif isinstance(n, ast.ExceptHandler) and n.name:
            bound.add(n.name)
    return bound


def normalise(node: ast.AST) -> str:
    """A canonical dump of a def or class: equal for two definitions that differ only in naming and prose."""
    node = copy.deepcopy(node)
    node = _Normaliser(_bound_in(node), _attrs_in(node)).visit(node)
    ast.fix_missing_locations(node)
    return ast.dump(node, annotate_fields=False, include_attributes=False)


_FORMS: dict[str, set[str]] = {}


def statements(node: ast.AST) -> int:
    """How many statements a def or class holds, nested ones counted, docstrings not."""
    count = 0
    for n in ast.walk(node):
        if n is node or not isinstance(n, ast.stmt):
            continue
        if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str):
            continue  # a docstring (or a bare string): prose
        count += 1
    return count


def copy_detectable(exercise) -> bool:
    """Whether a pasted copy of the exercise's reference is told apart from an honest answer (see the module)."""
    return bool(_reference_forms(exercise))


def _reference_forms(exercise) -> set[str]:
    """The normalised forms of the reference's non-trivial definitions (empty for a short reference)."""
    if exercise.name in _FORMS:
        return _FORMS[exercise.name]
    forms: set[str] = set()
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(exercise.reference)))
        forms = {normalise(s) for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                 and statements(s) >= MIN_COPY_STATEMENTS}
    except (OSError, TypeError, SyntaxError):
        pass
    _FORMS[exercise.name] = forms
    return forms


def _copies_reference(tree: ast.Module, exercise) -> bool:
    forms = _reference_forms(exercise)
    return any(normalise(s) in forms for s in ast.walk(tree)
               if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))
