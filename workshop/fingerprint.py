"""A data set's fingerprint: how many images, how big, how much of each class, how big the objects.

nnU-Net's idea, at this workshop's scale: a few numbers measured on the training data decide the
recipe (``workshop.recipe``) instead of a hand-tuned constant, and ``workshop data check`` prints
them so a user sees what the recipe will see.

Measured from the raw masks (class ids, ``(H, W)`` int), never from augmented items:

* ``num_images`` and the image sizes (smallest, median, largest height and width);
* ``class_shares``: the share of labelled pixels per class (pixels equal to the ignore index are
  left out and counted in ``ignored_share``);
* for binary tasks, the objects: connected foreground regions (8-connectivity), their number per
  image and their area as a share of the image, and how many images have no foreground at all.

Example:
    >>> import numpy as np
    >>> masks = [np.array([[0, 1], [1, 1]]), np.zeros((2, 2), int)]
    >>> fp = fingerprint_masks(masks, [(2, 2), (2, 2)], task="binary")
    >>> fp.class_shares, fp.empty_images
    ([0.625, 0.375], 1)

Taught in: notebooks/07_training.ipynb (the recipe reads it)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

__all__ = ["Fingerprint", "fingerprint_masks", "fingerprint_dataset", "fingerprint_pairs", "fingerprint_source", "describe",
           "describe_path"]

DEFAULT_MAX_IMAGES = 400
"""At most this many images are read for a fingerprint (evenly spaced over the data set)."""

MIN_OBJECT_SHARE = 0.001
"""Connected regions smaller than this share of their image are specks, not objects (counted apart)."""


@dataclass
class Fingerprint:
    """What the recipe knows about a training set.

    Attributes:
        num_images: images in the data set (all of them, even when fewer were read).
        sampled: images actually read to measure the rest.
        task: ``"binary"`` or ``"multiclass"``.
        height, width: (smallest, median, largest) of the original images.
        class_shares: share of the labelled pixels per class id (sums to 1).
        ignored_share: share of all pixels equal to the ignore index.
        empty_images: binary: images without any foreground pixel.
        objects_per_image: binary: median number of connected foreground regions per image
            (regions under ``MIN_OBJECT_SHARE`` of the image are specks, counted in ``notes``).
        object_area: binary: (smallest, median, largest) object area as a share of its image.
    """

    num_images: int
    sampled: int
    task: str
    height: tuple[int, int, int]
    width: tuple[int, int, int]
    class_shares: list[float]
    ignored_share: float = 0.0
    empty_images: int | None = None
    objects_per_image: float | None = None
    object_area: tuple[float, float, float] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def foreground_share(self) -> float:
        """Binary: the share of labelled pixels that are foreground (class 1); multiclass: 1 - background."""
        return float(sum(self.class_shares[1:]))

    @property
    def majority_class(self) -> int:
        """The class id with the most labelled pixels."""
        return int(np.argmax(self.class_shares)) if self.class_shares else 0

    def to_dict(self) -> dict[str, Any]:
        """Plain values for YAML / JSON."""
        out = asdict(self)
        for key in ("height", "width", "object_area"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out


def _three(values: Sequence[float]) -> tuple[float, float, float]:
    arr = np.asarray(values, dtype=float)
    return float(arr.min()), float(np.median(arr)), float(arr.max())


def fingerprint_masks(
    masks: Sequence[np.ndarray],
    sizes: Sequence[tuple[int, int]] | None = None,
    task: str = "binary",
    num_classes: int | None = None,
    ignore_index: int | None = 255,
    num_images: int | None = None,
) -> Fingerprint:
    """Measure a fingerprint from masks (class ids) and the original image sizes.

    Args:
        masks: one (H, W) array of class ids per image (may be resized: shares and object
            areas are relative to the image).
        sizes: the original (height, width) per image; default: the masks' own shapes.
        task: ``"binary"`` or ``"multiclass"``.
        num_classes: classes of the task (binary: 2); default: the largest id found + 1.
        ignore_index: mask value that is not a class (left out of the shares).
        num_images: size of the whole data set when ``masks`` is a sample of it.

    Returns:
        The :class:`Fingerprint`.

    Raises:
        ValueError: no masks, or an unknown task.

    Shape:
        masks[i]: (H_i, W_i) integer class ids.
    """
    if task not in ("binary", "multiclass"):
        raise ValueError(f"unknown task {task!r}; choose one of: binary, multiclass")
    if len(masks) == 0:
        raise ValueError("a fingerprint needs at least one mask; the data set is empty")
    import cv2

    sizes = list(sizes) if sizes is not None else [tuple(np.asarray(m).shape[:2]) for m in masks]
    if task == "binary":
        num_classes = 2
    counts = np.zeros(max(num_classes or 0, 2), dtype=np.int64)
    ignored = total = 0
    empty = specks = 0
    objects: list[int] = []
    areas: list[float] = []
    for raw in masks:
        m = np.asarray(raw).astype(np.int64)
        total += m.size
        valid = m != ignore_index if ignore_index is not None else np.ones(m.shape, bool)
        ignored += int((~valid).sum())
        ids = m[valid]
        if ids.size:
            found = np.bincount(ids, minlength=counts.size)
            if found.size > counts.size:
                counts = np.pad(counts, (0, found.size - counts.size))
            counts += found
        if task == "binary":
            fg = ((m == 1) & valid).astype(np.uint8)
            if not fg.any():
                empty += 1
                objects.append(0)
                continue
            n, _, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
            shares = stats[1:, cv2.CC_STAT_AREA] / m.size
            kept = shares[shares >= MIN_OBJECT_SHARE] if (shares >= MIN_OBJECT_SHARE).any() else shares[[int(np.argmax(shares))]]
            specks += len(shares) - len(kept)
            objects.append(len(kept))
            areas.extend(kept.tolist())
    labelled = counts.sum()
    shares = (counts / labelled).tolist() if labelled else [0.0] * counts.size
    heights = [int(s[0]) for s in sizes]
    widths = [int(s[1]) for s in sizes]
    fp = Fingerprint(
        num_images=int(num_images if num_images is not None else len(masks)),
        sampled=len(masks),
        task=task,
        height=tuple(int(v) for v in _three(heights)),  # type: ignore[arg-type]
        width=tuple(int(v) for v in _three(widths)),  # type: ignore[arg-type]
        class_shares=[round(float(s), 6) for s in shares],
        ignored_share=round(ignored / total, 6) if total else 0.0,
    )
    if task == "binary":
        fp.empty_images = empty
        fp.objects_per_image = float(np.median(objects)) if objects else 0.0
        fp.object_area = tuple(round(v, 6) for v in _three(areas)) if areas else None  # type: ignore[assignment]
    if labelled == 0:
        fp.notes.append("no labelled pixel at all: every mask is ignore index")
    if specks:
        fp.notes.append(f"{specks} foreground speck(s) under {MIN_OBJECT_SHARE:.1%} of their image left out of the object sizes")
    return fp


def _raw_item(dataset: Any, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(image, mask) of one item without augmentation: ``load(i)`` when the data set has it."""
    load = getattr(dataset, "load", None)
    item = load(index) if callable(load) else dataset[index]
    image, mask = (item["image"], item["mask"]) if isinstance(item, dict) else item
    image, mask = np.asarray(image), np.asarray(mask)
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    return image, mask


