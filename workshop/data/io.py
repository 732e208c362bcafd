"""Reading images and masks from disk, with the loading rules every data set shares.

Rules:
    * EXIF orientation is applied to images (a phone photo stored sideways comes out upright).
    * Grayscale, palette, RGBA and 16-bit images become 8-bit RGB.
    * Binary masks stored as 0/255 become 0/1.
    * Colour-coded masks become class ids through a ``LabelMap`` (class name, id, colour).
    * A mask whose values are not valid class ids is an error that lists the values found.
    * Every error names the file.

Shape:
    * ``read_image`` -> (H, W, 3) uint8
    * ``read_mask`` -> (H, W) int64 class ids
    * ``merge_binary_masks`` -> (H, W) int64 class ids from one binary mask per class

Taught in: notebooks/03_dataset.ipynb
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from workshop.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _open(path: str | os.PathLike, what: str) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    if path.stat().st_size == 0:
        raise DataError(f"{what} is an empty (zero-byte) file: {path}")
    try:
        img = Image.open(path)
        img.load()  # decode now, so a truncated file fails here and not mid-epoch
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{what} cannot be read (corrupt or truncated?): {path} ({exc})") from None
    return img


def _to_8bit(arr: np.ndarray) -> np.ndarray:
    """Scale a 16-bit (or 32-bit integer) grayscale array to 0..255."""
    if arr.dtype == np.uint8:
        return arr
    top = 65535 if arr.max(initial=0) > 255 else 255
    return (arr.astype(np.float64) * (255.0 / top)).round().clip(0, 255).astype(np.uint8)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as upright 8-bit RGB.

    Args:
        path: image file (PNG, JPEG, ...).

    Returns:
        The image.

    Shape:
        (H, W, 3) uint8.

    Raises:
        DataError: missing, empty, corrupt or truncated file (the message names it).

    Example:
        >>> img = read_image("photo.jpg")  # doctest: +SKIP
        >>> img.shape, img.dtype  # doctest: +SKIP
        ((480, 640, 3), dtype('uint8'))
    """
    img = ImageOps.exif_transpose(_open(path, "image"))
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        gray = _to_8bit(np.asarray(img))
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy()


@dataclass(frozen=True)
class LabelClass:
    """One class of a label map."""

    name: str
    id: int
    color: tuple[int, int, int]


