"""Multiclass segmentation tools: class maps from binary masks, class balance, and per-class analysis.

Where these sit in the data path::

    per-class binary masks (Open Images) --merge_binary_masks--> class map (H, W) int64
    masks of a data set --class_frequency--> pixels per class --inverse_frequency_weights--> CE weights
    model -> logits (N, C, H, W) --evaluate_per_image--> one confusion matrix + mIoU per image
      -> format_class_table (accuracy, precision, recall, F1, IoU per class, all from that matrix)
      -> plot_confusion_matrix (rows normalised: "of the true class t, which share went to p")
      -> worst_images / show_worst_images (the validation images with the lowest mIoU)

Every plotting function returns a matplotlib ``Figure``; nothing here needs pandas.

Taught in: notebooks/09_multiclass.ipynb
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor, nn

from workshop.data.io import merge_binary_masks  # noqa: F401  (taught in notebook 09; runs in the data sources)
from workshop.metrics import (
    SegmentationMetrics,
    confusion_matrix,
    iou_from_confusion,
    logits_to_labels,
)

__all__ = [
    "class_frequency",
    "dataset_masks",
    "evaluate_per_image",
    "find_camvid",
    "format_class_table",
    "inverse_frequency_weights",
    "load_camvid",
    "merge_binary_masks",
    "normalize_confusion",
    "per_image_miou",
    "plot_class_frequency",
    "plot_confusion_matrix",
    "plot_logit_histogram",
    "show_worst_images",
    "worst_images",
]


# ----------------------------------------------------------------------------- building class maps
# merge_binary_masks (taught here) lives with the data it reads: workshop.data.io, run by the folder
# source of one binary mask per class (data.class_masks).


# ----------------------------------------------------------------------------- class balance


def dataset_masks(dataset: Any) -> Iterable[np.ndarray]:
    """The masks of a data set, one by one, as numpy arrays.

    Uses ``dataset.load(i)`` (image and mask before any transform) when the data set has it, so no
    augmentation runs; otherwise ``dataset[i]["mask"]``.
    """
    loader = getattr(dataset, "load", None)
    for index in range(len(dataset)):
        mask = loader(index)[1] if callable(loader) else dataset[index]["mask"]
        yield mask.numpy() if isinstance(mask, Tensor) else np.asarray(mask)


def class_frequency(masks: Iterable[np.ndarray | Tensor], num_classes: int, ignore_index: int | None = 255) -> np.ndarray:
    """Count the pixels of every class over many masks.

    Args:
        masks: class-id masks (numpy or tensors), e.g. ``dataset_masks(train_set)``.
        num_classes: number of classes C.
        ignore_index: pixel value left out of the counts, or None.

    Returns:
        int64 pixel count per class.

    Raises:
        ValueError: a mask holds a value that is neither a class id nor ``ignore_index``.

    Shape:
        masks: each (H, W) -> output (C,).

    Example:
        >>> class_frequency([np.array([[0, 0], [2, 255]])], num_classes=3)
        array([2, 0, 1])

    Taught in: notebooks/09_multiclass.ipynb
    """
    counts = np.zeros(num_classes, dtype=np.int64)
    for mask in masks:
        values = mask.numpy() if isinstance(mask, Tensor) else np.asarray(mask)
        values = values.reshape(-1).astype(np.int64)
        if ignore_index is not None:
            values = values[values != ignore_index]
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            bad = np.unique(values[(values < 0) | (values >= num_classes)])[:10].tolist()
            raise ValueError(f"mask values {bad} are not class ids 0..{num_classes - 1} (or the ignore index {ignore_index})")
        counts += np.bincount(values, minlength=num_classes)
    return counts


def inverse_frequency_weights(counts: Sequence[int] | np.ndarray, power: float = 1.0, max_weight: float | None = 10.0) -> list[float]:
    """Class weights for cross-entropy that make rare classes count more: ``w_c ∝ (1 / f_c) ** power``.

    The weights are scaled so that the average weight per pixel is 1 (``sum_c w_c f_c = 1`` with
    ``f_c`` the share of class c), so the loss keeps its usual size. ``power=0.5`` (square root) is
    a milder, often better, choice; ``max_weight`` caps the weight of extremely rare classes
    (then the average is no longer exactly 1). A class with no pixels gets weight 0: it never
    occurs as a target, so its weight would never be used.

    Args:
        counts: pixels per class (from :func:`class_frequency`).
        power: 1 for inverse frequency, 0.5 for inverse square root, 0 for no weighting.
        max_weight: upper bound for any weight, or None.

    Returns:
        One float weight per class (pass as ``create_loss(..., class_weights=weights)``).

    Raises:
        ValueError: no pixels at all, or a negative count / power.

    Example:
        >>> inverse_frequency_weights([75, 25])  # 75 % and 25 % of the pixels
        [0.6666666666666666, 2.0]

    Taught in: notebooks/09_multiclass.ipynb
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or (counts < 0).any() or counts.sum() == 0:
        raise ValueError(f"counts must be non-negative pixel counts with at least one pixel, got {counts.tolist()}")
    if power < 0:
        raise ValueError(f"power must be >= 0, got {power}")
    share = counts / counts.sum()
    present = share > 0
    weights = np.zeros_like(share)
    weights[present] = share[present] ** -power
    weights[present] /= (weights[present] * share[present]).sum()
    if max_weight is not None:
        weights = np.minimum(weights, max_weight)
    return weights.tolist()


