"""VGG Image Annotator (VIA) 1.x and 2.x JSON: an export, or a VIA 2 project file.

The layout (https://www.robots.ox.ac.uk/~vgg/software/via/, "Annotation > Export as JSON")::

    {"a.jpg123456": {"filename": "a.jpg", "size": 123456, "file_attributes": {},
                     "regions": [                                   # VIA 2: a list
                        {"shape_attributes": {"name": "polygon", "all_points_x": [...], "all_points_y": [...]},
                         "region_attributes": {"class": "roof"}}]},
     "b.jpg999": {"filename": "b.jpg", "regions": {"0": {...}, "1": {...}}}}   # VIA 1: a dict

A VIA 2 *project* file holds the same entries under ``_via_img_metadata``, and the attribute
definitions (dropdown/radio options, in order) under ``_via_attributes``. Both region layouts may
appear in one file (a VIA 1 project re-saved by VIA 2 keeps old entries).

Shapes: ``polygon``; ``rect`` (x, y, width, height) as a filled box; ``circle`` (cx, cy, r) and
``ellipse`` (cx, cy, rx, ry, theta in radians) as polygons with about one vertex per 2 pixels of
outline. ``point`` and ``polyline`` have no area and are skipped with a problem line.

The class comes from a region attribute: the one named by ``label_attribute``, or, when none is
named, the only attribute the regions carry. Regions that all carry one value (or none) are one class:
a binary task, named after that value (or ``default_label``).

Not taught in a notebook yet: the annotation-file data sources and ``workshop data check`` use it.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from workshop.data.formats.common import AnnotatedImage, AnnotatedObject, AnnotationSet, place_image, report_unannotated
from workshop.errors import DataError

__all__ = ["DEFAULT_LABEL", "ellipse_polygon", "read"]

#: Class name of regions that carry no class attribute at all (a binary task).
DEFAULT_LABEL = "foreground"


def ellipse_polygon(cx: float, cy: float, rx: float, ry: float, theta: float = 0.0) -> np.ndarray:
    """Vertices of an ellipse (a circle when ``rx == ry``), about one per 2 pixels of outline.

    ``theta`` turns the ``rx`` axis from the x axis toward the y axis (radians; y points down, as
    in VIA's canvas), so ``theta = pi / 2`` swaps the axes.

    Shape:
        Output: (N, 2) float64, N >= 16, columns x, y.
    """
    n = int(min(720, max(16, math.ceil(math.pi * (rx + ry) / 2))))
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    ex, ey = rx * np.cos(t), ry * np.sin(t)
    c, s = math.cos(theta), math.sin(theta)
    return np.stack([cx + ex * c - ey * s, cy + ex * s + ey * c], axis=1)


def _entries(path: Path, data: dict) -> tuple[dict, dict]:
    """The image entries and the region attribute definitions (VIA 2 project files only)."""
    if "_via_img_metadata" in data:
        meta = data["_via_img_metadata"]
        definitions = (data.get("_via_attributes") or {}).get("region") or {}
    else:
        meta, definitions = data, {}
    if not isinstance(meta, dict):
        raise DataError(f"{path}: VIA image metadata must be an object keyed by image, found {type(meta).__name__}")
    return meta, definitions if isinstance(definitions, dict) else {}


def _regions(entry: dict) -> list[dict]:
    regions = entry.get("regions") or []
    if isinstance(regions, dict):  # VIA 1.x: {"0": {...}, "1": {...}}
        keys = sorted(regions, key=lambda k: (0, int(k)) if str(k).isdigit() else (1, str(k)))
        regions = [regions[k] for k in keys]
    if not isinstance(regions, list):
        return []
    return [r for r in regions if isinstance(r, dict)]


def _region_attributes(region: dict) -> dict:
    attrs = region.get("region_attributes")
    return attrs if isinstance(attrs, dict) else {}


def _values(value: Any) -> list[str]:
    """The class value(s) an attribute holds: text, a number, or a checkbox dict {option: bool}."""
    if isinstance(value, dict):
        return [str(k) for k, v in value.items() if v]
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    return [str(value).strip()]


def _describe(attributes: dict[str, Counter]) -> str:
    if not attributes:
        return "the regions carry no attributes"
    parts = []
    for key, counts in attributes.items():
        shown = ", ".join(repr(v) for v, _ in counts.most_common(5)) + (", ..." if len(counts) > 5 else "")
        parts.append(f"{key!r} ({shown})")
    return "attributes found: " + "; ".join(parts)


def _choose_attribute(path: Path, regions: list[dict], label_attribute: str | None, definitions: dict) -> str | None:
    """The attribute holding the class, or None for "one class"; raises when it is missing or ambiguous."""
    found: dict[str, Counter] = {}
    for region in regions:
        for key, value in _region_attributes(region).items():
            for v in _values(value):
                found.setdefault(str(key), Counter())[v] += 1
    if label_attribute is not None:
        if label_attribute in found or label_attribute in definitions:
            return label_attribute
        hint = "; leave the label attribute unset to read every region as one class" if len({v for c in found.values() for v in c}) <= 1 else ""
        raise DataError(f"{path}: no region has the attribute {label_attribute!r} to take the class from; {_describe(found)}{hint}")
    distinct = {v for counts in found.values() for v in counts}
    if len(distinct) <= 1:
        return None
    if len(found) == 1:
        return next(iter(found))
    raise DataError(
        f"{path}: the regions' class is ambiguous: {_describe(found)}; name the attribute that holds the "
        "class (label_attribute)"
    )


def _shape(shape: dict, where: str, problems: list[str]) -> AnnotatedObject | None:
    name = str(shape.get("name", "")).lower()
    try:
        if name == "polygon":
            xs, ys = shape.get("all_points_x") or [], shape.get("all_points_y") or []
            if len(xs) != len(ys):
                problems.append(f"{where}: polygon has {len(xs)} x and {len(ys)} y values; skipped")
                return None
            if len(xs) < 3:
                problems.append(f"{where}: polygon with {len(xs)} point(s) has no area; skipped")
                return None
            pts = np.stack([np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)], axis=1)
            return AnnotatedObject(label="", kind="polygon", polygons=[pts], shape=name)
        if name == "rect":
            x, y, w, h = (float(shape[k]) for k in ("x", "y", "width", "height"))
            return AnnotatedObject(label="", kind="box", box=(x, y, x + w, y + h), shape=name)
        if name == "circle":
            cx, cy, r = (float(shape[k]) for k in ("cx", "cy", "r"))
            return AnnotatedObject(label="", kind="polygon", polygons=[ellipse_polygon(cx, cy, r, r)], shape=name)
        if name == "ellipse":
            cx, cy, rx, ry = (float(shape[k]) for k in ("cx", "cy", "rx", "ry"))
            theta = float(shape.get("theta", 0.0) or 0.0)
            return AnnotatedObject(label="", kind="polygon", polygons=[ellipse_polygon(cx, cy, rx, ry, theta)], shape=name)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        problems.append(f"{where}: {name} shape with a missing or non-numeric value ({err}); skipped")
        return None
    if name in ("point", "polyline"):
        problems.append(f"{where}: a {name} has no area, so it cannot be a mask; skipped")
    else:
        problems.append(f"{where}: unknown shape {name!r} (known: polygon, rect, circle, ellipse); skipped")
    return None


def read(
    path: Path,
    data: dict,
    *,
    folders: list[Path],
    label_attribute: str | None = None,
    keep_unannotated: bool = False,
    default_label: str = DEFAULT_LABEL,
) -> AnnotationSet:
    """Read a parsed VIA export or project (see :func:`read_annotations` for the arguments)."""
    entries, definitions = _entries(path, data)
    problems: list[str] = []
    all_regions = [r for e in entries.values() if isinstance(e, dict) for r in _regions(e)]
    attribute = _choose_attribute(path, all_regions, label_attribute, definitions)

    labels: list[str] = []
    if attribute is not None:
        options = (definitions.get(attribute) or {}).get("options") or {}
        labels = [str(k) for k in options] if isinstance(options, dict) else []
    else:
        values = {v for r in all_regions for val in _region_attributes(r).values() for v in _values(val)}
        labels = [values.pop() if values else default_label]

    images: list[AnnotatedImage] = []
    unannotated: list[str] = []
    unlabelled: list[str] = []
    listed: list[str] = []
    for key, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
            problems.append(f"{path}: entry {key!r} has no 'filename'; skipped")
            continue
        name = str(entry["filename"])
        listed.append(name)
        regions = _regions(entry)
        if name.startswith(("http://", "https://")):
            problems.append(f"{path}: image {name} is a web address; download it next to the annotation file "
                            "and name it by its file name; skipped")
            continue
        objects: list[AnnotatedObject] = []
        for index, region in enumerate(regions):
            where = f"{path}: {name} region {index}"
            shape = region.get("shape_attributes")
            obj = _shape(shape if isinstance(shape, dict) else {}, where, problems)
            if obj is None:
                continue
            attrs = _region_attributes(region)
            obj.attributes = attrs
            if attribute is None:
                obj.label = labels[0]
            else:
                found = _values(attrs.get(attribute))
                if len(found) != 1:
                    unlabelled.append(f"{name} region {index}" + (f" ({found})" if found else ""))
                    continue
                obj.label = found[0]
            objects.append(obj)
        if not regions:
            unannotated.append(name)
            if not keep_unannotated:
                continue
        elif not objects:
            problems.append(f"{path}: {name} has no usable region left; skipped")
            continue
        placed = place_image(name, folders=folders, declared=(None, None), objects=objects,
                             annotated=bool(regions), source=path, problems=problems)
        if placed is not None:
            images.append(placed)
    if unlabelled:
        shown = ", ".join(unlabelled[:5]) + (f", ... ({len(unlabelled) - 5} more)" if len(unlabelled) > 5 else "")
        problems.append(f"{path}: {len(unlabelled)} region(s) have no single value of {attribute!r}: {shown}; skipped")
    report_unannotated(path, unannotated, keep_unannotated, problems)
    return AnnotationSet(format="via", images=images, labels=labels, problems=problems, listed=listed)
