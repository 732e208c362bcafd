"""Turn annotated objects (polygons, RLE, boxes) into masks, with COCO's own rasteriser.

Every shape goes through ``pycocotools.mask`` (``frPyObjects`` -> ``merge`` -> ``decode``), so a
polygon covers exactly the pixels the COCO evaluation code counts: pixel ``(x, y)`` spans
``[x, x + 1) x [y, y + 1)``, and a rectangle polygon with integer corners ``(x0, y0)-(x1, y1)``
covers ``(x1 - x0) * (y1 - y0)`` pixels (``PIL.ImageDraw`` would add the outline: one more row and
column). Boxes are filled; several rings of one object are merged (their union).

Masks are in the image's **EXIF-corrected (upright) frame**, the frame the readers put coordinates
in and :func:`workshop.data.io.read_image` returns pixels in.

Overlaps in a semantic mask: objects are drawn in ``z_order`` (higher on top), ties in list order, so a
later object covers an earlier one. COCO crowd regions (``iscrowd``) are marked ``ignore_index``
first, and every non-crowd object is drawn over them (a person labelled inside a crowd stays a person).

Shape:
    semantic_mask -> (H, W) int64 class ids, 0 = background
    instance_masks -> (K, H, W) bool, (K,) int64 class ids, (K,) bool iscrowd

Not taught in a notebook yet: the annotation-file data sources and ``workshop data check`` use it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from pycocotools import mask as mask_util

from workshop.data.formats.common import AnnotatedObject, check_size, decode_rle
from workshop.errors import DataError

__all__ = ["decode_rle", "instance_masks", "object_mask", "semantic_mask"]


def object_mask(obj: AnnotatedObject, height: int, width: int) -> np.ndarray:
    """The pixels one object covers, by pycocotools; parts outside the image are clipped.

    Shape:
        Output: (H, W) bool.

    Example:
        >>> sq = AnnotatedObject("a", "polygon", polygons=[np.array([[1, 1], [4, 1], [4, 3], [1, 3]])])
        >>> int(object_mask(sq, 5, 6).sum())  # 3 x 2 pixels
        6
    """
    height, width = check_size(height, width)
    if obj.kind == "rle":
        return decode_rle(obj.rle or {}, height, width)
    if obj.kind == "box":
        if obj.box is None:
            return np.zeros((height, width), dtype=bool)
        x0, y0, x1, y1 = (float(v) for v in obj.box)
        x0, x1 = min(x0, x1), max(x0, x1)
        y0, y1 = min(y0, y1), max(y0, y1)
        rles = mask_util.frPyObjects(np.array([[x0, y0, x1 - x0, y1 - y0]], dtype=np.float64), height, width)
    elif obj.kind == "polygon":
        rings = [np.asarray(p, dtype=np.float64).reshape(-1).tolist() for p in obj.polygons if len(p) >= 3]
        if not rings:
            return np.zeros((height, width), dtype=bool)
        rles = mask_util.frPyObjects(rings, height, width)
    else:
        raise ValueError(f"unknown object kind {obj.kind!r}; expected 'polygon', 'rle' or 'box'")
    return mask_util.decode(mask_util.merge(rles)).astype(bool)


def _ids(objects: Sequence[AnnotatedObject], labels_to_ids: Mapping[str, int]) -> list[int]:
    unknown = sorted({obj.label for obj in objects} - set(labels_to_ids))
    if unknown:
        raise DataError(f"label(s) {unknown} have no class id; known labels: {sorted(labels_to_ids)}")
    return [int(labels_to_ids[obj.label]) for obj in objects]


def semantic_mask(
    objects: Sequence[AnnotatedObject],
    labels_to_ids: Mapping[str, int],
    height: int,
    width: int,
    ignore_index: int = 255,
) -> np.ndarray:
    """Class-id mask of an image: background 0, each object's id, crowd regions ``ignore_index``.

    Objects are drawn by ``z_order`` (higher on top), ties in list order (later on top); crowd
    regions are marked first, so any non-crowd object drawn there wins.

    Args:
        objects: the image's objects (:attr:`AnnotatedImage.objects`).
        labels_to_ids: class name -> id; 0 should be the background, which nothing draws.
        height: image height (upright frame).
        width: image width.
        ignore_index: value for crowd regions, which the loss and the metrics skip.

    Returns:
        The mask.

    Raises:
        DataError: an object's label is not in ``labels_to_ids`` (the message lists the known ones).

    Shape:
        Output: (H, W) int64.

    Example:
        >>> a = AnnotatedObject("road", "box", box=(0, 0, 4, 1))
        >>> b = AnnotatedObject("car", "box", box=(1, 0, 2, 2))
        >>> semantic_mask([a, b], {"road": 1, "car": 2}, 3, 4)
        array([[1, 2, 1, 1],
               [0, 2, 0, 0],
               [0, 0, 0, 0]])
    """
    height, width = check_size(height, width)
    ids = _ids(objects, labels_to_ids)
    mask = np.zeros((height, width), dtype=np.int64)
    order = sorted(range(len(objects)), key=lambda i: objects[i].z_order)  # stable: ties keep list order
    for i in order:
        if objects[i].iscrowd:
            mask[object_mask(objects[i], height, width)] = ignore_index
    for i in order:
        if not objects[i].iscrowd:
            mask[object_mask(objects[i], height, width)] = ids[i]
    return mask


def instance_masks(
    objects: Sequence[AnnotatedObject],
    labels_to_ids: Mapping[str, int],
    height: int,
    width: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One full mask per object (overlaps kept, as in COCO), with its class id and crowd flag.

    Args:
        objects: the image's objects, in list order.
        labels_to_ids: class name -> id.
        height: image height (upright frame).
        width: image width.

    Returns:
        ``(masks, class_ids, iscrowd)``. Objects entirely outside the image give empty masks; the
        instance track drops those (:func:`workshop.data.polygons.drop_empty_masks`).

    Raises:
        DataError: an object's label is not in ``labels_to_ids``.

    Shape:
        Output: (K, H, W) bool, (K,) int64, (K,) bool; K = len(objects).
    """
    height, width = check_size(height, width)
    ids = _ids(objects, labels_to_ids)
    masks = np.zeros((len(objects), height, width), dtype=bool)
    for k, obj in enumerate(objects):
        masks[k] = object_mask(obj, height, width)
    return masks, np.asarray(ids, dtype=np.int64), np.asarray([o.iscrowd for o in objects], dtype=bool)