def plot_class_frequency(counts: Sequence[int] | np.ndarray, names: Sequence[str], log: bool = True) -> plt.Figure:
    """Bar chart of the share of pixels per class (log scale by default: rare classes stay visible).

    Taught in: notebooks/09_multiclass.ipynb
    """
    counts = np.asarray(counts, dtype=np.float64)
    share = counts / max(counts.sum(), 1)
    fig, ax = plt.subplots(figsize=(max(4, 0.7 * len(names) + 2), 3))
    bars = ax.bar(range(len(names)), share * 100, color="tab:blue")
    for bar, value in zip(bars, share):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{100 * value:.1f}%", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("% of labelled pixels")
    if log and (share > 0).any():
        ax.set_yscale("log")
    ax.set_title("class frequency in the masks")
    fig.tight_layout()
    return fig


def plot_logit_histogram(logits: Tensor, names: Sequence[str], bins: int = 50) -> plt.Figure:
    """Histogram of the raw logits of every class over a batch (one curve per class).

    Widely spread, well separated logits mean confident predictions; all classes piled up near the
    same value mean the model has not learned to tell them apart yet.

    Shape:
        logits: (N, C, H, W).

    Taught in: notebooks/09_multiclass.ipynb
    """
    if logits.ndim != 4 or logits.shape[1] != len(names):
        raise ValueError(f"logits must be (N, {len(names)}, H, W) for {len(names)} class names, got {tuple(logits.shape)}")
    values = logits.detach().float().cpu()
    fig, ax = plt.subplots(figsize=(6, 3))
    edges = np.linspace(float(values.min()), float(values.max()) + 1e-6, bins + 1)
    for c, name in enumerate(names):
        hist, _ = np.histogram(values[:, c].numpy().ravel(), bins=edges)
        ax.plot((edges[:-1] + edges[1:]) / 2, hist, label=name)
    ax.set_xlabel("logit")
    ax.set_ylabel("pixels")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("logits per class")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- per-class and per-image evaluation


def format_class_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = ("accuracy", "precision", "recall", "f1", "iou", "support")) -> str:
    """An aligned text table of per-class numbers (the rows of ``SegmentationMetrics.report()``).

    Undefined values (NaN: a class never present or never predicted) show as ``-``. The last line
    holds the mean over classes, ignoring the undefined ones (support: the total).

    Example:
        >>> print(format_class_table([{"name": "road", "iou": 0.5, "support": 10}], columns=("iou", "support")))
        class  iou    support
        road   0.500  10
        mean   0.500  10

    Taught in: notebooks/09_multiclass.ipynb
    """
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "-" if math.isnan(value) else f"{value:.3f}"
        return str(value)

    table = [["class", *columns]]
    for row in rows:
        table.append([str(row["name"]), *(cell(row.get(c, float("nan"))) for c in columns)])
    mean_row = ["mean"]
    for c in columns:
        values = [float(r[c]) for r in rows if c in r and not (isinstance(r[c], float) and math.isnan(r[c]))]
        if c == "support":
            mean_row.append(str(int(sum(values))))
        else:
            mean_row.append(f"{sum(values) / len(values):.3f}" if values else "-")
    table.append(mean_row)
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in table)


