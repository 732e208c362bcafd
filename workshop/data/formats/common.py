"""What every annotation reader shares: what they return (:class:`AnnotationSet`), loading files, finding
images (:func:`place_image`), EXIF orientation, RLE masks, reporting.

The readers (``coco``, ``via``, ``labelme``, ``cvat``) import this module and nothing of each other
but ``via.ellipse_polygon``; ``annotations`` (detection and dispatch) imports the readers, never the
other way round, so the package has no import circle.

Annotation tools draw on the image as it is *displayed*, and today's browsers, CVAT and LabelMe all
display a photo upright, with its EXIF orientation applied. So every reader here works in the
**EXIF-corrected (upright) frame**, the frame :func:`workshop.data.io.read_image` returns: image sizes
are reported upright, and when a file declares the image's *stored* size instead (the annotation was
drawn on the sideways pixels), the geometry is turned into the upright frame and a problem line says so.

Problems a user should hear about but that do not stop reading (a missing image, an unannotated one,
a shape that has no area) are collected as one line each, naming the file; errors that make a file
unreadable raise :class:`workshop.errors.DataError` naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as mask_util

from workshop.errors import DataError

__all__ = [
    "JUNK_NAMES",
    "AnnotatedImage",
    "AnnotatedObject",
    "AnnotationSet",
    "ImageInfo",
    "check_size",
    "decode_rle",
    "image_info",
    "is_junk",
    "load_json",
    "orient_points",
    "place_image",
    "report_unannotated",
    "resolve_image",
]

#: File and folder names that operating systems and archivers leave behind; never annotations.
JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini", "__macosx", ".ipynb_checkpoints", "ehthumbs.db"})

_SWAPS_AXES = (5, 6, 7, 8)


def is_junk(path: Path) -> bool:
    """True for OS junk: ``.DS_Store``, ``Thumbs.db``, AppleDouble ``._name`` files, ``__MACOSX`` folders."""
    parts = [p.lower() for p in path.parts]
    return any(p in JUNK_NAMES for p in parts) or path.name.startswith("._")


def load_json(path: Path) -> Any:
    """Parse a JSON file, with errors that name it.

    Raises:
        DataError: the file is missing, empty (zero bytes) or not valid JSON.
    """
    if not path.is_file():
        raise DataError(f"annotation file not found: {path}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty (zero-byte) annotation file; export it again from the tool")
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err}); is the export complete?") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a text file ({err})") from None


class ImageInfo:
    """Size of an image on disk, stored and upright, and its EXIF orientation (1..8)."""

    __slots__ = ("orientation", "stored_size", "upright_size")

    def __init__(self, stored_size: tuple[int, int], orientation: int) -> None:
        self.stored_size = stored_size  # (width, height) of the pixels as stored
        self.orientation = orientation if orientation in range(1, 9) else 1
        w, h = stored_size
        self.upright_size = (h, w) if self.orientation in _SWAPS_AXES else (w, h)


def image_info(path: Path) -> ImageInfo:
    """Read an image's size and EXIF orientation from its header (pixels are not decoded).

    Raises:
        DataError: the file is empty or not an image (the message names it).
    """
    if path.stat().st_size == 0:
        raise DataError(f"image is an empty (zero-byte) file: {path}")
    try:
        with Image.open(path) as img:
            orientation = int(img.getexif().get(0x0112, 1) or 1)
            return ImageInfo(img.size, orientation)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"not a readable image: {path} ({exc})") from None


def orient_points(points: np.ndarray, orientation: int, stored_size: tuple[int, int]) -> np.ndarray:
    """Map ``x, y`` points drawn on the stored pixels into the upright (EXIF-corrected) frame.

    Coordinates are continuous (pixel ``i`` spans ``[i, i + 1)``), so a mirror maps ``x`` to ``w - x``.
    This matches what ``PIL.ImageOps.exif_transpose`` does to the pixels.

    Args:
        points: vertices in the stored frame.
        orientation: EXIF orientation tag, 1..8.
        stored_size: ``(width, height)`` of the stored pixels.

    Shape:
        points: (P, 2) float, columns x, y. Output: (P, 2) float64.
    """
    w, h = stored_size
    x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    mapping: dict[int, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
        1: lambda: (x, y),
        2: lambda: (w - x, y),
        3: lambda: (w - x, h - y),
        4: lambda: (x, h - y),
        5: lambda: (y, x),
        6: lambda: (h - y, x),
        7: lambda: (h - y, w - x),
        8: lambda: (y, w - x),
    }
    nx, ny = mapping.get(orientation, mapping[1])()
    return np.stack([nx, ny], axis=1)


def resolve_image(name: str, folders: list[Path]) -> Path | None:
    """Find an image named in an annotation file: the first of ``folders / name`` that exists.

    ``name`` may be a relative path (``images/a.jpg``), a Windows path (``images\\a.jpg``) or an
    absolute path; when the path as written is not found, the bare file name is tried in each folder.
    """
    name = name.strip()
    if not name:
        return None
    candidate = Path(name.replace("\\", "/"))
    if candidate.is_absolute():
        if candidate.is_file():
            return candidate.resolve()
        candidate = Path(candidate.name)
    for folder in folders:
        for rel in (candidate, Path(candidate.name)):
            path = folder / rel
            if path.is_file():
                return path.resolve()
    return None


def report_unannotated(source: Path, names: list[str], keep: bool, problems: list[str]) -> None:
    """Add one problem line for the images the tool listed without any region."""
    if not names:
        return
    shown = ", ".join(names[:8]) + (f", ... ({len(names) - 8} more)" if len(names) > 8 else "")
    action = "kept as empty (all background)" if keep else "skipped; pass keep_unannotated=True to keep them as empty"
    problems.append(f"{source}: {len(names)} image(s) have no annotations: {shown}; {action}")


# ----------------------------------------------------------------------------- what the readers return


Kind = Literal["polygon", "rle", "box"]


@dataclass
class AnnotatedObject:
    """One labelled region of an image.

    Attributes:
        label: class name as the tool wrote it.
        kind: ``"polygon"`` (``polygons`` is set), ``"rle"`` (``rle`` is set) or ``"box"`` (``box`` is set).
        polygons: one or more rings, each an array of ``x, y`` vertices; COCO objects may have several.
        rle: a COCO run-length encoding ``{"size": [h, w], "counts": ...}`` (compressed or not).
        box: ``(x0, y0, x1, y1)``, filled when rasterised.
        iscrowd: a COCO crowd region: ignored in semantic masks (see :mod:`.rasterize`).
        z_order: drawing order; a higher ``z_order`` is drawn on top (CVAT), ties keep file order.
        occluded: the tool's "occluded" flag (CVAT), kept for the user; it does not change masks.
        shape: the tool's own shape name (``"ellipse"``, ``"rect"``, ``"circle"``...), for reports.
        attributes: the tool's other attributes of the region (VIA region attributes, CVAT attributes).

    Shape:
        polygons[i]: (P, 2) float64, columns x, y.
    """

    label: str
    kind: Kind
    polygons: list[np.ndarray] = field(default_factory=list)
    rle: dict | None = None
    box: tuple[float, float, float, float] | None = None
    iscrowd: bool = False
    z_order: int = 0
    occluded: bool = False
    shape: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class AnnotatedImage:
    """One image and its objects.

    Attributes:
        file: the image file, resolved to an absolute path that exists.
        width: upright (EXIF-corrected) width in pixels; None only when it could not be read.
        height: upright height in pixels.
        objects: labelled regions, in file order.
        annotated: False when the tool listed the image without any region (kept as all background).
        name: the image name as the annotation file wrote it.
        source: the annotation file this image came from.
    """

    file: Path
    width: int | None
    height: int | None
    objects: list[AnnotatedObject]
    annotated: bool = True
    name: str = ""
    source: Path | None = None


@dataclass
class AnnotationSet:
    """Everything read from one annotation file (or one folder of LabelMe files).

    Attributes:
        format: ``"coco"``, ``"via"``, ``"labelme"`` or ``"cvat"``.
        images: the usable images, in file order.
        labels: class names in the order the file defines (or first uses) them.
        problems: one line per thing skipped or fixed, each naming the file; empty when all is well.
        path: the file or folder that was read.
        listed: every image name the file lists, kept or not (used to report image files it does not list).
    """

    format: str
    images: list[AnnotatedImage]
    labels: list[str]
    problems: list[str] = field(default_factory=list)
    path: Path | None = None
    listed: list[str] = field(default_factory=list)

    @property
    def num_objects(self) -> int:
        """Number of objects over all images."""
        return sum(len(img.objects) for img in self.images)


# ----------------------------------------------------------------------------- RLE masks


def check_size(height: int, width: int) -> tuple[int, int]:
    if int(height) <= 0 or int(width) <= 0:
        raise ValueError(f"height and width must be positive, got height={height}, width={width}")
    return int(height), int(width)


def decode_rle(rle: Mapping, height: int, width: int) -> np.ndarray:
    """Decode a COCO RLE (uncompressed ``counts`` list or compressed string) into a boolean mask.

    Raises:
        DataError: the RLE's ``size`` is not ``[height, width]`` or its counts are malformed.

    Shape:
        Output: (H, W) bool.
    """
    height, width = check_size(height, width)
    size = list(rle.get("size", []))
    if size != [height, width]:
        raise DataError(f"an RLE mask has size {size} but the image is [height, width] = [{height}, {width}]")
    counts = rle.get("counts")
    try:
        if isinstance(counts, list):
            encoded = mask_util.frPyObjects({"size": size, "counts": counts}, height, width)
            if sum(counts) != height * width:
                raise DataError(f"uncompressed RLE counts sum to {sum(counts)}, not height*width = {height * width}")
        elif isinstance(counts, (str, bytes)):
            encoded = {"size": size, "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        else:
            raise DataError(f"RLE 'counts' must be a list of ints or a string, found {type(counts).__name__}")
        return mask_util.decode(encoded).astype(bool)
    except DataError:
        raise
    except Exception as exc:  # pycocotools raises bare Exceptions / TypeErrors on malformed input
        raise DataError(f"a malformed RLE mask (size {size}): {exc}") from None


# ----------------------------------------------------------------------------- used by the readers


def place_image(
    name: str,
    *,
    folders: list[Path],
    declared: tuple[int | None, int | None],
    objects: list[AnnotatedObject],
    annotated: bool,
    source: Path,
    problems: list[str],
) -> AnnotatedImage | None:
    """Find the image a file names, check its size, and turn the geometry upright if needed.

    Returns None (with a problem line) when the image is missing, unreadable, or of another size
    than the annotation file says.
    """
    file = resolve_image(name, folders)
    count = f"its {len(objects)} object(s) are skipped" if objects else "skipped"
    if file is None:
        where = ", ".join(str(f) for f in folders[:3])
        problems.append(f"{source}: image {name!r} not found (looked in {where}); {count}")
        return None
    try:
        info = image_info(file)
    except DataError as err:
        problems.append(f"{source}: {err}; {count}")
        return None
    width, height = info.upright_size
    dw, dh = declared
    if any(v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or v != int(v) or v <= 0)
           for v in declared):
        problems.append(f"{source}: {name} has width/height {dw!r} x {dh!r}, not positive integers; {count}")
        return None
    if dw is not None and dh is not None and (int(dw), int(dh)) != (width, height):
        if (int(dw), int(dh)) == info.stored_size and info.orientation != 1:
            objects = [_orient_object(obj, info) for obj in objects]
            problems.append(
                f"{source}: {name} was annotated on the stored (sideways) pixels {dw}x{dh}; its EXIF "
                f"orientation {info.orientation} is applied to the annotations too ({width}x{height} upright)"
            )
        else:
            problems.append(
                f"{source}: {name} is {width}x{height} pixels (upright) but the annotation file says {dw}x{dh}; "
                f"{count} (was the image resized or replaced after labelling?)"
            )
            return None
    return AnnotatedImage(file=file, width=width, height=height, objects=objects, annotated=annotated,
                          name=name, source=source)


_TRANSPOSE = {2: 0, 3: 3, 4: 1, 5: 5, 6: 4, 7: 6, 8: 2}  # EXIF orientation -> PIL.Image.Transpose value


def _orient_object(obj: AnnotatedObject, info: ImageInfo) -> AnnotatedObject:
    if obj.kind == "polygon":
        return replace(obj, polygons=[orient_points(p, info.orientation, info.stored_size) for p in obj.polygons])
    if obj.kind == "box" and obj.box is not None:
        x0, y0, x1, y1 = obj.box
        corners = orient_points(np.array([[x0, y0], [x1, y1]], dtype=np.float64), info.orientation, info.stored_size)
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        return replace(obj, box=(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])))
    stored = decode_rle(obj.rle or {}, info.stored_size[1], info.stored_size[0])
    turned = np.asarray(Image.fromarray(stored.astype(np.uint8)).transpose(Image.Transpose(_TRANSPOSE[info.orientation])))
    rle = mask_util.encode(np.asfortranarray(turned))
    return replace(obj, rle={"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")})
