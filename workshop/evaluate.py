"""Score a trained run on labelled data: ``workshop evaluate RUN [DATA] [--split test] [--out DIR]``.

Without DATA, the run is scored on its own validation split: the images its training held out,
found again from the run's saved config (the same seeded split, ``data.val`` or the publisher's).

Every image is predicted at its own size (the model's input is resized, its logits are resized
back), and compared with its label at the label's full resolution; pixels with the ignore id are
left out. One confusion matrix over all pixels gives, per class, IoU, Dice, precision and recall,
then mIoU (mean over the classes that occur in the labels or the predictions) and pixel accuracy.
The scoring is validation's (``engine.evaluate``): ``SegmentationMetrics`` and the functions of
``workshop.metrics``; a binary run's per-image IoU is notebook 06's ``iou_score``.

Written to ``--out`` (default ``RUN/evaluate-<data>-<split>``):

* ``metrics.json``: the numbers, the data, the split, the run;
* ``confusion.png``: the confusion matrix, rows normalised (true class -> predicted share);
* ``worst.png``: the images with the lowest IoU, with their label and the prediction;
* ``per_image.csv``: every image's IoU and pixel accuracy.

Instance runs (Mask R-CNN) are scored by box and mask mAP instead (``workshop.instance.cli``).

Taught in: notebooks/08_inference.ipynb (scoring a trained model on new data)
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from workshop.data.io import LabelMap
from workshop.data.splits import choose_split, require_own_split  # noqa: F401  (named here before)
from workshop.errors import WorkshopError
from workshop.metrics import (SegmentationMetrics, confusion_matrix, dice_from_confusion, iou_from_confusion, iou_score,
                              logits_to_labels, pixel_accuracy, precision_recall_f1)


def _is_instance_run(run: Path) -> bool:
    if run.is_dir() and (run / "stages.json").is_file():
        return True
    path = run / "checkpoints" / "best.pt" if run.is_dir() else run
    if not path.is_file():
        return False
    state = torch.load(path, map_location="cpu", weights_only=False)
    return "stages" in state and "config" not in state


def run_label_map(cfg, class_names: list[str]) -> LabelMap:
    """The run's classes with the colours of its data source where that is on this machine."""
    from workshop.data.sources import source_from_config

    if cfg.data.task != "binary":
        try:
            lm = source_from_config(cfg).label_map()
            if lm is not None and lm.names == list(class_names):
                return lm
        except Exception:  # the training data need not be here to evaluate or predict
            pass
    return LabelMap.from_names(list(class_names), ignore_index=cfg.data.ignore_index)


def open_eval_source(data: str, cfg, label_map: LabelMap | None):
    """The source to score on: a registered name, or any path ``open_source`` understands."""
    from workshop.data.sources import open_source

    d = cfg.data
    return open_source(data, task=d.task, label_map=label_map if d.task != "binary" else None, ignore_index=d.ignore_index,
                       label_attribute=d.label_attribute, keep_unannotated=d.keep_unannotated)


def scores_from_confusion(cm: np.ndarray | torch.Tensor, names: list[str]) -> dict[str, Any]:
    """Per-class IoU, Dice, precision and recall, mIoU and pixel accuracy from a (C, C) confusion matrix.

    Rows are the true class, columns the prediction. The numbers come from the functions of
    ``workshop.metrics`` that validation uses (``iou_from_confusion``, ``dice_from_confusion``,
    ``precision_recall_f1``, ``pixel_accuracy``); here they are only put in a table. A class that is
    in neither the labels nor the predictions has no score (None) and is left out of the means.

    Example:
        >>> s = scores_from_confusion(np.array([[3, 1], [0, 4]]), ["bg", "fg"])
        >>> round(s["per_class"]["fg"]["iou"], 3), s["pixel_accuracy"]
        (0.8, 0.875)
    """
    cm = torch.as_tensor(np.asarray(cm), dtype=torch.int64)
    iou, dice, prf = iou_from_confusion(cm), dice_from_confusion(cm), precision_recall_f1(cm)
    per_class = {
        n: {"iou": _number(iou[i]), "dice": _number(dice[i]), "precision": _number(prf["precision"][i]),
            "recall": _number(prf["recall"][i]), "pixels": int(cm[i].sum())}
        for i, n in enumerate(names)
    }
    return {"miou": _number(iou.nanmean()), "mean_dice": _number(dice.nanmean()),
            "pixel_accuracy": _number(pixel_accuracy(cm)), "per_class": per_class}


