"""Exercise of notebooks/03_dataset.ipynb: a custom segmentation ``Dataset``.

Taught in: notebooks/03_dataset.ipynb
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from PIL import Image

from workshop.data.datasets import SegmentationDataset
from workshop.tasks.core import Check, Exercise, expect

NOTEBOOK = "03_dataset.ipynb"

SEGMENTATION_DATASET_STUB = '''class SegmentationDataset(Dataset):
    """Pairs of image and mask files -> {"image": (H, W, 3) uint8 RGB, "mask": (H, W) int64 in {0, 1}}.

    Masks are stored 0/255 on disk. With a transform, return what
    transform(image=image, mask=mask) returns instead.
    """

    def __init__(self, image_paths, mask_paths, transform=None):
        # your code here: keep the arguments
        raise NotImplementedError("your code here")

    def __len__(self):
        raise NotImplementedError("your code here")

    def __getitem__(self, index):
        raise NotImplementedError("your code here")'''

HEIGHT, WIDTH = 10, 12  # not square, so a swapped height and width shows
BACKGROUND = (200, 50, 10)  # reddish: reversed channels (BGR) show as bluish
BUILDING = (20, 220, 90)  # green: the mask can be read back from the image
BOXES = [(1, 2, 5, 7), (4, 1, 9, 4), (2, 6, 8, 11)]  # (top, left, bottom, right) of each item's building


def _fixture_masks() -> list[np.ndarray]:
    masks = []
    for top, left, bottom, right in BOXES:
        m = np.zeros((HEIGHT, WIDTH), np.int64)
        m[top:bottom, left:right] = 1
        masks.append(m)
    return masks


@contextmanager
def _files() -> Iterator[tuple[list[str], list[str]]]:
    """Three image/mask PNG pairs in a temporary folder (masks stored 0/255, as on disk)."""
    with tempfile.TemporaryDirectory(prefix="segds-") as tmp:
        images, masks = [], []
        for i, m in enumerate(_fixture_masks()):
            rgb = np.where(m[:, :, None] == 1, np.array(BUILDING, np.uint8), np.array(BACKGROUND, np.uint8))
            image_path, mask_path = Path(tmp) / f"photo_{i}.png", Path(tmp) / f"label_{i}.png"
            Image.fromarray(rgb.astype(np.uint8), "RGB").save(image_path)
            Image.fromarray((m * 255).astype(np.uint8), "L").save(mask_path)
            images.append(str(image_path))
            masks.append(str(mask_path))
        yield images, masks


def _describe(x: Any) -> str:
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return f"shape {tuple(x.shape)}, dtype {x.dtype}"
    return f"a {type(x).__name__}"


def _item(candidate: Callable, index: int = 0, transform: Any = None) -> dict[str, Any]:
    with _files() as (images, masks):
        ds = candidate(images, masks) if transform is None else candidate(images, masks, transform=transform)
        item = ds[index]
    expect(
        isinstance(item, dict) and "image" in item and "mask" in item,
        "ds[i] to be a dict with keys 'image' and 'mask'",
        lambda: f"a {type(item).__name__}" + (f" with keys {sorted(item)}" if isinstance(item, dict) else ""),
        hint=1,
    )
    return item


def _check_length(candidate: Callable) -> None:
    with _files() as (images, masks):
        n = len(candidate(images, masks))
    expect(n == 3, "len(ds) == 3 for 3 image/mask pairs", f"len(ds) == {n}", hint=1)


def _check_image(candidate: Callable) -> None:
    image = np.asarray(_item(candidate)["image"])
    expect(
        image.shape == (HEIGHT, WIDTH, 3),
        f"the image as (H, W, 3) = ({HEIGHT}, {WIDTH}, 3)",
        f"{_describe(image)}" + (" -> a grey (one-channel) image: the file was read without converting it to RGB" if image.ndim == 2 else ""),
        hint=2,
    )
    expect(image.dtype == np.uint8, "a uint8 image (0..255, as read from disk)", _describe(image), hint=2)
    corner = tuple(int(v) for v in image[0, 0])
    reversed_hint = " -> the channels are reversed (BGR order): cv2.imread reads blue first" if corner == BACKGROUND[::-1] else ""
    expect(corner == BACKGROUND, f"the top-left pixel in RGB order, {BACKGROUND}", f"{corner}{reversed_hint}", hint=2)


def _check_mask(candidate: Callable) -> None:
    mask = np.asarray(_item(candidate)["mask"])
    expect(mask.shape == (HEIGHT, WIDTH), f"the mask as (H, W) = ({HEIGHT}, {WIDTH})", _describe(mask), hint=2)
    values = sorted(np.unique(mask).tolist())
    scaled = " -> the file's 0/255 were kept: 255 is no class id, the building is class 1" if max(values) > 1 else ""
    expect(set(values) <= {0, 1} and len(values) == 2, "class ids {0, 1}", f"values {values}{scaled}", hint=3)
    expect(mask.dtype == np.int64, "an int64 mask (class ids, what the loss expects)", f"dtype {mask.dtype} -> the mask kept the file's dtype; the loss reads class ids as int64", hint=3)


def _check_pairs(candidate: Callable) -> None:
    truth = _fixture_masks()
    for i in range(3):
        mask = np.asarray(_item(candidate, i)["mask"]).astype(np.int64)
        expect(
            np.array_equal(mask, truth[i]),
            f"ds[{i}] to hold mask file {i} (the building in image {i})",
            f"another mask ({int((mask == truth[i]).mean() * 100)}% of pixels agree) -> image {i} was paired with "
            "another file's mask: the two lists were not read at the same index",
            hint=3,
        )


class MirrorBoth:
    """A test transform: mirrors left-right whatever it is given (image, and mask when passed)."""

    def __call__(self, image: np.ndarray, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
        out = {"image": np.ascontiguousarray(image[:, ::-1])}
        if mask is not None:
            out["mask"] = np.ascontiguousarray(mask[:, ::-1])
        return out


def _check_transform(candidate: Callable) -> None:
    item = _item(candidate, 1, transform=MirrorBoth())
    image, mask = np.asarray(item["image"]), np.asarray(item["mask"]).astype(np.int64)
    mirrored = _fixture_masks()[1][:, ::-1]
    shown = (image[:, :, 1] > 128).astype(np.int64) if image.shape == (HEIGHT, WIDTH, 3) else None  # the building the image shows
    expect(
        shown is not None and np.array_equal(shown, mirrored),
        "with a mirroring transform, the mirrored image",
        f"the image as stored ({_describe(image)}) -> the transform given to the data set was not applied",
        hint=3,
    )
    expect(
        np.array_equal(mask, mirrored),
        "the mask mirrored together with the image",
        "a mask that no longer covers the building in the image -> the transform ran on the image only, "
        "or its mask was not returned",
        hint=3,
    )


def _check_pipeline(candidate: Callable) -> None:
    import albumentations as A
    import cv2
    import torch
    from albumentations.pytorch import ToTensorV2

    pipeline = A.Compose([A.Resize(8, 8, mask_interpolation=cv2.INTER_NEAREST), A.Normalize(), ToTensorV2()])
    item = _item(candidate, 0, transform=pipeline)
    image, mask = item["image"], item["mask"]
    expect(
        isinstance(image, torch.Tensor) and tuple(image.shape) == (3, 8, 8) and image.dtype == torch.float32,
        "with a resize-normalise-to-tensor pipeline, an image tensor (3, 8, 8) float32",
        lambda: _describe(image) + " -> the raw image came back, not the transform's output",
        hint=3,
    )
    expect(
        isinstance(mask, torch.Tensor) and tuple(mask.shape) == (8, 8) and set(torch.unique(mask).tolist()) <= {0, 1},
        "a mask tensor (8, 8) of class ids {0, 1}",
        lambda: _describe(mask) + " -> not the transform's mask of 0/1 ids (the 0/255 kept, or the raw mask returned)",
        hint=3,
    )


segmentation_dataset_exercise = Exercise(
    name="SegmentationDataset",
    notebook=NOTEBOOK,
    stub=SEGMENTATION_DATASET_STUB,
    reference=SegmentationDataset,
    checks=[
        Check("length", _check_length),
        Check("image is (H, W, 3) uint8 RGB", _check_image),
        Check("mask is (H, W) int64 in {0, 1}", _check_mask),
        Check("item i pairs image i with mask i", _check_pairs),
        Check("transform moves image and mask together", _check_transform),
        Check("works with an albumentations pipeline", _check_pipeline),
    ],
    hints=[
        "A map-style Dataset answers two questions: how many samples (__len__), and what is sample number "
        "index (__getitem__). __init__ only keeps the two path lists and the transform. __getitem__ reads pair "
        "index from disk (image index with mask index), turns the mask's 0/255 into class ids 0/1, and runs "
        "the transform on image and mask together when there is one.",
        "np.array(Image.open(path).convert('RGB')) is an (H, W, 3) uint8 image in RGB order (cv2.imread gives "
        "BGR); np.array(Image.open(path)) is the 0/255 mask and (mask > 127).astype(np.int64) its class ids. "
        "An albumentations transform is called as self.transform(image=image, mask=mask) and returns a dict.",
        "In __getitem__: image = np.array(Image.open(self.image_paths[index]).convert('RGB')); "
        "mask = (np.array(Image.open(self.mask_paths[index])) > 127).astype(np.int64); then return "
        "self.transform(image=image, mask=mask) when self.transform is not None, else {'image': image, 'mask': mask}.",
    ],
)

EXERCISES = [segmentation_dataset_exercise]
