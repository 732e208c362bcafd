"""LabelMe JSON: one file per image, beside it or in a folder of them.

The layout (https://github.com/wkentaro/labelme, ``labelme/_label_file.py``)::

    {"version": "5.4.1", "flags": {}, "imagePath": "../images/a.jpg", "imageData": null | "<base64>",
     "imageHeight": 480, "imageWidth": 640,
     "shapes": [{"label": "cat", "points": [[x, y], ...], "shape_type": "polygon",
                 "group_id": null, "flags": {}, "description": ""}]}

``imagePath`` is relative to the JSON file. When the image file is missing but the JSON embeds it as
base64 ``imageData``, the image is written once to ``extract_dir`` (named by its content hash) so it
can be read like any other.

Shapes: ``polygon``; ``rectangle`` (two opposite corners) as a filled box; ``circle`` (centre and a
point on the circle) as a polygon; ``mask`` (a base64 PNG inside a box) as an RLE. Shapes with the same
label and ``group_id`` are one object (its parts merged). ``point``, ``points``, ``line`` and
``linestrip`` have no area and are skipped with a problem line.

Not taught in a notebook yet: the annotation-file data sources and ``workshop data check`` use it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from workshop.data.formats.common import AnnotatedImage, AnnotatedObject, AnnotationSet, place_image, is_junk, report_unannotated, resolve_image
from workshop.data.formats.via import ellipse_polygon
from workshop.data.io import IMAGE_EXTENSIONS
from workshop.errors import DataError

__all__ = ["default_extract_dir", "read_files"]


def default_extract_dir() -> Path:
    """Where embedded ``imageData`` images go: ``<workshop data dir>/labelme-images``."""
    from workshop.data.synthetic import default_data_dir

    return default_data_dir() / "labelme-images"


def _extract(path: Path, image_data: str, extract_dir: Path | None) -> Path:
    """Decode a base64 ``imageData`` and write it as an image file (once per content)."""
    try:
        raw = base64.b64decode(image_data, validate=False)
        with Image.open(io.BytesIO(raw)) as img:
            ext = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}.get(img.format or "", ".png")
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError) as err:
        raise DataError(f"{path}: 'imageData' is not a base64-encoded image ({err})") from None
    folder = Path(extract_dir) if extract_dir is not None else default_extract_dir()
    target = folder / (hashlib.sha1(raw).hexdigest()[:20] + ext)
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".part")
        partial.write_bytes(raw)
        partial.replace(target)
    return target


def _points(shape: dict) -> np.ndarray:
    pts = np.asarray(shape.get("points") or [], dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"'points' must be a list of [x, y] pairs, found {str(shape.get('points'))[:60]}")
    return pts


def _mask_rle(shape: dict, pts: np.ndarray, height: int | None, width: int | None) -> dict:
    from pycocotools import mask as mask_util

    if not height or not width:
        raise ValueError("a mask shape needs imageHeight and imageWidth in the file")
    with Image.open(io.BytesIO(base64.b64decode(shape["mask"]))) as img:
        part = np.asarray(img).astype(bool)
    if part.ndim == 3:
        part = part.any(axis=2)
    full = np.zeros((height, width), dtype=np.uint8)
    x0, y0 = int(round(pts[:, 0].min())), int(round(pts[:, 1].min()))
    h, w = part.shape
    ys, xs = slice(max(y0, 0), min(y0 + h, height)), slice(max(x0, 0), min(x0 + w, width))
    full[ys, xs] = part[ys.start - y0: ys.stop - y0, xs.start - x0: xs.stop - x0]
    rle = mask_util.encode(np.asfortranarray(full))
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def _shape(shape: dict, where: str, size: tuple[int | None, int | None], problems: list[str]) -> AnnotatedObject | None:
    kind = str(shape.get("shape_type") or "polygon").lower()
    label = str(shape.get("label", "")).strip()
    if not label:
        problems.append(f"{where}: a {kind} without a label; skipped")
        return None
    try:
        pts = _points(shape)
        if kind == "polygon":
            if len(pts) < 3:
                problems.append(f"{where}: polygon with {len(pts)} point(s) has no area; skipped")
                return None
            return AnnotatedObject(label=label, kind="polygon", polygons=[pts], shape=kind)
        if kind == "rectangle":
            if len(pts) < 2:
                raise ValueError("a rectangle needs two corner points")
            lo, hi = pts.min(axis=0), pts.max(axis=0)
            return AnnotatedObject(label=label, kind="box", box=(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])), shape=kind)
        if kind == "circle":
            if len(pts) < 2:
                raise ValueError("a circle needs its centre and a point on it")
            (cx, cy), (px, py) = pts[0], pts[1]
            r = math.hypot(px - cx, py - cy)
            return AnnotatedObject(label=label, kind="polygon", polygons=[ellipse_polygon(cx, cy, r, r)], shape=kind)
        if kind == "mask" and shape.get("mask"):
            rle = _mask_rle(shape, pts, size[1], size[0])
            return AnnotatedObject(label=label, kind="rle", rle=rle, shape=kind)
    except (ValueError, TypeError, KeyError, OSError, UnidentifiedImageError, binascii.Error) as err:
        problems.append(f"{where}: unreadable {kind} ({err}); skipped")
        return None
    if kind in ("point", "points", "line", "linestrip"):
        problems.append(f"{where}: a {kind} has no area, so it cannot be a mask; skipped")
    else:
        problems.append(f"{where}: unknown shape_type {kind!r} (known: polygon, rectangle, circle, mask); skipped")
    return None


def _objects(path: Path, data: dict, problems: list[str]) -> list[AnnotatedObject]:
    size = (data.get("imageWidth"), data.get("imageHeight"))
    objects: list[AnnotatedObject] = []
    groups: dict[tuple[str, Any], AnnotatedObject] = {}
    for index, shape in enumerate(data.get("shapes") or []):
        if not isinstance(shape, dict):
            problems.append(f"{path}: shapes[{index}] is not an object; skipped")
            continue
        obj = _shape(shape, f"{path}: shapes[{index}]", size, problems)
        if obj is None:
            continue
        group = shape.get("group_id")
        key = (obj.label, group)
        if group is not None and key in groups and groups[key].kind == "polygon" and obj.kind == "polygon":
            groups[key].polygons.extend(obj.polygons)  # one object in several parts
            continue
        obj.attributes = {"group_id": group, "flags": shape.get("flags") or {}, "description": shape.get("description", "")}
        if group is not None:
            groups[key] = obj
        objects.append(obj)
    return objects


def read_files(
    files: list[tuple[Path, Any]],
    *,
    folders: list[Path],
    keep_unannotated: bool = False,
    extract_dir: Path | None = None,
    folder: Path | None = None,
) -> AnnotationSet:
    """Read parsed LabelMe files (see :func:`read_annotations`); ``folder`` is the folder they came from.

    When reading a folder, images in it that no JSON names are unannotated images too: reported,
    and kept as empty only with ``keep_unannotated``.
    """
    problems: list[str] = []
    images: list[AnnotatedImage] = []
    unannotated: list[str] = []
    named: set[Path] = set()
    for path, data in files:
        if not isinstance(data.get("shapes"), list):
            problems.append(f"{path}: LabelMe 'shapes' must be a list; skipped")
            continue
        name = str(data.get("imagePath") or "")
        here = [path.parent, *folders]
        file = resolve_image(name, here) if name else None
        if file is None and data.get("imageData"):
            try:
                file = _extract(path, str(data["imageData"]), extract_dir)
            except DataError as err:
                problems.append(f"{err}; skipped")
                continue
        if file is None:
            problems.append(f"{path}: image {name!r} not found next to the JSON file and no 'imageData' is embedded; skipped"
                            if name else f"{path}: no 'imagePath' and no 'imageData'; skipped")
            continue
        named.add(file.resolve())
        objects = _objects(path, data, problems)
        if not data["shapes"]:
            unannotated.append(name or path.name)
            if not keep_unannotated:
                continue
        elif not objects:
            problems.append(f"{path}: no usable shape left; skipped")
            continue
        placed = place_image(str(file), folders=[file.parent], declared=(data.get("imageWidth"), data.get("imageHeight")),
                             objects=objects, annotated=bool(data["shapes"]), source=path, problems=problems)
        if placed is not None:
            placed.name = name or file.name
            images.append(placed)
    if folder is not None:
        for path in sorted({p.parent for p, _ in files}):
            for image in sorted(path.iterdir()):
                if image.suffix.lower() in IMAGE_EXTENSIONS and not is_junk(image) and image.resolve() not in named:
                    unannotated.append(image.name)
                    if keep_unannotated:
                        placed = place_image(str(image), folders=[path], declared=(None, None), objects=[],
                                             annotated=False, source=path, problems=problems)
                        if placed is not None:
                            images.append(placed)
    source = folder if folder is not None else (files[0][0] if files else Path("."))
    report_unannotated(source, unannotated, keep_unannotated, problems)
    return AnnotationSet(format="labelme", images=images, labels=[], problems=problems)
