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

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2

from workshop.config import AugmentConfig, Config

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def training_augmentations(aug: AugmentConfig, ignore_index: int = 255) -> list[A.BasicTransform]:
    """The random transforms of the training pipeline (without resize, normalise, to-tensor).

    Args:
        aug: probabilities per transform (0 switches it off).
        ignore_index: mask value for pixels that come from outside the image.
    """
    steps: list[A.BasicTransform] = []
    if aug.hflip > 0:
        steps.append(A.HorizontalFlip(p=aug.hflip))
    if aug.vflip > 0:
        steps.append(A.VerticalFlip(p=aug.vflip))
    if aug.rotate90 > 0:
        steps.append(A.RandomRotate90(p=aug.rotate90))
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


def normalize_to_tensor() -> list[A.BasicTransform]:
    """ImageNet normalisation, then HWC numpy -> CHW float tensor (mask -> tensor)."""
    return [A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD), ToTensorV2()]


def get_transforms(cfg: Config, train: bool, seed: int | None = None) -> A.Compose:
    """Build the training or validation pipeline.

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
    size = cfg.data.image_size
    steps: list[A.BasicTransform] = [
        A.Resize(size, size, interpolation=cv2.INTER_AREA, mask_interpolation=cv2.INTER_NEAREST)
    ]
    if train:
        steps += training_augmentations(cfg.augment, cfg.data.ignore_index)
    steps += normalize_to_tensor()
    return A.Compose(steps, seed=seed)


def get_inference_transform(image_size: int) -> A.Compose:
    """Resize + normalise + to-tensor for prediction (the mask target is optional)."""
    return A.Compose(
        [A.Resize(image_size, image_size, interpolation=cv2.INTER_AREA, mask_interpolation=cv2.INTER_NEAREST)]
        + normalize_to_tensor()
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

    Args:
        image: (H, W, 3) or (H, W) array.
        mask: (H, W) class ids.

    Returns:
        (flipped image, flipped mask): new contiguous arrays; the inputs are not changed.

    Shape:
        image (H, W, C) -> (H, W, C); mask (H, W) -> (H, W). Column ``x`` moves to ``W - 1 - x``.

    Example:
        >>> img, m = paired_hflip(np.array([[[1], [2]]]), np.array([[0, 1]]))
        >>> m.tolist()
        [[1, 0]]

    Taught in: notebooks/02_augmentation.ipynb
    """
    return np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(mask[:, ::-1])


def train_transform(image_size: int) -> A.Compose:
    """A small training pipeline: resize, random flip and 90-degree rotation, normalise, to tensor.

    The mask is resized with nearest-neighbour (no new class ids) and goes through the same
    flip and rotation as the image, because both are passed to one ``Compose`` call. Colour is not
    touched, so this is the geometric core of ``get_transforms(cfg, train=True)``.

    Args:
        image_size: side of the square output.

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
    return A.Compose(
        [
            A.Resize(image_size, image_size, interpolation=cv2.INTER_AREA, mask_interpolation=cv2.INTER_NEAREST),
            A.HorizontalFlip(p=0.5),
            A.RandomRotate90(p=0.5),
            A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
            ToTensorV2(),
        ]
    )
