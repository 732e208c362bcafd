"""Class-id, palette and colour PNG masks, and a label map derived from the masks when none is given.

Three ways a mask file can hold classes:

* **class ids** (mode ``L``): the value is the class id (0 background, 1, 2, ...);
* **palette** (mode ``P``, e.g. PASCAL VOC): the palette index is the class id and the palette gives
  each class its display colour; with a label map whose colours match the palette, the colours decide;
* **colour** (RGB): a label map (name, id, colour) turns colours into ids.

Without a label map (multiclass), :func:`derive_label_map` makes one from the ids the masks hold
(names ``class_1`` ...; colours from the palette where there is one), so a folder of class-id masks
trains without a JSON file; colour masks still need one, and the error shows the colours found.

Taught in: notebooks/09_multiclass.ipynb
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps

from workshop.data.io import LabelClass, LabelMap, default_palette, read_mask
from workshop.errors import DataError

MAX_DERIVED_ID = 64  # more distinct ids than this is not a label map to guess


def read_label_png(path: str | os.PathLike, task: str = "multiclass", label_map: LabelMap | None = None,
                   ignore_index: int | None = 255) -> np.ndarray:
    """Read a mask as class ids; a palette mask by its indices (mapped by colour where a label map has it).

    Palette masks: the index ``ignore_index`` stays the ignore id; an index whose palette colour is a
    label-map colour becomes that class's id; any other index must itself be a label-map id.

    Shape:
        (H, W) int64.

    Raises:
        DataError: unreadable file, colour mask without a label map, values that are not class ids.
    """
    ids = palette = None
    if task == "multiclass":
        try:
            with Image.open(path) as img:
                if img.mode == "P":
                    palette = np.asarray(img.getpalette() or [], dtype=np.int64).reshape(-1, 3)
                    ids = np.asarray(ImageOps.exif_transpose(img)).astype(np.int64)
        except (OSError, ValueError):
            ids = None  # read_mask names the problem
    if ids is None:
        return read_mask(path, task=task, label_map=label_map, ignore_index=ignore_index)
    if label_map is None:
        return ids
    by_colour = {c.color: c.id for c in label_map.classes}
    lut = np.full(256, -1, dtype=np.int64)
    for i in np.unique(ids).tolist():
        colour = tuple(int(v) for v in palette[i]) if i < len(palette) else None
        if i == ignore_index:
            lut[i] = i
        elif colour in by_colour:
            lut[i] = by_colour[colour]
        elif i in label_map.ids:
            lut[i] = i
    bad = sorted(set(np.unique(ids).tolist()) - set(np.flatnonzero(lut >= 0).tolist()))
    if bad:
        raise DataError(f"{path}: palette indices {bad[:12]} are neither label-map ids nor label-map colours "
                        f"(valid ids: {sorted(label_map.valid_values())[:12]})")
    return lut[ids]


def mask_values(path: str | os.PathLike) -> tuple[set[int] | None, np.ndarray | None, list[tuple[int, int, int]]]:
    """(ids found or None for a colour mask, the palette (N, 3) or None, the colours of a colour mask)."""
    with Image.open(path) as img:
        if img.mode == "P":
            pal = np.asarray(img.getpalette() or [], dtype=np.int64).reshape(-1, 3)
            return set(np.unique(np.asarray(img)).tolist()), pal, []
        arr = np.asarray(img)
    if arr.ndim == 3:
        rgb = arr[..., :3]
        if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
            return set(np.unique(rgb[..., 0]).tolist()), None, []
        colours = np.unique(rgb.reshape(-1, 3), axis=0)
        return None, None, [tuple(int(v) for v in c) for c in colours[:16]]
    return set(np.unique(arr).tolist()), None, []


def derive_label_map(mask_files: Sequence[str | os.PathLike], ignore_index: int | None = 255,
                     where: str | os.PathLike = "the masks") -> LabelMap:
    """A label map from the ids that ``mask_files`` hold: ids 0..max, ``background`` then ``class_<id>``.

    Raises:
        DataError: colour masks (a label map is needed: the colours found are listed), masks that
            look binary (0/255: use task binary), or too many / too large ids to be class ids.
    """
    ids: set[int] = set()
    palette = None
    for f in mask_files:
        values, pal, colours = mask_values(f)
        if values is None:
            shown = ", ".join(str(c) for c in colours[:8])
            raise DataError(
                f"{f}: colour-coded mask (colours {shown}); a multiclass source of colour masks needs a label map: "
                "write labelmap.json as {\"classes\": [{\"name\": \"road\", \"id\": 1, \"color\": [128, 64, 128]}, ...]} "
                "and pass it as data.label_map (or --label-map FILE)"
            )
        ids |= values
        palette = pal if palette is None else palette
    if ids and (ids <= {0, 255} or ids <= {0, 1} or ids <= {0, 1, ignore_index}):
        raise DataError(f"the masks in {where} hold only {sorted(ids)}: that is a binary task "
                        "(data.task=binary / --task binary), not multiclass")
    if ignore_index is not None:
        ids.discard(ignore_index)
    if not ids:
        raise DataError(f"no class ids found in {where} (no masks?)")
    top = max(ids)
    if top > MAX_DERIVED_ID:
        raise DataError(f"the masks in {where} hold ids up to {top} ({sorted(ids)[:12]}...): too many to be class ids "
                        "0..N-1; give a label map (data.label_map / --label-map FILE) that names each id")
    colours = default_palette(top + 1)
    if palette is not None:
        colours = [tuple(int(v) for v in palette[i]) if i < len(palette) else colours[i] for i in range(top + 1)]
    names = ["background" if i == 0 else f"class_{i}" for i in range(top + 1)]
    return LabelMap([LabelClass(names[i], i, tuple(colours[i])) for i in range(top + 1)], ignore_index)
