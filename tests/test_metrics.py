"""Tests for workshop.metrics: hand-computed tables, then hypothesis properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from workshop.metrics import (
    SegmentationMetrics,
    binary_dice,
    binary_iou,
    confusion_matrix,
    dice_from_confusion,
    iou_from_confusion,
    logits_to_labels,
    per_class_accuracy,
    pixel_accuracy,
    precision_recall_f1,
)

NAN = float("nan")


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64)


def assert_close_nan(actual: torch.Tensor | list[float], expected: list[float]) -> None:
    """Compare element-wise, NaN equal to NaN."""
    actual = torch.as_tensor(actual, dtype=torch.float64)
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float64), equal_nan=True)


# ----------------------------------------------------------------------------------------------
# logits_to_labels
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("logits", "threshold", "expected"),
    [
        # binary: sigmoid(logit) > threshold; sigmoid(0) = 0.5 is NOT above 0.5
        ([[[[-3.0, 0.0, 0.1, 5.0]]]], 0.5, [[[0, 0, 1, 1]]]),
        # sigmoid(1.0) = 0.731, sigmoid(2.0) = 0.881
        ([[[[-3.0, 0.0, 1.0, 2.0]]]], 0.8, [[[0, 0, 0, 1]]]),
        # multiclass: argmax over the channel axis
        ([[[[1.0, 0.0]], [[2.0, -1.0]], [[0.0, 3.0]]]], 0.5, [[[1, 2]]]),
    ],
    ids=["binary-0.5", "binary-0.8", "multiclass-argmax"],
)
def test_logits_to_labels(logits, threshold, expected):
    labels = logits_to_labels(torch.tensor(logits), threshold=threshold)
    assert labels.dtype == torch.int64
    assert torch.equal(labels, t(expected))


def test_logits_to_labels_shape_and_no_grad():
    logits = torch.randn(2, 1, 5, 7, requires_grad=True)
    labels = logits_to_labels(logits)
    assert labels.shape == (2, 5, 7)
    assert not labels.requires_grad


@pytest.mark.parametrize("bad", [torch.zeros(2, 5, 7), torch.zeros(5, 7)], ids=["3d", "2d"])
def test_logits_to_labels_rejects_non_4d(bad):
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        logits_to_labels(bad)


# ----------------------------------------------------------------------------------------------
# confusion matrix, by hand
# ----------------------------------------------------------------------------------------------
# Each row: pred, target, num_classes, ignore_index, confusion matrix written out by hand
# (rows = true class, columns = predicted class).
CONFUSION_TABLE = [
    pytest.param(
        [[0, 1, 1], [0, 0, 1]],
        [[0, 1, 0], [1, 0, 1]],
        2,
        255,
        [[2, 1], [1, 2]],
        id="binary-2x2",
    ),
    pytest.param(
        [0, 1, 1, 1, 0, 2, 2, 0],
        [0, 0, 1, 1, 2, 255, 2, 0],
        3,
        255,
        [[2, 1, 0], [0, 2, 0], [1, 0, 1]],
        id="3-classes-one-ignored",
    ),
    pytest.param(
        [0, 1, 1], [0, 0, 1], 3, 255, [[1, 1, 0], [0, 1, 0], [0, 0, 0]], id="class-2-absent"
    ),
    pytest.param([1, 1, 1], [255, 255, 255], 2, 255, [[0, 0], [0, 0]], id="all-ignored"),
    pytest.param([0, 1], [1, 1], 2, None, [[0, 0], [1, 1]], id="no-ignore-index"),
    pytest.param([0, 1, 0], [-1, 1, 0], 2, -1, [[1, 0], [0, 1]], id="ignore-minus-one"),
]


@pytest.mark.parametrize(("pred", "target", "num_classes", "ignore_index", "expected"), CONFUSION_TABLE)
def test_confusion_matrix_by_hand(pred, target, num_classes, ignore_index, expected):
    cm = confusion_matrix(t(pred), t(target), num_classes, ignore_index=ignore_index)
    assert cm.dtype == torch.int64
    assert torch.equal(cm, t(expected))


def test_confusion_matrix_accepts_numpy_and_bool():
    pred = np.array([[True, False]])
    target = np.array([[1, 1]])
    assert torch.equal(confusion_matrix(pred, target, 2), t([[0, 0], [1, 1]]))


def test_confusion_matrix_ignored_pixels_can_hold_any_prediction():
    # the prediction under an ignored pixel is never looked at, even an impossible class id
    cm = confusion_matrix(t([0, 9]), t([0, 255]), num_classes=2)
    assert torch.equal(cm, t([[1, 0], [0, 0]]))


@pytest.mark.parametrize(
    ("pred", "target", "num_classes", "ignore_index", "message"),
    [
        ([0, 1, 2], [0, 3, 5], 3, 255, r"target holds values \[3, 5\].*0\.\.2 or the ignore_index 255"),
        ([0, 0], [0, 255], 2, None, r"target holds values \[255\]"),
        ([0, -1], [0, 1], 2, 255, r"pred holds values \[-1\]"),
        ([0, 4], [0, 1], 2, 255, r"pred holds values \[4\]"),
    ],
    ids=["target-too-big", "ignore-disabled", "pred-negative", "pred-too-big"],
)
def test_confusion_matrix_out_of_range_values_raise(pred, target, num_classes, ignore_index, message):
    with pytest.raises(ValueError, match=message):
        confusion_matrix(t(pred), t(target), num_classes, ignore_index=ignore_index)


@pytest.mark.parametrize(
    ("pred", "target", "num_classes", "message"),
    [
        (t([0, 1]), t([0, 1, 1]), 2, "same shape"),
        (torch.tensor([0.0, 1.0]), t([0, 1]), 2, "logits_to_labels"),
        (t([0, 1]), t([0, 1]), 0, "num_classes"),
    ],
    ids=["shape-mismatch", "float-pred", "zero-classes"],
)
def test_confusion_matrix_bad_arguments(pred, target, num_classes, message):
    with pytest.raises(ValueError, match=message):
        confusion_matrix(pred, target, num_classes)


# ----------------------------------------------------------------------------------------------
# metrics from the confusion matrix, by hand
# ----------------------------------------------------------------------------------------------
# cm, then IoU, Dice, precision, recall per class, pixel accuracy, all computed by hand.
METRIC_TABLE = [
    pytest.param(
        # class 0: TP 2 FP 1 FN 1; class 1: TP 2 FP 1 FN 1
        [[2, 1], [1, 2]],
        [2 / 4, 2 / 4],
        [4 / 6, 4 / 6],
        [2 / 3, 2 / 3],
        [2 / 3, 2 / 3],
        4 / 6,
        id="binary-2x2",
    ),
    pytest.param(
        # class 0: TP 2 FP 1 FN 1; class 1: TP 2 FP 1 FN 0; class 2: TP 1 FP 0 FN 1
        [[2, 1, 0], [0, 2, 0], [1, 0, 1]],
        [2 / 4, 2 / 3, 1 / 2],
        [4 / 6, 4 / 5, 2 / 3],
        [2 / 3, 2 / 3, 1 / 1],
        [2 / 3, 2 / 2, 1 / 2],
        5 / 7,
        id="3x3",
    ),
    pytest.param(
        # class 2 appears in neither target nor prediction: every ratio is undefined
        [[1, 1, 0], [0, 1, 0], [0, 0, 0]],
        [1 / 2, 1 / 2, NAN],
        [2 / 3, 2 / 3, NAN],
        [1 / 1, 1 / 2, NAN],
        [1 / 2, 1 / 1, NAN],
        2 / 3,
        id="absent-class-nan",
    ),
    pytest.param(
        # foreground never predicted: precision undefined, recall/IoU/Dice 0
        [[1, 0], [2, 0]],
        [1 / 3, 0.0],
        [2 / 4, 0.0],
        [1 / 3, NAN],
        [1 / 1, 0.0],
        1 / 3,
        id="never-predicted",
    ),
    pytest.param(
        [[5, 0], [0, 3]], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], 1.0, id="perfect"
    ),
    pytest.param(
        [[0, 0], [0, 0]], [NAN, NAN], [NAN, NAN], [NAN, NAN], [NAN, NAN], NAN, id="empty"
    ),
]


@pytest.mark.parametrize(("cm", "iou", "dice", "precision", "recall", "accuracy"), METRIC_TABLE)
def test_metrics_from_confusion_by_hand(cm, iou, dice, precision, recall, accuracy):
    cm = t(cm)
    assert_close_nan(iou_from_confusion(cm), iou)
    assert_close_nan(dice_from_confusion(cm), dice)
    prf = precision_recall_f1(cm)
    assert set(prf) == {"precision", "recall", "f1"}
    assert_close_nan(prf["precision"], precision)
    assert_close_nan(prf["recall"], recall)
    assert_close_nan(prf["f1"], dice)  # F1 of a class is its Dice
    assert_close_nan(per_class_accuracy(cm), recall)
    assert_close_nan(pixel_accuracy(cm).reshape(1), [accuracy])


def test_metrics_from_confusion_are_float64():
    cm = t([[2, 1], [1, 2]])
    assert iou_from_confusion(cm).dtype == torch.float64
    assert dice_from_confusion(cm).dtype == torch.float64
    assert pixel_accuracy(cm).shape == ()


def test_metrics_reject_non_square_matrix():
    with pytest.raises(ValueError, match="square"):
        iou_from_confusion(t([[1, 2, 3]]))


# ----------------------------------------------------------------------------------------------
# per-image binary IoU / Dice, by hand
# ----------------------------------------------------------------------------------------------
# pred, target (one image of 1x4 pixels), expected IoU, expected Dice
BINARY_TABLE = [
    pytest.param([0, 0, 0, 0], [0, 0, 0, 0], 1.0, 1.0, id="both-empty"),
    pytest.param([0, 0, 0, 0], [0, 1, 1, 0], 0.0, 0.0, id="pred-empty"),
    pytest.param([1, 0, 0, 0], [0, 0, 0, 0], 0.0, 0.0, id="target-empty"),
    pytest.param([0, 1, 1, 0], [0, 1, 1, 0], 1.0, 1.0, id="perfect"),
    pytest.param([1, 1, 0, 0], [1, 0, 0, 0], 1 / 2, 2 / 3, id="one-extra"),
    pytest.param([1, 1, 1, 0], [0, 1, 1, 1], 2 / 4, 4 / 6, id="shifted"),
    pytest.param([1, 0, 0, 0], [0, 1, 0, 0], 0.0, 0.0, id="disjoint"),
    pytest.param([1, 1, 0, 0], [1, 255, 0, 0], 1.0, 1.0, id="ignored-pixel-dropped"),
    pytest.param([1, 1, 0, 0], [255, 255, 255, 255], 1.0, 1.0, id="all-ignored-counts-empty"),
    pytest.param([0, 1, 0, 0], [255, 0, 1, 255], 0.0, 0.0, id="ignore-then-disjoint"),
]


@pytest.mark.parametrize(("pred", "target", "iou", "dice"), BINARY_TABLE)
def test_binary_iou_dice_by_hand(pred, target, iou, dice):
    pred_t, target_t = t([[pred]]), t([[target]])  # (N=1, H=1, W=4)
    assert binary_iou(pred_t, target_t).tolist() == pytest.approx([iou])
    assert binary_dice(pred_t, target_t).tolist() == pytest.approx([dice])


def test_binary_iou_dice_one_value_per_image():
    rows = [param.values for param in BINARY_TABLE]
    pred = t([[row[0]] for row in rows])  # (N, 1, 4)
    target = t([[row[1]] for row in rows])
    assert binary_iou(pred, target).tolist() == pytest.approx([row[2] for row in rows])
    assert binary_dice(pred, target).tolist() == pytest.approx([row[3] for row in rows])


def test_binary_iou_ignore_index_none_rejects_255():
    with pytest.raises(ValueError, match=r"found \[255\]"):
        binary_iou(t([[[0, 1]]]), t([[[255, 1]]]), ignore_index=None)


@pytest.mark.parametrize(
    ("pred", "target", "message"),
    [
        (t([[[0, 2]]]), t([[[0, 1]]]), r"pred .* found \[2\]"),
        (t([[[0, 1]]]), t([[[3, 1]]]), r"target .* found \[3\]"),
        (t([[0, 1]]), t([[0, 1]]), r"\(N, H, W\)"),
        (t([[[0, 1]]]), t([[[0, 1, 1]]]), "same shape"),
    ],
    ids=["pred-not-binary", "target-not-binary", "2d", "shape-mismatch"],
)
def test_binary_metrics_bad_input(pred, target, message):
    with pytest.raises(ValueError, match=message):
        binary_dice(pred, target)


# ----------------------------------------------------------------------------------------------
# SegmentationMetrics accumulator
# ----------------------------------------------------------------------------------------------
def binary_logits(labels: list) -> torch.Tensor:
    """Confident 1-channel logits for a (N, H, W) label list: +5 for 1, -5 for 0."""
    return (t(labels).float() * 10 - 5).unsqueeze(1)


def test_accumulator_binary_logits_two_batches():
    metrics = SegmentationMetrics(num_classes=2)
    # batch 1: pred [[1, 1], [0, 0]] vs target [[1, 0], [0, 255]]  -> cm [[1, 1], [0, 1]]
    metrics.update(binary_logits([[[1, 1], [0, 0]]]), t([[[1, 0], [0, 255]]]))
    # batch 2: pred [[0, 1]] vs target [[1, 1]]                     -> cm [[0, 0], [1, 1]]
    metrics.update(binary_logits([[[0, 1]]]), t([[[1, 1]]]))
    assert torch.equal(metrics.confusion, t([[1, 1], [1, 2]]))
    result = metrics.compute()
    # foreground: TP 2, FP 1, FN 1
    assert result["iou"] == pytest.approx(2 / 4)
    assert result["dice"] == pytest.approx(4 / 6)
    assert result["pixel_accuracy"] == pytest.approx(3 / 5)
    # background: TP 1, FP 1, FN 1
    assert result["per_class_iou"] == pytest.approx([1 / 3, 2 / 4])
    assert result["per_class_dice"] == pytest.approx([2 / 4, 4 / 6])


def test_accumulator_is_dataset_level_not_mean_of_batches():
    metrics = SegmentationMetrics(num_classes=2)
    metrics.update(t([[[1, 1, 1, 1]]]), t([[[1, 1, 1, 1]]]))  # batch IoU 1.0
    metrics.update(t([[[1, 0, 0, 0]]]), t([[[0, 0, 0, 0]]]))  # batch IoU 0.0
    # mean of batches would be 0.5; pixel counts give TP 4, FP 1, FN 0 -> 4/5
    assert metrics.compute()["iou"] == pytest.approx(4 / 5)


def test_accumulator_multiclass_logits_nanmean_and_report():
    metrics = SegmentationMetrics(num_classes=4, class_names=["bg", "cat", "dog", "bird"])
    pred = t([0, 1, 1, 1, 0, 2, 2, 0]).reshape(1, 2, 4)
    target = t([0, 0, 1, 1, 2, 255, 2, 0]).reshape(1, 2, 4)
    logits = torch.nn.functional.one_hot(pred, 4).permute(0, 3, 1, 2).float()
    metrics.update(logits, target)
    result = metrics.compute()
    # same matrix as the "3x3" table row, plus class 3 (bird) absent -> NaN, left out of the mean
    assert_close_nan(result["per_class_iou"], [2 / 4, 2 / 3, 1 / 2, NAN])
    assert result["iou"] == pytest.approx((2 / 4 + 2 / 3 + 1 / 2) / 3)
    assert result["dice"] == pytest.approx((4 / 6 + 4 / 5 + 2 / 3) / 3)
    assert result["pixel_accuracy"] == pytest.approx(5 / 7)

    report = metrics.report()
    assert [row["name"] for row in report] == ["bg", "cat", "dog", "bird"]
    assert [row["support"] for row in report] == [3, 2, 2, 0]
    assert set(report[0]) == {
        "name", "iou", "dice", "precision", "recall", "f1", "accuracy", "support"
    }
    assert report[2]["precision"] == pytest.approx(1.0)
    assert report[2]["recall"] == pytest.approx(1 / 2)
    assert report[1]["f1"] == pytest.approx(4 / 5)
    assert report[0]["accuracy"] == pytest.approx(2 / 3)
    assert math.isnan(report[3]["iou"]) and math.isnan(report[3]["precision"])


def test_accumulator_default_class_names_and_reset():
    metrics = SegmentationMetrics(num_classes=3)
    metrics.update(t([[[0, 1, 2]]]), t([[[0, 1, 2]]]))
    assert metrics.compute()["iou"] == pytest.approx(1.0)
    assert [row["name"] for row in metrics.report()] == ["class_0", "class_1", "class_2"]
    metrics.reset()
    assert int(metrics.confusion.sum()) == 0
    assert metrics.confusion.dtype == torch.int64
    assert math.isnan(metrics.compute()["iou"])


def test_accumulator_accepts_channel_mask_and_threshold():
    metrics = SegmentationMetrics(num_classes=2, threshold=0.9)
    logits = torch.tensor([[[[1.0, 3.0]]]])  # sigmoid: 0.73, 0.95 -> labels 0, 1
    metrics.update(logits, t([[[[1, 1]]]]))  # (N, 1, H, W) target
    assert torch.equal(metrics.confusion, t([[0, 0], [1, 1]]))


def test_accumulator_binary_empty_foreground_is_nan_at_dataset_level():
    metrics = SegmentationMetrics(num_classes=2)
    metrics.update(t([[[0, 0]]]), t([[[0, 0]]]))
    result = metrics.compute()
    assert math.isnan(result["iou"]) and math.isnan(result["dice"])
    assert result["pixel_accuracy"] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 1}, "binary task has 2 classes"),
        ({"num_classes": 3, "class_names": ["a", "b"]}, "one name per class"),
        ({"num_classes": 2, "threshold": 1.5}, r"\[0, 1\]"),
    ],
    ids=["one-class", "names-length", "threshold"],
)
def test_accumulator_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SegmentationMetrics(**kwargs)


@pytest.mark.parametrize(
    ("num_classes", "logits", "message"),
    [
        (3, torch.zeros(1, 1, 2, 2), "need num_classes=2"),
        (3, torch.zeros(1, 4, 2, 2), "4 channels but num_classes is 3"),
        (2, torch.zeros(1, 2, 2), r"\(N, C, H, W\)"),
    ],
    ids=["binary-logits-3-classes", "channel-mismatch", "float-3d"],
)
def test_accumulator_update_rejects_mismatched_logits(num_classes, logits, message):
    metrics = SegmentationMetrics(num_classes=num_classes)
    with pytest.raises(ValueError, match=message):
        metrics.update(logits, torch.zeros(1, 2, 2, dtype=torch.int64))


# ----------------------------------------------------------------------------------------------
# properties
# ----------------------------------------------------------------------------------------------
@st.composite
def binary_pairs(draw, with_ignore: bool = False):
    """A (pred, target) pair of tiny (N, H, W) binary masks; target may hold 255 pixels."""
    n, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    size = n * h * w
    pred = draw(st.lists(st.integers(0, 1), min_size=size, max_size=size))
    target_values = st.sampled_from([0, 1, 255]) if with_ignore else st.integers(0, 1)
    target = draw(st.lists(target_values, min_size=size, max_size=size))
    return t(pred).reshape(n, h, w), t(target).reshape(n, h, w)


@st.composite
def label_pairs(draw):
    """A (pred, target, num_classes) triple of tiny multiclass label maps with ignore pixels."""
    num_classes = draw(st.integers(2, 4))
    size = draw(st.integers(1, 24))
    pred = draw(st.lists(st.integers(0, num_classes - 1), min_size=size, max_size=size))
    target_values = st.one_of(st.integers(0, num_classes - 1), st.just(255))
    target = draw(st.lists(target_values, min_size=size, max_size=size))
    return t(pred), t(target), num_classes


PROPERTY_SETTINGS = settings(max_examples=50, deadline=None)


@PROPERTY_SETTINGS
@given(binary_pairs(with_ignore=True))
def test_property_binary_scores_in_unit_interval(pair):
    pred, target = pair
    for score in (binary_iou(pred, target), binary_dice(pred, target)):
        assert score.shape == (pred.shape[0],)
        assert bool(((score >= 0) & (score <= 1)).all())


@PROPERTY_SETTINGS
@given(binary_pairs())
def test_property_binary_scores_symmetric(pair):
    pred, target = pair
    assert torch.equal(binary_iou(pred, target), binary_iou(target, pred))
    assert torch.equal(binary_dice(pred, target), binary_dice(target, pred))


@PROPERTY_SETTINGS
@given(binary_pairs(with_ignore=True))
def test_property_dice_is_monotone_function_of_iou(pair):
    pred, target = pair
    iou, dice = binary_iou(pred, target), binary_dice(pred, target)
    assert bool((dice >= iou - 1e-12).all())
    torch.testing.assert_close(dice, 2 * iou / (1 + iou))


@PROPERTY_SETTINGS
@given(binary_pairs(with_ignore=True))
def test_property_perfect_prediction_scores_one(pair):
    _, target = pair
    pred = torch.where(target == 255, torch.zeros_like(target), target)
    assert bool((binary_iou(pred, target) == 1).all())
    assert bool((binary_dice(pred, target) == 1).all())


@PROPERTY_SETTINGS
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 5))
def test_property_empty_empty_scores_one(n, h, w):
    empty = torch.zeros(n, h, w, dtype=torch.int64)
    assert binary_iou(empty, empty).tolist() == [1.0] * n
    assert binary_dice(empty, empty).tolist() == [1.0] * n


@PROPERTY_SETTINGS
@given(label_pairs())
def test_property_confusion_matrix_counts_valid_pixels(triple):
    pred, target, num_classes = triple
    cm = confusion_matrix(pred, target, num_classes)
    assert int(cm.sum()) == int((target != 255).sum())
    assert cm.sum(dim=1).tolist() == [int((target == c).sum()) for c in range(num_classes)]


@PROPERTY_SETTINGS
@given(label_pairs())
def test_property_class_iou_dice_in_unit_interval_and_related(triple):
    pred, target, num_classes = triple
    cm = confusion_matrix(pred, target, num_classes)
    iou, dice = iou_from_confusion(cm), dice_from_confusion(cm)
    defined = ~torch.isnan(iou)
    assert torch.equal(defined, ~torch.isnan(dice))
    assert bool(((iou[defined] >= 0) & (iou[defined] <= 1)).all())
    assert bool((dice[defined] >= iou[defined] - 1e-12).all())
    torch.testing.assert_close(dice[defined], 2 * iou[defined] / (1 + iou[defined]))


@PROPERTY_SETTINGS
@given(label_pairs())
def test_property_perfect_multiclass_prediction(triple):
    _, target, num_classes = triple
    pred = torch.where(target == 255, torch.zeros_like(target), target)
    iou = iou_from_confusion(confusion_matrix(pred, target, num_classes))
    present = torch.bincount(target[target != 255], minlength=num_classes) > 0
    assert bool((iou[present] == 1).all())
    assert bool(torch.isnan(iou[~present]).all())


@PROPERTY_SETTINGS
@given(binary_pairs(with_ignore=True))
def test_property_accumulator_binary_matches_pixel_counts(pair):
    pred, target = pair
    metrics = SegmentationMetrics(num_classes=2)
    metrics.update(pred, target)
    valid = target != 255
    tp = int(((pred == 1) & (target == 1) & valid).sum())
    fp = int(((pred == 1) & (target == 0) & valid).sum())
    fn = int(((pred == 0) & (target == 1) & valid).sum())
    iou = metrics.compute()["iou"]
    if tp + fp + fn == 0:
        assert math.isnan(iou)
    else:
        assert iou == pytest.approx(tp / (tp + fp + fn))
