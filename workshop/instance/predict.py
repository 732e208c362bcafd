"""``workshop predict RUN INPUT`` for instance runs: one colour and a score per object, ids, COCO results.

For every image (a file, or every image of a folder) it writes to ``--out``:

* ``<stem>_instances.png``: the overlay, one colour per object, its box and its score;
* ``<stem>_ids.png``: the instance-id mask: 0 background, 1..K the kept objects in order of
  decreasing score (8-bit, 16-bit when there are more than 255); where objects overlap, the
  higher-scoring one keeps the pixel;
* and once, for all images: ``coco_results.json``, the detections in COCO's results format
  (``image_id``, ``category_id``, ``segmentation`` as an RLE from pycocotools, ``bbox`` as
  ``[x, y, w, h]``, ``score``), with ``coco_images.json`` beside it (the COCO ``images`` and
  ``categories`` they refer to), so that ``COCO("coco_images.json").loadRes("coco_results.json")``
  reads them back.

Only detections with a score at or above ``--threshold`` are kept.

Taught in: notebooks/10_instance.ipynb
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from workshop.errors import WorkshopError

__all__ = ["coco_result_entries", "instance_id_mask", "predict_instances"]


def instance_id_mask(masks: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """One id per pixel: objects numbered 1..K by decreasing score; overlaps go to the higher score.

    Shape:
        masks (K, H, W) bool, scores (K,) -> (H, W) uint8 (uint16 when K > 255).

    Example:
        >>> m = np.zeros((2, 1, 3), bool); m[0, 0, :2] = True; m[1, 0, 1:] = True
        >>> instance_id_mask(m, np.array([0.3, 0.9])).tolist()
        [[2, 1, 1]]
    """
    k, h, w = masks.shape
    ids = np.zeros((h, w), np.uint16 if k > 255 else np.uint8)
    for rank, j in enumerate(np.argsort(-np.asarray(scores), kind="stable"), start=1):
        ids[(ids == 0) & masks[j]] = rank
    return ids


def coco_result_entries(image_id: int, masks: np.ndarray, boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
    """Detections of one image in COCO's results format (RLE masks from pycocotools)."""
    from pycocotools import mask as mask_utils

    entries = []
    for m, b, c, s in zip(masks, boxes, labels, scores):
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        x0, y0, x1, y1 = (float(v) for v in b)
        entries.append({"image_id": int(image_id), "category_id": int(c), "segmentation": rle,
                        "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)], "score": round(float(s), 5)})
    return entries


def predict_instances(
    run: str | os.PathLike,
    input_path: str | os.PathLike,
    out: str | os.PathLike = "predictions",
    threshold: float = 0.5,
    device: str | torch.device = "auto",
    alpha: float = 0.5,
) -> list[dict[str, Any]]:
    """Predict every image of ``input_path`` with an instance run and write the files of the module docstring.

    Returns:
        One record per image: ``image``, ``overlay``, ``ids``, ``objects``, ``scores``.

    Raises:
        WorkshopError: no images found, or a threshold outside [0, 1].
    """
    from matplotlib.figure import Figure  # a bare Figure: no pyplot state, a notebook's backend untouched

    from workshop.data.io import list_images, read_image
    from workshop.env import get_device
    from workshop.instance.data import normalize_image
    from workshop.instance.engine import load_instance_model
    from workshop.instance.viz import show_instances

    if not 0 <= threshold <= 1:
        raise WorkshopError(f"--threshold is a score in [0, 1], got {threshold}")
    src = Path(input_path)
    if not src.exists():
        raise WorkshopError(f"input not found: {src} (give an image file or a folder of images)")
    files = [src] if src.is_file() else list_images(src)
    if not files:
        raise WorkshopError(f"no images in {src}")
    dev = get_device(device) if isinstance(device, str) else device
    model, state = load_instance_model(run, dev)
    names = list(state["class_names"])
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, results, images = [], [], []
    for image_id, path in enumerate(files, start=1):
        image = read_image(path)
        with torch.no_grad():
            pred = {k: v.cpu() for k, v in model([normalize_image(image).to(dev)])[0].items()}
        keep = pred["scores"] >= threshold
        masks = (pred["masks"][keep][:, 0] > 0.5).numpy() if keep.any() else np.zeros((0, *image.shape[:2]), bool)
        boxes, labels, scores = pred["boxes"][keep].numpy(), pred["labels"][keep].numpy(), pred["scores"][keep].numpy()
        ids = instance_id_mask(masks, scores)
        stem = path.stem
        Image.fromarray(ids).save(out_dir / f"{stem}_ids.png")
        fig = Figure(figsize=(6, 6 * image.shape[0] / max(image.shape[1], 1)))
        ax = fig.subplots()
        show_instances(image, {"masks": torch.from_numpy(masks), "boxes": torch.from_numpy(boxes), "scores": torch.from_numpy(scores)},
                       ax=ax, score_threshold=threshold, title=f"{path.name}: {len(scores)} object(s), score >= {threshold:g}")
        fig.savefig(out_dir / f"{stem}_instances.png", dpi=100, bbox_inches="tight")
        results.extend(coco_result_entries(image_id, masks, boxes, labels, scores))
        images.append({"id": image_id, "file_name": path.name, "height": int(image.shape[0]), "width": int(image.shape[1])})
        written.append({"image": str(path), "overlay": str(out_dir / f"{stem}_instances.png"), "ids": str(out_dir / f"{stem}_ids.png"),
                        "objects": int(len(scores)), "scores": [round(float(s), 3) for s in scores],
                        "labels": [names[int(c)] if int(c) < len(names) else str(int(c)) for c in labels]})
    categories = [{"id": i, "name": n} for i, n in enumerate(names) if i > 0]
    (out_dir / "coco_results.json").write_text(json.dumps(results))
    (out_dir / "coco_images.json").write_text(json.dumps({"images": images, "categories": categories, "annotations": []}, indent=1))
    return written
