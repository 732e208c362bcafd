"""Decode and resize every image once, keep the pixels in memory: a data set that never waits on JPEG.

On a laptop CPU, decoding a 1280x1055 JPEG and resizing it costs about as much as a training step
of a small model on a few images. A data set of a few hundred photos fits in memory at training
size (290 photos at 224x224 are 44 MB as uint8), so ``CachedPairs`` decodes and resizes each pair
once (with a thread pool) and afterwards only flips and normalises, which is nearly free.

Stage of the data path::

    Dataset.load(i) -> (H, W, 3) uint8 + (H, W) int64  --resize once-->  uint8 tensors in memory
      -> __getitem__: random flips, ImageNet normalisation -> {"image": (3, S, S) float32, "mask": (S, S) int64}

Example:
    >>> from workshop.data.datasets import PairDataset
    >>> cached = CachedPairs(PairDataset(pairs), size=192, hflip=0.5)  # doctest: +SKIP
    >>> cached[0]["image"].shape  # doctest: +SKIP
    torch.Size([3, 192, 192])

Taught in: notebooks/04_dataloaders.ipynb
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from workshop.augment import IMAGENET_MEAN, IMAGENET_STD
from workshop.data.io import resize_mask_nearest

__all__ = ["CachedPairs", "resize_pair"]


def resize_pair(image: np.ndarray, mask: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize an image (area interpolation when shrinking, linear when growing) and its mask (nearest).

    Shape:
        (H, W, 3) uint8, (H, W) int -> (height, width, 3) uint8, (height, width) int64.
    """
    if image.shape[:2] != (height, width):
        shrink = height < image.shape[0] and width < image.shape[1]
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return image, resize_mask_nearest(np.asarray(mask), height, width).astype(np.int64)


class CachedPairs(Dataset):
    """An in-memory, resized copy of a segmentation data set, with cheap flips and normalisation.

    Args:
        source: a data set whose ``load(i)`` (or ``[i]`` without a transform) gives the raw
            ``(image, mask)`` / ``{"image", "mask"}`` pair, e.g. ``PairDataset``, ``CSVDataset``
            or ``registry.load_dataset(..., transform=None)``.
        size: training size, an int (square) or ``(height, width)``.
        hflip: probability of a horizontal flip per item (0 for validation).
        vflip: probability of a vertical flip per item.
        normalize: apply ImageNet mean/std (else pixels are scaled to 0..1).
        workers: threads used to decode and resize (default: CPU count, at most 8).
        seed: seed of the flip generator (``set_random_seed`` re-seeds it). The items are in
            memory already, so use it with ``num_workers=0`` (workers would share one flip stream).
        indices: only cache these items of ``source``.

    Shape:
        item["image"]: (3, H, W) float32; item["mask"]: (H, W) int64.

    Attributes:
        images: (N, 3, H, W) uint8 tensor; masks: (N, H, W) uint8 tensor (ignore index kept).
        build_seconds: time the decoding took.
    """

    def __init__(
        self,
        source: Dataset,
        size: int | tuple[int, int],
        hflip: float = 0.0,
        vflip: float = 0.0,
        normalize: bool = True,
        workers: int | None = None,
        seed: int = 0,
        indices: Sequence[int] | None = None,
    ) -> None:
        import time

        height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        if height < 1 or width < 1:
            raise ValueError(f"size must be positive, got {size!r}")
        for name, p in (("hflip", hflip), ("vflip", vflip)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {p}")
        self.size = (height, width)
        self.hflip, self.vflip, self.normalize = hflip, vflip, normalize
        self.transform = None  # flips and normalisation are built in
        order = list(range(len(source))) if indices is None else [int(i) for i in indices]
        load: Callable[[int], Any] = getattr(source, "load", None) or (lambda i: source[i])

        def one(i: int) -> tuple[np.ndarray, np.ndarray]:
            item = load(i)
            image, mask = (item["image"], item["mask"]) if isinstance(item, dict) else item
            image, mask = resize_pair(np.asarray(image), np.asarray(mask), height, width)
            if mask.size and (mask.min() < 0 or mask.max() > 255):
                raise ValueError(f"item {i}: mask ids must lie in 0..255 to be cached as uint8")
            return image, mask.astype(np.uint8)

        t0 = time.perf_counter()
        n_workers = workers or min(8, os.cpu_count() or 1)
        if n_workers > 1 and len(order) > 1:
            with ThreadPoolExecutor(max_workers=n_workers) as pool:
                items = list(pool.map(one, order))
        else:
            items = [one(i) for i in order]
        self.images = torch.from_numpy(np.stack([im for im, _ in items])).permute(0, 3, 1, 2).contiguous()
        self.masks = torch.from_numpy(np.stack([m for _, m in items])).contiguous()
        self.build_seconds = time.perf_counter() - t0
        self.source_indices = order
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if normalize else ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
        self._scale = (1.0 / (255.0 * torch.tensor(std, dtype=torch.float32))).view(3, 1, 1)
        self._shift = (torch.tensor(mean, dtype=torch.float32) / torch.tensor(std, dtype=torch.float32)).view(3, 1, 1)
        self._generator = torch.Generator().manual_seed(seed)

    def set_random_seed(self, seed: int) -> None:
        """Re-seed the flips (``engine.fit`` calls this at the start of every epoch)."""
        self._generator.manual_seed(int(seed))

    @property
    def nbytes(self) -> int:
        """Memory held by the cached pixels, in bytes."""
        return self.images.numel() + self.masks.numel()

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        image, mask = self.images[index], self.masks[index]
        if self.hflip or self.vflip:
            draw = torch.rand(2, generator=self._generator)
            if draw[0] < self.hflip:
                image, mask = image.flip(-1), mask.flip(-1)
            if draw[1] < self.vflip:
                image, mask = image.flip(-2), mask.flip(-2)
        pixels = image.float() * self._scale - self._shift
        return {"image": pixels, "mask": mask.long()}
