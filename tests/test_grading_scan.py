"""The scan of exercise cells, without running anything: reference copies, tampering, false alarms."""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest

from grading_answers import CORRECT
from workshop.grading.scan import MIN_COPY_STATEMENTS, copy_detectable, normalise, scan, statements
from workshop.tasks import all_exercises, get_exercise

ALL = list(all_exercises().values())
LONG = [ex for ex in ALL if copy_detectable(ex)]
SHORT = [ex for ex in ALL if not copy_detectable(ex)]


def _kinds(source: str, name: str) -> set[str]:
    return {f.kind for f in scan(ast.parse(source), get_exercise(name))}


@pytest.mark.parametrize("ex", ALL, ids=lambda e: e.name)
def test_the_stub_is_not_flagged(ex) -> None:
    assert _kinds(ex.stub, ex.name) == set()


@pytest.mark.parametrize("ex", LONG, ids=lambda e: e.name)
def test_the_reference_pasted_verbatim_is_reference(ex) -> None:
    source = textwrap.dedent(inspect.getsource(ex.reference))
    assert "reference" in _kinds(source, ex.name)


def test_where_the_line_is_drawn() -> None:
    """Short references (one or two statements) are the ones honest learners write word for word too."""
    assert {ex.name for ex in SHORT} == {"paired_hflip", "train_transform", "per_class_iou"}
    for ex in ALL:
        tree = ast.parse(textwrap.dedent(inspect.getsource(ex.reference))).body[0]
        assert (statements(tree) >= MIN_COPY_STATEMENTS) == copy_detectable(ex), ex.name


@pytest.mark.parametrize("ex", SHORT, ids=lambda e: e.name)
def test_a_short_reference_written_word_for_word_is_not_an_accusation(ex) -> None:
    source = textwrap.dedent(inspect.getsource(ex.reference))
    assert _kinds(source, ex.name) == set()
    # ...but using it is still evidence, whatever its length
    assert "reference" in _kinds(f"{ex.name} = tasks.{ex.name}.reference", ex.name)
    assert "reference" in _kinds(f"from {ex.reference.__module__} import {ex.reference.__name__}", ex.name)


def test_an_honest_one_line_paired_hflip_is_not_flagged() -> None:
    honest = "import numpy as np\n\n\ndef paired_hflip(img, m):\n" \
             "    return np.ascontiguousarray(img[:, ::-1]), np.ascontiguousarray(m[:, ::-1])\n"
    assert _kinds(honest, "paired_hflip") == set()


def test_statements_count_nested_ones_but_not_docstrings() -> None:
    tree = ast.parse("def f(x):\n    'doc'\n    if x:\n        return 1\n    return 2\n").body[0]
    assert statements(tree) == 3


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_an_own_correct_answer_is_not_flagged(name) -> None:
    assert _kinds(CORRECT[name], name) == set()


def test_renaming_variables_parameters_and_the_function_does_not_hide_a_copy() -> None:
    a = ast.parse("def f(x, y=1):\n    '''doc'''\n    total = x + y  # comment\n    return total * 2\n").body[0]
    b = ast.parse("def g(a: int, b=1) -> int:\n    s = a + b\n    return s * 2\n").body[0]
    c = ast.parse("def g(a, b=1):\n    s = a - b\n    return s * 2\n").body[0]
    assert normalise(a) == normalise(b)
    assert normalise(a) != normalise(c)  # a different operation is a different answer


def test_renamed_attributes_of_a_pasted_class_are_still_a_copy() -> None:
    ex = get_exercise("SegmentationDataset")
    source = textwrap.dedent(inspect.getsource(ex.reference))
    tree = ast.parse(source)
    methods = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}  # self.load() stays a call of load
    renamed = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
                and node.attr not in methods):
            node.attr = renamed.setdefault(node.attr, f"mine_{len(renamed)}")
    assert renamed, "the reference keeps no attributes on self?"
    assert "reference" in _kinds(ast.unparse(tree), ex.name)


@pytest.mark.parametrize("source", [
    "dice_loss = tasks.dice_loss.reference",
    "from workshop.losses import dice_loss",
    "from workshop.losses import dice_loss as my_loss\n\n\ndef dice_loss(a, b, smooth=1.0):\n    return my_loss(a, b, smooth)",
    "import workshop.losses as L\n\n\ndef dice_loss(a, b, smooth=1.0):\n    return L.dice_loss(a, b, smooth)",
    "from workshop.losses import *",
    "tasks.dice_loss.solution()",
])
def test_ways_of_using_the_reference(source) -> None:
    assert "reference" in _kinds(source, "dice_loss")


@pytest.mark.parametrize("source", [
    "tasks.dice_loss.checks = []",
    "import workshop.tasks.core as core\ncore.Exercise.run_checks = None",
    "import torch\ntorch.allclose = lambda *a, **k: True",
    "import math\nsetattr(math, 'isfinite', lambda v: True)",
    "def dice_loss(a, b, smooth=1.0):\n    return eval('0.3')",
    "import gc\n\n\ndef dice_loss(a, b, smooth=1.0):\n    return gc.get_objects()",
    "import sys\n\n\ndef dice_loss(a, b, smooth=1.0):\n    return sys._getframe(1).f_locals",
    "def dice_loss(a, b, smooth=1.0):\n    return ().__class__.__base__.__subclasses__()",
    "from unittest import mock",
])
def test_tampering_constructs(source) -> None:
    assert "tamper" in _kinds(source, "dice_loss")


@pytest.mark.parametrize("source", [
    "from torch import nn\n\n\ndef replace_head(model, num_classes):\n    n = sum(1 for m in model.modules())\n"
    "    model.classifier[4] = nn.Conv2d(256, num_classes, 1)\n    return model",
    "import os\n\n\ndef replace_head(model, num_classes):\n    print(os.path.join('a', 'b'), type(model).__name__)\n"
    "    setattr(model.classifier, '4', None)\n    return model",
])
def test_ordinary_code_is_not_called_tampering(source) -> None:
    assert _kinds(source, "replace_head") == set()


def test_sys_modules_is_tampering() -> None:
    assert "tamper" in _kinds("import sys\n\n\ndef dice_loss(a, b, smooth=1.0):\n    return sys.modules", "dice_loss")
