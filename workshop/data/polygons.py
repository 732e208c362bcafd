"""Polygon labels: read them, measure them, and turn them into masks.

Polygon annotations are how most segmentation data is labelled (CVAT, LabelMe, COCO): a list of
objects, each a class name and a list of ``[x, y]`` vertices in pixel coordinates. The masks a model
trains on are *rendered* from those polygons. Everything here works on the label-file layout used by
the embedded data set and the real-data loaders::

    {"image": "00000.png", "width": 128, "height": 128,
     "objects": [{"class": "road", "points": [[x, y], ...]},
                 {"class": "building", "instance_id": 1, "points": [[x, y], ...]}]}

Objects are drawn in list order, so a later object covers an earlier one where they overlap.

Taught in: notebooks/10_instance.ipynb
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "drop_empty_masks",
    "load_polygon_labels",
    "masks_to_boxes",
    "mean_points_per_polygon",
    "polygon_area",
    "polygon_to_mask",
    "render_instance_id_mask",
    "render_instance_masks",
    "render_semantic_mask",
]

_REQUIRED_KEYS = ("image", "width", "height", "objects")
_REQUIRED_OBJECT_KEYS = ("class", "points")


def load_polygon_labels(path: str | Path) -> dict[str, Any]:
    """Read one polygon label file and check that it has everything a renderer needs.

    Args:
        path: JSON file with keys ``image``, ``width``, ``height`` and ``objects``; every object
            has ``class`` (a name) and ``points`` (at least three ``[x, y]`` pairs).

    Returns:
        The parsed label dictionary, unchanged.

    Raises:
        ValueError: the file is not valid JSON or misses a key; the message names the file and
            what is missing or wrong.

    Example:
        >>> labels = load_polygon_labels("data/labels/00000.json")  # doctest: +SKIP
        >>> labels["objects"][0]["class"]  # doctest: +SKIP
        'road'

    Taught in: notebooks/10_instance.ipynb
    """
    path = Path(path)
    try:
        labels = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(labels, dict):
        raise ValueError(f"{path}: expected a JSON object at the top level, found {type(labels).__name__}")
    missing = [key for key in _REQUIRED_KEYS if key not in labels]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}; a label file needs {list(_REQUIRED_KEYS)}")
    for key in ("width", "height"):
        value = labels[key]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{path}: '{key}' must be a positive integer, found {value!r}")
    if not isinstance(labels["objects"], list):
        raise ValueError(f"{path}: 'objects' must be a list, found {type(labels['objects']).__name__}")
    for index, obj in enumerate(labels["objects"]):
        problem = _object_problem(obj)
        if problem:
            raise ValueError(f"{path}: objects[{index}] {problem}")
    return labels


def _object_problem(obj: Any) -> str | None:
    """Say what is wrong with one label object, or return None when it is usable."""
    if not isinstance(obj, dict):
        return f"must be an object, found {type(obj).__name__}"
    missing = [key for key in _REQUIRED_OBJECT_KEYS if key not in obj]
    if missing:
        return f"is missing key(s) {missing}; every object needs {list(_REQUIRED_OBJECT_KEYS)}"
    points = obj["points"]
    if not isinstance(points, list) or len(points) < 3:
        return "'points' must be a list of at least 3 [x, y] pairs"
    for point in points:
        if (
            not isinstance(point, (list, tuple))
            or len(point) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)
        ):
            return f"'points' holds {point!r}, which is not an [x, y] pair of numbers"
    return None


def polygon_area(points: Sequence[Sequence[float]]) -> float:
    """Area enclosed by a polygon, by the shoelace formula.

    The area is of the exact geometric shape. A rendered mask of the same polygon usually has *more*
    pixels, because the rasteriser fills every pixel the outline touches (a 4x4 square with corners
    on pixel centres covers 5x5 = 25 pixels).

    Args:
        points: vertices ``[[x0, y0], [x1, y1], ...]`` in order (clockwise or not); at least 3.

    Returns:
        The (non-negative) area in square pixels.

    Example:
        >>> polygon_area([[0, 0], [4, 0], [4, 4], [0, 4]])
        16.0

    Taught in: notebooks/10_instance.ipynb
    """
    xy = np.asarray(points, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] < 3:
        raise ValueError(f"points must be at least 3 [x, y] pairs, got an array of shape {xy.shape}")
    x, y = xy[:, 0], xy[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def _as_xy(points: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in points]


def _check_size(height: int, width: int) -> None:
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive, got height={height}, width={width}")


def polygon_to_mask(points: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Rasterise one polygon (no antialiasing) into a boolean mask.

    Uses the same ``PIL.ImageDraw.polygon`` call as the other renderers here, so a pixel belongs to
    this mask exactly when it would get this polygon's label in :func:`render_semantic_mask`.

    Args:
        points: vertices ``[[x, y], ...]`` in pixel coordinates; parts outside the image are clipped.
        height: mask height in pixels.
        width: mask width in pixels.

    Returns:
        Boolean mask, True inside the polygon (outline included).

    Shape:
        Output: (H, W) bool.

    Taught in: notebooks/10_instance.ipynb
    """
    _check_size(height, width)
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon(_as_xy(points), fill=1)
    return np.asarray(canvas, dtype=np.uint8).astype(bool)


