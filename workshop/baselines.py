"""Trivial baselines: what a model that learnt nothing scores, with the same metric as the run.

A model must beat the constant predictions to have learnt anything: "all background", "all
foreground" (binary) and "majority class" (every pixel the most common class, multiclass). On a
set where the foreground covers 78 % of the pixels, predicting foreground everywhere already gives
an IoU of 0.78; a model at 0.74 has learnt less than nothing, and the run summary says so.

The baselines go through :class:`workshop.metrics.SegmentationMetrics` like the model's
predictions do (same ignore index, same averaging), on the same validation masks.

Example:
    >>> import torch
    >>> masks = [torch.tensor([[0, 1], [1, 1]])]
    >>> trivial_baselines(masks, num_classes=2)["all foreground"]
    0.75

Taught in: notebooks/07_training.ipynb
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import torch

from workshop.metrics import SegmentationMetrics

__all__ = ["trivial_baselines", "validation_masks", "compare_with_baselines"]


def _as_mask(mask: Any) -> torch.Tensor:
    m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask).long()
    if m.ndim == 3 and m.shape[0] == 1:
        m = m[0]
    return m


def validation_masks(dataset: Any) -> list[torch.Tensor]:
    """The masks of every item of ``dataset`` as the model's metric sees them (after its transform).

    Shape:
        each (S, S) int64, the size the validation transform gives.
    """
    return [_as_mask(dataset[i]["mask"]) for i in range(len(dataset))]


def trivial_baselines(
    masks: Iterable[Any],
    num_classes: int,
    ignore_index: int | None = 255,
    metric: str = "iou",
) -> dict[str, float]:
    """Scores of the constant predictions on ``masks``, with ``SegmentationMetrics``.

    Args:
        masks: (H, W) class-id masks (tensors or arrays; a leading channel of 1 is dropped).
        num_classes: classes of the task (binary: 2).
        ignore_index: mask value left out of the metric.
        metric: ``"iou"``, ``"dice"`` or ``"pixel_accuracy"`` (the key of ``compute()``).

    Returns:
        Binary: ``{"all background", "all foreground"}``; multiclass: ``{"all <majority class id>"}``
        under the key ``"majority class"``, plus the class id under ``"majority class id"``.

    Shape:
        masks[i]: (H, W) int.
    """
    masks = [_as_mask(m) for m in masks]
    if not masks:
        raise ValueError("no validation masks to compute baselines on")
    counts = torch.zeros(num_classes, dtype=torch.int64)
    for m in masks:
        valid = m[(m != ignore_index)] if ignore_index is not None else m.flatten()
        valid = valid[(valid >= 0) & (valid < num_classes)]
        counts += torch.bincount(valid, minlength=num_classes)[:num_classes]

    def score(label: int) -> float:
        metrics = SegmentationMetrics(num_classes, ignore_index=ignore_index)
        for m in masks:
            metrics.update(torch.full_like(m, label), m)
        return float(metrics.compute()[metric])

    if num_classes == 2:
        return {"all background": score(0), "all foreground": score(1)}
    majority = int(torch.argmax(counts))
    return {"majority class": score(majority), "majority class id": float(majority)}


def compare_with_baselines(value: float, baselines: dict[str, float], metric: str = "iou",
                           class_names: Sequence[str] | None = None) -> tuple[float, str]:
    """The model's margin over the best trivial baseline, and a plain sentence about it.

    Returns:
        (margin, sentence); the margin is ``value - best baseline`` (negative: the model loses).
    """
    scores = {k: v for k, v in baselines.items() if not k.endswith(" id")}
    name, best = max(scores.items(), key=lambda kv: kv[1])
    if name == "majority class" and class_names and "majority class id" in baselines:
        cid = int(baselines["majority class id"])
        if cid < len(class_names):
            name = f"majority class ({class_names[cid]})"
    margin = value - best
    listed = ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
    if margin > 0:
        return margin, f"baselines: {listed}; the model beats the best ({name}) by {margin:+.4f} {metric}"
    return margin, (f"baselines: {listed}; WARNING: the model does NOT beat the trivial baseline "
                    f"'{name}' ({value:.4f} vs {best:.4f} {metric}): it has not learnt more than a constant "
                    "prediction. Train longer (more steps), check the masks, or lower the learning rate.")