def normalize_confusion(cm: Tensor | np.ndarray) -> np.ndarray:
    """Divide every row of a confusion matrix by its sum: row t says where the pixels of class t went.

    The diagonal then holds each class's recall. Rows of classes with no pixels are NaN.

    Shape:
        (C, C) -> (C, C) float64.
    """
    cm = np.asarray(cm.cpu() if isinstance(cm, Tensor) else cm, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, cm / np.where(rows > 0, rows, 1), np.nan)


def plot_confusion_matrix(cm: Tensor | np.ndarray, names: Sequence[str], normalize: bool = True) -> plt.Figure:
    """Heat map of a confusion matrix (rows: true class, columns: predicted), row-normalised by default.

    Taught in: notebooks/09_multiclass.ipynb
    """
    values = normalize_confusion(cm) if normalize else np.asarray(cm.cpu() if isinstance(cm, Tensor) else cm, dtype=np.float64)
    n = len(names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.6 * n))
    image = ax.imshow(np.nan_to_num(values), cmap="Blues", vmin=0, vmax=1 if normalize else None)
    for t in range(n):
        for p in range(n):
            v = values[t, p]
            text = "-" if np.isnan(v) else (f"{v:.2f}" if normalize else f"{int(v)}")
            ax.text(p, t, text, ha="center", va="center", fontsize=7, color="white" if (normalize and v > 0.5) else "black")
    ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("confusion matrix" + (" (each row sums to 1)" if normalize else ""))
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def per_image_miou(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = 255) -> Tensor:
    """Mean IoU of every image on its own (classes absent from both prediction and target left out).

    Args:
        pred: predicted class ids.
        target: true class ids (``ignore_index`` pixels skipped).
        num_classes: number of classes.
        ignore_index: target value to skip, or None.

    Returns:
        float64 mIoU per image (NaN for an image whose pixels are all ignored).

    Shape:
        (N, H, W), (N, H, W) -> (N,).

    Example:
        >>> per_image_miou(torch.tensor([[[0, 1]], [[1, 1]]]), torch.tensor([[[0, 1]], [[0, 0]]]), 2)
        tensor([1., 0.], dtype=torch.float64)

    Taught in: notebooks/09_multiclass.ipynb
    """
    scores = [iou_from_confusion(confusion_matrix(p, t, num_classes, ignore_index)).nanmean() for p, t in zip(pred, target)]
    return torch.stack(scores) if scores else torch.zeros(0, dtype=torch.float64)


@torch.no_grad()
def evaluate_per_image(
    model: nn.Module,
    loader: Iterable[dict[str, Tensor]],
    num_classes: int,
    device: torch.device | str = "cpu",
    ignore_index: int | None = 255,
    class_names: Sequence[str] | None = None,
) -> tuple[SegmentationMetrics, np.ndarray]:
    """One pass over a loader: the data set's confusion matrix and the mIoU of every image.

    Args:
        model: returns logits (N, C, H, W).
        loader: yields ``{"image", "mask"}`` batches in a fixed order (no shuffling), so score ``i``
            belongs to ``loader.dataset[i]``.
        num_classes: number of classes C.
        device: where the model runs.
        ignore_index: mask value to skip.
        class_names: names for ``metrics.report()``.

    Returns:
        ``(metrics, scores)``: a :class:`~workshop.metrics.SegmentationMetrics` holding the
        confusion matrix of all pixels, and the per-image mIoU as a (num_images,) numpy array.

    Taught in: notebooks/09_multiclass.ipynb
    """
    device = torch.device(device)
    model.eval()
    metrics = SegmentationMetrics(num_classes, ignore_index=ignore_index, class_names=list(class_names) if class_names else None)
    scores: list[Tensor] = []
    for batch in loader:
        logits = model(batch["image"].to(device)).float()
        labels = logits_to_labels(logits).cpu()
        masks = batch["mask"].cpu()
        metrics.update(labels, masks)
        scores.append(per_image_miou(labels, masks, num_classes, ignore_index))
    return metrics, (torch.cat(scores).numpy() if scores else np.zeros(0))


