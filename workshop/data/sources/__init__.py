"""Data sources: every way data can arrive, behind one interface (``workshop.data.sources.base.Source``).

==================  ======================================  ==============================================
``data.source``     module                                  what ``data.root`` is
==================  ======================================  ==============================================
``embedded``        ``embedded``                            (not used: generated here)
``folder``          ``folder`` (+ ``palette`` for masks)     folder with ``data.images_dir`` + ``data.masks_dir``
                                                            (default ``images/`` + ``masks/``)
``csv``             ``csv_pairs``                           folder with ``data.csv_file`` (``train.csv``)
``annotations``     ``annotations`` (+ ``workshop.data.     COCO / VIA / CVAT file, or LabelMe folder
                    formats``)
``camvid`` ...      ``camvid``, ``pets``, ``human_seg``,    the data set folder (default: found here)
                    ``pennfudan``
==================  ======================================  ==============================================

Two lookups, and nothing else dispatches on the kind of source:

* :func:`source_from_config` (``data.source`` -> a ``Source``), for training;
* :func:`open_source` (a path, or a registered name -> a ``Source``, the format detected), for
  ``data.val`` / ``data.test``, ``workshop data check`` and ``workshop evaluate``.

:func:`config_splits` gives the training, validation (and test) samples of a config: ``data.val``
when it is given, else the publisher's split, else a seeded ``data.val_fraction``.

Example:
    >>> from workshop.data.sources import open_source
    >>> src = open_source("../shared/datasets/kudzu/train/via_region_data.json")  # doctest: +SKIP
    >>> src.format, len(src.items())  # doctest: +SKIP
    ('VIA (VGG Image Annotator) JSON (via_region_data.json)', 24)

Taught in: notebooks/03_dataset.ipynb
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from workshop.data.entries import DatasetEntry
from workshop.data.io import LabelMap
from workshop.data.local import has_layout
from workshop.data.sources import camvid, human_seg, pennfudan, pets
from workshop.data.sources.annotations import AnnotationSource
from workshop.data.sources.base import CheckSpec, Instances, Item, Problem, Sample, Source
from workshop.data.sources.csv_pairs import CSVSource, ListSource
from workshop.data.sources.embedded import EmbeddedSource
from workshop.data.sources.folder import FolderSource, default_masks_dir
from workshop.data.sources.registered import RegisteredSource
from workshop.data.splits import split_indices
from workshop.errors import ConfigError, DataError

__all__ = [
    "REGISTERED", "REGISTRY", "AnnotationSource", "CSVSource", "CheckSpec", "EmbeddedSource", "FolderSource",
    "Instances", "Item", "ListSource", "Problem", "RegisteredSource", "Sample", "Source", "Splits",
    "config_splits", "get_entry", "open_source", "registered_source", "source_from_config",
]

REGISTERED: dict[str, type[RegisteredSource]] = {
    "pets": pets.PetsSource,
    "human_seg": human_seg.HumanSegSource,
    "camvid": camvid.CamVidSource,
    "pennfudan": pennfudan.PennFudanSource,
}
"""The registered data sets' sources, by name."""

REGISTRY: dict[str, DatasetEntry] = {name: cls.entry for name, cls in REGISTERED.items()}
"""The real data sets the workshop can download and load, by name."""