class LabelMap:
    """Class names, ids and colours; converts colour-coded masks to ids and back.

    The JSON form is ``{"classes": [{"name": "road", "id": 2, "color": [128, 64, 128]}, ...]}``.

    Example:
        >>> lm = LabelMap([LabelClass("bg", 0, (0, 0, 0)), LabelClass("car", 1, (255, 0, 0))])
        >>> lm.encode(np.array([[[255, 0, 0], [0, 0, 0]]], dtype=np.uint8)).tolist()
        [[1, 0]]

    Taught in: notebooks/09_multiclass.ipynb
    """

    def __init__(self, classes: list[LabelClass], ignore_index: int | None = 255) -> None:
        ids = [c.id for c in classes]
        if len(set(ids)) != len(ids):
            raise DataError(f"label map has repeated ids: {ids}")
        self.classes = sorted(classes, key=lambda c: c.id)
        self.ignore_index = ignore_index

    @classmethod
    def from_json(cls, path: str | os.PathLike, ignore_index: int | None = 255) -> "LabelMap":
        """Load a label map file (see the class docstring for the format)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            entries = data["classes"] if isinstance(data, dict) else data
            classes = [LabelClass(str(e["name"]), int(e["id"]), tuple(int(v) for v in e["color"])) for e in entries]
        except FileNotFoundError:
            raise DataError(f"label map not found: {path}") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"label map {path} is not valid: expected {{'classes': [{{'name','id','color'}}, ...]}} ({exc})"
            ) from None
        return cls(classes, ignore_index=ignore_index)

    @classmethod
    def from_names(cls, names: list[str] | tuple[str, ...], colors=None, ignore_index: int | None = 255) -> "LabelMap":
        """Label map with ids 0..N-1 in the order of ``names``."""
        colors = colors or default_palette(len(names))
        return cls([LabelClass(n, i, tuple(colors[i])) for i, n in enumerate(names)], ignore_index)

    def to_json(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        payload = {"classes": [{"name": c.name, "id": c.id, "color": list(c.color)} for c in self.classes]}
        path.write_text(json.dumps(payload, indent=2))
        return path

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def ids(self) -> list[int]:
        return [c.id for c in self.classes]

    def __len__(self) -> int:
        return len(self.classes)

    def valid_values(self) -> set[int]:
        valid = set(self.ids)
        if self.ignore_index is not None:
            valid.add(self.ignore_index)
        return valid

    def encode(self, rgb: np.ndarray, source: str = "mask") -> np.ndarray:
        """Colour mask (H, W, 3) uint8 -> class ids (H, W) int64; unknown colours are an error."""
        flat = rgb[..., :3].reshape(-1, 3).astype(np.int64)
        keys = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
        out = np.full(keys.shape, -1, dtype=np.int64)
        for c in self.classes:
            r, g, b = c.color
            out[keys == ((r << 16) | (g << 8) | b)] = c.id
        if (out < 0).any():
            bad = np.unique(flat[out < 0], axis=0)[:8]
            shown = ", ".join(str(tuple(int(v) for v in row)) for row in bad)
            raise DataError(
                f"{source}: colours not in the label map: {shown}; "
                f"label map colours: {', '.join(f'{c.name}={c.color}' for c in self.classes)}"
            )
        return out.reshape(rgb.shape[:2])

    def decode(self, ids: np.ndarray) -> np.ndarray:
        """Class ids (H, W) -> colour mask (H, W, 3) uint8 (ignored / unknown ids are black)."""
        lut = np.zeros((max(max(self.ids), 255) + 1, 3), dtype=np.uint8)
        for c in self.classes:
            lut[c.id] = c.color
        return lut[np.clip(ids, 0, len(lut) - 1)]


def default_palette(n: int) -> list[tuple[int, int, int]]:
    """``n`` distinct colours (black first, for the background)."""
    base = [(0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
            (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128)]
    return [base[i] if i < len(base) else ((37 * i) % 256, (91 * i) % 256, (173 * i) % 256) for i in range(n)]


def read_mask(
    path: str | os.PathLike,
    task: str = "binary",
    label_map: LabelMap | None = None,
    ignore_index: int | None = 255,
) -> np.ndarray:
    """Read a mask as class ids.

    Args:
        path: mask file (PNG preferred; JPEG masks have compression noise).
        task: ``"binary"`` (values 0/1 or 0/255 -> 0/1) or ``"multiclass"`` (ids or colours).
        label_map: required for colour-coded masks; for id masks it lists the valid ids.
        ignore_index: value kept as "ignore" (not an error) in multiclass masks.

    Returns:
        Class ids.

    Shape:
        (H, W) int64.

    Raises:
        DataError: unreadable file, colour mask without a label map, or values that are not
            valid class ids (the message lists the values found).
    """
    img = ImageOps.exif_transpose(_open(path, "mask"))
    if img.mode == "P":
        img = img.convert("RGB")
    arr = np.asarray(img)
    if arr.ndim == 3:
        rgb = arr[..., :3]
        if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all() and label_map is None:
            arr = rgb[..., 0]
        elif label_map is None:
            raise DataError(f"{path}: colour-coded mask needs a label map (class name, id, colour JSON)")
        else:
            return label_map.encode(rgb, source=str(path))
    mask = arr.astype(np.int64)
    values = set(np.unique(mask).tolist())
    if task == "binary":
        if values <= {0, 255}:
            return (mask // 255).astype(np.int64)
        if values <= {0, 1} or (ignore_index is not None and values <= {0, 1, ignore_index}):
            return mask
        if len(values) > 2 and max(values) < 64:
            raise DataError(f"{path}: mask holds class ids {_show(values)}, not a binary mask: use the multiclass "
                            "task (data.task=multiclass) and name the classes with a label map (data.label_map)")
        raise DataError(
            f"{path}: binary mask has values {_show(values)}; expected 0/1 or 0/255 "
            "(a JPEG mask? save masks as PNG)"
        )
    if task != "multiclass":
        raise ValueError(f"unknown task {task!r}; choose one of: binary, multiclass")
    if label_map is not None:
        unexpected = values - label_map.valid_values()
        if unexpected:
            raise DataError(
                f"{path}: mask values not in the label map: {_show(unexpected)} "
                f"(found {_show(values)}; valid ids: {_show(label_map.valid_values())})"
            )
    return mask


def _show(values: set[int]) -> str:
    items = sorted(values)
    text = ", ".join(str(v) for v in items[:12])
    return "{" + text + (", ..." if len(items) > 12 else "") + "}"


def resize_mask_nearest(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a class-id mask with nearest-neighbour (keeps the label set; never invents ids).

    Shape:
        (h, w) -> (height, width), same dtype.
    """
    if mask.shape[:2] == (height, width):
        return mask
    rows = np.minimum(((np.arange(height) + 0.5) * mask.shape[0] / height).astype(np.int64), mask.shape[0] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * mask.shape[1] / width).astype(np.int64), mask.shape[1] - 1)
    return mask[rows[:, None], cols[None, :]]


