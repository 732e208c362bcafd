"""Oxford-IIIT Pet: 7,349 cat and dog photos with trimaps; official lists trainval (3,680) and test (3,669).

Trimaps store 1 = pet, 2 = background, 3 = border ("not classified"). Binary view: pet -> 1,
background -> 0, border -> ``ignore_index`` by default (the band where the annotators themselves were
unsure); ``border="foreground"`` counts it as pet. Three-class view (``task="multiclass"``):
background 0, pet 1, border 2. Splits: ``train`` = trainval, ``val`` = test (the official lists).

Taught in: notebooks/03_dataset.ipynb (the registry)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from workshop.data.entries import Archive, DatasetEntry
from workshop.data.io import LabelClass, LabelMap, read_image, read_mask, resize_mask_nearest
from workshop.data.sources.base import CheckSpec, Item, Sample, lut_from, read_list, remap_mask
from workshop.data.sources.registered import RegisteredSource
from workshop.errors import DataError

CLASSES = ("background", "pet", "border")

ENTRY = DatasetEntry(
    name="pets",
    title="Oxford-IIIT Pet",
    task="binary",
    tasks=("binary", "multiclass"),
    description=(
        "37 breeds of cats and dogs, about 200 photos each, with pixel trimaps "
        "(pet / background / border). Official split: trainval 3,680, test 3,669."
    ),
    licence=(
        "CC BY-SA 4.0 (annotations); the photos remain with their owners "
        "(Parkhi, Vedaldi, Zisserman, Jawahar, CVPR 2012)"
    ),
    homepage="https://www.robots.ox.ac.uk/~vgg/data/pets/",
    archives=(
        Archive(
            url="https://thor.robots.ox.ac.uk/~vgg/data/pets/images.tar.gz",
            filename="images.tar.gz",
            sha256="67195c5e1c01f1ab5f9b6a5d22b8c27a580d896ece458917e61d459337fa318d",
            checksum_source="tensorflow/datasets oxford_iiit_pet/checksums.tsv (for this thor.robots.ox.ac.uk URL)",
            size=791_918_971,
            mirrors=("https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",),
            rules=(("images/", "images/"),),
        ),
        Archive(
            url="https://thor.robots.ox.ac.uk/~vgg/data/pets/annotations.tar.gz",
            filename="annotations.tar.gz",
            sha256="52425fb6de5c424942b7626b428656fcbd798db970a937df61750c0f1d358e91",
            checksum_source="tensorflow/datasets oxford_iiit_pet/checksums.tsv (for this thor.robots.ox.ac.uk URL)",
            size=19_173_078,
            mirrors=("https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",),
            rules=(("annotations/", "annotations/"),),
        ),
    ),
    layout=("images", "annotations/trimaps", "annotations/trainval.txt", "annotations/test.txt"),
    counts=(("annotations/trainval.txt", None, 3680), ("annotations/test.txt", None, 3669)),
    num_images=7349,
    disk_size="about 0.8 GB",
    download_size="811 MB",
)


def label_map(task: str, ignore_index: int = 255) -> LabelMap:
    """``binary``: background, pet. ``multiclass``: background, pet, border."""
    names = CLASSES if task == "multiclass" else CLASSES[:2]
    colors = [(0, 0, 0), (230, 25, 75), (255, 225, 25)]
    return LabelMap([LabelClass(n, i, colors[i]) for i, n in enumerate(names)], ignore_index)


def trimap_lut(task: str = "binary", border: str = "ignore", ignore_index: int = 255) -> np.ndarray:
    """Pets trimap values (1 pet, 2 background, 3 border) -> class ids.

    Args:
        task: ``"binary"`` (pet 1, background 0) or ``"multiclass"`` (background 0, pet 1, border 2).
        border: binary only: ``"ignore"`` (border -> ``ignore_index``) or ``"foreground"`` (-> 1).

    Example:
        >>> trimap_lut("binary")[[1, 2, 3]].tolist()
        [1, 0, 255]
        >>> trimap_lut("multiclass")[[1, 2, 3]].tolist()
        [1, 0, 2]
    """
    if task == "multiclass":
        return lut_from({1: 1, 2: 0, 3: 2})
    if task != "binary":
        raise ValueError(f"unknown task {task!r} for pets; choose one of: binary, multiclass")
    if border not in ("ignore", "foreground"):
        raise ValueError(f"unknown border {border!r}; choose one of: ignore, foreground")
    return lut_from({1: 1, 2: 0, 3: ignore_index if border == "ignore" else 1})


def list_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    """Pairs of the official ``trainval`` or ``test`` list (``images/X.jpg``, ``annotations/trimaps/X.png``)."""
    list_file = root / "annotations" / f"{split}.txt"
    pairs = []
    for n, line in enumerate(read_list(list_file), start=1):
        stem = line.split()[0]
        image, mask = root / "images" / f"{stem}.jpg", root / "annotations" / "trimaps" / f"{stem}.png"
        for p in (image, mask):
            if not p.is_file():
                raise DataError(f"{list_file} line {n}: file not found: {p}")
        pairs.append((image, mask))
    return pairs


LISTS = {"train": ("trainval",), "trainval": ("trainval",), "val": ("test",), "test": ("test",), "all": ("trainval", "test")}


class PetsSource(RegisteredSource):
    """Oxford-IIIT Pet, binary (pet vs background) or three classes; ``border`` as in the module docstring."""

    entry = ENTRY
    official = True
    splits = tuple(LISTS)

    def __init__(self, root: str | os.PathLike | None = None, task: str | None = None, ignore_index: int = 255,
                 border: str = "ignore", **kwargs) -> None:
        super().__init__(root, task, ignore_index, **kwargs)
        self.lut = trimap_lut(self.task, border, ignore_index)

    def items(self, split: str = "all") -> list[Item]:
        self.require_split(split)
        return [Item(i, m) for name in LISTS[split] for i, m in list_pairs(self.root, name)]

    def label_map(self) -> LabelMap:
        return label_map(self.task, self.ignore_index)

    def read(self, item: Item) -> Sample:
        image = read_image(item.image)
        mask = remap_mask(read_mask(item.mask, task="multiclass", ignore_index=None), self.lut, item.mask)
        if mask.shape != image.shape[:2]:
            mask = resize_mask_nearest(mask, *image.shape[:2])
        return Sample(image, mask, name=item.name)

    def check_spec(self, split: str = "all") -> CheckSpec:
        raw = LabelMap([LabelClass(n, i, (i, i, i)) for i, n in ((1, "pet"), (2, "background"), (3, "border"))], None)
        items = self.items(split)
        return CheckSpec(pairs=[(i.image, i.mask) for i in items], task="multiclass", label_map=raw,
                         ignore_index=None, layout=f"format: {self.format}, split {split}")
