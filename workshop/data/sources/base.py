"""The one interface every data source has, and the Dataset that reads any source.

A *source* is one way data can arrive: the embedded set, folder pairs, a CSV of pairs, an annotation
file (COCO, VIA, LabelMe, CVAT), a registered data set. Every source:

* lists its samples per split (:meth:`Source.items`; ``splits`` names the splits it has),
* gives its label map (:meth:`Source.label_map`; None for a binary task),
* reads one sample (:meth:`Source.read` -> :class:`Sample`: image, semantic mask, instances when it
  has them),
* tells ``data check`` what to verify (:meth:`Source.check_spec`), and names its format (``format``).

Stage of the data path::

    Source.items(split) -> [Item]  --Source.read-->  Sample(image (H, W, 3) uint8, mask (H, W) int64)
      -> SourceDataset.__getitem__ -> transform -> {"image", "mask"}

Adding a format is one module with one ``Source`` subclass, plus its tests.

Taught in: notebooks/03_dataset.ipynb
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from torch.utils.data import Dataset

from workshop.data.io import LabelMap
from workshop.errors import DataError

Transform = Callable[..., dict[str, Any]]

__all__ = ["CheckSpec", "Instances", "Item", "Sample", "Source", "SourceDataset", "lut_from", "remap_mask"]


@dataclass(frozen=True)
class Item:
    """One listed sample of a source: its image file, its mask file when it has one, a source's own key.

    Attributes:
        image: the image file.
        mask: the mask file (None for annotation sources, whose masks are drawn from shapes).
        key: whatever else the source needs to read the sample (e.g. the index of an annotated image).
    """

    image: Path
    mask: Path | None = None
    key: Any = None

    @property
    def name(self) -> str:
        return self.image.name


@dataclass
class Instances:
    """The objects of one sample.

    Shape:
        masks (K, H, W) bool, labels (K,) int64 (class ids, 1..), iscrowd (K,) bool.
    """

    masks: np.ndarray
    labels: np.ndarray
    iscrowd: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Sample:
    """One sample as read from disk.

    Shape:
        image (H, W, 3) uint8; mask (H, W) int64 class ids (``ignore_index`` where unknown).
    """

    image: np.ndarray
    mask: np.ndarray
    instances: Instances | None = None
    name: str = ""


@dataclass
class CheckSpec:
    """What ``workshop data check`` (and ``workshop train`` before training) should scan.

    Attributes:
        pairs: (image, mask file) pairs to scan file by file (empty for annotation sources).
        images: image files without a mask file (annotation sources: decoded and checked alone).
        task: how the raw mask files are read: ``binary`` or ``multiclass``.
        label_map: the valid raw values (and colours); None: any id.
        ignore_index: the raw value allowed besides the label map's ids.
        problems: findings the source made itself while listing (``(path, severity, message)``).
        layout: how the samples were found, in words (shown in the report's header).
    """

    pairs: list[tuple[Path, Path]] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    task: str = "binary"
    label_map: LabelMap | None = None
    ignore_index: int | None = 255
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    layout: str = ""


class Source(ABC):
    """A data source: samples per split, a label map, one way to read a sample.

    Subclasses set ``format`` (what the source is, in words, e.g. ``"VIA 2.x annotations"``) and
    ``splits``, and implement :meth:`items` and :meth:`read`.

    Args:
        task: ``binary``, ``multiclass`` or ``instance``.
        ignore_index: mask value excluded from losses and metrics.
    """

    format: str = "source"
    splits: tuple[str, ...] = ("all",)
    has_instances: bool = False

    def __init__(self, task: str = "binary", ignore_index: int = 255) -> None:
        self.task = task
        self.ignore_index = ignore_index

    @abstractmethod
    def items(self, split: str = "all") -> list[Item]:
        """The samples of ``split`` (one of ``splits``), in a fixed order."""

    @abstractmethod
    def read(self, item: Item) -> Sample:
        """Read one sample: the image, its semantic mask (and instances where the source has them)."""

    def label_map(self) -> LabelMap | None:
        """Class names, ids and colours of the semantic masks ``read`` returns (None: binary)."""
        return None

    def class_names(self) -> list[str]:
        """Class names in id order (binary: background, foreground)."""
        if self.task == "binary":
            return ["background", "foreground"]
        lm = self.label_map()
        return lm.names if lm is not None else []

    def check_spec(self, split: str = "all") -> CheckSpec:
        """What ``data check`` scans; default: the items' image/mask files as the source reads them."""
        items = self.items(split)
        pairs = [(i.image, i.mask) for i in items if i.mask is not None]
        images = [i.image for i in items if i.mask is None]
        return CheckSpec(pairs=pairs, images=images, task="multiclass" if self.task != "binary" else "binary",
                         label_map=self.label_map(), ignore_index=self.ignore_index, layout=self.format)

    def listing_report(self):
        """When :meth:`items` fails (unpaired or missing files), a ``DataReport`` listing every such
        problem, or None where the source has no file-by-file scan (the error itself is then shown)."""
        return None

    def official_split(self) -> bool:
        """True when ``train`` and ``val`` are the publisher's lists (``data.val_fraction`` is not used)."""
        return False

    def require_split(self, split: str) -> None:
        if split not in self.splits:
            raise ValueError(f"{self.format} has no split {split!r}; choose one of: {', '.join(self.splits)}")

    def dataset(self, split: str = "all", transform: Transform | None = None, items: Sequence[Item] | None = None) -> "SourceDataset":
        """A ``Dataset`` over ``split`` (or over the given ``items``)."""
        return SourceDataset(self, self.items(split) if items is None else items, transform)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.format}, task={self.task!r})"


