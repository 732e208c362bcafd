"""Fit the detector to the objects: object sizes -> image size, anchor sizes, detections per image.

A Mask R-CNN finds an object when one of its anchors overlaps it well, and segments it from a
14 x 14 crop of a feature map of stride 8 or more. So what matters is the size of the objects *at
the model's input*: a 35 px insect in a 768 px photo shrunk to 320 px is 15 px, smaller than most
default anchors and a couple of cells of the finest map. This module measures the objects of the
training set and derives:

* ``image_size`` (Mask R-CNN's ``min_size = max_size``): large enough that the median object is
  about ``target_object_px`` at the input, never larger than the photos themselves or ``max_image_size``
  (a CPU step costs about the square of it), never below ``min_image_size`` (320: large objects keep
  the pixels their mask outlines need);
* ``anchor_sizes``: 8 sizes spread (geometrically) over the 2nd to 98th percentile of object sides
  at that input size, two per feature map (strides 8, 16, 32, 64);
* ``detections_per_image``: 1.5 x the most objects any training image has, plus 5, between 10
  and 300 (a cap far above that only adds low-scoring false positives to every image);
* ``nms_threshold``: 0.3 (on the embedded set it removed every duplicate detection and raised mask
  mAP@.5 from 0.906 to 0.942 against 0.5), unless the labels hold objects whose boxes overlap more:
  then the 99th percentile of that overlap + 0.1, at most 0.7;
* for dense images (more than 32 objects), more RoIs sampled per image to train the heads
  (2 x the most objects, up to 256) and more proposals (4 x, up to 2000) than the CPU defaults.

The object side is ``sqrt(box width * box height)``.

Every *image* counts once in the median and the percentiles above: an object weighs 1 / (objects in its image). Three
photos crowded with a hundred 7 px insects each would otherwise set the scale for the 21 others,
which hold one to thirty insects of 40-220 px (kudzu: the plain median object is 11 px, the
image-balanced one 47 px).

Taught in: notebooks/10_instance.ipynb
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["DetectorFit", "ObjectSizes", "describe_objects", "fit_detector", "format_object_sizes", "measure_objects"]


@dataclass
class ObjectSizes:
    """Object sizes of a data set, in pixels of the images as read (before the model's resizing).

    Attributes:
        sides: ``sqrt(w * h)`` of every object's box.
        aspect: ``h / w`` of every box.
        per_image: number of objects in each image.
        image_long_sides: long side of each image.
        neighbour_iou: for every object, the largest box IoU with another object of its image (0 alone).
    """

    sides: np.ndarray
    aspect: np.ndarray
    per_image: np.ndarray
    image_long_sides: np.ndarray
    neighbour_iou: np.ndarray | None = None

    def percentiles(self, qs: Sequence[float] = (5, 25, 50, 75, 95)) -> dict[str, float]:
        if not len(self.sides):
            return {}
        return {f"p{int(q)}": float(np.percentile(self.sides, q)) for q in qs}

    def summary(self) -> dict[str, Any]:
        """Counts and percentiles as plain numbers (for JSON and logs)."""
        return {
            "images": int(len(self.per_image)),
            "objects": int(len(self.sides)),
            "objects_per_image": {"mean": float(self.per_image.mean()) if len(self.per_image) else 0.0,
                                  "max": int(self.per_image.max()) if len(self.per_image) else 0},
            "object_side_px": {k: round(v, 1) for k, v in self.percentiles().items()},
            "image_long_side_px": int(np.median(self.image_long_sides)) if len(self.image_long_sides) else 0,
        }


def measure_objects(dataset: Any, limit: int | None = None) -> ObjectSizes:
    """Measure the boxes of every object in a detection data set (no augmentation).

    Args:
        dataset: a :class:`~workshop.instance.data.DetectionDataset` (its ``raw`` samples are read).
        limit: read at most this many images (evenly spread), or None for all.

    Returns:
        The :class:`ObjectSizes`.
    """
    from workshop.instance.data import detection_target

    n = len(dataset)
    indices = range(n) if limit is None or limit >= n else np.linspace(0, n - 1, limit).round().astype(int)
    sides, aspect, counts, longs, neighbours = [], [], [], [], []
    for i in indices:
        image, masks, labels = dataset.raw(int(i))
        longs.append(max(image.shape[:2]))
        boxes = detection_target(masks, labels)["boxes"].numpy() if len(masks) else np.zeros((0, 4))
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        sides.extend(np.sqrt(w * h).tolist())
        neighbours.extend(_max_neighbour_iou(boxes).tolist())
        aspect.extend((h / np.maximum(w, 1e-6)).tolist())
        counts.append(len(boxes))
    return ObjectSizes(np.asarray(sides, float), np.asarray(aspect, float), np.asarray(counts, int), np.asarray(longs, int),
                       np.asarray(neighbours, float))


def _max_neighbour_iou(boxes: np.ndarray) -> np.ndarray:
    """For each box, the largest IoU with another box of the same image (0 when it is alone)."""
    if len(boxes) < 2:
        return np.zeros(len(boxes))
    import torch
    from torchvision.ops import box_iou

    iou = box_iou(torch.as_tensor(boxes, dtype=torch.float32), torch.as_tensor(boxes, dtype=torch.float32)).numpy()
    np.fill_diagonal(iou, 0.0)
    return iou.max(axis=1)


@dataclass
class DetectorFit:
    """Settings derived from the object sizes (see the module docstring)."""

    image_size: int
    anchor_sizes: list[list[int]]
    detections_per_image: int
    scale: float  # input size / median long side of the images
    median_object_px_at_input: float
    rois_per_image: int = 64  # box_batch_size_per_image: proposals sampled per image to train the box/mask heads
    proposals_per_image: int = 300  # rpn_post_nms_top_n_train
    nms_threshold: float = 0.5  # box IoU above which a detection is a duplicate of a better one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _image_weights(sizes: ObjectSizes) -> np.ndarray:
    """Each object's weight, 1 / (objects in its image), so that every image counts once.

    Uniform when ``per_image`` does not describe ``sides`` (a hand-made :class:`ObjectSizes`).
    """
    counts = sizes.per_image[sizes.per_image > 0]
    if int(counts.sum()) != len(sizes.sides):
        return np.ones(len(sizes.sides))
    return np.repeat(1.0 / counts, counts)


def _percentile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The ``q``-th percentile of ``values`` with ``weights`` (numpy's own when the weights are equal).

    Example:
        >>> _percentile(np.array([1.0, 2, 3, 10]), np.array([1 / 3, 1 / 3, 1 / 3, 1.0]), 50)  # 3 objects of one image, 1 of another
        4.75
    """
    if np.allclose(weights, weights[0]):
        return float(np.percentile(values, q))
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    at = (np.cumsum(w) - 0.5 * w) / w.sum()  # the centre of each value's share of the weight
    return float(np.interp(q / 100.0, at, v))


def fit_detector(sizes: ObjectSizes, target_object_px: float = 24.0, max_image_size: int = 512,
                 min_image_size: int = 320, levels: int = 4, per_level: int = 2) -> DetectorFit:
    """Image size, anchor sizes and detections per image that fit the measured objects.

    Args:
        sizes: from :func:`measure_objects`.
        target_object_px: the median object side wanted at the model's input.
        max_image_size: the largest input size (CPU cost grows with its square).
        min_image_size: the smallest input size (unless the images are smaller): large objects are
            not shrunk further, their masks need the pixels.
        levels: feature maps that get anchors (4 for the FPN backbone, 1 without).
        per_level: anchor sizes per feature map.

    Returns:
        A :class:`DetectorFit`.

    Raises:
        ValueError: the data set has no objects.

    Example:
        >>> s = ObjectSizes(np.array([30.0, 35, 40]), np.ones(3), np.array([3]), np.array([768]))
        >>> fit = fit_detector(s)
        >>> fit.image_size, fit.detections_per_image
        (512, 10)
    """
    if not len(sizes.sides):
        raise ValueError("the training images hold no objects: nothing to size the detector to")
    long_side = float(np.median(sizes.image_long_sides))
    weights = _image_weights(sizes)
    median = _percentile(sizes.sides, weights, 50)
    wanted = long_side * target_object_px / max(median, 1.0)
    size = int(min(max_image_size, long_side, max(min_image_size, wanted)))
    size = max(32, 32 * round(size / 32))
    scale = size / long_side
    lo, hi = _percentile(sizes.sides, weights, 2) * scale, _percentile(sizes.sides, weights, 98) * scale
    lo, hi = max(lo / 1.25, 4.0), max(hi * 1.25, lo * 2)
    count = levels * per_level
    spread = np.geomspace(lo, hi, count).round().astype(int)
    for k in range(1, count):  # strictly increasing whole pixels
        spread[k] = max(spread[k], spread[k - 1] + 1)
    anchors = [spread[i * per_level:(i + 1) * per_level].tolist() for i in range(levels)]
    most = int(sizes.per_image.max()) if len(sizes.per_image) else 0
    detections = int(min(300, max(10, math.ceil(1.5 * most) + 5)))
    # Dense images (kudzu: up to 112 insects) need more sampled RoIs (a quarter are positives) and
    # more proposals than the CPU defaults (64 and 300), or most objects never reach the heads.
    rois = int(min(256, max(64, 2 * most)))
    proposals = int(min(2000, max(300, 4 * most)))
    # NMS: as low as the data allows. Two real objects whose boxes overlap more than the threshold
    # cannot both be detected, so it stays above what the labels show (99th percentile + 0.1).
    overlap = float(np.percentile(sizes.neighbour_iou, 99)) if sizes.neighbour_iou is not None and len(sizes.neighbour_iou) else 0.0
    nms = round(float(min(0.7, max(0.3, overlap + 0.1))), 2)
    return DetectorFit(size, anchors, detections, round(scale, 4), round(median * scale, 1), rois, proposals, nms)


def format_object_sizes(sizes: ObjectSizes, fit: DetectorFit | None = None) -> str:
    """A few readable lines: objects per image, the distribution of object sides, what it implies."""
    s = sizes.summary()
    if not s["objects"]:
        return f"objects: none in {s['images']} image(s)"
    p = s["object_side_px"]
    lines = [
        f"objects: {s['objects']} in {s['images']} image(s), {s['objects_per_image']['mean']:.1f} per image "
        f"(at most {s['objects_per_image']['max']})",
        "object side sqrt(w*h) in px: " + ", ".join(f"{k} {v:g}" for k, v in p.items())
        + f" (images: long side {s['image_long_side_px']} px)",
    ]
    if fit is not None:
        lines.append(
            f"fitted: image size {fit.image_size} (median object {fit.median_object_px_at_input:g} px at the input, "
            "each image counting once), "
            f"anchors {fit.anchor_sizes}, detections per image {fit.detections_per_image}, NMS {fit.nms_threshold:g}"
            + (f", {fit.rois_per_image} RoIs and {fit.proposals_per_image} proposals per training image"
               if fit.rois_per_image > 64 else ""))
    return "\n".join(lines)


def describe_objects(path: str, limit: int = 200, **source_args: Any) -> str | None:
    """The object-size lines of ``workshop data check PATH`` for data with instances (None for other data).

    Args:
        path: what ``workshop data check`` was given (an annotation file, a data folder, a registered name).
        limit: measure at most this many images (evenly spread).
        **source_args: ``label_attribute``, ``keep_unannotated`` (annotation files).
    """
    from workshop.data.sources import open_source
    from workshop.errors import WorkshopError
    from workshop.instance.data import detection_dataset

    try:
        source = open_source(path, task="instance", **source_args)
    except (WorkshopError, ValueError, ImportError):
        return None
    if not getattr(source, "has_instances", False):
        return None
    try:
        sizes = measure_objects(detection_dataset(source, source.items("all")), limit=limit)
        fit = fit_detector(sizes) if len(sizes.sides) else None
    except (WorkshopError, ValueError, OSError) as exc:
        return f"object sizes: not measured ({exc})"
    return "object sizes (instances, for the detector's image size and anchors):\n  " + \
        format_object_sizes(sizes, fit).replace("\n", "\n  ")
