"""Exercises of notebooks/02_augmentation.ipynb: a paired flip, then a training pipeline.

Taught in: notebooks/02_augmentation.ipynb
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from workshop.augment import IMAGENET_MEAN, IMAGENET_STD, paired_hflip, train_transform
from workshop.tasks.core import Check, Exercise, expect

NOTEBOOK = "02_augmentation.ipynb"


# ----------------------------------------------------------------------------- fixed inputs


def _grid(h: int = 4, w: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """An image whose pixel (y, x) holds 10*y + x in every channel, and a mask with the same numbers."""
    numbers = (10 * np.arange(h)[:, None] + np.arange(w)[None, :]).astype(np.uint8)
    return np.repeat(numbers[:, :, None], 3, axis=2), numbers.astype(np.int64)


def _l_shape(size: int) -> tuple[np.ndarray, np.ndarray]:
    """An asymmetric L-shaped building: white on black in the image, 1 on 0 in the mask.

    Every flip and rotation of it looks different, so an output tells which one was applied,
    and the mask can be read back from the image pixels.
    """
    mask = np.zeros((size, size), np.uint8)
    a, b, c = size // 8, size // 2, 3 * size // 4
    mask[a:c, a : a + size // 5] = 1  # the long vertical bar, left of centre
    mask[c - size // 6 : c, a : b + size // 8] = 1  # the short foot, pointing right
    image = np.repeat((mask * 255)[:, :, None], 3, axis=2).astype(np.uint8)
    return image, mask


def _describe(x: Any) -> str:
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        kind = "a tensor" if type(x).__module__.startswith("torch") else "an array"
        return f"{kind} of shape {tuple(x.shape)} and dtype {x.dtype}"
    return f"a {type(x).__name__}"


# ----------------------------------------------------------------------------- paired_hflip

PAIRED_HFLIP_STUB = '''def paired_hflip(image, mask):
    """Mirror an image (H, W, 3) and its mask (H, W) left-right; return (image, mask)."""
    # your code here: flip BOTH arrays along the width axis
    raise NotImplementedError("your code here")'''


def _hflip_output(candidate: Callable) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    image, mask = _grid()
    out = candidate(image.copy(), mask.copy())
    expect(
        isinstance(out, (tuple, list)) and len(out) == 2,
        "a pair (image, mask)",
        lambda: _describe(out) + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""),
        hint=1,
    )
    return image, mask, np.asarray(out[0]), np.asarray(out[1])


def _check_hflip_shapes(candidate: Callable) -> None:
    image, mask, img, m = _hflip_output(candidate)
    expect(img.shape == image.shape, f"an image of shape {image.shape} (a flip keeps the shape)", f"shape {img.shape}", hint=2)
    expect(m.shape == mask.shape, f"a mask of shape {mask.shape}", f"shape {m.shape}", hint=2)


def _check_hflip_image(candidate: Callable) -> None:
    image, _, img, _ = _hflip_output(candidate)
    if np.array_equal(img, image[::-1]):
        found = "the rows reversed (a top-bottom flip, axis 0); a horizontal flip reverses the columns (axis 1)"
    elif np.array_equal(img, image):
        found = "the image unchanged"
    else:
        found = f"first row {img[0, :, 0].tolist()}"
    expect(
        np.array_equal(img, image[:, ::-1]),
        f"the image mirrored left-right (first row {image[0, ::-1, 0].tolist()})",
        found,
        hint=2,
    )


def _check_hflip_mask(candidate: Callable) -> None:
    _, mask, _, m = _hflip_output(candidate)
    if np.array_equal(m, mask):
        found = "the mask unchanged: the image moved but the mask did not, so they no longer line up"
    elif np.array_equal(m, mask[::-1]):
        found = "the mask flipped top-bottom (axis 0) instead of left-right (axis 1)"
    else:
        found = f"first row {m[0].tolist()}"
    expect(np.array_equal(m, mask[:, ::-1]), "the mask mirrored exactly like the image", found, hint=3)


paired_hflip_exercise = Exercise(
    name="paired_hflip",
    notebook=NOTEBOOK,
    stub=PAIRED_HFLIP_STUB,
    reference=paired_hflip,
    checks=[
        Check("returns image and mask", _check_hflip_shapes),
        Check("image mirrored left-right", _check_hflip_image),
        Check("mask mirrored with the image", _check_hflip_mask),
    ],
    hints=[
        "A left-right mirror reverses the order of the columns and keeps the rows. The mask must get exactly "
        "the same change as the image, or its labels point at the wrong pixels.",
        "An image array is indexed [row, column, channel], a mask [row, column]: left-right is axis 1 in both. "
        "Slicing with a negative step reverses an axis: a[:, ::-1] reverses the columns (np.fliplr(a) too).",
        "Flip both the same way and return the pair: return image[:, ::-1].copy(), mask[:, ::-1].copy()",
    ],
)


# ----------------------------------------------------------------------------- train_transform

TRAIN_TRANSFORM_STUB = '''def train_transform(image_size):
    """An albumentations Compose for training: resize to (image_size, image_size) with the mask
    resized by nearest neighbour, a random horizontal flip, a random 90-degree rotation,
    ImageNet normalisation, then ToTensorV2. Called as t(image=..., mask=...)."""
    # your code here: return A.Compose([...])
    raise NotImplementedError("your code here")'''

SIZE = 32


def _apply(candidate: Callable, image: np.ndarray, mask: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Build the learner's pipeline, seed it, and run it once."""
    transform = candidate(SIZE)
    expect(callable(transform), "train_transform(32) to return an A.Compose", lambda: _describe(transform), hint=1)
    if hasattr(transform, "set_random_seed"):
        transform.set_random_seed(seed)
    out = transform(image=image, mask=mask)
    expect(isinstance(out, dict) and "image" in out and "mask" in out, "a dict with 'image' and 'mask'", lambda: _describe(out), hint=1)
    return out


