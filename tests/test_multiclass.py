"""workshop.multiclass and workshop.tensorboard: class maps, class balance, per-class analysis, logging."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from workshop import multiclass as mc
from workshop.metrics import SegmentationMetrics

matplotlib.use("Agg")


# ----------------------------------------------------------------------------- merge_binary_masks


def test_merge_draws_later_masks_over_earlier_ones() -> None:
    road = np.array([[255, 255, 255], [0, 0, 0]], dtype=np.uint8)
    car = np.array([[0, 255, 0], [0, 255, 0]], dtype=np.uint8)
    person = np.array([[0, 0, 0], [0, True, True]], dtype=bool)
    out = mc.merge_binary_masks({"road": road, "car": car, "person": person}, {"road": 1, "car": 2, "person": 3}, 2, 3)
    assert out.dtype == np.int64
    assert out.tolist() == [[1, 2, 1], [0, 3, 3]]


def test_merge_resizes_masks_of_another_size_with_nearest() -> None:
    small = np.array([[255, 0], [0, 0]], dtype=np.uint8)
    out = mc.merge_binary_masks({"sky": small}, {"sky": 4}, 4, 4)
    assert out.tolist() == [[4, 4, 0, 0], [4, 4, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]


@pytest.mark.parametrize(
    ("masks", "message"),
    [({"boat": np.zeros((2, 2))}, "no class id for mask 'boat'"), ({"road": np.zeros((1, 2, 2))}, "must be (H, W)")],
)
def test_merge_rejects_unknown_classes_and_bad_shapes(masks, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        mc.merge_binary_masks(masks, {"road": 1}, 2, 2)


# ----------------------------------------------------------------------------- class balance


def test_class_frequency_counts_pixels_and_skips_ignore() -> None:
    masks = [np.array([[0, 0, 1], [255, 2, 2]]), torch.tensor([[2, 2], [2, 255]])]
    assert mc.class_frequency(masks, 3).tolist() == [2, 1, 5]


def test_class_frequency_rejects_values_outside_the_classes() -> None:
    with pytest.raises(ValueError, match=r"\[7\]"):
        mc.class_frequency([np.array([[0, 7]])], 3)


@pytest.mark.parametrize(
    ("counts", "power", "max_weight", "expected"),
    [
        ([75, 25], 1.0, None, [2 / 3, 2.0]),
        ([50, 50], 1.0, None, [1.0, 1.0]),
        ([90, 10, 0], 1.0, None, [0.5555555555555556, 5.0, 0.0]),
        ([81, 9, 10], 0.0, None, [1.0, 1.0, 1.0]),
        ([99, 1], 1.0, 10.0, [0.5050505050505051, 10.0]),
    ],
)
def test_inverse_frequency_weights(counts, power, max_weight, expected) -> None:
    assert mc.inverse_frequency_weights(counts, power, max_weight) == pytest.approx(expected)


def test_inverse_frequency_weights_average_one_per_pixel() -> None:
    counts = np.array([600, 300, 90, 10])
    weights = np.array(mc.inverse_frequency_weights(counts, power=0.5, max_weight=None))
    assert (weights * counts).sum() / counts.sum() == pytest.approx(1.0)
    assert np.all(np.diff(weights) > 0)  # rarer -> heavier


def test_inverse_frequency_weights_rejects_empty_counts() -> None:
    with pytest.raises(ValueError, match="at least one pixel"):
        mc.inverse_frequency_weights([0, 0])


def test_dataset_masks_uses_load_without_transforms() -> None:
    class Data:
        def __len__(self):
            return 2

        def load(self, index):
            return np.zeros((2, 2, 3), np.uint8), np.full((2, 2), index)

    assert [m.tolist() for m in mc.dataset_masks(Data())] == [[[0, 0], [0, 0]], [[1, 1], [1, 1]]]


# ----------------------------------------------------------------------------- evaluation


def test_per_image_miou_by_hand() -> None:
    pred = torch.tensor([[[0, 1], [1, 1]], [[2, 2], [0, 0]]])
    target = torch.tensor([[[0, 1], [0, 255]], [[2, 2], [0, 0]]])
    # image 0: class 0: TP1 FN1 -> 0.5; class 1: TP1 FP1 -> 0.5; class 2 absent -> NaN
    assert mc.per_image_miou(pred, target, 3).tolist() == pytest.approx([0.5, 1.0])


def test_worst_images_skips_nan_and_sorts_ascending() -> None:
    assert mc.worst_images([0.4, float("nan"), 0.1, 0.9, 0.1], k=3) == [2, 4, 0]


def test_normalize_confusion_rows_sum_to_one_and_empty_rows_are_nan() -> None:
    out = mc.normalize_confusion(torch.tensor([[3, 1], [0, 0]]))
    assert out[0].tolist() == [0.75, 0.25]
    assert np.isnan(out[1]).all()


def test_format_class_table_from_one_confusion_matrix() -> None:
    metrics = SegmentationMetrics(3, class_names=["bg", "road", "car"])
    metrics.update(torch.tensor([[0, 0, 1, 1]]), torch.tensor([[0, 1, 1, 1]]))
    text = mc.format_class_table(metrics.report())
    lines = text.splitlines()
    assert lines[0].split() == ["class", "accuracy", "precision", "recall", "f1", "iou", "support"]
    assert lines[1].split() == ["bg", "1.000", "0.500", "1.000", "0.667", "0.500", "1"]
    assert lines[2].split() == ["road", "0.667", "1.000", "0.667", "0.800", "0.667", "3"]
    assert lines[3].split() == ["car", "-", "-", "-", "-", "-", "0"]
    assert lines[4].split() == ["mean", "0.833", "0.750", "0.833", "0.733", "0.583", "4"]


class _Constant(nn.Module):
    """Predicts class 1 everywhere (3 classes)."""

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 3, *x.shape[2:])
        logits[:, 1] = 1.0
        return logits


def _items():
    masks = [torch.ones(4, 4, dtype=torch.long), torch.zeros(4, 4, dtype=torch.long)]
    return [{"image": torch.zeros(3, 4, 4), "mask": m} for m in masks]


def test_evaluate_per_image_gives_confusion_and_scores() -> None:
    metrics, scores = mc.evaluate_per_image(_Constant(), DataLoader(_items(), batch_size=2), 3, class_names=["a", "b", "c"])
    assert metrics.confusion.tolist() == [[0, 16, 0], [0, 16, 0], [0, 0, 0]]
    assert scores.tolist() == [1.0, 0.0]
    assert mc.worst_images(scores, 1) == [1]


def test_plots_return_figures() -> None:
    import matplotlib.pyplot as plt

    names = ["a", "b", "c"]
    figs = [
        mc.plot_class_frequency([10, 5, 0], names),
        mc.plot_confusion_matrix(torch.tensor([[2, 1, 0], [0, 3, 0], [0, 0, 0]]), names),
        mc.plot_logit_histogram(torch.randn(2, 3, 4, 4), names),
        mc.show_worst_images(_Constant(), _items(), [1.0, 0.0], k=1),
    ]
    assert all(isinstance(f, plt.Figure) for f in figs)
    for f in figs:
        plt.close(f)
    with pytest.raises(ValueError, match="class names"):
        mc.plot_logit_histogram(torch.randn(1, 2, 2, 2), names)


# ----------------------------------------------------------------------------- TensorBoard


def test_tensorboard_logger_writes_event_files(tmp_path) -> None:
    pytest.importorskip("tensorboard")
    from workshop.tensorboard import chain_callbacks, tensorboard_logger

    logger = tensorboard_logger(tmp_path / "run", quiet=True)
    seen = []
    callback = chain_callbacks(logger, None, seen.append)
    callback([{"epoch": 1, "train_loss": 0.9, "val_loss": 1.1, "val_iou": float("nan"), "lr": 0.01}])
    logger.log_histogram("logits/road", torch.randn(100))
    logger.close()
    assert len(seen) == 1
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))


def test_tensorboard_logger_is_skipped_quietly_without_tensorboard(monkeypatch, capsys, tmp_path) -> None:
    import workshop.tensorboard as tb

    monkeypatch.setattr(tb, "tensorboard_available", lambda: False)
    assert tb.tensorboard_logger(tmp_path) is None
    assert "not installed" in capsys.readouterr().out


# ----------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_camvid_val_loads_with_void_ignored() -> None:
    from conftest import shared_dataset

    root = shared_dataset("camvid")
    ds = mc.load_camvid("val", root=root)
    assert len(ds) == 101 and len(ds.label_map) == 11
    image, mask = ds.load(0)
    assert image.shape == (360, 480, 3)
    assert set(np.unique(mask).tolist()) <= set(range(11)) | {255}
    counts = mc.class_frequency([mask], 11)
    assert counts.sum() == (mask != 255).sum()
    assert math.isfinite(sum(mc.inverse_frequency_weights(counts)))
