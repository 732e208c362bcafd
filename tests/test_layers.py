"""The book and the machinery, as layers that are tested (issue 23).

Two rules over the whole ``workshop`` package, read from the source (``tests/import_graph.py``,
imports inside functions included):

1. **The book imports nothing from the machinery or the grader.** The book is what the notebooks
   teach; the machinery (the CLI, the recipe, the budget, torchrun...) is added around it through
   hooks (``workshop.hooks``) and may import the book, never the other way. The shared layer (data
   sources and formats, errors, weights) serves both and imports no machinery either, so the book
   cannot reach the machinery through it.
2. **No import circle anywhere in** ``workshop/``.

The lists are written once, here; ``workshop/__init__.py`` names the same layers. A new module must
be placed in one of them (``test_every_module_is_in_one_layer``).
"""

from __future__ import annotations

import pytest

from import_graph import find_cycles, format_cycles, import_graph

BOOK = (
    "workshop.config", "workshop.env", "workshop.augment", "workshop.models", "workshop.losses", "workshop.metrics",
    "workshop.hooks", "workshop.engine", "workshop.inference", "workshop.multiclass", "workshop.viz", "workshop.widgets",
    "workshop.data.io", "workshop.data.datasets", "workshop.data.loaders", "workshop.data.polygons",
    # the instance track, in the order of its data path (each imports only what comes before it)
    "workshop.instance.stages", "workshop.instance.polygons", "workshop.instance.data", "workshop.instance.model",
    "workshop.instance.viz", "workshop.instance.engine", "workshop.instance.evaluate",
    "workshop.tasks",  # and every module under it
)
"""What the notebooks teach."""

MACHINERY = (
    "workshop.cli", "workshop.__main__", "workshop.runs", "workshop.recipe", "workshop.budget", "workshop.distributed",
    "workshop.launch", "workshop.estimate", "workshop.fingerprint", "workshop.baselines", "workshop.tensorboard",
    "workshop.evaluate", "workshop.notebook",
    "workshop.instance.runs", "workshop.instance.cli", "workshop.instance.budget", "workshop.instance.plan",
    "workshop.instance.sizing", "workshop.instance.predict",
    "workshop.data.check",
)
"""What makes the book a tool: commands, the self-sizing recipe and budget, torchrun, reports."""

GRADER = ("workshop.grading",)
"""The instructors' grader (every module under it)."""

INDEX = ("workshop.instance",)
"""Package indexes that name the book's and the machinery's functions together (``from workshop.instance
import train_stages, plan_steps``); no book module imports one."""

SHARED = (
    "workshop", "workshop.errors", "workshop.weights",
    "workshop.data", "workshop.data.sources", "workshop.data.formats", "workshop.data.splits", "workshop.data.entries",
    "workshop.data.local", "workshop.data.registry", "workshop.data.download", "workshop.data.cache",
    "workshop.data.synthetic",
)
"""Package indexes, errors, weights and every way data arrives: used by both, importing no machinery."""


def layer(module: str) -> str:
    """The layer of ``module``: a listed name covers the modules under it."""
    for name, members in (("book", BOOK), ("machinery", MACHINERY), ("grader", GRADER), ("index", INDEX), ("shared", SHARED)):
        for member in members:
            covers_children = member not in ("workshop", "workshop.data", *INDEX)
            if module == member or (covers_children and module.startswith(member + ".")):
                return name
    return "unplaced"


GRAPH = import_graph("workshop")


def test_every_module_is_in_one_layer() -> None:
    unplaced = sorted(m for m in GRAPH if layer(m) == "unplaced")
    assert not unplaced, f"place these modules in BOOK, MACHINERY or SHARED of {__file__}: {unplaced}"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if layer(m) in ("book", "shared")))
def test_the_book_and_the_shared_layer_import_no_machinery_and_no_grader(module: str) -> None:
    wrong = sorted(t for t in GRAPH[module] if layer(t) in ("machinery", "grader", "index"))
    assert not wrong, (f"{module} ({layer(module)}) imports {wrong}: the machinery comes in through hooks "
                       "(workshop.hooks) or a thin wrapper; move a shared helper down into the book")


def test_the_shared_layer_imports_only_the_book_and_itself() -> None:
    wrong = {m: sorted(t for t in GRAPH[m] if layer(t) not in ("book", "shared")) for m in GRAPH if layer(m) == "shared"}
    assert not {m: t for m, t in wrong.items() if t}


INSTANCE_PATH = [m for m in BOOK if m.startswith("workshop.instance.")]


@pytest.mark.parametrize("module", INSTANCE_PATH)
def test_each_instance_book_module_imports_only_what_comes_before_it_on_the_path(module: str) -> None:
    earlier = set(INSTANCE_PATH[:INSTANCE_PATH.index(module)])
    later = {t for t in GRAPH[module] if t.startswith("workshop.instance.") and t not in earlier}
    assert not later, f"{module} imports {sorted(later)}, which come later on the path (or are machinery)"


def test_no_import_circle_anywhere_in_workshop() -> None:
    cycles = find_cycles(GRAPH)
    assert not cycles, "import circles:\n" + format_cycles(cycles)


def test_the_rules_catch_what_they_guard(tmp_path) -> None:
    """The graph sees lazy imports inside functions and circles through them; the layer test sees a violation."""
    package = tmp_path / "workshop"
    (package / "instance").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "instance" / "__init__.py").write_text("")
    (package / "engine.py").write_text("def fit():\n    from workshop import distributed\n")
    (package / "distributed.py").write_text("from workshop.engine import fit\n")
    graph = import_graph("workshop", root=tmp_path)
    assert graph["workshop.engine"] == {"workshop.distributed"} and graph["workshop.distributed"] == {"workshop.engine"}
    assert format_cycles(find_cycles(graph)) == "workshop.distributed -> workshop.engine -> workshop.distributed"
    assert layer("workshop.engine") == "book" and layer("workshop.distributed") == "machinery"
    assert layer("workshop.tasks.training_functions") == "book" and layer("workshop.grading.cells") == "grader"
    assert layer("workshop.data.sources.folder") == "shared" and layer("workshop.brand_new") == "unplaced"
