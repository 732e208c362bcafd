"""COCO instances JSON: ``images``, ``annotations`` and ``categories``.

The layout (https://cocodataset.org/#format-data, "Object Detection")::

    {"images": [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480}],
     "annotations": [{"id": 7, "image_id": 1, "category_id": 3, "iscrowd": 0, "bbox": [x, y, w, h],
                      "segmentation": [[x1, y1, x2, y2, ...], ...]            # polygons, or
                      "segmentation": {"size": [h, w], "counts": [n0, n1, ...]}  # uncompressed RLE (crowds), or
                      "segmentation": {"size": [h, w], "counts": "string"}}],    # compressed RLE
     "categories": [{"id": 3, "name": "car", "supercategory": "vehicle"}]}

Uncompressed RLE counts run in column-major (Fortran) order, starting with background; pycocotools
decodes both kinds. An annotation with no segmentation but a ``bbox`` becomes a filled box.
``iscrowd: 1`` regions become ignore in semantic masks.

Not taught in a notebook yet: the annotation-file data sources and ``workshop data check`` use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from workshop.data.formats.common import AnnotatedImage, AnnotatedObject, AnnotationSet, place_image, report_unannotated
from workshop.errors import DataError

__all__ = ["read"]


def _list(data: dict, key: str, path: Path) -> list:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise DataError(f"{path}: COCO '{key}' must be a list, found {type(value).__name__}")
    return value


def _segmentation(ann: dict, where: str, problems: list[str]) -> tuple[str, Any] | None:
    """``("polygon", [rings])``, ``("rle", dict)``, ``("box", bbox)`` or None (reported)."""
    seg = ann.get("segmentation")
    if isinstance(seg, dict):
        if "counts" not in seg or "size" not in seg:
            problems.append(f"{where}: an RLE segmentation needs 'counts' and 'size'; skipped")
            return None
        return "rle", {"size": [int(v) for v in seg["size"]], "counts": seg["counts"]}
    if isinstance(seg, list) and seg:
        if all(isinstance(v, (int, float)) for v in seg):  # one flat ring, not wrapped in a list
            seg = [seg]
        rings = []
        for ring in seg:
            if not isinstance(ring, list) or len(ring) % 2 or not all(isinstance(v, (int, float)) for v in ring):
                problems.append(f"{where}: a polygon must be a flat list [x1, y1, x2, y2, ...]; found {str(ring)[:60]}; ring skipped")
                continue
            if len(ring) < 6:
                problems.append(f"{where}: a polygon ring with {len(ring) // 2} point(s) has no area; ring skipped")
                continue
            rings.append(np.asarray(ring, dtype=np.float64).reshape(-1, 2))
        return ("polygon", rings) if rings else None
    bbox = ann.get("bbox")
    if isinstance(bbox, list) and len(bbox) == 4 and bbox[2] > 0 and bbox[3] > 0:
        return "box", bbox
    problems.append(f"{where}: no segmentation and no usable bbox; skipped")
    return None


def _annotation(ann: dict, where: str, names: dict, objects: dict, entries: dict, problems: list[str]) -> AnnotatedObject | None:
    """One COCO annotation as an object, or None (reported)."""
    image_id, cat_id = ann.get("image_id"), ann.get("category_id")
    if not isinstance(image_id, int) or image_id not in objects:
        problems.append(f"{where} names image id {image_id!r}, which is not in 'images'; skipped")
        return None
    if not isinstance(cat_id, int) or cat_id not in names:
        problems.append(f"{where} names category id {cat_id!r}, which is not in 'categories' {sorted(names)}; skipped")
        return None
    seg = _segmentation(ann, where, problems)
    if seg is None:
        return None
    kind, value = seg
    obj = AnnotatedObject(label=names[cat_id], kind=kind, iscrowd=bool(ann.get("iscrowd", 0)), shape=kind,
                          attributes=dict(ann.get("attributes", {}) or {}))
    if kind == "polygon":
        obj.polygons = value
    elif kind == "rle":
        entry = entries[image_id]
        if "height" in entry and value["size"] != [entry["height"], entry.get("width")]:
            problems.append(f"{where}: RLE size {value['size']} differs from the image's [height, width] "
                            f"[{entry['height']}, {entry['width']}]; skipped")
            return None
        obj.rle = value
    else:
        x, y, w, h = (float(v) for v in value)
        obj.box = (x, y, x + w, y + h)
    return obj


def read(path: Path, data: dict, *, folders: list[Path], keep_unannotated: bool = False) -> AnnotationSet:
    """Read a parsed COCO instances file (see :func:`read_annotations` for the arguments)."""
    problems: list[str] = []
    categories = _list(data, "categories", path)
    names: dict[int, str] = {}
    labels: list[str] = []
    for cat in categories:
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            raise DataError(f"{path}: every COCO category needs 'id' and 'name'; found {str(cat)[:80]}")
        if not isinstance(cat["id"], int):
            raise DataError(f"{path}: COCO category {cat['name']!r} has id {cat['id']!r}, not an integer")
        names[cat["id"]] = str(cat["name"])
        if str(cat["name"]) not in labels:
            labels.append(str(cat["name"]))

    entries: dict[int, dict] = {}
    for img in _list(data, "images", path):
        if not isinstance(img, dict) or "id" not in img or "file_name" not in img:
            problems.append(f"{path}: an image entry without 'id' or 'file_name' ({str(img)[:80]}); skipped")
            continue
        if not isinstance(img["id"], int) or isinstance(img["id"], bool):
            problems.append(f"{path}: image {str(img.get('file_name'))[:60]!r} has id {img['id']!r}, not an integer; skipped")
            continue
        if img["id"] in entries:
            problems.append(f"{path}: image id {img['id']} is listed twice; the second entry is ignored")
            continue
        entries[img["id"]] = img

    objects: dict[int, list[AnnotatedObject]] = {i: [] for i in entries}
    for index, ann in enumerate(_list(data, "annotations", path)):
        where = f"{path}: annotations[{index}] (id {ann.get('id', '?')})" if isinstance(ann, dict) else f"{path}: annotations[{index}]"
        if not isinstance(ann, dict):
            problems.append(f"{where} is not an object; skipped")
            continue
        try:
            obj = _annotation(ann, where, names, objects, entries, problems)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as err:
            problems.append(f"{where}: malformed annotation ({err}); skipped")
            continue
        if obj is not None:
            objects[ann["image_id"]].append(obj)

    images: list[AnnotatedImage] = []
    unannotated: list[str] = []
    for image_id, entry in entries.items():
        objs = objects[image_id]
        name = str(entry["file_name"])
        if not objs:
            unannotated.append(name)
            if not keep_unannotated:
                continue
        placed = place_image(name, folders=folders, declared=(entry.get("width"), entry.get("height")),
                             objects=objs, annotated=bool(objs), source=path, problems=problems)
        if placed is not None:
            images.append(placed)
    report_unannotated(path, unannotated, keep_unannotated, problems)
    return AnnotationSet(format="coco", images=images, labels=labels, problems=problems)
