"""Instance-segmentation data: from any source with instances to torchvision detection samples.

This is the instance track's one detection adapter. One sample's journey::

    a source's Sample (image (H, W, 3) uint8, instances: masks (K, H, W) bool, labels (K,), iscrowd)
      polygon labels (labels/x.json)   --render_instance_masks-->  masks (K, H, W) bool
      instance-id PNG (0, 1..K)        --ids == k-------------->   masks (K, H, W) bool
      COCO / VIA / LabelMe / CVAT       --workshop.data.sources->   masks (K, H, W) bool
      -> SourceReader: crowd regions dropped      -> (image, masks, labels)
      -> DetectionDataset: optional downscale, flips / quarter turns keyed by (seed, epoch, index)
      -> detection_target: empty masks dropped, boxes from masks ([x0, y0, x1, y1], x1 = last column + 1)
      -> image (3, H, W) float32 in [0, 1], target {"boxes", "labels", "masks", "image_id"}
      -> collate_detection: a batch is (list of images, list of targets)

Images are NOT normalised with ImageNet statistics here: torchvision's detection models do that
inside (``model.transform``), together with the resizing to ``min_size``/``max_size``.

Which source a config names (:func:`instance_source`, :func:`detection_splits`) sits at the end of
the module; every reader here is a plain class (no closures), so DataLoader workers started with
``spawn`` (macOS, Windows) can pickle the data set.

Taught in: notebooks/10_instance.ipynb
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from workshop.augment import paired_hflip
from workshop.data.io import read_image
from workshop.data.polygons import drop_empty_masks, load_polygon_labels, render_instance_masks
from workshop.data.sources.base import Instances, Item, Sample, Source
from workshop.errors import ConfigError, DataError

__all__ = [
    "DetectionDataset",
    "EmbeddedInstanceSource",
    "PENNFUDAN_VAL_FRACTION",
    "PolygonInstanceSource",
    "SourceReader",
    "collate_detection",
    "detection_dataset",
    "detection_splits",
    "detection_target",
    "find_pennfudan",
    "instance_source",
    "load_instance_source",
    "mask_to_box",
    "normalize_image",
    "open_instance_source",
    "pennfudan_dataset",
    "polygon_dataset",
    "resize_instances",
]

Loader = Callable[[Any], tuple[np.ndarray, np.ndarray, np.ndarray]]

PENNFUDAN_VAL_FRACTION = 0.2
"""Share of Penn-Fudan held out for validation: 34 of 170 images, fixed by seed 0 (the same split as
``workshop.data.registry.load_dataset("pennfudan", split="val")``)."""

EMBEDDED_THINGS = ("building",)
"""Classes of the embedded set that are objects (instances); roads, trees and water are background."""


def normalize_image(image: np.ndarray) -> Tensor:
    """An 8-bit RGB image as the float tensor detection models take: channels first, values in [0, 1].

    Args:
        image: RGB image, uint8 0..255.

    Returns:
        float32 tensor in [0, 1].

    Raises:
        ValueError: the image is not (H, W, 3) uint8.

    Shape:
        (H, W, 3) uint8 -> (3, H, W) float32.

    Example:
        >>> normalize_image(np.full((2, 3, 3), 255, np.uint8)).shape
        torch.Size([3, 2, 3])

    Taught in: notebooks/10_instance.ipynb
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got shape {image.shape} and dtype {image.dtype}")
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)


