"""Dataset classes: the one notebook 03 teaches, and the ones training builds on it.

Every semantic data set here IS a :class:`SegmentationDataset` (the exercise of notebook 03): its
``__getitem__`` reads one pair with ``load(index)`` and runs the transform on image and mask
together. The subclasses only change ``load``:

* ``SourceDataset``: the samples of any data source (``workshop.data.sources``): what
  ``workshop train`` and ``make_datasets`` build;
* ``PairDataset``: a list of (image path, mask path) pairs, with a task and a label map;
* ``FolderDataset``: ``IMAGES/`` + ``MASKS/``, matched by file stem (the folder source's pairing rule);
* ``CSVDataset``: a CSV of image/mask path pairs;
* ``PolygonDataset``: a polygon JSON per image, rendered to a mask on the fly.

``InstanceDataset`` reads instance-id masks (0 = background, 1..N = one id per object) into
torchvision's detection targets.

All semantic data sets return ``{"image": (H, W, 3) uint8, "mask": (H, W) int64}`` before the
transform, and whatever the transform makes of them after it (see ``workshop.augment``).

Taught in: notebooks/03_dataset.ipynb
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from workshop.data.io import LabelMap, read_image, read_mask
from workshop.data.sources.csv_pairs import CSVSource, read_pairs_csv
from workshop.data.sources.folder import FolderSource, PairSource, match_by_stem
from workshop.errors import DataError

if TYPE_CHECKING:
    from workshop.data.sources.base import Item, Sample, Source

__all__ = [
    "CSVDataset", "FolderDataset", "InstanceDataset", "PairDataset", "PolygonDataset", "SegmentationDataset",
    "SourceDataset", "apply_transform", "match_by_stem", "read_pairs_csv",
]

Transform = Callable[..., dict[str, Any]]


def apply_transform(transform: Transform | None, image: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    """Run an albumentations-style transform on an image and its mask.

    The mask travels through the transform as uint8 (OpenCV warps do not take int64) and comes
    back as int64 class ids.

    Shape:
        image (H, W, 3) uint8, mask (H, W) int64 -> whatever the transform returns; a tensor mask is
        returned as int64.
    """
    if transform is None:
        return {"image": image, "mask": mask}
    small = mask.astype(np.uint8) if mask.max(initial=0) < 256 else mask.astype(np.int32)
    out = transform(image=image, mask=small)
    m = out["mask"]
    out["mask"] = m.long() if isinstance(m, torch.Tensor) else np.asarray(m).astype(np.int64)
    return out


class SegmentationDataset(Dataset):
    """The smallest useful segmentation ``Dataset``: two parallel lists of image and mask files.

    Binary masks stored as 0/255 come back as class ids 0/1. Every data set the workshop trains on
    is one of these: the subclasses (``SourceDataset``, ``PairDataset``, ``FolderDataset``,
    ``CSVDataset``, ``PolygonDataset``) replace only ``load``, so ``__getitem__`` below is the code
    that feeds training.

    Args:
        image_paths: image files (any format PIL reads).
        mask_paths: mask files, ``mask_paths[i]`` belonging to ``image_paths[i]``.
        transform: albumentations-style callable taking ``image=`` and ``mask=`` (optional).

    Shape:
        item["image"]: (H, W, 3) uint8 RGB without a transform; (3, S, S) float32 after ``get_transforms``.
        item["mask"]: (H, W) int64 in {0, 1}.

    Raises:
        ValueError: the two lists differ in length.

    Example:
        >>> ds = SegmentationDataset(["a.png"], ["a_mask.png"])  # doctest: +SKIP
        >>> ds[0]["image"].shape, ds[0]["mask"].dtype  # doctest: +SKIP
        ((128, 128, 3), dtype('int64'))

    Taught in: notebooks/03_dataset.ipynb
    """

    def __init__(
        self,
        image_paths: Sequence[str | os.PathLike],
        mask_paths: Sequence[str | os.PathLike],
        transform: Transform | None = None,
    ) -> None:
        if len(image_paths) != len(mask_paths):
            raise ValueError(f"got {len(image_paths)} images but {len(mask_paths)} masks; the lists must pair up")
        self.image_paths = [Path(p) for p in image_paths]
        self.mask_paths = [Path(p) for p in mask_paths]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, mask = self.load(index)
        return apply_transform(self.transform, image, mask)  # one call: image and mask move together

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw image and mask of pair ``index`` (the subclasses read other layouts here)."""
        image = read_image(self.image_paths[index])  # (H, W, 3) uint8, RGB
        mask = read_mask(self.mask_paths[index], task="binary")  # (H, W) int64, 0/255 -> 0/1
        return image, mask


