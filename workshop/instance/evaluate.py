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

__all__ = ["binarize_prediction", "count_duplicates", "evaluate_instance_run", "evaluate_map", "format_instance_result", "greedy_match",
           "mask_iou_matrix", "per_instance_iou", "predict", "score_predictions"]

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


# --------------------------------------------------------------------------- `workshop evaluate RUN DATA`


def score_predictions(
    predictions: Iterable[dict[str, Tensor]],
    targets: Iterable[dict[str, Tensor]],
    class_names: list[str] | None = None,
    iou_score_threshold: float = 0.5,
) -> dict[str, Any]:
    """Box and mask mAP of predictions against targets, per-class AP, and the mean matched IoU per object.

    Args:
        predictions: one dict per image (``boxes``, ``labels``, ``scores``, ``masks`` (K, [1,] H, W)).
        targets: one dict per image (``boxes``, ``labels``, ``masks`` (N, H, W)).
        class_names: names by class id (background first); per-class AP is reported when there are
            two or more object classes.
        iou_score_threshold: predictions at or above this score are matched to objects for the IoU.

    Returns:
        ``{"box": {"map", "map_50", "map_75", ...}, "mask": {...}, "per_class": {name: {"box_ap",
        "mask_ap"}}, "mean_instance_iou", "objects", "matched_objects", "per_image": [...]}``.

    Example:
        >>> g = torch.zeros(1, 8, 8, dtype=torch.bool); g[0, :4, :4] = True
        >>> t = {"boxes": torch.tensor([[0., 0, 4, 4]]), "labels": torch.tensor([1]), "masks": g}
        >>> p = {**t, "scores": torch.tensor([0.9])}
        >>> score_predictions([p], [t])["mask"]["map"]
        1.0

    Taught in: notebooks/10_instance.ipynb
    """
    from torchmetrics.detection import MeanAveragePrecision

    several = class_names is not None and len(class_names) > 2
    metric = MeanAveragePrecision(iou_type=("bbox", "segm"), backend="pycocotools", class_metrics=several)
    ious: list[float] = []
    duplicates = 0
    per_image: list[dict[str, Any]] = []
    for index, (pred, target) in enumerate(zip(predictions, targets)):
        pred = binarize_prediction(pred)
        gt = {"boxes": target["boxes"].float(), "labels": target["labels"], "masks": torch.as_tensor(target["masks"]).bool()}
        metric.update([pred], [gt])
        best = per_instance_iou(pred["masks"], gt["masks"], pred["scores"], iou_score_threshold) if len(gt["labels"]) else torch.zeros(0)
        ious.extend(best.tolist())
        duplicates += count_duplicates(pred["masks"][pred["scores"] >= iou_score_threshold], gt["masks"])
        per_image.append({"index": index, "objects": int(len(gt["labels"])),
                          "detections": int((pred["scores"] >= iou_score_threshold).sum()),
                          "mean_iou": float(best.mean()) if len(best) else None})
    result = metric.compute()
    out: dict[str, Any] = {}
    for kind, name in (("bbox", "box"), ("segm", "mask")):
        out[name] = {key: float(result[f"{kind}_{key}"]) for key in MAP_KEYS if f"{kind}_{key}" in result}
    if several:
        classes = [int(c) for c in torch.atleast_1d(result["classes"]).tolist()]
        box_pc = torch.atleast_1d(result["bbox_map_per_class"]).tolist()
        mask_pc = torch.atleast_1d(result["segm_map_per_class"]).tolist()
        out["per_class"] = {
            (class_names[c] if c < len(class_names) else str(c)): {"box_ap": float(b), "mask_ap": float(m)}
            for c, b, m in zip(classes, box_pc, mask_pc)
        }
    out["objects"] = len(ious)
    out["matched_objects"] = int(sum(v > 0 for v in ious))
    out["mean_instance_iou"] = float(np.mean(ious)) if ious else None
    out["duplicates"] = duplicates
    out["per_image"] = per_image
    return out


def count_duplicates(pred_masks: Tensor, gt_masks: Tensor, min_iou: float = 0.5) -> int:
    """Predictions that cover an object (IoU > ``min_iou``) another, better-matched prediction already covers.

    After the greedy matching of :func:`greedy_match`, a prediction left without an object whose
    IoU with some object is still above ``min_iou`` is a duplicate (what NMS should have removed).

    Example:
        >>> g = torch.zeros(1, 4, 4, dtype=torch.bool); g[0, :2] = True
        >>> count_duplicates(torch.cat([g, g]), g)
        1
    """
    if len(pred_masks) == 0 or len(gt_masks) == 0:
        return 0
    iou = mask_iou_matrix(pred_masks, gt_masks)
    matched = {i for i, _, _ in greedy_match(iou, min_iou)}
    return int(sum(1 for i in range(iou.shape[0]) if i not in matched and iou[i].max() > min_iou))


