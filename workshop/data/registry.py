"""Real segmentation data sets by name: the registry's lookup, listing, download and ``load_dataset``.

The parts live where they belong and this module only names them:

* the entries (archives, layout, licence): next to each data set's source in
  ``workshop.data.sources.{camvid,pets,human_seg,pennfudan}``, collected in ``workshop.data.sources.REGISTRY``;
* where a data set lies on this machine: ``workshop.data.local``;
* downloading, checks and unpacking: ``workshop.data.download``.

=============  ======================  ==============================================================
name           task                    what
=============  ======================  ==============================================================
``pets``       binary or multiclass    Oxford-IIIT Pet: 7,349 cat and dog photos with trimaps
``human_seg``  binary                  Human Segmentation Dataset: 290 photos of people, CSV of pairs
``camvid``     multiclass (11 + void)  CamVid road scenes as published with SegNet (train, val, test)
``pennfudan``  instance (or binary)    Penn-Fudan pedestrians: 170 photos, 423 people
=============  ======================  ==============================================================

Example:
    >>> from workshop.data import registry
    >>> registry.get_entry("camvid").task
    'multiclass'
    >>> ds = registry.load_dataset("camvid", split="val")  # doctest: +SKIP
    >>> ds[0]["mask"].max()  # doctest: +SKIP
    255

Taught in: notebooks/03_dataset.ipynb
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np

from workshop.data import local
from workshop.data.datasets import InstanceDataset, SourceDataset
from workshop.data.entries import MARKER, Archive, DatasetEntry
from workshop.data.io import LabelMap
from workshop.data.sources import REGISTRY, get_entry, registered_source
from workshop.data.sources import camvid as _camvid
from workshop.data.sources import pets as _pets
from workshop.data.sources.base import lut_from, remap_mask
from workshop.data.sources.camvid import CLASSES as CAMVID_CLASSES  # noqa: F401
from workshop.data.sources.camvid import COLORS as CAMVID_COLORS  # noqa: F401
from workshop.data.sources.camvid import SEGNET_COMMIT  # noqa: F401
from workshop.data.sources.pets import trimap_lut  # noqa: F401

__all__ = [
    "Archive", "DatasetEntry", "MARKER", "REGISTRY", "camvid_label_map", "camvid_lut", "dataset_dir",
    "describe_all", "download", "downloads_dir", "find_local", "get_entry", "has_layout", "load_dataset",
    "official_split", "official_train_count", "remap_mask", "remove_download", "trimap_lut", "verify",
]

IGNORE_INDEX = 255


def dataset_dir(name: str) -> Path:
    """Where ``workshop data download NAME`` puts the data set: ``<data dir>/datasets/NAME``."""
    return local.dataset_dir(get_entry(name))


def downloads_dir() -> Path:
    """Where archives are downloaded to (and where to put one downloaded by hand)."""
    return local.downloads_dir()


def has_layout(name: str, path: str | os.PathLike) -> bool:
    """True when ``path`` holds every path of the entry's layout."""
    return local.has_layout(get_entry(name), path)


def find_local(name: str) -> Path | None:
    """The folder of a data set on this machine, or None (see ``workshop.data.local``)."""
    return local.find_local(get_entry(name))


def describe_all() -> list[str]:
    """One line per registered data set for ``workshop data list``: name, task, size, where it is."""
    lines = ["real data sets (workshop data download NAME; checked by sha256 where one is recorded):"]
    width = max(len(n) for n in REGISTRY)
    for name, entry in REGISTRY.items():
        size = f"{entry.num_images:,} images, {entry.disk_size} on disk"
        if entry.download_size:
            size += f", {entry.download_size} download"
        if local.is_downloaded(entry):
            where = f"downloaded: {local.dataset_dir(entry)}"
        else:
            shared = next((c for c in local.shared_candidates(name) if local.has_layout(entry, c)), None)
            where = f"not downloaded; shared copy: {shared}" if shared else "not downloaded"
        lines.append(f"  {name.ljust(width)}  {'/'.join(entry.tasks):<17}  {size:<42}  {where}")
    return lines


def download(name: str, progress: bool = True, keep_archives: bool = False) -> Path:
    """Download, check and unpack a data set into the data dir (a finished one is reused).

    Raises:
        DataError: offline, the server failed, or a checksum did not match; the one-line message
            gives the manual alternative.
    """
    from workshop.data.download import install

    entry = get_entry(name)
    return install(entry, local.dataset_dir(entry), local.downloads_dir(), progress=progress, keep_archives=keep_archives)


