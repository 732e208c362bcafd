"""The is_improvement exercise (notebooks/07_training.ipynb) and the engine function behind it."""

from __future__ import annotations

import math

import pytest

from workshop import tasks
from workshop.engine import is_improvement

EX = tasks.is_improvement


def stub():
    namespace: dict = {}
    exec(EX.stub, namespace)
    return namespace["is_improvement"]


# ---------------------------------------------------------------- plausible wrong answers


def always_higher(value, best, monitor):
    if not math.isfinite(value):
        return False
    return best is None or value > best


def not_best(value, best, monitor):
    if not math.isfinite(value):
        return False
    if not best:
        return True
    return value < best if monitor == "loss" else value > best


def no_nan_test(value, best, monitor):
    if best is None:
        return True
    return value < best if monitor == "loss" else value > best


def only_isnan(value, best, monitor):
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best if monitor == "loss" else value > best


def ties_improve(value, best, monitor):
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value <= best if monitor == "loss" else value >= best


def returns_none_when_worse(value, best, monitor):
    if not math.isfinite(value):
        return False
    if best is None or (value < best if monitor == "loss" else value > best):
        return True


WRONG = [
    (always_higher, ["lower is better for loss", "the comparison went the way of IoU"]),
    (not_best, ["best of 0.0", "0.0 is falsy, like None"]),
    (no_nan_test, ["NaN and infinity", "is_improvement(nan, None, 'iou')", "nothing rejects it"]),
    (only_isnan, ["NaN and infinity", "is_improvement(inf, None, 'loss')"]),
    (ties_improve, ["ties", "not strict"]),
    (returns_none_when_worse, ["to return True or False", "None"]),
]


def test_reference_passes_and_is_the_engine_rule() -> None:
    assert EX.reference is is_improvement
    assert EX.run_checks(EX.reference).passed


def test_stub_is_not_implemented() -> None:
    verdict = EX.run_checks(stub())
    assert not verdict.passed and "not implemented yet" in verdict.message


@pytest.mark.parametrize(("wrong", "words"), WRONG, ids=[w.__name__ for w, _ in WRONG])
def test_wrong_answers_fail_with_a_teaching_message(wrong, words) -> None:
    verdict = EX.run_checks(wrong)
    assert not verdict.passed
    for word in words:
        assert word in verdict.message, verdict.message


@pytest.mark.parametrize(
    ("value", "best", "monitor", "expected"),
    [
        (0.5, None, "iou", True),
        (0.0, None, "loss", True),
        (0.6, 0.5, "dice", True),
        (0.5, 0.5, "iou", False),
        (0.4, 0.5, "loss", True),
        (0.6, 0.5, "loss", False),
        (math.nan, None, "iou", False),
        (-math.inf, 0.3, "loss", False),
    ],
)
def test_is_improvement_table(value, best, monitor, expected) -> None:
    assert is_improvement(value, best, monitor) is expected


def test_unknown_monitor_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="iou, dice, loss"):
        is_improvement(0.5, None, "accuracy")


@pytest.mark.parametrize("n", [0, 4])
def test_hint_out_of_range(n: int) -> None:
    with pytest.raises(ValueError, match="hints 1..3"):
        EX.hint(n)
