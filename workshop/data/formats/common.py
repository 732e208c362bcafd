"""What every annotation reader shares: loading files, finding images, EXIF orientation, reporting.

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
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from workshop.errors import DataError

__all__ = [
    "JUNK_NAMES",
    "ImageInfo",
    "image_info",
    "is_junk",
    "load_json",
    "orient_points",
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