class SourceDataset(SegmentationDataset):
    """A :class:`SegmentationDataset` over the samples of any data source (what training builds).

    Args:
        source: the ``workshop.data.sources`` source that reads each item.
        items: the items (e.g. ``source.items("val")``); default: all of them.
        transform: albumentations-style callable taking ``image=`` and ``mask=``.

    Shape:
        item["image"]: (H, W, 3) uint8 without a transform; (3, S, S) float32 after ``get_transforms``.
        item["mask"]: (H, W) int64 class ids (``ignore_index`` where unknown).
    """

    def __init__(self, source: Source, items: Sequence[Item] | None = None, transform: Transform | None = None) -> None:
        self.source = source
        self.items = list(source.items("all") if items is None else items)
        # the attributes of SegmentationDataset; an annotation source's masks are drawn, not files (None)
        self.image_paths = [i.image for i in self.items]
        self.mask_paths = [i.mask for i in self.items]
        self.transform = transform
        self.task = "binary" if source.task == "binary" else "multiclass"
        self.ignore_index = source.ignore_index

    @property
    def pairs(self) -> list[tuple[Path, Path | None]]:
        """(image, mask file) per item (mask None for annotation sources)."""
        return list(zip(self.image_paths, self.mask_paths))

    @property
    def label_map(self) -> LabelMap | None:
        return self.source.label_map()

    @property
    def num_classes(self) -> int:
        """Number of classes (2 for binary)."""
        return 2 if self.task == "binary" else len(self.source.class_names())

    def sample(self, index: int) -> Sample:
        """Item ``index`` as the source reads it (with its instances, where it has them)."""
        return self.source.read(self.items[index])

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.sample(index)
        return s.image, s.mask


class PairDataset(SourceDataset):
    """Semantic segmentation over a list of (image path, mask path) pairs.

    Args:
        pairs: the file pairs.
        task: ``"binary"`` or ``"multiclass"``.
        transform: albumentations ``Compose`` (or any callable taking ``image=``, ``mask=``).
        label_map: class names / ids / colours (multiclass and colour masks).
        ignore_index: mask value excluded from loss and metrics.

    Shape:
        item["image"]: (H, W, 3) uint8 without a transform; (3, H, W) float32 after ``get_transforms``.
        item["mask"]: (H, W) int64.
    """

    def __init__(
        self,
        pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
        task: str = "binary",
        transform: Transform | None = None,
        label_map: LabelMap | None = None,
        ignore_index: int | None = 255,
    ) -> None:
        if task not in ("binary", "multiclass"):
            raise ValueError(f"unknown task {task!r}; choose one of: binary, multiclass")
        super().__init__(PairSource(pairs, task=task, label_map=label_map, ignore_index=ignore_index), transform=transform)


class FolderDataset(SourceDataset):
    """Images in one folder, masks in another, matched by file stem (the folder source's rule).

    Args:
        images_dir, masks_dir: the two folders.
        mask_suffix: what mask names add to image names (``a.png`` <-> ``a_mask.png``: ``"_mask"``);
            None: guessed from the names.
        task, transform, label_map, ignore_index: as ``PairDataset``.

    Example:
        >>> ds = FolderDataset("data/images", "data/masks")  # doctest: +SKIP
        >>> ds[0]["mask"].shape  # doctest: +SKIP
        (128, 128)
    """

    def __init__(self, images_dir: str | os.PathLike, masks_dir: str | os.PathLike, mask_suffix: str | None = None,
                 task: str = "binary", transform: Transform | None = None, label_map: LabelMap | None = None,
                 ignore_index: int | None = 255) -> None:
        super().__init__(FolderSource(images_dir, masks_dir, mask_suffix, task=task, label_map=label_map,
                                      ignore_index=ignore_index), transform=transform)


class CSVDataset(SourceDataset):
    """Image/mask pairs listed in a CSV file (see ``read_pairs_csv``)."""

    def __init__(
        self,
        csv_file: str | os.PathLike,
        root: str | os.PathLike | None = None,
        image_column: str = "images",
        mask_column: str = "masks",
        task: str = "binary",
        transform: Transform | None = None,
        label_map: LabelMap | None = None,
        ignore_index: int | None = 255,
    ) -> None:
        super().__init__(CSVSource(csv_file, root, image_column, mask_column, task=task, label_map=label_map,
                                   ignore_index=ignore_index), transform=transform)