def get_entry(name: str) -> DatasetEntry:
    """The registry entry called ``name``.

    Raises:
        ValueError: unknown name (the message lists the registered ones).
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown data set {name!r}; choose one of: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def registered_source(name: str, root: str | os.PathLike | None = None, task: str | None = None, **kwargs: Any) -> RegisteredSource:
    """The source of a registered data set (``root`` None: the download or the shared copy)."""
    get_entry(name)
    return REGISTERED[name](root, task, **kwargs)


# ----------------------------------------------------------------------------- config -> source


def _root(cfg) -> Path:
    if cfg.data.root is None:
        raise ConfigError(f"data.root must name the data folder when data.source is {cfg.data.source!r}")
    return Path(cfg.data.root).expanduser()


def _under(root: Path, sub: str | os.PathLike) -> Path:
    """``sub`` under ``root``, unless it is absolute, or already names a folder under ``root`` from
    here (``root: project`` + ``images_dir: project/photos`` is ``project/photos``, never
    ``project/project/photos``)."""
    sub = Path(sub).expanduser()
    if sub.is_absolute():
        return sub
    joined = root / sub
    if not joined.exists() and sub.exists() and sub.parts[: len(root.parts)] == root.parts and root.parts:
        return sub
    return joined


def _embedded(cfg) -> Source:
    d = cfg.data
    return EmbeddedSource(d.num_images, d.image_size, d.seed, d.task, d.ignore_index)


def _folder(cfg) -> Source:
    d, root = cfg.data, _root(cfg)
    images = _under(root, d.images_dir or "images")
    masks = _under(root, d.masks_dir) if d.masks_dir else None  # None: masks/ beside the images (or masks/<task>/)
    return FolderSource(images, masks, task=d.task, label_map=d.label_map, ignore_index=d.ignore_index,
                        class_masks=d.class_masks, root=root)


def _csv(cfg) -> Source:
    d, root = cfg.data, _root(cfg)
    return CSVSource(_under(root, d.csv_file or "train.csv"), root, task=d.task, label_map=d.label_map,
                     ignore_index=d.ignore_index)


def _annotations(cfg) -> Source:
    d = cfg.data
    return AnnotationSource(_root(cfg), task=d.task, ignore_index=d.ignore_index, label_attribute=d.label_attribute,
                            keep_unannotated=d.keep_unannotated, label_map=d.label_map)


def _registered(cfg) -> Source:
    d = cfg.data
    return registered_source(d.source, d.root, d.task, ignore_index=d.ignore_index, val_fraction=d.val_fraction, seed=d.seed)


BUILDERS: dict[str, Callable[[Any], Source]] = {
    "embedded": _embedded, "folder": _folder, "csv": _csv, "annotations": _annotations,
    **{name: _registered for name in REGISTERED},
}
"""``data.source`` -> the function that builds its source from a config."""


def source_from_config(cfg) -> Source:
    """The source of ``cfg.data`` (``data.source`` with ``data.root`` and the source's keys).

    Raises:
        ConfigError: ``data.root`` is missing where it is needed, or the task does not fit.
        DataError: the data is not where the config says (the message names the path).
    """
    try:
        return BUILDERS[cfg.data.source](cfg)
    except KeyError:
        raise ConfigError(f"data.source={cfg.data.source!r} is not valid; choose one of: {', '.join(BUILDERS)}") from None


# ----------------------------------------------------------------------------- path -> source


ANNOTATION_SUFFIXES = (".json", ".xml")


def _detect(path: Path) -> str | None:
    """The annotation format of a file (or LabelMe folder), None for none of them.

    Raises:
        DataError: a JSON file that cannot be read at all (empty, cut short, not text): the
            reader's own message, the one ``workshop train`` gives for the same file.
    """
    from workshop.data.formats import detect_format
    from workshop.data.formats.common import load_json

    found = detect_format(path)
    if found is None and path.is_file() and path.suffix.lower() == ".json":
        load_json(path)  # raises "not valid JSON (...); is the export complete?" and the like
    return found


def open_source(
    path: str | os.PathLike,
    task: str | None = None,
    label_map: LabelMap | str | os.PathLike | None = None,
    ignore_index: int = 255,
    images_dir: str | os.PathLike | None = None,
    masks_dir: str | os.PathLike | None = None,
    mask_suffix: str | None = None,
    label_attribute: str | None = None,
    keep_unannotated: bool = False,
    class_masks: bool = False,
) -> Source:
    """The source a path holds, its format detected (or a registered data set by name).

    Recognised, in this order: a registered name (``camvid``); a ``.csv`` (CSV of pairs); a ``.txt``
    (list file of ``image mask`` lines); a ``.json`` / ``.xml`` annotation file (COCO, VIA, LabelMe,
    CVAT); a folder with ``images_dir`` / ``masks_dir`` given; a registered data set's folder; a
    LabelMe folder or a folder holding one annotation file; ``images/`` + ``masks/`` (or
    ``masks/binary`` / ``masks/multiclass``); a folder holding one CSV.

    Args:
        task: ``binary`` / ``multiclass`` (default: the registered set's task, multiclass when a
            label map is given or a ``labelmap.json`` lies beside the data, else binary).
        images_dir, masks_dir: folders under ``path`` (or absolute); a folder source.
        mask_suffix: what mask names add to image names; None: guessed (the one pairing rule).
        class_masks: the masks folder holds one folder of binary masks per class.

    Raises:
        DataError: nothing there, or nothing the workshop can read (the message says what was
            found and what is expected).
    """
    text = os.fspath(path)
    if text in REGISTERED and not Path(text).exists():
        return registered_source(text, None, task, ignore_index=ignore_index)
    p = Path(text).expanduser()
    if not p.exists():
        raise DataError(f"{p}: path not found (give a data folder, a CSV of pairs, a list file, an annotation file, "
                        f"or a registered data set: {', '.join(REGISTERED)})")
    common = dict(label_map=label_map, ignore_index=ignore_index)
    if p.is_file():
        guess = task or ("multiclass" if label_map is not None or (p.parent / "labelmap.json").is_file() else "binary")
        lm = label_map if label_map is not None or guess == "binary" else _beside(p.parent)
        suffix = p.suffix.lower()
        if suffix == ".csv":
            return CSVSource(p, task=guess, label_map=lm, ignore_index=ignore_index)
        if suffix == ".txt":
            return ListSource(p, task=guess, label_map=lm, ignore_index=ignore_index)
        if suffix in ANNOTATION_SUFFIXES:
            if _detect(p) is None:
                raise DataError(f"{p}: this {suffix} file is none of the annotation formats the workshop reads "
                                "(COCO instances JSON, VIA 1.x/2.x JSON, LabelMe JSON, CVAT for images 1.1 XML)")
            return AnnotationSource(p, task=task or "binary", label_attribute=label_attribute,
                                    keep_unannotated=keep_unannotated, **common)
        raise DataError(f"{p}: a {suffix or 'suffix-less'} file is not a data source; give a folder, a .csv of "
                        "pairs, a .txt list of 'image mask' lines, or an annotation file (.json / .xml)")
    if images_dir is not None or masks_dir is not None or class_masks:
        return _folder_at(p, images_dir, masks_dir, mask_suffix, task, label_map, ignore_index, class_masks)
    for name, cls in REGISTERED.items():
        if has_layout(cls.entry, p):
            return cls(p, task, ignore_index=ignore_index)
    if any((p / s).is_dir() and (p / f"{s}annot").is_dir() for s in ("train", "val", "test")):
        return REGISTERED["camvid"](p, task, ignore_index=ignore_index)  # a partial CamVid copy, e.g. test/ + testannot/
    annotation = _annotation_in(p)
    if annotation is not None:
        return AnnotationSource(annotation, task=task or "binary", label_attribute=label_attribute,
                                keep_unannotated=keep_unannotated, **common)
    if (p / "images").is_dir():
        return _folder_at(p, None, None, mask_suffix, task, label_map, ignore_index, False)
    csvs = sorted(p.glob("*.csv"))
    if len(csvs) == 1 or (p / "train.csv").is_file():
        return open_source(p / "train.csv" if (p / "train.csv").is_file() else csvs[0], task, **common)
    raise DataError(f"{p}: no data layout found (no images/ folder and no CSV here); expected images/ + masks/, "
                    "a CSV of pairs (columns images,masks), an annotation file (COCO, VIA, LabelMe, CVAT), or "
                    "--images-dir and --masks-dir")


def _folder_at(p: Path, images_dir, masks_dir, mask_suffix, task, label_map, ignore_index, class_masks) -> FolderSource:
    images = _under(p, images_dir or "images")
    masks = _under(p, masks_dir) if masks_dir is not None else default_masks_dir(images.parent, task)
    guess = task or ("multiclass" if class_masks else _guess_task(masks, p, label_map))
    lm = label_map if label_map is not None or guess == "binary" else _beside(p)
    return FolderSource(images, masks, mask_suffix, task=guess, label_map=lm, ignore_index=ignore_index,
                        class_masks=class_masks, root=p)


def _beside(folder: Path) -> Path | None:
    lm = folder / "labelmap.json"
    return lm if lm.is_file() else None


def _guess_task(masks: Path, root: Path, label_map) -> str:
    if label_map is not None or masks.name == "multiclass":
        return "multiclass"
    if (root / "labelmap.json").is_file() and masks.name != "binary":
        return "multiclass"
    return "binary"


def _annotation_in(folder: Path) -> Path | None:
    """The annotation file a folder holds (one that the formats reader recognises), or the folder for LabelMe."""
    try:
        candidates = sorted(f for f in folder.iterdir() if f.suffix.lower() in ANNOTATION_SUFFIXES and f.is_file()
                            and f.stat().st_size > 0 and not f.name.startswith("._") and f.name != "labelmap.json")
    except OSError:
        return None
    if not candidates:
        return None
    found, unreadable = [], []
    for f in candidates:
        try:
            if _detect(f) in ("coco", "via", "cvat"):
                found.append(f)
        except DataError as exc:
            unreadable.append(exc)
    if len(found) == 1:
        return found[0]
    if _detect(folder) is not None:
        return folder  # LabelMe: one JSON per image
    if unreadable and len(candidates) == 1:
        raise unreadable[0]  # the folder's one annotation file is cut short: say so, as training would
    return None


# ----------------------------------------------------------------------------- config -> splits


@dataclass
class Splits:
    """The samples a config trains, validates (and tests) on, each with the source that reads them."""

    train: tuple[Source, list[Item]]
    val: tuple[Source, list[Item]]
    test: tuple[Source, list[Item]] | None
    how: str  # how validation was chosen, in words


def named_split_source(path: str, cfg, label_map: LabelMap | None) -> Source:
    """The source of ``data.val`` / ``data.test``: a path of any kind, read with the training label map."""
    d = cfg.data
    return open_source(path, task=d.task, label_map=label_map if d.task != "binary" else None, ignore_index=d.ignore_index,
                       label_attribute=d.label_attribute, keep_unannotated=d.keep_unannotated)


def config_splits(cfg, source: Source | None = None) -> Splits:
    """Training, validation and test samples of ``cfg``.

    * ``data.val`` given: all of the training source trains (its ``train`` split where it has an
      official one), ``data.val`` validates; ``data.val_fraction`` is not used.
    * else a publisher's split (CamVid train/val, Pets trainval/test) is kept;
    * else a seeded ``data.val_fraction`` of the samples validates.
    ``data.test`` (optional) is read the same way as ``data.val``.

    Raises:
        DataError: an official split is incomplete (no validation or no training samples).
    """
    d = cfg.data
    src = source or source_from_config(cfg)
    lm = src.label_map() if d.task != "binary" else None
    test = None
    if d.test:
        tsrc = named_split_source(d.test, cfg, lm)
        test = (tsrc, tsrc.items("all"))
    if d.val:
        vsrc = named_split_source(d.val, cfg, lm)
        train_items = src.items("train" if src.official_split() else "all")
        return Splits((src, train_items), (vsrc, vsrc.items("all")), test, f"data.val {d.val}")
    if src.official_split():
        train_items, val_items = src.items("train"), src.items("val")
        if not train_items or not val_items:
            n = len(train_items)
            where = getattr(src, "root", "")
            raise DataError(f"{d.source}: the official split lists {n} training pairs of {n + len(val_items)}; "
                            f"the data set at {where} looks incomplete (`workshop data verify {d.source}`)")
        return Splits((src, train_items), (src, val_items), test, "the publisher's split")
    items = src.items("all")
    train_idx, val_idx = split_indices(len(items), d.val_fraction, d.seed)
    return Splits((src, [items[i] for i in train_idx]), (src, [items[i] for i in val_idx]), test,
                  f"a seeded {d.val_fraction:.0%} of the samples (data.val_fraction)")
