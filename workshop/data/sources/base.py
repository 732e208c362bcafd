"""The one interface every data source has, and the Dataset that reads any source.

A *source* is one way data can arrive: the embedded set, folder pairs, a CSV of pairs, an annotation
file (COCO, VIA, LabelMe, CVAT), a registered data set. Every source:

* lists its samples per split (:meth:`Source.items`; ``splits`` names the splits it has),
* gives its label map (:meth:`Source.label_map`; None for a binary task),
* reads one sample (:meth:`Source.read` -> :class:`Sample`: image, semantic mask, instances when it
  has them),
* tells ``data check`` what to verify (:meth:`Source.check_spec`: the files to scan and the
  problems it met while listing them, e.g. an image without a mask), and names its format (``format``).

Stage of the data path::

    Source.items(split) -> [Item]  --Source.read-->  Sample(image (H, W, 3) uint8, mask (H, W) int64)
      -> SourceDataset (a SegmentationDataset, workshop.data.datasets) -> transform -> {"image", "mask"}

``workshop data check`` and ``workshop train`` reach data only through a source, so both give one
answer. Adding a format is one module with one ``Source`` subclass, plus its tests.

Taught in: notebooks/03_dataset.ipynb
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from workshop.data.io import LabelMap
from workshop.errors import DataError

__all__ = ["DATASET", "CheckSpec", "Instances", "Item", "Problem", "Sample", "Source", "display_path", "lut_from",
           "remap_mask"]

DATASET = "(data set)"  # the "path" of problems about the whole data set


def display_path(path: str | os.PathLike | bytes) -> str:
    """A printable form of a file name, also for names that are not valid UTF-8.

    ``os.fsdecode`` turns undecodable bytes into surrogates that cannot be printed; they are shown
    as ``\\xNN`` escapes instead, so ``b"img_\\xff.png"`` reads ``img_\\xff.png``.
    """
    text = os.fsdecode(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text


class Problem(NamedTuple):
    """One finding: the file (or ``DATASET``), ``"error"`` or ``"warning"``, and what to do."""

    path: str
    severity: str
    message: str


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
        masks: mask files without a partner (listed so that each one is read and reported).
        problems: findings the source made while listing (an image without a mask, a file a CSV
            names that is not there), as :class:`Problem`; the files still listed are scanned too.
        layout: how the samples were found, in words (the report's header): ``format: ...`` or the
            folders / CSV file; empty: ``format:`` and the source's ``format``.
    """

    pairs: list[tuple[Path, Path]] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    masks: list[Path] = field(default_factory=list)
    task: str = "binary"
    label_map: LabelMap | None = None
    ignore_index: int | None = 255
    problems: list[Problem] = field(default_factory=list)
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
        """What ``data check`` scans; default: the items' image/mask files as the source reads them.

        Raises:
            DataError: the samples cannot be listed at all (sources that can list what they found
                and report the rest, as the folder and CSV sources do, override this).
        """
        items = self.items(split)
        pairs = [(i.image, i.mask) for i in items if i.mask is not None]
        images = [i.image for i in items if i.mask is None]
        return CheckSpec(pairs=pairs, images=images, task="multiclass" if self.task != "binary" else "binary",
                         label_map=self.label_map(), ignore_index=self.ignore_index, layout=f"format: {self.format}")

    def train_settings(self) -> dict[str, str] | None:
        """The ``data.*`` settings that make ``workshop train`` read this same data, or None when no
        config names it (``data check`` ends with them as a ``workshop train --set ...`` command)."""
        return None

    def _task_settings(self) -> dict[str, str]:
        """``data.task`` and ``data.ignore_index`` where they differ from the config's defaults."""
        settings = {"data.task": self.task} if self.task != "binary" else {}
        if self.ignore_index is not None and self.ignore_index != 255:
            settings["data.ignore_index"] = str(self.ignore_index)
        return settings

    def official_split(self) -> bool:
        """True when ``train`` and ``val`` are the publisher's lists (``data.val_fraction`` is not used)."""
        return False

    def require_split(self, split: str) -> None:
        if split not in self.splits:
            raise ValueError(f"{self.format} has no split {split!r}; choose one of: {', '.join(self.splits)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.format}, task={self.task!r})"


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
