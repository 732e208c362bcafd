"""From a data source with instances to detection data sets (the instance track's end of the data path).

Every source of ``workshop.data.sources`` that has instances (Penn-Fudan, annotation files: COCO,
VIA, LabelMe, CVAT) reads a :class:`~workshop.data.sources.base.Sample` whose ``instances`` hold one
mask per object. :func:`detection_splits` takes the config's training and validation samples
(``workshop.data.sources.config_splits``: ``data.val`` when given, else the publisher's split, else
a seeded ``data.val_fraction``) and wraps them as :class:`~workshop.instance.data.DetectionDataset`.

The embedded data set's source gives semantic masks only; until it gives instances,
:class:`EmbeddedInstanceSource` reads its polygon labels (``labels/*.json``) here.

Crowd regions (COCO ``iscrowd``) are left out of the training targets: torchvision's Mask R-CNN has
no notion of them.

Taught in: notebooks/10_instance.ipynb
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from workshop.data.polygons import load_polygon_labels, render_instance_masks
from workshop.data.sources.base import Instances, Item, Sample, Source
from workshop.errors import ConfigError, DataError
from workshop.instance.data import DetectionDataset

__all__ = ["EmbeddedInstanceSource", "detection_dataset", "detection_splits", "instance_source", "open_instance_source"]

EMBEDDED_THINGS = ("building",)
"""Classes of the embedded set that are objects (instances); roads, trees and water are background."""


class EmbeddedInstanceSource(Source):
    """The embedded aerial tiles with one instance per building, from their polygon labels.

    Shape:
        read(item).instances.masks (K, H, W) bool, labels (K,) all 1; .mask (H, W) 0/1.
    """

    format = "embedded data set (building polygons as instances)"
    has_instances = True

    def __init__(self, num_images: int = 320, image_size: int = 128, seed: int = 0, ignore_index: int = 255) -> None:
        from workshop.data.synthetic import embedded_dir, ensure_dataset

        super().__init__("instance", ignore_index)
        self.root = Path(ensure_dataset(embedded_dir(num_images, image_size, seed), num_images, image_size, seed))

    def items(self, split: str = "all") -> list[Item]:
        self.require_split(split)
        files = sorted((self.root / "labels").glob("*.json"))
        if not files:
            raise DataError(f"no polygon label files (*.json) in {self.root / 'labels'}")
        return [Item(self.root / "images" / load_polygon_labels(f)["image"], None, f) for f in files]

    def class_names(self) -> list[str]:
        return ["background", *EMBEDDED_THINGS]

    def read(self, item: Item) -> Sample:
        from workshop.data.io import read_image

        labels = load_polygon_labels(item.key)
        image = read_image(self.root / "images" / labels["image"])
        h, w = image.shape[:2]
        masks = render_instance_masks(labels["objects"], h, w, classes=EMBEDDED_THINGS)
        n = len(masks)
        semantic = masks.any(axis=0).astype(np.int64) if n else np.zeros((h, w), np.int64)
        return Sample(image, semantic, Instances(masks.astype(bool), np.ones(n, np.int64), np.zeros(n, bool)), name=item.name)


def instance_source(cfg: Any) -> Source:
    """The source of ``cfg.data`` for the instance track.

    Raises:
        ConfigError: the source has no instances (the message lists the ones that do).
    """
    d = cfg.data
    if d.source == "embedded":
        return EmbeddedInstanceSource(d.num_images, d.image_size, d.seed, d.ignore_index)
    from workshop.data.sources import source_from_config

    src = source_from_config(cfg)
    _require_instances(src, f"data.source={d.source!r}")
    return src


def open_instance_source(data: str, cfg: Any | None = None) -> Source:
    """The source of a path or registered name (``workshop evaluate RUN DATA``), read as instances.

    ``embedded`` names the embedded set of the run's config.

    Raises:
        DataError / ConfigError: nothing there, or a source without instances.
    """
    if data == "embedded" and not Path(data).exists():
        d = cfg.data if cfg is not None else None
        return EmbeddedInstanceSource(d.num_images, d.image_size, d.seed) if d else EmbeddedInstanceSource()
    from workshop.data.sources import open_source

    kwargs: dict[str, Any] = {}
    if cfg is not None:
        kwargs = dict(label_attribute=cfg.data.label_attribute, keep_unannotated=cfg.data.keep_unannotated)
    src = open_source(data, task="instance", **kwargs)
    _require_instances(src, str(data))
    return src


def _require_instances(src: Source, what: str) -> None:
    if not getattr(src, "has_instances", False):
        raise ConfigError(f"{what} ({src.format}) has no instances (one mask per object); the instance track "
                          "reads: embedded, pennfudan, or an annotation file (data.source=annotations: COCO, VIA, "
                          "LabelMe, CVAT)")


def _loader(source: Source):
    def load(item: Item) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sample = source.read(item)
        inst = sample.instances
        h, w = sample.image.shape[:2]
        if inst is None or len(inst) == 0:
            return sample.image, np.zeros((0, h, w), bool), np.zeros(0, np.int64)
        masks, labels = np.asarray(inst.masks, bool), np.asarray(inst.labels, np.int64)
        if inst.iscrowd is not None and np.asarray(inst.iscrowd).any():
            keep = ~np.asarray(inst.iscrowd, bool)
            masks, labels = masks[keep], labels[keep]
        return sample.image, masks, labels

    return load


def detection_dataset(source: Source, items: list[Item], train: bool = False, max_side: int | None = None,
                      augment: dict[str, float] | None = None, seed: int = 0) -> DetectionDataset:
    """A :class:`DetectionDataset` over ``items`` of ``source`` (flips / rotations when ``train``)."""
    ds = DetectionDataset(items, _loader(source), train=train, max_side=max_side, seed=seed, **(augment or {}))
    ds.source = source  # type: ignore[attr-defined]
    return ds


def detection_splits(cfg: Any, max_side: int | None, augment: dict[str, float] | None = None, seed: int = 0):
    """Training and validation detection sets of a config, the class names, and how validation was chosen.

    Returns:
        ``(train_set, val_set, class_names, how)``.

    Raises:
        DataError: no training or no validation images.
    """
    from workshop.data.sources import config_splits

    src = instance_source(cfg)
    if cfg.data.val:
        # data.val is read with its own labels: a one-class export whose regions carry no class
        # attribute (kudzu's val file) reads as 'foreground', which is the training set's one class.
        vsrc = open_instance_source(cfg.data.val, cfg)
        tnames, vnames = list(src.class_names()), list(vsrc.class_names())
        if vnames != tnames and not (len(vnames) == len(tnames) == 2):
            raise ConfigError(f"data.val={cfg.data.val!r} has classes {vnames[1:]} but the training data has "
                              f"{tnames[1:]}; give validation data with the same classes")
        titems = src.items("train" if src.official_split() else "all")
        tsrc, vitems, how = src, vsrc.items("all"), f"data.val {cfg.data.val}"
    else:
        splits = config_splits(cfg, src)
        (tsrc, titems), (vsrc, vitems), how = splits.train, splits.val, splits.how
    if not titems:
        raise DataError(f"{tsrc.format}: no training images")
    if not vitems:
        raise DataError(f"{vsrc.format}: no validation images (set data.val to an annotation file or folder, "
                        "or raise data.val_fraction)")
    names = list(tsrc.class_names())
    train = detection_dataset(tsrc, titems, train=True, max_side=max_side, augment=augment, seed=seed)
    val = detection_dataset(vsrc, vitems, train=False, max_side=max_side)
    return train, val, names, how
