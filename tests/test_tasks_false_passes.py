"""Every exercise: the answers that once passed (or got a wrong reason) fail, naming the real cause.

The table is tests/wrong_answers.py. Also here: the calls a verdict prints work when pasted into a
notebook whose check cell has rebound the exercise's name, and ``solution()`` prints once.
"""

from __future__ import annotations

import re

import pytest

from workshop import tasks
from workshop.tasks import all_exercises, get_exercise
from wrong_answers import WRONG_ANSWERS, define


@pytest.mark.parametrize(("name", "label", "source", "words"), WRONG_ANSWERS,
                         ids=[f"{n}: {label}" for n, label, _, _ in WRONG_ANSWERS])
def test_wrong_answer_fails_naming_the_real_cause(name: str, label: str, source: str, words: list[str]) -> None:
    verdict = get_exercise(name).run_checks(define(source, name))
    assert not verdict.passed, f"{name}: {label} passed"
    for word in words:
        assert word in verdict.message, verdict.message


def test_every_exercise_the_issue_names_has_wrong_answers() -> None:
    named = {"iou_score", "predict_mask", "merge_binary_masks", "per_class_iou", "mask_to_box", "train_one_epoch",
             "train_transform", "replace_head"}
    assert named <= {name for name, *_ in WRONG_ANSWERS}
    assert {name for name, *_ in WRONG_ANSWERS} <= set(all_exercises())


@pytest.mark.parametrize("name", list(all_exercises()))
def test_the_calls_a_fail_verdict_prints_work_when_pasted(name: str, capsys) -> None:
    ex = get_exercise(name)
    namespace: dict = {"tasks": tasks}
    exec("import numpy as np\nimport torch\nfrom torch.utils.data import Dataset", namespace)  # earlier cells
    exec(compile(ex.stub, "<stub>", "exec"), namespace)
    # the check cell, as in the notebook: it rebinds the name to a plain function or class
    namespace[name] = eval(f"tasks.{name}.check({name})", namespace)
    printed = capsys.readouterr().out
    assert printed.startswith(f"FAIL {name}")
    calls = re.findall(r"tasks\.\w+\.(?:hint\(\d+\)|solution\(\))", printed)
    assert len(calls) >= 2, printed  # the hint to read and the solution to see
    for call in calls:
        assert eval(call, namespace) is None  # prints, returns nothing for Jupyter to echo
        assert capsys.readouterr().out.strip()
    assert f" {name}.hint(" not in printed and f"(see {name}.solution" not in printed


def test_solution_prints_the_source_once(capsys) -> None:
    ex = get_exercise("dice_loss")
    assert ex.solution() is None
    out = capsys.readouterr().out
    assert out.count("def dice_loss") == 1 and out == ex.solution_source() + "\n"
