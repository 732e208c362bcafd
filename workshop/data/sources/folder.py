"""Folder pairs: images in one folder, masks in another, matched by file stem (``a.jpg`` <-> ``a.png``).

Masks may be 0/255 or 0/1 (binary), class ids, palette PNGs or colour PNGs with a label map (see
``workshop.data.sources.palette``). A multiclass folder without a label map gets one derived from
the ids in its masks.

Taught in: notebooks/03_dataset.ipynb
"""

from __future__ import annotations

import os
from pathlib import Path

from workshop.data.datasets import match_by_stem
from workshop.data.io import LabelMap, read_image, resize_mask_nearest
from workshop.data.sources.base import Item, Sample, Source
from workshop.data.sources.palette import derive_label_map, read_label_png
from workshop.errors import DataError


class PairSource(Source):
    """Any list of (image file, mask file) pairs: the reading and the label map that folder, CSV and list share."""

    format = "pairs"

    def __init__(self, task: str = "binary", label_map: LabelMap | str | os.PathLike | None = None,
                 ignore_index: int = 255, where: str | os.PathLike = "") -> None:
        super().__init__(task, ignore_index)
        if label_map is not None and not isinstance(label_map, LabelMap):
            label_map = LabelMap.from_json(label_map, ignore_index)
        self._label_map = label_map
        self.derived = False
        self.where = where

    def pairs(self) -> list[tuple[Path, Path]]:
        raise NotImplementedError

    def items(self, split: str = "all") -> list[Item]:
        self.require_split(split)
        return [Item(i, m) for i, m in self.pairs()]

    def label_map(self) -> LabelMap | None:
        if self.task == "binary":
            return None
        if self._label_map is None:
            self._label_map = derive_label_map([m for _, m in self.pairs()], self.ignore_index, self.where)
            self.derived = True
        return self._label_map

    def read(self, item: Item) -> Sample:
        image = read_image(item.image)
        mask = read_label_png(item.mask, self.task, self.label_map(), self.ignore_index)
        if mask.shape != image.shape[:2]:
            mask = resize_mask_nearest(mask, *image.shape[:2])
        return Sample(image, mask, name=item.name)


class FolderSource(PairSource):
    """``images_dir`` + ``masks_dir`` matched by stem (``mask_suffix``: ``a.png`` <-> ``a_mask.png``).

    Raises:
        DataError: the two folders are the same one without a ``mask_suffix`` (every image would
            be paired with itself), a folder is missing, or a file has no partner (named).
    """

    format = "folder pairs"

    def __init__(self, images_dir: str | os.PathLike, masks_dir: str | os.PathLike, mask_suffix: str = "", **kwargs) -> None:
        self.images_dir, self.masks_dir = Path(images_dir).expanduser(), Path(masks_dir).expanduser()
        super().__init__(where=self.masks_dir, **kwargs)
        self.mask_suffix = mask_suffix
        self._pairs: list[tuple[Path, Path]] | None = None
        if same_folder(self.images_dir, self.masks_dir) and not mask_suffix:
            raise DataError(same_folder_message(self.images_dir))

    def pairs(self) -> list[tuple[Path, Path]]:
        if self._pairs is None:
            self._pairs = match_by_stem(self.images_dir, self.masks_dir, self.mask_suffix)
        return self._pairs

    def listing_report(self):
        from workshop.data.check import check_path

        return check_path(self.images_dir.parent, images_dir=self.images_dir, masks_dir=self.masks_dir, task=self.task,
                          label_map=self._label_map, ignore_index=self.ignore_index, mask_suffix=self.mask_suffix)


def same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def same_folder_message(folder: Path) -> str:
    return (f"images and masks are the same folder ({folder}): every image would be paired with itself; "
            "point the masks at the folder of the masks (--masks-dir / data.masks_dir), or give the suffix "
            "mask names add (a.png + a_mask.png: mask_suffix='_mask')")