def verify(name: str) -> str:
    """Check a downloaded data set (or install one from archives put in the downloads folder by hand)."""
    from workshop.data.download import verify_install

    entry = get_entry(name)
    return verify_install(entry, local.dataset_dir(entry), local.downloads_dir())


def remove_download(name: str) -> None:
    """Delete a downloaded data set folder (not the shared copies)."""
    path = dataset_dir(name)
    if path.exists():
        shutil.rmtree(path)


def camvid_label_map(ignore_index: int = IGNORE_INDEX) -> LabelMap:
    """The 11 CamVid classes (ids 0..10) with their display colours; void pixels carry ``ignore_index``."""
    return _camvid.label_map(ignore_index)


def pets_label_map(task: str) -> LabelMap:
    """``binary``: background, pet. ``multiclass``: background, pet, border."""
    return _pets.label_map(task)


def camvid_lut(ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Raw CamVid ids -> training ids: 0..10 stay, 11 (void) -> ``ignore_index``."""
    return _camvid.lut(ignore_index)


def instances_to_binary_lut() -> np.ndarray:
    """Instance ids -> person mask: 0 stays 0, every id 1..255 becomes 1."""
    return lut_from({0: 0, **{i: 1 for i in range(1, 256)}})


def official_split(name: str, root: str | os.PathLike | None = None) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]] | None:
    """The publisher's (train, validation) pairs, or None for data sets without an official split.

    pets: (trainval, test); camvid: (train, val). Masks are the raw files.
    """
    source = registered_source(name, root)
    if not source.official_split():
        return None
    return tuple([(i.image, i.mask) for i in source.items(s)] for s in ("train", "val"))  # type: ignore[return-value]


def official_train_count(name: str, root: str | os.PathLike | None = None) -> int | None:
    """How many training pairs the official split has (camvid 367, pets 3680); None without one."""
    source = registered_source(name, root)
    return len(source.items("train")) if source.official_split() else None


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    split: str = "train",
    task: str | None = None,
    transform: Callable[..., dict[str, Any]] | None = None,
    *,
    border: str = "ignore",
    seed: int = 0,
    val_fraction: float = 0.2,
) -> SourceDataset | InstanceDataset:
    """A ``Dataset`` over a real data set (its source's ``split``).

    Args:
        name: ``pets``, ``human_seg``, ``camvid`` or ``pennfudan``.
        root: the data set folder; default: :func:`find_local`.
        split: one of the source's ``splits`` (official lists where the publisher has them, else a
            seeded ``1 - val_fraction`` / ``val_fraction`` split). camvid: ``test`` where present.
        task: default the entry's task. pets: ``binary`` or ``multiclass`` (3 classes);
            pennfudan: ``instance`` or ``binary`` (person vs background).
        transform: albumentations-style transform (see ``workshop.augment.get_transforms``).
        border: pets binary only: the trimap border is ``"ignore"`` (255) or ``"foreground"``.

    Returns:
        A ``SourceDataset`` (``.pairs``, ``.load(i)``, ``.label_map``); pennfudan ``instance``: an
        ``InstanceDataset`` (torchvision-style targets).

    Raises:
        ValueError: unknown name, split or task (the message lists the choices).
        DataError: the data set is not on this machine, or a file is missing.
    """
    entry = get_entry(name)
    task = task or entry.task
    if task not in entry.tasks:
        raise ValueError(f"{name} offers task(s): {', '.join(entry.tasks)}; got task={task!r}")
    kwargs: dict[str, Any] = {"seed": seed, "val_fraction": val_fraction}
    if border != "ignore":
        kwargs["border"] = border  # an option of the pets source only
    try:
        source = registered_source(name, root, task, **kwargs)
    except TypeError:
        raise ValueError(f"border={border!r} is an option of pets only, not of {name}") from None
    items = source.items(split)
    if task == "instance":
        ds = InstanceDataset.__new__(InstanceDataset)
        ds.pairs, ds.transform = [(i.image, i.mask) for i in items], transform
        return ds
    return SourceDataset(source, items, transform)


def human_seg_pairs(root: Path) -> list[tuple[Path, Path]]:
    """The 290 (photo, mask) pairs of human_seg's ``train.csv`` (kept for the benchmarks; see its source)."""
    from workshop.data.sources.human_seg import csv_pairs

    return csv_pairs(Path(root))


def camvid_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    """CamVid pairs of ``split`` (see ``workshop.data.sources.camvid.split_pairs``)."""
    return _camvid.split_pairs(Path(root), split)
