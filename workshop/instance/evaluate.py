"""Evaluating instance segmentation: COCO mAP for boxes and masks, and IoU per ground-truth instance.

* :func:`evaluate_map`: COCO-style mean average precision, computed by torchmetrics'
  ``MeanAveragePrecision(iou_type=("bbox", "segm"), backend="pycocotools")``, the official COCO
  code, not a re-implementation. ``map`` averages AP over IoU thresholds 0.50:0.05:0.95;
  ``map_50`` is AP at IoU 0.5 (the lenient number), ``map_75`` at 0.75.
* :func:`per_instance_iou`: a number per object a person can read: predictions are matched to
  ground-truth instances greedily by mask IoU (highest first, each used once) and every
  ground-truth instance reports the IoU of its match (0 when nothing matched it).

Shape:
    A prediction of torchvision's Mask R-CNN: ``{"boxes": (K, 4), "labels": (K,), "scores": (K,),
    "masks": (K, 1, H, W) probabilities}``; a target: ``{"boxes": (N, 4), "labels": (N,),
    "masks": (N, H, W) uint8}``.

Taught in: notebooks/10_instance.ipynb
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["binarize_prediction", "evaluate_map", "greedy_match", "mask_iou_matrix", "per_instance_iou", "predict"]

MAP_KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100")


def binarize_prediction(pred: dict[str, Tensor], mask_threshold: float = 0.5) -> dict[str, Tensor]:
    """A Mask R-CNN prediction with its soft masks (K, 1, H, W) turned into boolean masks (K, H, W)."""
    out = dict(pred)
    masks = pred["masks"]
    if masks.ndim == 4:
        masks = masks[:, 0]
    out["masks"] = masks > mask_threshold if masks.is_floating_point() else masks.bool()
    return out


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable[Any], device: torch.device | str = "cpu") -> Iterable[tuple[list[dict], list[dict]]]:
    """Yield ``(predictions, targets)`` per batch, on the CPU, with the model in eval mode."""
    device = torch.device(device)
    model.eval()
    for images, targets in loader:
        outputs = model([img.to(device) for img in images])
        yield [{k: v.cpu() for k, v in o.items()} for o in outputs], targets


@torch.no_grad()
def evaluate_map(
    model: nn.Module,
    loader: Iterable[Any],
    device: torch.device | str = "cpu",
    mask_threshold: float = 0.5,
    iou_types: tuple[str, ...] = ("bbox", "segm"),
) -> dict[str, float]:
    """COCO mAP of boxes and masks over a whole loader (torchmetrics + pycocotools).

    Args:
        model: a torchvision Mask R-CNN.
        loader: yields ``(images, targets)`` batches.
        device: where the model runs.
        mask_threshold: probability above which a predicted mask pixel is "on".
        iou_types: ``("bbox", "segm")``, or one of them.

    Returns:
        ``{"bbox_map", "bbox_map_50", "bbox_map_75", ..., "segm_map", "segm_map_50", ...}`` as floats
        (-1 where COCO has nothing to average, e.g. no large objects).

    Example:
        >>> scores = evaluate_map(model, val_loader)  # doctest: +SKIP
        >>> scores["segm_map"], scores["segm_map_50"]  # doctest: +SKIP
        (0.41, 0.78)

    Taught in: notebooks/10_instance.ipynb
    """
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(iou_type=tuple(iou_types), backend="pycocotools")
    for preds, targets in predict(model, loader, device):
        metric.update(
            [binarize_prediction(p, mask_threshold) for p in preds],
            [{"boxes": t["boxes"], "labels": t["labels"], "masks": t["masks"].bool()} for t in targets],
        )
    result = metric.compute()
    out: dict[str, float] = {}
    for kind in iou_types:
        prefix = f"{kind}_" if len(iou_types) > 1 else ""
        for key in MAP_KEYS:
            value = result.get(f"{prefix}{key}")
            if value is not None:
                out[f"{kind}_{key}"] = float(value)
    return out


def mask_iou_matrix(pred_masks: Tensor | np.ndarray, gt_masks: Tensor | np.ndarray) -> Tensor:
    """IoU of every predicted mask with every ground-truth mask.

    Args:
        pred_masks: boolean masks (or 0/1).
        gt_masks: boolean masks (or 0/1) of the same height and width.

    Returns:
        float64 matrix; entry ``[i, j]`` is IoU(pred i, gt j) (0 when both masks are empty).

    Shape:
        (P, H, W), (G, H, W) -> (P, G).

    Example:
        >>> a = torch.zeros(1, 2, 2, dtype=torch.bool); a[0, 0] = True
        >>> mask_iou_matrix(a, torch.ones(1, 2, 2, dtype=torch.bool))
        tensor([[0.5000]], dtype=torch.float64)

    Taught in: notebooks/10_instance.ipynb
    """
    p = torch.as_tensor(np.asarray(pred_masks) if not isinstance(pred_masks, Tensor) else pred_masks).bool()
    g = torch.as_tensor(np.asarray(gt_masks) if not isinstance(gt_masks, Tensor) else gt_masks).bool()
    if p.ndim != 3 or g.ndim != 3 or p.shape[1:] != g.shape[1:]:
        raise ValueError(f"need (P, H, W) and (G, H, W) masks of one size, got {tuple(p.shape)} and {tuple(g.shape)}")
    pf = p.flatten(1).double()
    gf = g.flatten(1).double()
    inter = pf @ gf.T
    union = pf.sum(1, keepdim=True) + gf.sum(1) - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))


def greedy_match(iou: Tensor, min_iou: float = 0.0) -> list[tuple[int, int, float]]:
    """Pair rows (predictions) and columns (ground truth) greedily: highest IoU first, each used once.

    Args:
        iou: (P, G) IoU matrix.
        min_iou: pairs with IoU at or below this are not made.

    Returns:
        ``[(pred index, gt index, iou), ...]`` in the order they were made.

    Taught in: notebooks/10_instance.ipynb
    """
    iou = iou.clone().double()
    pairs: list[tuple[int, int, float]] = []
    if iou.numel() == 0:
        return pairs
    while True:
        value, flat = iou.flatten().max(dim=0)
        if value.item() <= min_iou:
            break
        i, j = divmod(int(flat), iou.shape[1])
        pairs.append((i, j, float(value)))
        iou[i, :] = -1
        iou[:, j] = -1
    return pairs


def per_instance_iou(
    pred_masks: Tensor | np.ndarray,
    gt_masks: Tensor | np.ndarray,
    scores: Tensor | None = None,
    score_threshold: float = 0.5,
) -> Tensor:
    """The IoU of each ground-truth instance with the prediction matched to it (0 if none).

    Predictions with ``scores`` below ``score_threshold`` are dropped first; the rest are matched
    greedily (see :func:`greedy_match`).

    Args:
        pred_masks: predicted masks (bool, or probabilities (K, 1, H, W) thresholded at 0.5).
        gt_masks: ground-truth masks.
        scores: confidence of each prediction, or None to keep all.
        score_threshold: minimum confidence kept.

    Returns:
        float64 IoU per ground-truth instance.

    Shape:
        (P, H, W) or (P, 1, H, W), (G, H, W) -> (G,).

    Example:
        >>> gt = torch.zeros(2, 4, 4, dtype=torch.bool); gt[0, :2] = True; gt[1, 2:] = True
        >>> per_instance_iou(gt[:1], gt)
        tensor([1., 0.], dtype=torch.float64)

    Taught in: notebooks/10_instance.ipynb
    """
    pred = torch.as_tensor(pred_masks)
    if pred.ndim == 4:
        pred = pred[:, 0]
    pred = pred > 0.5 if pred.is_floating_point() else pred.bool()
    if scores is not None:
        pred = pred[torch.as_tensor(scores) >= score_threshold]
    gt = torch.as_tensor(gt_masks).bool()
    best = torch.zeros(gt.shape[0], dtype=torch.float64)
    for _, j, value in greedy_match(mask_iou_matrix(pred, gt)):
        best[j] = value
    return best