def _image_hw(image: np.ndarray) -> tuple[int, int]:
    # (H, W, C) numpy from load(); (C, H, W) when a data set only gives tensors
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[2] not in (1, 3):
        return int(image.shape[1]), int(image.shape[2])
    return int(image.shape[0]), int(image.shape[1])


def sample_indices(n: int, max_images: int | None) -> list[int]:
    """Evenly spaced indices, at most ``max_images`` of ``range(n)`` (all when ``max_images`` is None)."""
    if max_images is None or n <= max_images:
        return list(range(n))
    return sorted({int(i) for i in np.linspace(0, n - 1, max_images).round()})


def fingerprint_dataset(
    dataset: Any,
    task: str = "binary",
    num_classes: int | None = None,
    ignore_index: int | None = 255,
    max_images: int | None = DEFAULT_MAX_IMAGES,
) -> Fingerprint:
    """Fingerprint of a segmentation ``Dataset`` (the kind ``workshop.data.make_datasets`` returns).

    Reads items with the data set's ``load(i)`` (the raw image and mask, no augmentation) when it
    has one, else ``dataset[i]``. Large data sets are sampled (``max_images``, evenly spaced).

    Args:
        dataset: ``len()`` and ``load(i)`` / ``[i]`` giving an image and a mask of class ids.
        task, num_classes, ignore_index: see :func:`fingerprint_masks`
            (``num_classes`` defaults to ``dataset.num_classes`` when it has one).
        max_images: read at most this many images (None: all).
    """
    n = len(dataset)
    if n == 0:
        raise ValueError("a fingerprint needs at least one image; the training set is empty")
    if num_classes is None:
        num_classes = getattr(dataset, "num_classes", None) or None
    masks, sizes = [], []
    for i in sample_indices(n, max_images):
        image, mask = _raw_item(dataset, i)
        masks.append(mask)
        sizes.append(_image_hw(image))
    fp = fingerprint_masks(masks, sizes, task, num_classes, ignore_index, num_images=n)
    if not callable(getattr(dataset, "load", None)):
        fp.notes.append("measured on the data set's items (it has no load(): augmentation may be included)")
    return fp