def _require_folder(folder: Path, what: str) -> None:
    if not folder.is_dir():
        raise DataError(f"{what} folder not found: {folder}")


class PolygonDataset(SegmentationDataset):
    """Images with one polygon-label JSON each (``images/x.png`` + ``labels/x.json``), rendered to masks.

    Args:
        root: folder holding ``images/`` and ``labels/``.
        task: ``"binary"`` (``positive_class`` vs the rest) or ``"multiclass"``.
        class_names: class names in id order (id 0 = background); default: read ``labelmap.json``.
        positive_class: the foreground class of the binary view.
        transform: albumentations-style transform.

    Shape:
        item["image"] (H, W, 3) uint8, item["mask"] (H, W) int64 before the transform.

    Taught in: notebooks/10_instance.ipynb
    """

    def __init__(
        self,
        root: str | os.PathLike,
        task: str = "binary",
        class_names: Sequence[str] | None = None,
        positive_class: str = "building",
        transform: Transform | None = None,
    ) -> None:
        from workshop.data.polygons import load_polygon_labels

        self.root = Path(root)
        _require_folder(self.root / "labels", "labels")
        self.label_files = sorted((self.root / "labels").glob("*.json"))
        if not self.label_files:
            raise DataError(f"no polygon label files (*.json) in {self.root / 'labels'}")
        if class_names is None:
            class_names = LabelMap.from_json(self.root / "labelmap.json").names
        self.class_to_id = {name: i for i, name in enumerate(class_names)}
        if task == "binary" and positive_class not in self.class_to_id:
            raise ValueError(f"positive_class {positive_class!r} is not a class; classes: {', '.join(class_names)}")
        self.task = task
        self.positive_class = positive_class
        self.transform = transform
        self._load_labels = load_polygon_labels

    def __len__(self) -> int:
        return len(self.label_files)  # each label file names its image

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        from workshop.data.polygons import render_semantic_mask

        labels = self._load_labels(self.label_files[index])
        image = read_image(self.root / "images" / labels["image"])
        h, w = image.shape[:2]
        unknown = {o["class"] for o in labels["objects"]} - set(self.class_to_id)
        if unknown:
            raise DataError(
                f"{self.label_files[index]}: unknown classes {sorted(unknown)}; known: {', '.join(self.class_to_id)}"
            )
        mask = render_semantic_mask(labels["objects"], h, w, self.class_to_id)
        if self.task == "binary":
            mask = (mask == self.class_to_id[self.positive_class]).astype(np.int64)
        return image, mask


class InstanceDataset(Dataset):
    """Instance masks: each mask file holds 0 for background and 1..N, one id per object.

    Returns what torchvision's detection models take: the image and a target with one binary
    mask, one box and one label per object (objects of a single class, label 1).

    Shape:
        item["image"]: (H, W, 3) uint8 (or what ``transform`` makes of it)
        item["masks"]: (N, H, W) uint8; item["boxes"]: (N, 4) float32 x0,y0,x1,y1; item["labels"]: (N,) int64

    Taught in: notebooks/10_instance.ipynb
    """

    def __init__(self, images_dir: str | os.PathLike, masks_dir: str | os.PathLike, mask_suffix: str = "", transform: Transform | None = None) -> None:
        self.pairs = match_by_stem(images_dir, masks_dir, mask_suffix)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_path, mask_path = self.pairs[index]
        image = read_image(image_path)
        ids = read_mask(mask_path, task="multiclass", ignore_index=None)
        if ids.shape != image.shape[:2]:
            raise DataError(f"{mask_path}: instance mask is {ids.shape[::-1]}, image is {image.shape[1::-1]}")
        if self.transform is not None:
            out = apply_transform(self.transform, image, ids)
            image, ids = out["image"], np.asarray(out["mask"])
        object_ids = [i for i in np.unique(ids) if i != 0]
        masks = np.stack([(ids == i) for i in object_ids]).astype(np.uint8) if object_ids else np.zeros((0, *ids.shape), np.uint8)
        boxes = np.zeros((len(object_ids), 4), dtype=np.float32)
        for k, m in enumerate(masks):
            ys, xs = np.nonzero(m)
            boxes[k] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        return {
            "image": image,
            "masks": masks,
            "boxes": boxes,
            "labels": np.ones(len(object_ids), dtype=np.int64),
        }