class SourceDataset(Dataset):
    """Semantic segmentation over the items of any :class:`Source`.

    Args:
        source: the source that reads each item.
        items: the items (e.g. ``source.items("val")``).
        transform: albumentations-style callable taking ``image=`` and ``mask=``.

    Shape:
        item["image"]: (H, W, 3) uint8 without a transform; (3, S, S) float32 after ``get_transforms``.
        item["mask"]: (H, W) int64.
    """

    def __init__(self, source: Source, items: Sequence[Item], transform: Transform | None = None) -> None:
        self.source = source
        self.items = list(items)
        self.transform = transform
        self.task = "binary" if source.task == "binary" else "multiclass"
        self.ignore_index = source.ignore_index

    @property
    def pairs(self) -> list[tuple[Path, Path | None]]:
        """(image, mask file) per item, as ``PairDataset.pairs`` (mask None for annotation sources)."""
        return [(i.image, i.mask) for i in self.items]

    @property
    def label_map(self) -> LabelMap | None:
        return self.source.label_map()

    @property
    def num_classes(self) -> int:
        return 2 if self.task == "binary" else len(self.source.class_names())

    def __len__(self) -> int:
        return len(self.items)

    def sample(self, index: int) -> Sample:
        return self.source.read(self.items[index])

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw image and mask of item ``index`` (no transform)."""
        s = self.sample(index)
        return s.image, s.mask

    def __getitem__(self, index: int) -> dict[str, Any]:
        from workshop.data.datasets import apply_transform

        image, mask = self.load(index)
        return apply_transform(self.transform, image, mask)


def lut_from(mapping: dict[int, int]) -> np.ndarray:
    """A 256-entry lookup table raw value -> class id; values not in ``mapping`` are -1 (invalid)."""
    table = np.full(256, -1, dtype=np.int64)
    for src, dst in mapping.items():
        table[src] = dst
    return table


def remap_mask(raw: np.ndarray, lut: np.ndarray, source: str | os.PathLike = "mask") -> np.ndarray:
    """Apply a lookup table to a raw id mask; values the table does not know are an error naming the file.

    Shape:
        (H, W) int -> (H, W) int64.
    """
    raw = np.asarray(raw)
    if raw.size and (raw.min() < 0 or raw.max() >= len(lut)):
        raise DataError(f"{source}: mask values outside 0..{len(lut) - 1}: {np.unique(raw)[:12].tolist()}")
    out = lut[raw]
    if (out < 0).any():
        bad = np.unique(raw[out < 0]).tolist()
        known = np.flatnonzero(lut >= 0).tolist()
        raise DataError(f"{source}: unexpected mask values {bad[:12]}; this data set uses {known[:12]}")
    return out


def read_list(path: Path) -> list[str]:
    """Non-empty, non-comment lines of a text file."""
    if not path.is_file():
        raise DataError(f"list file not found: {path}")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
