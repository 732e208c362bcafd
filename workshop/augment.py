"""Albumentations pipelines for training and validation, built from the config.

Targets: ``image`` (H, W, 3) uint8 and ``mask`` (H, W) uint8 class ids. Geometric transforms
move image and mask together; the mask is always resampled with nearest-neighbour
(``mask_interpolation=cv2.INTER_NEAREST``) so no new class ids appear, and pixels that a
rotation or shift brings in from outside the image get the ignore index in the mask.
Colour and noise transforms touch the image only.

Example:
    >>> from workshop.config import load_config
    >>> t = get_transforms(load_config(profile="smoke"), train=True)
    >>> out = t(image=np.zeros((80, 90, 3), np.uint8), mask=np.zeros((80, 90), np.uint8))
    >>> tuple(out["image"].shape), tuple(out["mask"].shape)
    ((3, 64, 64), (64, 64))

Taught in: notebooks/02_augmentation.ipynb
"""

from __future__ import annotations

from typing import Sequence

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2

from workshop.config import AugmentConfig, Config

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def extra_augmentations(aug: AugmentConfig, ignore_index: int = 255) -> list[A.BasicTransform]:
    """The recipe's steps beyond the flips and turns of ``train_transform``: a warp, colour, noise.

    Args:
        aug: probabilities per transform (0 switches it off).
        ignore_index: mask value for pixels that the warp brings in from outside the image.

    Returns:
        In order: ``A.Affine`` (shift, scale, rotate; mask by nearest neighbour),
        ``A.ColorJitter`` and ``A.GaussNoise`` (image only), each present when its probability is above 0.
    """
    steps: list[A.BasicTransform] = []
    if aug.shift_scale_rotate > 0:
        steps.append(
            A.Affine(
                translate_percent=(-0.06, 0.06),
                scale=(0.85, 1.15),
                rotate=(-30, 30),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=ignore_index,
                p=aug.shift_scale_rotate,
            )
        )
    if aug.color_jitter > 0:
        steps.append(A.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.2, hue=0.03, p=aug.color_jitter))
    if aug.noise > 0:
        steps.append(A.GaussNoise(std_range=(0.02, 0.08), p=aug.noise))
    return steps


def get_transforms(cfg: Config, train: bool, seed: int | None = None) -> A.Compose:
    """Build the training or validation pipeline.

    Training is ``train_transform`` (notebook 02's exercise) with the config's flip and turn
    probabilities and the recipe's extra steps (``extra_augmentations``) before the
    normalisation; validation is ``get_inference_transform``.

    Args:
        cfg: the configuration (``data.image_size``, ``data.ignore_index``, ``augment.*``).
        train: random augmentations on (training) or off (validation / inference).
        seed: seed of albumentations' own random generator, for runs that repeat.

    Returns:
        A ``Compose`` called as ``t(image=..., mask=...)``.

    Shape:
        in: image (H, W, 3) uint8, mask (H, W) uint8; out: image (3, S, S) float32, mask (S, S)
        with S = ``cfg.data.image_size``.
    """
    if not train:
        return get_inference_transform(cfg.data.image_size)
    aug = cfg.augment
    transform = train_transform(
        cfg.data.image_size,
        hflip=aug.hflip,
        vflip=aug.vflip,
        rotate90=aug.rotate90,
        extra=extra_augmentations(aug, cfg.data.ignore_index),
    )
    transform.set_random_seed(seed)  # the same as A.Compose(..., seed=seed)
    return transform


def get_inference_transform(image_size: int) -> A.Compose:
    """Resize + normalise + to-tensor for validation and prediction (the mask target is optional)."""
    return A.Compose(
        [
            A.Resize(image_size, image_size, interpolation=cv2.INTER_AREA, mask_interpolation=cv2.INTER_NEAREST),
            A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
            ToTensorV2(),
        ]
    )


def denormalize(image: torch.Tensor) -> np.ndarray:
    """Undo ImageNet normalisation for display.

    Shape:
        (3, H, W) float tensor -> (H, W, 3) uint8 array.
    """
    mean = torch.tensor(IMAGENET_MEAN, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device).view(3, 1, 1)
    pixels = ((image.detach().float() * std + mean).clamp(0, 1) * 255).round().byte()
    return pixels.permute(1, 2, 0).cpu().numpy()


def paired_hflip(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror an image and its mask left-right, together (the smallest paired augmentation).

    The instance track's training data (``workshop.instance.data``) flips an image and its
    object masks with it.

    Args:
        image: (H, W, 3) or (H, W) array.
        mask: (H, W) class ids, or (K, H, W): one mask per object. The width is the last axis.

    Returns:
        (flipped image, flipped mask): new contiguous arrays; the inputs are not changed.

    Shape:
        image (H, W, C) -> (H, W, C); mask (..., H, W) -> (..., H, W). Column ``x`` moves to ``W - 1 - x``.

    Example:
        >>> img, m = paired_hflip(np.array([[[1], [2]]]), np.array([[0, 1]]))
        >>> m.tolist()
        [[1, 0]]

    Taught in: notebooks/02_augmentation.ipynb
    """
    return np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(mask[..., ::-1])


def train_transform(
    image_size: int,
    *,
    hflip: float = 0.5,
    vflip: float = 0.0,
    rotate90: float = 0.5,
    extra: Sequence[A.BasicTransform] = (),
) -> A.Compose:
    """The training pipeline: resize, random flip and 90-degree rotation, normalise, to tensor.

    The mask is resized with nearest-neighbour (no new class ids) and goes through the same
    flip and rotation as the image, because both are passed to one ``Compose`` call. With the
    defaults this is notebook 02's exercise. ``get_transforms(cfg, train=True)``, which training
    runs, calls it with the config's probabilities and its ``extra`` steps (a warp, colour, noise).

    Args:
        image_size: side of the square output.
        hflip: probability of a left-right flip.
        vflip: probability of an upside-down flip (0: upright photos never appear upside down).
        rotate90: probability of a turn by 90, 180 or 270 degrees.
        extra: more random steps, applied after the turn and before the normalisation.

    Returns:
        A ``Compose`` called as ``t(image=..., mask=...)``.

    Shape:
        in: image (H, W, 3) uint8, mask (H, W) class ids; out: image (3, S, S) float32 normalised
        with the ImageNet mean and std, mask (S, S) tensor, S = ``image_size``.

    Example:
        >>> out = train_transform(32)(image=np.zeros((40, 50, 3), np.uint8), mask=np.zeros((40, 50), np.uint8))
        >>> tuple(out["image"].shape), tuple(out["mask"].shape)
        ((3, 32, 32), (32, 32))

    Taught in: notebooks/02_augmentation.ipynb
    """
    flips = [A.HorizontalFlip(p=hflip), A.VerticalFlip(p=vflip), A.RandomRotate90(p=rotate90)]
    return A.Compose(
        [
            A.Resize(image_size, image_size, interpolation=cv2.INTER_AREA, mask_interpolation=cv2.INTER_NEAREST),
            *[step for step in flips if step.p > 0],  # probability 0: the step is left out
            *extra,
            A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
            ToTensorV2(),
        ]
    )