def render_semantic_mask(
    objects: Iterable[Mapping[str, Any]],
    height: int,
    width: int,
    class_to_id: Mapping[str, int],
) -> np.ndarray:
    """Draw every object's polygon with its class id, in list order (later objects on top).

    Pixels no polygon covers are 0, so ``class_to_id`` should map the background class to 0.

    Args:
        objects: label objects, each with ``class`` and ``points``.
        height: mask height in pixels.
        width: mask width in pixels.
        class_to_id: class name -> integer id, e.g. ``{"background": 0, "building": 1}``.

    Returns:
        Mask of class ids.

    Raises:
        ValueError: an object's class is not in ``class_to_id`` (the message lists the valid names).

    Shape:
        Output: (H, W) int64.

    Example:
        >>> objs = [{"class": "road", "points": [[0, 0], [3, 0], [3, 1], [0, 1]]}]
        >>> render_semantic_mask(objs, 3, 4, {"background": 0, "road": 2})
        array([[2, 2, 2, 2],
               [2, 2, 2, 2],
               [0, 0, 0, 0]])

    Taught in: notebooks/10_instance.ipynb
    """
    _check_size(height, width)
    canvas = Image.new("I", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for obj in objects:
        name = obj["class"]
        if name not in class_to_id:
            raise ValueError(f"unknown class {name!r}; valid classes are {sorted(class_to_id)}")
        draw.polygon(_as_xy(obj["points"]), fill=int(class_to_id[name]))
    return np.asarray(canvas).astype(np.int64)


def render_instance_id_mask(
    objects: Iterable[Mapping[str, Any]],
    height: int,
    width: int,
    classes: Sequence[str] = ("building",),
) -> np.ndarray:
    """Draw one id per instance: 0 for background, 1..K for the objects of ``classes`` in list order.

    Every object is drawn in list order; objects of other classes are drawn with 0, so they hide
    (occlude) the instances drawn before them, exactly as in :func:`render_semantic_mask`. The k-th
    object of ``classes`` (counting from 1) gets id k, even if it ends up fully hidden.

    Args:
        objects: label objects, each with ``class`` and ``points``.
        height: mask height in pixels.
        width: mask width in pixels.
        classes: class names that have instances (the "things"); default ``("building",)``.

    Returns:
        Mask of instance ids.

    Shape:
        Output: (H, W) int64.

    Taught in: notebooks/10_instance.ipynb
    """
    _check_size(height, width)
    wanted = _check_classes(classes)
    ids = np.zeros((height, width), np.int64)
    next_id = 1
    for obj in objects:  # polygon_to_mask is notebook 10's exercise: its reference draws every instance
        fill = 0
        if obj["class"] in wanted:
            fill, next_id = next_id, next_id + 1
        ids[polygon_to_mask(obj["points"], height, width)] = fill
    return ids


def render_instance_masks(
    objects: Sequence[Mapping[str, Any]],
    height: int,
    width: int,
    classes: Sequence[str] = ("building",),
) -> np.ndarray:
    """One boolean mask per instance of ``classes``, with later-drawn objects hiding earlier ones.

    Mask k is where :func:`render_instance_id_mask` equals k + 1. A fully hidden instance gives an
    empty mask; remove those with :func:`drop_empty_masks` before computing boxes.

    Args:
        objects: label objects, each with ``class`` and ``points``.
        height: mask height in pixels.
        width: mask width in pixels.
        classes: class names that have instances; default ``("building",)``.

    Returns:
        Stack of instance masks, in the order the instances appear in ``objects``.

    Shape:
        Output: (K, H, W) bool, K = number of objects whose class is in ``classes``.

    Taught in: notebooks/10_instance.ipynb
    """
    wanted = _check_classes(classes)
    count = sum(1 for obj in objects if obj["class"] in wanted)
    ids = render_instance_id_mask(objects, height, width, classes=classes)
    return ids[None, :, :] == np.arange(1, count + 1).reshape(-1, 1, 1)


def _check_classes(classes: Sequence[str]) -> frozenset[str]:
    if isinstance(classes, str):
        raise ValueError(f"classes must be a sequence of class names, e.g. ({classes!r},), not a string")
    return frozenset(classes)


def drop_empty_masks(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove masks with no pixels (instances fully hidden or outside the image).

    Args:
        masks: stack of boolean instance masks.

    Returns:
        ``(kept_masks, kept_indices)``: the non-empty masks and their positions in the input, so
        other per-instance arrays (labels, ids) can be filtered the same way.

    Shape:
        masks: (K, H, W) bool. Output: (K', H, W) bool and (K',) int64, K' <= K.

    Taught in: notebooks/10_instance.ipynb
    """
    masks = _check_mask_stack(masks)
    keep = np.flatnonzero(masks.any(axis=(1, 2)))
    return masks[keep], keep.astype(np.int64)


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight bounding box of every instance mask, as ``[x0, y0, x1, y1]``.

    ``x0, y0`` is the first pixel inside the mask and ``x1, y1`` is one past the last one
    (``max + 1``), so ``x1 - x0`` is the box width in pixels, the way slices work in Python.

    Args:
        masks: stack of boolean instance masks; none may be empty (see :func:`drop_empty_masks`).

    Returns:
        Boxes in pixel coordinates.

    Raises:
        ValueError: a mask is empty (the message names which).

    Shape:
        masks: (K, H, W) bool. Output: (K, 4) float32.

    Example:
        >>> m = np.zeros((1, 5, 6), dtype=bool); m[0, 1:3, 2:5] = True
        >>> masks_to_boxes(m)
        array([[2., 1., 5., 3.]], dtype=float32)

    Taught in: notebooks/10_instance.ipynb
    """
    masks = _check_mask_stack(masks)
    boxes = np.zeros((masks.shape[0], 4), dtype=np.float32)
    if masks.shape[0] == 0:
        return boxes
    cols = masks.any(axis=1)  # (K, W): which columns hold a pixel of the mask
    rows = masks.any(axis=2)  # (K, H)
    empty = np.flatnonzero(~cols.any(axis=1))
    if empty.size:
        raise ValueError(
            f"masks {empty.tolist()} are empty and have no box; remove them first with drop_empty_masks"
        )
    width, height = cols.shape[1], rows.shape[1]
    boxes[:, 0] = cols.argmax(axis=1)
    boxes[:, 1] = rows.argmax(axis=1)
    boxes[:, 2] = width - cols[:, ::-1].argmax(axis=1)
    boxes[:, 3] = height - rows[:, ::-1].argmax(axis=1)
    return boxes


def _check_mask_stack(masks: np.ndarray) -> np.ndarray:
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must have shape (K, H, W), got shape {masks.shape}")
    return masks.astype(bool, copy=False)


def mean_points_per_polygon(
    labels: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    classes: Sequence[str] | None = None,
) -> float:
    """Average number of vertices per polygon: a quick measure of how detailed the labels are.

    Args:
        labels: one label dictionary (with ``objects``), a list of them, or a plain list of objects.
        classes: count only these class names; None counts every object.

    Returns:
        Mean vertex count over the counted polygons.

    Raises:
        ValueError: no polygon matches ``classes`` (the message lists the classes that are present).

    Example:
        >>> mean_points_per_polygon({"objects": [
        ...     {"class": "road", "points": [[0, 0], [1, 0], [1, 1]]},
        ...     {"class": "building", "points": [[0, 0], [2, 0], [2, 2], [0, 2]]}]})
        3.5

    Taught in: notebooks/10_instance.ipynb
    """
    objects = _collect_objects(labels)
    wanted = None if classes is None else _check_classes(classes)
    counts = [len(obj["points"]) for obj in objects if wanted is None or obj["class"] in wanted]
    if not counts:
        present = sorted({obj["class"] for obj in objects})
        raise ValueError(f"no polygons of classes {classes!r} to average; classes present: {present}")
    return float(np.mean(counts))


def _collect_objects(labels: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    if isinstance(labels, Mapping):
        if "objects" not in labels:
            raise ValueError("a label dictionary needs an 'objects' list")
        return list(labels["objects"])
    objects: list[Mapping[str, Any]] = []
    for item in labels:
        if "objects" in item:
            objects.extend(item["objects"])
        elif "points" in item:
            objects.append(item)
        else:
            raise ValueError("expected label dictionaries (with 'objects') or objects (with 'points')")
    return objects
