"""CVAT for images 1.1 XML (``annotations.xml`` in CVAT's "CVAT for images 1.1" export).

The layout (https://docs.cvat.ai/docs/other/xml_format/, "Annotation")::

    <annotations>
      <version>1.1</version>
      <meta><task><labels><label><name>car</name>...</label></labels></task></meta>  (or <job>, <project>)
      <image id="0" name="images/a.jpg" width="640" height="480">
        <box label="car" occluded="0" xtl="10" ytl="20" xbr="110" ybr="80" z_order="1" rotation="0"/>
        <polygon label="road" occluded="0" points="0,0;100,0;100,50" z_order="0">
          <attribute name="lanes">2</attribute>
        </polygon>
        <ellipse label="sign" cx="50" cy="50" rx="10" ry="5" rotation="0"/>
        <mask label="tree" rle="5, 3, 2" left="10" top="20" width="4" height="3"/>
      </image>
    </annotations>

Polygons, boxes (``rotation`` in degrees, turned about the centre), ellipses and masks become objects;
``z_order`` orders overlaps (higher on top) and ``occluded`` is kept as a flag. A ``<mask>``'s ``rle``
runs row by row inside its box, starting with background. ``polyline``, ``points``, ``tag``,
``cuboid`` and ``skeleton`` have no area and are skipped with a problem line.

Not taught in a notebook yet: the annotation-file data sources and ``workshop data check`` use it.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_util

from workshop.data.formats.common import AnnotatedImage, AnnotatedObject, AnnotationSet, place_image, report_unannotated
from workshop.data.formats.via import ellipse_polygon
from workshop.errors import DataError

__all__ = ["read"]

_NO_AREA = ("polyline", "points", "tag", "cuboid", "skeleton")


def _parse_points(text: str) -> np.ndarray:
    pts = [tuple(float(v) for v in pair.split(",")) for pair in text.strip().split(";") if pair.strip()]
    if any(len(p) != 2 for p in pts):
        raise ValueError(f"points must be 'x,y;x,y;...', found {text[:60]!r}")
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2)


def _turn(points: np.ndarray, cx: float, cy: float, degrees: float) -> np.ndarray:
    """Rotate points about (cx, cy) clockwise on screen (y points down), as CVAT's ``rotation``."""
    a = math.radians(degrees)
    dx, dy = points[:, 0] - cx, points[:, 1] - cy
    return np.stack([cx + dx * math.cos(a) - dy * math.sin(a), cy + dx * math.sin(a) + dy * math.cos(a)], axis=1)


def _mask_rle(elem: ET.Element, height: int, width: int) -> dict:
    counts = [int(v) for v in elem.get("rle", "").replace(" ", "").split(",") if v]
    left, top = int(float(elem.get("left", 0))), int(float(elem.get("top", 0)))
    w, h = int(float(elem.get("width", 0))), int(float(elem.get("height", 0)))
    if sum(counts) != w * h:
        raise ValueError(f"mask rle counts sum to {sum(counts)}, not width*height = {w * h}")
    values = np.repeat(np.arange(len(counts)) % 2, counts).astype(np.uint8).reshape(h, w)
    full = np.zeros((height, width), dtype=np.uint8)
    y1, x1 = min(top + h, height), min(left + w, width)
    full[top:y1, left:x1] = values[: y1 - top, : x1 - left]
    rle = mask_util.encode(np.asfortranarray(full))
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def _object(elem: ET.Element, where: str, size: tuple[int, int] | None, problems: list[str]) -> AnnotatedObject | None:
    tag = elem.tag
    label = (elem.get("label") or "").strip()
    if tag in _NO_AREA:
        problems.append(f"{where}: a <{tag}> has no area, so it cannot be a mask; skipped")
        return None
    if not label:
        problems.append(f"{where}: a <{tag}> without a label; skipped")
        return None
    obj = AnnotatedObject(label=label, kind="polygon", shape=tag, occluded=elem.get("occluded", "0") in ("1", "true", "True"),
                          attributes={a.get("name", ""): (a.text or "") for a in elem.findall("attribute")})
    try:
        obj.z_order = int(float(elem.get("z_order", 0)))
        rotation = float(elem.get("rotation", 0) or 0)
        if tag == "polygon":
            pts = _parse_points(elem.get("points", ""))
            if len(pts) < 3:
                problems.append(f"{where}: polygon with {len(pts)} point(s) has no area; skipped")
                return None
            obj.polygons = [pts]
        elif tag == "box":
            x0, y0, x1, y1 = (float(elem.get(k)) for k in ("xtl", "ytl", "xbr", "ybr"))
            if rotation:
                corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
                obj.polygons = [_turn(corners, (x0 + x1) / 2, (y0 + y1) / 2, rotation)]
            else:
                obj.kind, obj.box = "box", (x0, y0, x1, y1)
        elif tag == "ellipse":
            cx, cy, rx, ry = (float(elem.get(k)) for k in ("cx", "cy", "rx", "ry"))
            obj.polygons = [ellipse_polygon(cx, cy, rx, ry, math.radians(rotation))]
        elif tag == "mask":
            if size is None:
                raise ValueError("a <mask> needs the image's width and height")
            obj.kind, obj.rle = "rle", _mask_rle(elem, size[1], size[0])
        else:
            problems.append(f"{where}: unknown element <{tag}> (known: polygon, box, ellipse, mask); skipped")
            return None
    except (TypeError, ValueError) as err:
        problems.append(f"{where}: unreadable <{tag}> ({err}); skipped")
        return None
    return obj