def evaluate_instance_run(
    run: str | Any,
    data: str | None = None,
    split: str | None = None,
    out: str | Any | None = None,
    device: str | torch.device = "auto",
    score_threshold: float = 0.5,
    log: Any = print,
) -> dict[str, Any]:
    """Score an instance run's best checkpoint on ``data`` (``workshop evaluate RUN DATA``).

    Every image is predicted at its own size (the model resizes its input and returns masks at the
    image's size) and compared with its objects at full resolution.

    Args:
        run: the run folder (``checkpoints/best.pt``) or a checkpoint.
        data: an annotation file, a data folder, a registered name (``pennfudan``) or ``embedded``;
            None: the run's own validation split (from its saved config).
        split: the source's split (default: test, else val, else all; not used without ``data``).
        out: output folder (default ``RUN/evaluate-<data>-<split>``).
        score_threshold: detections at or above this score are matched for the IoU per object.

    Returns:
        The metrics (also in ``metrics.json``; ``per_image.csv`` and ``predictions.png`` beside it).

    Raises:
        WorkshopError: a run or data that cannot be read, or classes that differ from the run's.
    """
    import csv
    import json
    from pathlib import Path

    from workshop.env import get_device
    from workshop.errors import WorkshopError
    from workshop.data.splits import choose_split, require_own_split
    from workshop.instance.data import detection_dataset, detection_splits, open_instance_source
    from workshop.instance.engine import load_instance_model, run_config
    from workshop.instance.viz import save_predictions

    run_path = Path(run)
    if not run_path.exists():
        raise WorkshopError(f"run not found: {run_path} (give a run folder written by `workshop train`, or its .pt file)")
    dev = get_device(device) if isinstance(device, str) else device
    model, state = load_instance_model(run_path, dev)
    names = list(state["class_names"])
    cfg = run_config(state)
    if data is None:  # the run's own held-out images
        require_own_split(split)
        _, dataset, _, how = detection_splits(cfg, max_side=None, seed=cfg.train.seed)
        source, items, split = dataset.source, dataset.items, "val"
        data, tag = f"the run's validation split ({how})", "own"
    else:
        source = open_instance_source(data, cfg)
        split = choose_split(source, split)
        items = source.items(split)
        if not items:
            raise WorkshopError(f"{data}: split {split!r} has no images")
        src_names = list(source.class_names())
        if len(src_names) != len(names):
            raise WorkshopError(f"{data} has classes {src_names[1:]} but the run was trained on {names[1:]}; "
                                "score it on data with the same classes")
        dataset = detection_dataset(source, items, train=False, max_side=None)
        tag = Path(str(data)).stem
    log(f"evaluate: {run_path} on {source.format}, split {split} ({len(items)} images), at full resolution")

    def preds_and_targets():
        model.eval()
        with torch.no_grad():
            for i in range(len(dataset)):
                image, target = dataset[i]
                pred = {k: v.cpu() for k, v in model([image.to(dev)])[0].items()}
                yield pred, target

    pairs = list(preds_and_targets())
    scores = score_predictions([p for p, _ in pairs], [t for _, t in pairs], names, score_threshold)
    for row, item in zip(scores["per_image"], items):
        row["image"] = str(item.image)
    result = {"run": str(run_path), "data": str(data), "format": source.format, "split": split, "images": len(items),
              "classes": names[1:], "score_threshold": score_threshold, **scores}
    out_dir = Path(out) if out is not None else (run_path if run_path.is_dir() else run_path.parent) / f"evaluate-{tag}-{split}"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    with (out_dir / "per_image.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", "objects", "detections", "mean_iou"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(scores["per_image"])
    save_predictions(model, dataset, dev, out_dir / "predictions.png")
    result["out"] = str(out_dir)
    return result


def format_instance_result(result: dict[str, Any]) -> str:
    """The evaluation as a few readable lines."""
    def f(v):
        return "  n/a" if v is None or v < 0 else f"{v:.3f}"

    lines = [f"{result['images']} images ({result['format']}, split {result['split']}), {result['objects']} objects"]
    lines.append(f"  {'':<6} {'mAP':>6} {'@.5':>6} {'@.75':>6}")
    for name in ("box", "mask"):
        s = result[name]
        lines.append(f"  {name:<6} {f(s.get('map')):>6} {f(s.get('map_50')):>6} {f(s.get('map_75')):>6}")
    if result.get("per_class"):
        lines.append(f"  {'class':<20} {'box AP':>7} {'mask AP':>8}")
        for cname, s in result["per_class"].items():
            lines.append(f"  {cname[:20]:<20} {f(s['box_ap']):>7} {f(s['mask_ap']):>8}")
    iou = result.get("mean_instance_iou")
    lines.append(f"  mean IoU per object (matched at score >= {result['score_threshold']:g}, 0 when missed): "
                 f"{f(iou)}; {result['matched_objects']}/{result['objects']} objects matched")
    lines.append(f"  duplicates (a second detection on an already matched object): {result.get('duplicates', 0)}")
    lines.append(f"written to {result['out']}: metrics.json, per_image.csv, predictions.png")
    return "\n".join(lines)
