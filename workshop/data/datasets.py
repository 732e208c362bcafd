"""Dataset classes for the on-disk layouts learners meet.

* ``FolderDataset``: ``IMAGES/`` + ``MASKS/``, matched by file stem.
* ``CSVDataset``: a CSV of image/mask path pairs.
* ``PolygonDataset``: a polygon JSON per image, rendered to a mask on the fly.
* ``InstanceDataset``: instance-id masks (0 = background, 1..N = one id per object).

All semantic data sets return ``{"image": (H, W, 3) uint8, "mask": (H, W) int64}`` before the
transform, and whatever the transform makes of them after it (see ``workshop.augment``).

Taught in: notebooks/03_dataset.ipynb
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from workshop.data.io import LabelMap, list_images, load_pair, read_image, read_mask
from workshop.errors import DataError

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


class PairDataset(Dataset):
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
        pairs: Sequence[tuple[Path, Path]],
        task: str = "binary",
        transform: Transform | None = None,
        label_map: LabelMap | None = None,
        ignore_index: int | None = 255,
    ) -> None:
        if task not in ("binary", "multiclass"):
            raise ValueError(f"unknown task {task!r}; choose one of: binary, multiclass")
        self.pairs = [(Path(i), Path(m)) for i, m in pairs]
        self.task = task
        self.transform = transform
        self.label_map = label_map
        self.ignore_index = ignore_index

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw image and mask of item ``index`` (no transform)."""
        image_path, mask_path = self.pairs[index]
        return load_pair(image_path, mask_path, self.task, self.label_map, self.ignore_index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, mask = self.load(index)
        return apply_transform(self.transform, image, mask)

    @property
    def num_classes(self) -> int:
        """Number of classes (2 for binary)."""
        if self.task == "binary":
            return 2
        return len(self.label_map) if self.label_map is not None else 0


class SegmentationDataset(Dataset):
    """The smallest useful segmentation ``Dataset``: two parallel lists of image and mask files.

    Binary masks stored as 0/255 come back as class ids 0/1. ``PairDataset`` is the same idea
    with more options (multiclass, colour masks, label maps).

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
        image = read_image(self.image_paths[index])  # (H, W, 3) uint8, RGB
        mask = read_mask(self.mask_paths[index], task="binary")  # (H, W) int64, 0/255 -> 0/1
        return apply_transform(self.transform, image, mask)  # one call: image and mask move together


def _require_folder(folder: Path, what: str) -> None:
    if not folder.is_dir():
        raise DataError(f"{what} folder not found: {folder}")


def match_by_stem(images_dir: str | os.PathLike, masks_dir: str | os.PathLike, mask_suffix: str = "") -> list[tuple[Path, Path]]:
    """Pair image and mask files by file stem (``a.jpg`` <-> ``a.png``, or ``a_mask.png`` with ``mask_suffix="_mask"``).

    Raises:
        DataError: a folder is missing or holds no images, or a file has no partner (the message
            names up to five of them).
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    _require_folder(images_dir, "images")
    _require_folder(masks_dir, "masks")
    images = {p.stem: p for p in list_images(images_dir)}
    if mask_suffix and images_dir.resolve() == masks_dir.resolve():  # one folder: a.png next to a_mask.png
        images = {stem: p for stem, p in images.items() if not stem.endswith(mask_suffix)}
    masks = {}
    for p in list_images(masks_dir):
        stem = p.stem[: -len(mask_suffix)] if mask_suffix and p.stem.endswith(mask_suffix) else p.stem
        masks[stem] = p
    if not images:
        raise DataError(f"no images in {images_dir} (looked for .png, .jpg, .jpeg, .bmp, .tif, .webp)")
    if not masks:
        raise DataError(f"no masks in {masks_dir}")
    lonely_images = sorted(set(images) - set(masks))
    lonely_masks = sorted(set(masks) - set(images))
    if lonely_images:
        names = ", ".join(images[s].name for s in lonely_images[:5])
        raise DataError(f"{len(lonely_images)} image(s) in {images_dir} have no mask in {masks_dir}: {names}")
    if lonely_masks:
        names = ", ".join(masks[s].name for s in lonely_masks[:5])
        raise DataError(f"{len(lonely_masks)} mask(s) in {masks_dir} have no image in {images_dir}: {names}")
    return [(images[s], masks[s]) for s in sorted(images)]


class FolderDataset(PairDataset):
    """Images in one folder, masks in another, matched by file stem.

    Example:
        >>> ds = FolderDataset("data/images", "data/masks")  # doctest: +SKIP
        >>> ds[0]["mask"].shape  # doctest: +SKIP
        (128, 128)
    """

    def __init__(self, images_dir: str | os.PathLike, masks_dir: str | os.PathLike, mask_suffix: str = "", **kwargs: Any) -> None:
        super().__init__(match_by_stem(images_dir, masks_dir, mask_suffix), **kwargs)


def read_pairs_csv(
    csv_file: str | os.PathLike,
    root: str | os.PathLike | None = None,
    image_column: str = "images",
    mask_column: str = "masks",
) -> list[tuple[Path, Path]]:
    """Read image/mask pairs from a CSV; relative paths are resolved against ``root``.

    ``root`` defaults to the CSV's folder. When a relative path does not exist there, its first
    component is dropped and tried again (CSV files often carry the name of the folder they
    were zipped in, e.g. ``Human-Segmentation-Dataset-master/Training_Images/1.jpg``).

    Raises:
        DataError: missing file or column (lists the columns found), or a path that exists nowhere.
    """
    csv_file = Path(csv_file)
    if not csv_file.is_file():
        raise DataError(f"CSV file not found: {csv_file}")
    base = Path(root) if root is not None else csv_file.parent
    with csv_file.open(newline="") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        for col in (image_column, mask_column):
            if col not in columns:
                raise DataError(f"{csv_file}: no column {col!r}; columns found: {', '.join(columns) or 'none'}")
        rows = list(reader)
    if not rows:
        raise DataError(f"{csv_file}: the CSV lists no pairs")

    def resolve(text: str, line: int) -> Path:
        path = Path(text)
        if path.is_absolute():
            candidates = [path]
        else:
            candidates = [base / path] + ([base / Path(*path.parts[1:])] if len(path.parts) > 1 else [])
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise DataError(f"{csv_file} line {line}: file not found: {candidates[0]}")

    return [(resolve(r[image_column], n + 2), resolve(r[mask_column], n + 2)) for n, r in enumerate(rows)]


class CSVDataset(PairDataset):
    """Image/mask pairs listed in a CSV file (see ``read_pairs_csv``)."""

    def __init__(
        self,
        csv_file: str | os.PathLike,
        root: str | os.PathLike | None = None,
        image_column: str = "images",
        mask_column: str = "masks",
        **kwargs: Any,
    ) -> None:
        super().__init__(read_pairs_csv(csv_file, root, image_column, mask_column), **kwargs)


class PolygonDataset(Dataset):
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
        return len(self.label_files)

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

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, mask = self.load(index)
        return apply_transform(self.transform, image, mask)


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