def load_pair(
    image_path: str | os.PathLike,
    mask_path: str | os.PathLike,
    task: str = "binary",
    label_map: LabelMap | None = None,
    ignore_index: int | None = 255,
) -> tuple[np.ndarray, np.ndarray]:
    """Read an image and its mask; a mask of another size is resized to the image (nearest) with a warning.

    Shape:
        image (H, W, 3) uint8, mask (H, W) int64.
    """
    image = read_image(image_path)
    mask = read_mask(mask_path, task=task, label_map=label_map, ignore_index=ignore_index)
    h, w = image.shape[:2]
    if mask.shape != (h, w):
        mh, mw = mask.shape
        if abs(mh / mw - h / w) > 0.02:
            warnings.warn(
                f"{mask_path}: mask is {mw}x{mh} but its image {Path(image_path).name} is {w}x{h} "
                "and the aspect ratios differ; resizing the mask anyway (check the pairing)",
                stacklevel=2,
            )
        else:
            warnings.warn(
                f"{mask_path}: mask is {mw}x{mh}, image is {w}x{h}; mask resized with nearest-neighbour",
                stacklevel=2,
            )
        mask = resize_mask_nearest(mask, h, w)
    return image, mask


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files in ``folder`` (not recursive), sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def merge_binary_masks(
    masks: Mapping[str, np.ndarray],
    class_ids: Mapping[str, int],
    height: int,
    width: int,
) -> np.ndarray:
    """Build one class map from several per-class binary masks (the way Open Images ships them).

    Open Images gives one PNG per object, holding 0 (not the object) or 255 (the object). A
    semantic-segmentation model needs a single map of class ids instead. Starting from the
    background (0), each mask paints its class id where it is "on" (any value > 0, so 0/255, 0/1
    and boolean masks all work).

    Overlap rule: masks are drawn in the order of ``masks`` and a later mask covers an earlier one,
    exactly like a painter (adding the ids instead would invent classes: 1 + 2 = 3).

    Args:
        masks: class name -> binary mask, in drawing order. A mask of another size is resized
            to (height, width) with nearest-neighbour (Open Images masks often are).
        class_ids: class name -> integer id (the background, id 0, needs no mask).
        height: height of the class map.
        width: width of the class map.

    Returns:
        The class map, int64.

    Raises:
        ValueError: a mask names a class missing from ``class_ids`` (the message lists the valid
            names), or a mask is not 2-D.

    Shape:
        each mask (h, w) bool / uint8 -> (height, width) int64.

    Example:
        >>> road = np.array([[255, 255], [0, 0]], np.uint8)
        >>> car = np.array([[0, 255], [0, 255]], np.uint8)
        >>> merge_binary_masks({"road": road, "car": car}, {"road": 1, "car": 2}, 2, 2)
        array([[1, 2],
               [0, 2]])

    Runs in: ``FolderSource(..., class_masks=True)`` (``data.class_masks``), one folder of binary masks per class.

    Taught in: notebooks/09_multiclass.ipynb
    """
    out = np.zeros((height, width), dtype=np.int64)
    for name, mask in masks.items():
        if name not in class_ids:
            raise ValueError(f"no class id for mask {name!r}; classes with ids: {sorted(class_ids)}")
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise ValueError(f"mask {name!r} must be (H, W), got shape {mask.shape}")
        if mask.shape != (height, width):
            mask = resize_mask_nearest(mask, height, width)
        out[mask > 0] = int(class_ids[name])
    return out