def worst_images(scores: Sequence[float] | np.ndarray, k: int = 4) -> list[int]:
    """Indices of the ``k`` lowest scores, worst first (NaN scores, fully ignored images, are skipped).

    Example:
        >>> worst_images([0.9, 0.2, float("nan"), 0.5], k=2)
        [1, 3]

    Taught in: notebooks/09_multiclass.ipynb
    """
    scores = np.asarray(scores, dtype=np.float64)
    valid = np.flatnonzero(~np.isnan(scores))
    order = valid[np.argsort(scores[valid], kind="stable")]
    return order[:k].tolist()


@torch.no_grad()
def show_worst_images(
    model: nn.Module,
    dataset: Any,
    scores: Sequence[float] | np.ndarray,
    k: int = 4,
    device: torch.device | str = "cpu",
    palette: Sequence[tuple[int, int, int]] | None = None,
) -> plt.Figure:
    """A gallery of the ``k`` validation images with the lowest mIoU: image | truth | prediction.

    Args:
        model: the trained model.
        dataset: the (transformed, unshuffled) validation set the scores were computed on.
        scores: per-image mIoU from :func:`evaluate_per_image`.
        k: how many images.
        device: where the model runs.
        palette: one RGB colour per class (e.g. from the label map), or None for the default.

    Taught in: notebooks/09_multiclass.ipynb
    """
    from workshop.augment import denormalize
    from workshop.viz import colorize_mask

    indices = worst_images(scores, k)
    model.eval()
    fig, axes = plt.subplots(max(len(indices), 1), 3, figsize=(7.5, 2.5 * max(len(indices), 1)), squeeze=False)
    for row, index in enumerate(indices):
        item = dataset[index]
        logits = model(item["image"][None].to(torch.device(device)))
        pred = logits_to_labels(logits)[0].cpu().numpy()
        truth = item["mask"].numpy() if isinstance(item["mask"], Tensor) else np.asarray(item["mask"])
        panels = (denormalize(item["image"]), colorize_mask(truth, palette), colorize_mask(pred, palette))
        for col, (panel, title) in enumerate(zip(panels, ("image", "ground truth", "prediction"))):
            ax = axes[row][col]
            ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=9)
        axes[row][0].set_ylabel(f"#{index}  mIoU {scores[index]:.2f}", fontsize=8)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- CamVid


def load_camvid(split: str = "val", root: Any = None, transform: Any = None) -> Any:
    """CamVid (11 classes, void id 11 -> 255) through ``workshop.data.registry``.

    Args:
        split: ``"train"`` or ``"val"`` (the SegNet lists; 367 and 101 images).
        root: the ``camvid`` folder; default: ``registry.find_local("camvid")``
            (the data dir, ``$WORKSHOP_SHARED_DATASETS`` or ``../shared/datasets``).
        transform: albumentations-style transform.

    Returns:
        A data set whose items are ``{"image", "mask"}``, with ``label_map`` holding the 11 classes.

    Raises:
        DataError: CamVid is not on this machine (the message says how to download it).

    Taught in: notebooks/09_multiclass.ipynb
    """
    from workshop.data import registry

    return registry.load_dataset("camvid", root=root, split=split, transform=transform)


def find_camvid() -> Any:
    """The CamVid folder on this machine, or None (see ``workshop.data.registry.find_local``)."""
    from workshop.data import registry

    return registry.find_local("camvid")