def _number(value: torch.Tensor) -> float | None:
    """A metric as a float, None where it is undefined (NaN)."""
    value = float(value)
    return None if math.isnan(value) else value


def evaluate_run(
    run: str | os.PathLike,
    data: str | None = None,
    split: str | None = None,
    out: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    worst: int = 6,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Score the run's best checkpoint on ``data`` (see the module docstring).

    Args:
        run: the run folder (``checkpoints/best.pt``) or a checkpoint file.
        data: a registered data set name (``camvid``) or a folder / CSV / list / annotation file;
            None: the run's own validation split (from its saved config).
        split: the source's split (``test``, ``val``, ``all``); default: test, else val, else all.
            Not used without ``data``.
        out: output folder.
        worst: how many of the lowest-IoU images ``worst.png`` shows.

    Returns:
        The metrics dict written to ``metrics.json``.

    Raises:
        WorkshopError: an instance run (see ``evaluate_instance_run``), a run or data that cannot be read (named).
    """
    from workshop.env import get_device
    from workshop.inference import load_trained_model, predict_logits

    run = Path(run)
    if not run.exists():
        raise WorkshopError(f"run not found: {run} (give a run folder written by `workshop train`, or its .pt file)")
    if _is_instance_run(run):
        raise WorkshopError(f"{run} is an instance (Mask R-CNN) run: it is scored by box and mask mAP, with "
                            "workshop.instance.evaluate.evaluate_instance_run (`workshop evaluate` calls it)")
    dev = get_device(device) if isinstance(device, str) else device
    model, state = load_trained_model(run, dev)
    from workshop.config import load_config

    saved = state["config"]
    saved.setdefault("model", {}).setdefault("decoder", "standard")
    cfg = load_config(overrides=saved, profile=saved.get("profile"))
    names = list(state["class_names"])
    label_map = run_label_map(cfg, names) if cfg.data.task != "binary" else None
    if data is None:  # the run's own held-out images
        from workshop.data.sources import config_splits

        require_own_split(split)
        splits = config_splits(cfg)
        (source, items), split = splits.val, "val"
        data, tag = f"the run's validation split ({splits.how})", "own"
    else:
        where = Path(str(data))
        tag = where.name if where.is_dir() or not where.exists() else f"{where.parent.name}-{where.stem}"
        source = open_eval_source(data, cfg, label_map)
        split = choose_split(source, split)
        items = source.items(split)
    if not items:
        raise WorkshopError(f"{data}: split {split!r} has no samples")
    source_names = source.class_names()
    if cfg.data.task != "binary" and source_names and len(source_names) != len(names):
        raise WorkshopError(f"{data} has {len(source_names)} classes ({', '.join(source_names[:12])}) but the run "
                            f"was trained on {len(names)} ({', '.join(names[:12])}); score it on data with the same classes")
    ignore = cfg.data.ignore_index
    size, threshold = cfg.data.image_size, cfg.train.threshold
    k = max(len(names), 2)
    shown = names if len(names) == k else ["background", "foreground"]
    metrics = SegmentationMetrics(k, ignore_index=ignore, threshold=threshold, class_names=shown)  # validation's
    per_image = []
    log(f"evaluate: {run} on {source.format}, split {split} ({len(items)} images), at each label's full resolution")
    for item in items:
        sample = source.read(item)
        logits = predict_logits(model, sample.image, size, dev).cpu()  # (1, C, H, W) at the image's size
        pred, target = logits_to_labels(logits, threshold), torch.from_numpy(sample.mask.astype(np.int64))[None]
        resized = pred.shape != target.shape
        if resized:
            from workshop.data.io import resize_mask_nearest

            pred = torch.from_numpy(resize_mask_nearest(pred[0].numpy(), *target.shape[1:]))[None]
        try:
            one = confusion_matrix(pred, target, k, ignore)
        except ValueError as exc:  # label ids the run does not know
            raise WorkshopError(f"{item.image}: {exc} (the run has {k} classes)") from None
        metrics.confusion += one
        s = scores_from_confusion(one, shown)
        iou = s["per_class"][shown[1]]["iou"] if k == 2 else s["miou"]  # None: no foreground in label or prediction
        if k == 2 and iou is not None and not resized:
            iou = iou_score(logits, target, threshold, ignore)  # a binary run: notebook 06's iou_score, the same count
        per_image.append({"image": str(item.image), "iou": iou, "pixel_accuracy": s["pixel_accuracy"]})
    cm = metrics.confusion.numpy()
    scores = scores_from_confusion(cm, shown)
    result = {
        "run": str(run), "data": str(data), "format": source.format, "split": split, "images": len(items),
        "task": cfg.data.task, "ignore_index": ignore, "resolution": "each label's own size",
        **scores, "confusion_matrix": cm.tolist(), "class_names": shown,
    }
    if cfg.data.task == "binary":
        fg = scores["per_class"][shown[1]]
        result["iou"], result["dice"] = fg["iou"], fg["dice"]
    out_dir = Path(out) if out is not None else (run if run.is_dir() else run.parent) / f"evaluate-{tag}-{split}"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    with (out_dir / "per_image.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", "iou", "pixel_accuracy"])
        writer.writeheader()
        writer.writerows(per_image)
    _confusion_png(cm, shown, out_dir / "confusion.png")
    ranked = sorted(range(len(per_image)), key=lambda i: (per_image[i]["iou"] is None, per_image[i]["iou"] or 0.0))
    _worst_png(source, [items[i] for i in ranked[:worst]], [per_image[i]["iou"] for i in ranked[:worst]], model, size,
               dev, threshold, label_map, out_dir / "worst.png")
    result["out"] = str(out_dir)
    return result


def format_result(result: dict[str, Any]) -> str:
    """The result as a few lines: the headline numbers, then one line per class."""
    def f(v):
        return "  n/a" if v is None else f"{v:.3f}"

    head = (f"{result['images']} images ({result['format']}, split {result['split']}): "
            f"mIoU {f(result['miou'])}, pixel accuracy {f(result['pixel_accuracy'])}")
    if "iou" in result:
        head += f", foreground IoU {f(result['iou'])}, Dice {f(result['dice'])}"
    lines = [head, f"  {'class':<20} {'IoU':>6} {'Dice':>6} {'prec':>6} {'recall':>6} {'pixels':>10}"]
    for name, s in result["per_class"].items():
        lines.append(f"  {name[:20]:<20} {f(s['iou']):>6} {f(s['dice']):>6} {f(s['precision']):>6} {f(s['recall']):>6} {s['pixels']:>10}")
    lines.append(f"written to {result['out']}: metrics.json, confusion.png, worst.png, per_image.csv")
    return "\n".join(lines)


def _confusion_png(cm: np.ndarray, names: list[str], path: Path) -> None:
    from matplotlib.figure import Figure  # a bare Figure: no pyplot state, the caller's backend untouched

    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    side = max(4.0, 0.5 * len(names) + 2)
    fig = Figure(figsize=(side, side))
    ax = fig.subplots()
    ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (rows sum to 1)")
    for i in range(len(names)):
        for j in range(len(names)):
            if norm[i, j] >= 0.005:
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _worst_png(source, items, ious, model, size, device, threshold, label_map, path: Path) -> None:
    from matplotlib.figure import Figure

    from workshop.inference import predict_mask
    from workshop.viz import colorize_mask

    if not items:
        return
    palette = [c.color for c in label_map.classes] if label_map is not None else None
    fig = Figure(figsize=(9, 3 * len(items)))
    axes = fig.subplots(len(items), 3, squeeze=False)
    for row, (item, iou) in enumerate(zip(items, ious)):
        sample = source.read(item)
        pred = predict_mask(model, sample.image, size, threshold)
        for ax, pic, title in zip(axes[row], (sample.image, colorize_mask(sample.mask, palette), colorize_mask(pred, palette)),
                                  (f"{item.name}", "label", f"prediction (IoU {iou:.3f})" if iou is not None else "prediction")):
            ax.imshow(pic)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