def mask_to_box(mask: np.ndarray) -> np.ndarray:
    """The tight box around one mask: ``[x0, y0, x1, y1]``, with ``x1, y1`` one past the last pixel.

    ``x`` counts columns and ``y`` rows. The end is exclusive, like a Python slice, so
    ``mask[y0:y1, x0:x1]`` is the smallest crop holding the whole mask and ``x1 - x0`` is its width
    in pixels (the convention of :func:`workshop.data.polygons.masks_to_boxes`).

    Args:
        mask: one object's mask (bool, or 0/1 integers).

    Returns:
        float32 array ``[x0, y0, x1, y1]``.

    Raises:
        ValueError: the mask is empty (an empty mask has no box) or not 2-D.

    Shape:
        (H, W) -> (4,).

    Example:
        >>> m = np.zeros((5, 6), bool); m[1:3, 2:5] = True
        >>> mask_to_box(m)
        array([2., 1., 5., 3.], dtype=float32)

    Taught in: notebooks/10_instance.ipynb
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("the mask is empty: an empty mask has no box (drop it first)")
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float32)


def detection_target(masks: np.ndarray, labels: Sequence[int], image_id: int = 0) -> dict[str, Tensor]:
    """The target dict torchvision's Mask R-CNN trains on; empty masks are dropped first.

    Args:
        masks: one mask per object (bool or 0/1).
        labels: class id of each object (1..C-1; 0 is the background and never an object).
        image_id: an id stored with the target (used to find the image again).

    Returns:
        ``{"boxes": (N, 4) float32, "labels": (N,) int64, "masks": (N, H, W) uint8, "image_id": int}``;
        N may be 0 (an image without objects), with correctly shaped empty tensors.

    Raises:
        ValueError: ``labels`` and ``masks`` differ in length, or a label is < 1.

    Taught in: notebooks/10_instance.ipynb
    """
    masks = np.asarray(masks).astype(bool)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if masks.ndim != 3 or masks.shape[0] != labels.shape[0]:
        raise ValueError(f"need one label per mask, got masks {masks.shape} and {labels.shape[0]} labels")
    if labels.size and labels.min() < 1:
        raise ValueError(f"object labels start at 1 (0 is the background), got {sorted(set(labels.tolist()))}")
    if len(masks):  # (drop_empty_masks needs at least one mask)
        masks, keep = drop_empty_masks(masks)
        labels = labels[keep]
    boxes = np.stack([mask_to_box(m) for m in masks]) if len(masks) else np.zeros((0, 4), np.float32)
    return {
        "boxes": torch.from_numpy(boxes.astype(np.float32)),
        "labels": torch.from_numpy(labels),
        "masks": torch.from_numpy(masks.astype(np.uint8)),
        "image_id": int(image_id),
    }


def resize_instances(image: np.ndarray, masks: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Shrink an image (bilinear) and its instance masks (nearest) so the long side is at most ``max_side``.

    Shape:
        image (H, W, 3) uint8, masks (K, H, W) bool -> (h, w, 3), (K, h, w); unchanged when small enough.
    """
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return image, masks
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
    small_masks = np.stack(
        [np.asarray(Image.fromarray(m.astype(np.uint8)).resize(size, Image.NEAREST)) for m in masks]
    ) if len(masks) else np.zeros((0, size[1], size[0]), dtype=np.uint8)
    return small, small_masks.astype(bool)