def fingerprint_pairs(
    pairs: Sequence[tuple[Any, Any]],
    task: str = "binary",
    label_map: Any | None = None,
    ignore_index: int | None = 255,
    max_images: int | None = DEFAULT_MAX_IMAGES,
) -> Fingerprint:
    """Fingerprint of (image file, mask file) pairs, read with ``workshop.data.io.load_pair``."""
    from workshop.data.io import load_pair

    class _Pairs:
        def __len__(self) -> int:
            return len(pairs)

        def load(self, i: int):
            return load_pair(pairs[i][0], pairs[i][1], task, label_map, ignore_index)

    num_classes = len(label_map) if (label_map is not None and task == "multiclass") else None
    return fingerprint_dataset(_Pairs(), task, num_classes, ignore_index, max_images)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%" if x >= 0.001 or x == 0 else f"{100 * x:.2g}%"


def describe(fp: Fingerprint, class_names: Sequence[str] | None = None) -> str:
    """The fingerprint in a few readable lines (what ``workshop data check`` and the run log print).

    Example:
        >>> import numpy as np
        >>> print(describe(fingerprint_masks([np.array([[0, 1], [1, 1]])], task="binary")))  # doctest: +NORMALIZE_WHITESPACE
        fingerprint: 1 image(s), binary
          image size: height 2 (2..2), width 2 (2..2)
          classes: background 25.0%, foreground 75.0%
          objects: 1 per image (median), area 75.0% of the image (median; 75.0%..75.0%); 0 image(s) without foreground
    """
    names = list(class_names) if class_names else (["background", "foreground"] if fp.task == "binary" else [])
    read = f" ({fp.sampled} read)" if fp.sampled != fp.num_images else ""
    h, w = fp.height, fp.width
    lines = [
        f"fingerprint: {fp.num_images} image(s){read}, {fp.task}",
        f"  image size: height {h[1]} ({h[0]}..{h[2]}), width {w[1]} ({w[0]}..{w[2]})",
    ]
    shares = ", ".join(
        f"{names[c] if c < len(names) else f'class {c}'} {_pct(s)}" for c, s in enumerate(fp.class_shares)
    )
    lines.append(f"  classes: {shares}" + (f"; ignored pixels {_pct(fp.ignored_share)}" if fp.ignored_share else ""))
    if fp.task == "binary":
        if fp.object_area is not None:
            a = fp.object_area
            lines.append(
                f"  objects: {fp.objects_per_image:g} per image (median), area {_pct(a[1])} of the image "
                f"(median; {_pct(a[0])}..{_pct(a[2])}); {fp.empty_images} image(s) without foreground"
            )
        else:
            lines.append("  objects: none (no foreground pixel in any mask)")
    lines += [f"  note: {n}" for n in fp.notes]
    return "\n".join(lines)


def fingerprint_source(source: Any, split: str = "all", max_images: int | None = DEFAULT_MAX_IMAGES) -> Fingerprint:
    """Fingerprint of one split of a ``workshop.data.sources`` source (any format it reads).

    The samples are read as training reads them (``Source.read``: masks drawn from the shapes of
    an annotation file, colour masks decoded with the label map), at most ``max_images`` of them.
    An instance source with one class of objects is measured as binary (its objects counted).

    Raises:
        DataError: a sample cannot be read (the message names the file).
        ValueError: the split has no samples.
    """
    from workshop.data.datasets import SourceDataset

    dataset = SourceDataset(source, source.items(split))
    task = dataset.task
    if source.task == "instance" and len(source.class_names()) <= 2:
        task = "binary"  # one class of objects (Penn-Fudan's people): the semantic mask is object / not object
    return fingerprint_dataset(dataset, task, dataset.num_classes if task != "binary" else None,
                               source.ignore_index, max_images)


def describe_path(
    path: Any,
    task: str | None = None,
    max_images: int | None = DEFAULT_MAX_IMAGES,
    **open_kwargs: Any,
) -> str | None:
    """The fingerprint of the data at ``path``, as text (what ``workshop data check PATH`` prints).

    The source is found by ``workshop.data.sources.open_source`` (folders, CSV and list files,
    COCO / VIA / LabelMe / CVAT annotations, registered data sets), so the fingerprint covers what
    the check covers. None when the data cannot be read as a source (the check's report says why).

    Args:
        path: what ``open_source`` takes: a folder, a file, a registered name.
        task: ``binary`` / ``multiclass`` (default: as ``open_source`` guesses).
        max_images: read at most this many samples (evenly spaced).
        **open_kwargs: the rest of ``open_source``'s arguments (``label_map``, ``images_dir``, ...).
    """
    from workshop.data.sources import open_source
    from workshop.errors import DataError

    try:  # the folder source pairs a_mask.png with a.png as data check does (one pairing rule)
        source = open_source(path, task=task, **open_kwargs)
        return describe(fingerprint_source(source, "all", max_images), source.class_names())
    except (DataError, OSError, ValueError):
        return None
