"""Exercises of notebooks/09_multiclass.ipynb: the reference passes, the stub and plausible wrong answers fail."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workshop import tasks

MERGE = tasks.merge_binary_masks
IOU = tasks.per_class_iou


def stub_of(exercise):
    namespace: dict = {}
    exec(exercise.stub, namespace)
    return namespace[exercise.name]


# ---------------------------------------------------------------- merge_binary_masks: wrong answers


def merge_forgets_255(masks, class_ids, height, width):
    """Treats the 0/255 mask as 0/1."""
    out = np.zeros((height, width), dtype=np.int64)
    for name, mask in masks.items():
        out[np.asarray(mask) == 1] = class_ids[name]
    return out


def merge_multiplies(masks, class_ids, height, width):
    """Adds mask * id: 255 * id, and sums where masks overlap."""
    out = np.zeros((height, width), dtype=np.int64)
    for name, mask in masks.items():
        out += np.asarray(mask).astype(np.int64) * class_ids[name]
    return out


def merge_adds_ids(masks, class_ids, height, width):
    """Converts to bool but adds the ids: overlaps get invalid ids."""
    out = np.zeros((height, width), dtype=np.int64)
    for name, mask in masks.items():
        out += (np.asarray(mask) > 0) * class_ids[name]
    return out


def merge_first_wins(masks, class_ids, height, width):
    out = np.zeros((height, width), dtype=np.int64)
    for name, mask in masks.items():
        out[(np.asarray(mask) > 0) & (out == 0)] = class_ids[name]
    return out


def merge_swapped_size(masks, class_ids, height, width):
    out = np.zeros((width, height), dtype=np.int64)
    for name, mask in masks.items():
        out[(np.asarray(mask) > 0).T] = class_ids[name]
    return out


def merge_uint8(masks, class_ids, height, width):
    out = np.zeros((height, width), dtype=np.uint8)
    for name, mask in masks.items():
        out[np.asarray(mask) > 0] = class_ids[name]
    return out


def merge_by_position(masks, class_ids, height, width):
    out = np.zeros((height, width), dtype=np.int64)
    for index, mask in enumerate(masks.values(), start=1):
        out[np.asarray(mask) > 0] = index
    return out


@pytest.mark.parametrize(
    ("wrong", "check", "words"),
    [
        (merge_forgets_255, "0/255 masks", "255, not 1"),
        (merge_multiplies, "0/255 masks", "255 * id"),
        (merge_adds_ids, "overlap: the later mask wins", "the ids were added"),
        (merge_first_wins, "overlap: the later mask wins", "later in the dict"),
        (merge_swapped_size, "shape and dtype", "(height, width)"),
        (merge_uint8, "shape and dtype", "int64"),
        (merge_by_position, "0/255 masks", "class_ids[name]"),
    ],
)
def test_merge_wrong_answers_fail_with_teaching_messages(wrong, check, words) -> None:
    verdict = MERGE.run_checks(wrong)
    assert not verdict.passed
    assert verdict.failed_check == check, verdict.message
    assert words in verdict.message


# ---------------------------------------------------------------- per_class_iou: wrong answers


def iou_recall(confusion):
    cm = confusion.double()
    return cm.diagonal() / cm.sum(dim=1)


def iou_precision(confusion):
    cm = confusion.double()
    return cm.diagonal() / cm.sum(dim=0)


def iou_dice(confusion):
    cm = confusion.double()
    tp = cm.diagonal()
    return 2 * tp / (cm.sum(0) + cm.sum(1))


def iou_zero_for_absent(confusion):
    cm = confusion.double()
    tp = cm.diagonal()
    return tp / (cm.sum(0) + cm.sum(1) - tp).clamp_min(1)


def iou_integer_division(confusion):
    tp = confusion.diagonal()
    return tp // (confusion.sum(0) + confusion.sum(1) - tp)


def iou_mean_only(confusion):
    cm = confusion.double()
    tp = cm.diagonal()
    return (tp / (cm.sum(0) + cm.sum(1) - tp)).nanmean()


@pytest.mark.parametrize(
    ("wrong", "check", "words"),
    [
        (iou_recall, "known values", "recall"),
        (iou_precision, "known values", "precision"),
        (iou_dice, "known values", "Dice"),
        (iou_zero_for_absent, "absent class is NaN", "became a number"),
        (iou_integer_division, "shape and dtype", "float"),
        (iou_mean_only, "shape and dtype", "shape (3,)"),
    ],
)
def test_iou_wrong_answers_fail_with_teaching_messages(wrong, check, words) -> None:
    verdict = IOU.run_checks(wrong)
    assert not verdict.passed
    assert verdict.failed_check == check, verdict.message
    assert words in verdict.message


# ---------------------------------------------------------------- common


@pytest.mark.parametrize("exercise", [MERGE, IOU], ids=lambda e: e.name)
def test_reference_passes_and_stub_is_not_implemented(exercise) -> None:
    assert exercise.run_checks(exercise.reference).passed
    verdict = exercise.run_checks(stub_of(exercise))
    assert not verdict.passed and "not implemented yet" in verdict.message


@pytest.mark.parametrize("exercise", [MERGE, IOU], ids=lambda e: e.name)
def test_hints_out_of_range_raise(exercise, capsys) -> None:
    exercise.hint(len(exercise.hints))
    assert "Hint 3/3" in capsys.readouterr().out
    for n in (0, len(exercise.hints) + 1):
        with pytest.raises(ValueError):
            exercise.hint(n)


def test_check_returns_the_reference_after_a_failure(capsys) -> None:
    used = IOU.check(iou_recall)
    assert used is IOU.reference
    out = capsys.readouterr().out
    assert out.startswith("FAIL per_class_iou") and "reference per_class_iou" in out


def test_a_learner_answer_written_from_the_hints_passes() -> None:
    def per_class_iou(confusion):
        cm = confusion.double()
        tp = cm.diagonal()
        fp = cm.sum(dim=0) - tp
        fn = cm.sum(dim=1) - tp
        return tp / (tp + fp + fn)

    def merge_binary_masks(masks, class_ids, height, width):
        out = np.zeros((height, width), dtype=np.int64)
        for name, mask in masks.items():
            out[np.asarray(mask) > 0] = class_ids[name]
        return out

    assert IOU.run_checks(per_class_iou).passed
    assert MERGE.run_checks(merge_binary_masks).passed
    assert torch.equal(IOU.reference(torch.tensor([[1, 0], [0, 1]])), torch.tensor([1.0, 1.0], dtype=torch.float64))