def _check_types(candidate: Callable) -> None:
    import torch

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)  # not square, not the output size
    out = _apply(candidate, image, np.zeros((48, 40), np.uint8))
    img, m = out["image"], out["mask"]
    if not isinstance(img, torch.Tensor):
        expect(False, "the image as a torch tensor (3, 32, 32)", f"{_describe(img)} -> no step turned the (H, W, C) array into a (C, H, W) tensor: ToTensorV2 is missing", hint=2)
    expect(
        img.dtype == torch.float32,
        "a float32 image tensor",
        f"{_describe(img)} -> the pixels were never normalised: they are still the uint8 0..255 read from disk",
        hint=2,
    )
    expect(
        tuple(img.shape) == (3, SIZE, SIZE),
        f"an image of shape (3, {SIZE}, {SIZE}) for train_transform({SIZE})",
        f"{tuple(img.shape)} -> the image was not resized to image_size x image_size (or the channels are not first)",
        hint=2,
    )
    expect(
        isinstance(m, torch.Tensor) and tuple(m.shape) == (SIZE, SIZE),
        f"a mask tensor of shape ({SIZE}, {SIZE})",
        lambda: _describe(m),
        hint=2,
    )


def _check_normalised(candidate: Callable) -> None:
    white = np.full((SIZE, SIZE, 3), 255, np.uint8)
    expected = [(1.0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    images = [_apply(candidate, white, np.zeros((SIZE, SIZE), np.uint8), seed)["image"] for seed in range(8)]
    # the value most pixels take: a step that moves pixels in from outside the image changes a few, not all
    typicals = [[round(float(img[c].median()), 3) for c in range(3)] for img in images]
    for seed, (img, typical) in enumerate(zip(images, typicals)):
        if not all(abs(f - e) < 0.01 for f, e in zip(typical, expected)):
            if any(t != typical for t in typicals):
                expect(False, "a white image to come out the same every run (no colour step in this pipeline)",
                       f"{typicals[0]}, {typicals[1]}, ... in different seeded runs -> a random colour step "
                       "(ColorJitter, RandomBrightnessContrast...) changes the pixels; the exercise asks for exactly "
                       "Resize, HorizontalFlip, RandomRotate90, Normalize, ToTensorV2", hint=2)
            extra = " -> pixels scaled to 0..1 but not normalised" if all(abs(f - 1.0) < 0.01 for f in typical) else ""
            expect(
                False,
                f"a white pixel to become {[round(e, 3) for e in expected]} ((1 - mean) / std per channel, ImageNet mean and std)",
                f"{typical}{extra or ' -> normalised with another mean and std than ImageNet'}",
                hint=2,
            )


def _check_nothing_filled_in(candidate: Callable) -> None:
    white = np.full((SIZE, SIZE, 3), 255, np.uint8)
    expected = torch.tensor([(1.0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]).reshape(3, 1, 1)
    for seed in range(8):
        img = _apply(candidate, white, np.zeros((SIZE, SIZE), np.uint8), seed)["image"]
        changed = float((img - expected).abs().amax(0).gt(0.01).float().mean())
        expect(
            changed == 0.0,
            "a white image to stay white everywhere: resizing, flips and 90-degree turns move no pixel in from "
            "outside the image",
            f"{changed:.0%} of the pixels not white (seed {seed}) -> a step rotates by an odd angle, shifts, or "
            "crops with padding, and fills the corners it uncovers (A.Affine, A.Rotate, A.ShiftScaleRotate...); "
            "the exercise asks for exactly Resize, HorizontalFlip, RandomRotate90, Normalize, ToTensorV2",
            hint=2,
        )


def _check_nearest(candidate: Callable) -> None:
    rng = np.random.default_rng(1)
    mask = np.kron(rng.choice(np.array([0, 2, 5], np.uint8), size=(10, 10)), np.ones((5, 5), np.uint8))
    image = np.repeat((mask * 40)[:, :, None], 3, axis=2)
    out = _apply(candidate, image, mask)  # 50 x 50 -> 32 x 32
    labels = sorted(int(v) for v in np.unique(np.asarray(out["mask"])))
    expect(
        set(labels) <= {0, 2, 5},
        "the mask's class ids {0, 2, 5} to stay {0, 2, 5} after resizing 50x50 -> 32x32",
        f"{set(labels)} -> the mask was resized by blending neighbours (linear interpolation), which invents "
        "ids between two classes",
        hint=3,
    )


def _readback(img: Any) -> np.ndarray:
    """The mask an output image shows: pixels brighter than half way between its darkest and brightest."""
    arr = np.asarray(img.float().mean(0) if hasattr(img, "float") else np.asarray(img, np.float32).mean(-1))
    return (arr > (arr.max() + arr.min()) / 2).astype(np.int64)


SEEDS = range(24)


def _check_aligned(candidate: Callable) -> None:
    image, mask = _l_shape(SIZE)
    for seed in SEEDS:
        out = _apply(candidate, image, mask, seed)
        m = np.asarray(out["mask"]).astype(np.int64)
        agree = float((_readback(out["image"]) == m).mean())
        expect(
            agree > 0.99,
            "the output mask to cover exactly the building the output image shows",
            f"only {agree:.0%} of pixels agree (seed {seed}) -> the image was flipped or rotated without its mask: "
            "a geometric step ran on the image alone, outside the Compose call that moves both",
            hint=3,
        )


def _orientation(out_mask: np.ndarray, mask: np.ndarray) -> str | None:
    for k in range(4):
        if np.array_equal(out_mask, np.rot90(mask, k)):
            return f"rot{90 * k}"
        if np.array_equal(out_mask, np.rot90(mask[:, ::-1], k)):
            return f"mirror+rot{90 * k}"
    return None


def _check_random(candidate: Callable) -> None:
    image, mask = _l_shape(SIZE)
    seen = {_orientation(np.asarray(_apply(candidate, image, mask, seed)["mask"]).astype(np.uint8), mask) for seed in SEEDS}
    seen.discard(None)
    mirrored = {s for s in seen if s.startswith("mirror")}
    turned = {s for s in seen if s.endswith(("rot90", "rot270"))}
    expect(bool(mirrored), f"some of {len(SEEDS)} seeded runs to come out mirrored", f"none mirrored ({sorted(seen)}) -> the pipeline has no random horizontal flip", hint=2)
    expect(len(mirrored) < len(seen), "some runs not mirrored (a random flip, p=0.5)", f"every run mirrored ({sorted(seen)}) -> a flip with p=1 is not random", hint=2)
    expect(bool(turned), "some runs turned by 90 or 270 degrees", f"orientations {sorted(seen)} -> the pipeline has no random 90-degree rotation", hint=2)


train_transform_exercise = Exercise(
    name="train_transform",
    notebook=NOTEBOOK,
    stub=TRAIN_TRANSFORM_STUB,
    reference=train_transform,
    checks=[
        Check("output types and shapes", _check_types),
        Check("ImageNet normalisation", _check_normalised),
        Check("only the listed steps (a white image stays white)", _check_nothing_filled_in),
        Check("mask resized with nearest neighbour", _check_nearest),
        Check("image and mask move together", _check_aligned),
        Check("random flips and rotations", _check_random),
    ],
    hints=[
        "A pipeline is a list of steps applied in order to the image and its mask together: first the geometry "
        "(resize, random flip, random quarter turn), then the pixel values (normalise), last the conversion "
        "to a tensor. A mask holds class ids, so it is resized by picking the nearest id, never by blending.",
        "A.Compose([...]) applies a list of steps; t(image=img, mask=m) returns a dict with 'image' and 'mask'. "
        "The steps: A.Resize(h, w, mask_interpolation=cv2.INTER_NEAREST), A.HorizontalFlip(), "
        "A.RandomRotate90(), A.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)), ToTensorV2(). "
        "Every step but ToTensorV2 works on NumPy arrays.",
        "return A.Compose([A.Resize(image_size, image_size, mask_interpolation=cv2.INTER_NEAREST), "
        "A.HorizontalFlip(), A.RandomRotate90(), A.Normalize(mean=(0.485, 0.456, 0.406), "
        "std=(0.229, 0.224, 0.225)), ToTensorV2()])  # ToTensorV2 last",
    ],
)

EXERCISES = [paired_hflip_exercise, train_transform_exercise]