def read(path: Path, *, folders: list[Path], keep_unannotated: bool = False) -> AnnotationSet:
    """Read a CVAT for images 1.1 XML file (see :func:`read_annotations` for the arguments)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise DataError(f"{path}: not valid XML ({err})") from None
    if root.tag != "annotations":
        raise DataError(f"{path}: the root element is <{root.tag}>, but CVAT XML starts with <annotations>")
    if root.find("track") is not None and root.find("image") is None:
        raise DataError(f"{path}: a 'CVAT for video' export (<track> elements); export the task as 'CVAT for images 1.1'")
    problems: list[str] = []
    version = (root.findtext("version") or "").strip()
    if version and version != "1.1":
        problems.append(f"{path}: CVAT XML version {version}; read as 1.1")
    labels: list[str] = []
    meta = root.find("meta")
    if meta is not None:
        for label in meta.findall(".//labels/label"):
            name = (label.findtext("name") or "").strip()
            if name and name not in labels:
                labels.append(name)

    images: list[AnnotatedImage] = []
    unannotated: list[str] = []
    undeclared: list[str] = []
    listed: list[str] = []
    for index, elem in enumerate(root.findall("image")):
        name = elem.get("name", "")
        listed.append(name)
        if not name:
            problems.append(f"{path}: <image> number {index} has no name; skipped")
            continue
        try:
            size = (int(elem.get("width")), int(elem.get("height")))
        except (TypeError, ValueError):
            size = None
        children = [c for c in elem if c.tag != "attribute"]
        objects = []
        for number, child in enumerate(children):
            obj = _object(child, f"{path}: {name} <{child.tag}> number {number}", size, problems)
            if obj is not None:
                if labels and obj.label not in labels and obj.label not in undeclared:
                    undeclared.append(obj.label)
                objects.append(obj)
        shaped = [c for c in children if c.tag != "tag"]
        if not shaped:
            unannotated.append(name)
            if not keep_unannotated:
                continue
        elif not objects:
            problems.append(f"{path}: {name} has no usable shape left; skipped")
            continue
        placed = place_image(name, folders=folders, declared=size or (None, None), objects=objects,
                             annotated=bool(shaped), source=path, problems=problems)
        if placed is not None:
            images.append(placed)
    if undeclared:
        problems.append(f"{path}: label(s) {undeclared} are used but not declared in <meta> labels {labels}; added")
        labels += undeclared
    report_unannotated(path, unannotated, keep_unannotated, problems)
    return AnnotationSet(format="cvat", images=images, labels=labels, problems=problems, listed=listed)