class DetectionDataset(Dataset):
    """Images and their instances as torchvision detection samples.

    Args:
        items: one entry per image (a file path, a pair of paths, ...), handed to ``load``.
        load: ``load(item) -> (image (H, W, 3) uint8, masks (K, H, W) bool, labels (K,) int)``.
        train: augment (image and masks together, so boxes and polygons stay exact): a horizontal
            flip with probability ``hflip``, a vertical one with ``vflip``, a rotation by a random
            multiple of 90 degrees with ``rotate90``.
        max_side: shrink images whose long side is larger (saves time on a CPU), or None.
        seed: seed of the augmentation (each item's draw depends on ``seed``, the epoch and its index).
        hflip, vflip, rotate90: probabilities of each augmentation (used when ``train``).

    ``dataset[i]`` augments for the epoch of :meth:`set_epoch`; ``dataset[(i, epoch)]`` for the
    epoch given. The training loop's loader asks for pairs: the draw of every sample is then a pure
    function of ``(seed, epoch, index)``, whichever DataLoader worker reads it, so workers draw
    different flips for different images and epochs, and a resumed run reads the same batches.

    Shape:
        item: ``(image (3, H, W) float32 in [0, 1], target)``, target as in :func:`detection_target`.

    Taught in: notebooks/10_instance.ipynb
    """

    def __init__(self, items: Sequence[Any], load: Loader, train: bool = False, max_side: int | None = None, seed: int = 0,
                 hflip: float = 0.5, vflip: float = 0.0, rotate90: float = 0.0) -> None:
        for name, p in (("hflip", hflip), ("vflip", vflip), ("rotate90", rotate90)):
            if not 0 <= p <= 1:
                raise ValueError(f"{name} is a probability and must be in [0, 1], got {p}")
        self.hflip, self.vflip, self.rotate90 = hflip, vflip, rotate90
        self.items = list(items)
        self.load = load
        self.train = train
        self.max_side = max_side
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Give the flips of a new epoch their own random draw."""
        self.epoch = int(epoch)

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Image, masks and labels of item ``index`` (downscaled, not flipped)."""
        image, masks, labels = self.load(self.items[index])
        if self.max_side is not None:
            image, masks = resize_instances(image, masks, self.max_side)
        return image, masks, labels

    def augment(self, image: np.ndarray, masks: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Flip and rotate an image and its masks together (pixel-exact: no object changes shape).

        Shape:
            image (H, W, 3), masks (K, H, W) -> the same, or (W, H, 3), (K, W, H) after a quarter turn.
        """
        # one draw per augmentation that is on, in this order (horizontal flips alone draw as before)
        if rng.random() < self.hflip:
            image, masks = paired_hflip(image, masks)
        if self.vflip and rng.random() < self.vflip:
            image, masks = image[::-1], masks[:, ::-1]
        if self.rotate90 and rng.random() < self.rotate90:
            turns = int(rng.integers(1, 4))
            image, masks = np.rot90(image, turns, axes=(0, 1)), np.rot90(masks, turns, axes=(1, 2))
        return image, np.ascontiguousarray(masks)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Tensor, dict[str, Any]]:
        index, epoch = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (int(key), self.epoch)
        image, masks, labels = self.raw(index)
        if self.train:
            image, masks = self.augment(image, masks, np.random.default_rng([self.seed, epoch, index]))
        return normalize_image(np.ascontiguousarray(image)), detection_target(masks, labels, image_id=index)


def collate_detection(batch: Sequence[tuple[Tensor, dict[str, Any]]]) -> tuple[list[Tensor], list[dict[str, Any]]]:
    """Batch detection samples as two lists (images of different sizes cannot be stacked).

    Returns:
        ``(images, targets)``: a list of (3, H_i, W_i) tensors and a list of target dicts.

    Taught in: notebooks/10_instance.ipynb
    """
    images, targets = zip(*batch) if batch else ((), ())
    return list(images), list(targets)


# --------------------------------------------------------------------------- sources -> data sets


class SourceReader:
    """Read one item of a source as ``(image, masks, labels)``; crowd regions (COCO ``iscrowd``) are left out.

    torchvision's Mask R-CNN has no notion of crowd regions, so they are not training targets.

    Args:
        source: a ``workshop.data.sources`` source with instances.

    Shape:
        item -> image (H, W, 3) uint8, masks (K, H, W) bool, labels (K,) int64.
    """

    def __init__(self, source: Source) -> None:
        self.source = source

    def __call__(self, item: Item) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sample = self.source.read(item)
        inst = sample.instances
        h, w = sample.image.shape[:2]
        if inst is None or len(inst) == 0:
            return sample.image, np.zeros((0, h, w), bool), np.zeros(0, np.int64)
        masks, labels = np.asarray(inst.masks, bool), np.asarray(inst.labels, np.int64)
        if inst.iscrowd is not None and np.asarray(inst.iscrowd).any():
            keep = ~np.asarray(inst.iscrowd, bool)
            masks, labels = masks[keep], labels[keep]
        return sample.image, masks, labels


def detection_dataset(source: Source, items: Sequence[Item], train: bool = False, max_side: int | None = None,
                      augment: dict[str, float] | None = None, seed: int = 0) -> DetectionDataset:
    """A :class:`DetectionDataset` over ``items`` of ``source`` (flips / rotations when ``train``).

    Args:
        source: a source with instances (Penn-Fudan, an annotation file, :class:`PolygonInstanceSource`).
        items: the samples to use (``source.items(split)``).
        train: augment (see :class:`DetectionDataset`).
        max_side: shrink larger images, or None.
        augment: ``{"hflip": p, "vflip": p, "rotate90": p}`` (default: horizontal flips, p 0.5).
        seed: seed of the augmentation.

    Raises:
        ConfigError: the source has no instances (its format is named).

    Taught in: notebooks/10_instance.ipynb
    """
    _require_instances(source, source.format)
    ds = DetectionDataset(items, SourceReader(source), train=train, max_side=max_side, seed=seed, **(augment or {}))
    ds.source = source  # type: ignore[attr-defined]
    return ds


class PolygonInstanceSource(Source):
    """Polygon labels as instances: ``root/labels/*.json`` (see ``workshop.data.polygons``) + ``root/images``.

    Objects of ``classes`` become instances with labels 1, 2, ... in the order of ``classes``; other
    objects (roads, trees) are background, drawn in list order so they hide what is below.

    Shape:
        read(item).instances.masks (K, H, W) bool, labels (K,) int64; .mask (H, W) the class ids.
    """

    format = "polygon labels (labels/*.json)"
    has_instances = True

    def __init__(self, root: str | os.PathLike, classes: Sequence[str] = ("building",), ignore_index: int = 255) -> None:
        super().__init__("instance", ignore_index)
        self.root = Path(root)
        self.things = tuple(classes)

    def items(self, split: str = "all") -> list[Item]:
        self.require_split(split)
        files = sorted((self.root / "labels").glob("*.json"))
        if not files:
            raise DataError(f"no polygon label files (*.json) in {self.root / 'labels'}")
        return [Item(self.root / "images" / load_polygon_labels(f)["image"], None, f) for f in files]

    def class_names(self) -> list[str]:
        return ["background", *self.things]

    def read(self, item: Item) -> Sample:
        labels = load_polygon_labels(item.key)
        image = read_image(self.root / "images" / labels["image"])
        h, w = image.shape[:2]
        masks = render_instance_masks(labels["objects"], h, w, classes=self.things)
        class_ids = {name: i + 1 for i, name in enumerate(self.things)}
        ids = np.asarray([class_ids[o["class"]] for o in labels["objects"] if o["class"] in class_ids], np.int64)
        semantic = np.zeros((h, w), np.int64)
        for mask, label in zip(masks, ids):
            semantic[mask] = label
        return Sample(image, semantic, Instances(masks.astype(bool), ids, np.zeros(len(ids), bool)), name=item.name)


class EmbeddedInstanceSource(PolygonInstanceSource):
    """The embedded aerial tiles with one instance per building, from their polygon labels.

    Shape:
        read(item).instances.masks (K, H, W) bool, labels (K,) all 1; .mask (H, W) 0/1.
    """

    format = "embedded data set (building polygons as instances)"

    def __init__(self, num_images: int = 320, image_size: int = 128, seed: int = 0, ignore_index: int = 255) -> None:
        from workshop.data.synthetic import embedded_dir, ensure_dataset

        root = ensure_dataset(embedded_dir(num_images, image_size, seed), num_images, image_size, seed)
        super().__init__(root, EMBEDDED_THINGS, ignore_index)


def polygon_dataset(
    root: str | os.PathLike,
    classes: Sequence[str] = ("building",),
    indices: Sequence[int] | None = None,
    train: bool = False,
    max_side: int | None = None,
) -> DetectionDataset:
    """Instances rendered from polygon labels (``root/labels/*.json`` + ``root/images``).

    Args:
        root: data set folder, e.g. the embedded data set.
        classes: the "thing" classes that have instances (labels 1, 2, ... in this order).
        indices: which label files (in sorted order) to use; None for all.
        train: random horizontal flips.
        max_side: shrink larger images, or None.

    Raises:
        DataError: no label files in ``root/labels``.

    Taught in: notebooks/10_instance.ipynb
    """
    source = PolygonInstanceSource(root, classes)
    items = source.items()
    if indices is not None:
        items = [items[i] for i in indices]
    return detection_dataset(source, items, train=train, max_side=max_side)


def find_pennfudan(root: str | os.PathLike | None = None) -> Path | None:
    """The Penn-Fudan folder: ``root`` if given, else ``workshop.data.registry.find_local`` when that
    module exists, else ``../shared/datasets/pennfudan`` from the repository. None when absent."""
    if root is not None:
        return Path(root) if Path(root).is_dir() else None
    try:
        from workshop.data.registry import find_local

        found = find_local("pennfudan")
        if found is not None and Path(found).is_dir():
            return Path(found)
    except (ImportError, ValueError, AttributeError, OSError):
        pass
    candidate = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "pennfudan"
    return candidate if candidate.is_dir() else None


def pennfudan_dataset(
    root: str | os.PathLike,
    split: str = "train",
    train: bool | None = None,
    max_side: int | None = 320,
    val_fraction: float = PENNFUDAN_VAL_FRACTION,
) -> DetectionDataset:
    """Penn-Fudan pedestrians: ``PNGImages/x.png`` with instance-id masks ``PedMasks/x_mask.png``.

    The split is fixed: the images sorted by name, then a split with seed 0 holds out
    ``val_fraction`` of them (34 of 170 by default) for validation, the split of
    ``workshop.data.registry``.

    Args:
        root: the ``pennfudan`` folder.
        split: ``"train"``, ``"val"`` or ``"all"``.
        train: random flips; default True for the train split.
        max_side: shrink images whose long side is larger (the photos are about 300-500 px).
        val_fraction: share held out for validation.

    Raises:
        ValueError: unknown split (lists the valid ones).
        DataError: missing folders or unpaired files (named in the message).

    Taught in: notebooks/10_instance.ipynb
    """
    from workshop.data.sources.pennfudan import PennFudanSource

    if split not in ("train", "val", "all"):
        raise ValueError(f"unknown split {split!r}; choose one of: train, val, all")
    source = PennFudanSource(root, "instance", val_fraction=val_fraction, seed=0)
    return detection_dataset(source, source.items(split), train=(split == "train") if train is None else train,
                             max_side=max_side)


def load_instance_source(name: str, root: str | os.PathLike, split: str = "all", **kwargs: Any) -> DetectionDataset:
    """A detection data set: ``"embedded"`` (polygon labels), ``"pennfudan"``, or ``"annotations"``
    (``root`` a COCO / VIA / LabelMe / CVAT export, read by ``workshop.data.sources``).

    Raises:
        ValueError: unknown name (lists the valid ones).
    """
    if name == "embedded":
        return polygon_dataset(root, **kwargs)
    if name == "pennfudan":
        return pennfudan_dataset(root, split=split, **kwargs)
    if name == "annotations":
        from workshop.data.sources import open_source

        source = open_source(root, task="instance")
        return detection_dataset(source, source.items(split), **kwargs)
    raise ValueError(f"unknown instance source {name!r}; choose one of: embedded, pennfudan, annotations")


# --------------------------------------------------------------------------- the config's sources (workshop train)


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


def detection_splits(cfg: Any, max_side: int | None, augment: dict[str, float] | None = None, seed: int = 0):
    """Training and validation detection sets of a config, the class names, and how validation was chosen.

    Validation is ``data.val`` when given, else the publisher's split, else a seeded
    ``data.val_fraction`` (``workshop.data.sources.config_splits``).

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
