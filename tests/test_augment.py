"""Augmentations move image and mask together and never invent class ids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import albumentations as A
import cv2
from albumentations.pytorch import ToTensorV2

from workshop.augment import IMAGENET_MEAN, IMAGENET_STD, denormalize, get_transforms, train_transform
from workshop.config import load_config


def pattern(seed: int, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """An image whose mask can be read back from its pixels: class k is painted with grey 60*k."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.uint8)
    for k in (1, 2, 3):
        y, x = rng.integers(0, size - 12, 2)
        h, w = rng.integers(6, 12, 2)
        mask[y : y + h, x : x + w] = k
    image = np.repeat((mask * 60)[:, :, None], 3, axis=2).astype(np.uint8)
    return image, mask


def geometric_only(seed: int, p: float = 1.0) -> A.Compose:
    """The training pipeline at the pattern's own size, every geometric step on, colour and noise off."""
    cfg = load_config(profile="smoke", overrides={
        "data": {"image_size": 48},
        "augment": {"color_jitter": 0.0, "noise": 0.0, "hflip": p, "vflip": p, "rotate90": p, "shift_scale_rotate": p}})
    return get_transforms(cfg, train=True, seed=seed)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_geometric_augmentations_keep_image_and_mask_aligned(seed: int) -> None:
    image, mask = pattern(seed)
    out = geometric_only(seed)(image=image, mask=mask)
    img, m = denormalize(out["image"])[..., 0].astype(int), out["mask"].numpy().astype(int)
    inside = m != 255  # pixels that came from inside the picture
    readback = np.rint(img / 60.0).astype(int)
    # Away from region borders (where bilinear image sampling blends), the image says the mask.
    interior = inside.copy()
    for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        interior &= np.roll(m, (dy, dx), axis=(0, 1)) == m
    agree = (readback[interior] == m[interior]).mean()
    assert agree > 0.98
    assert set(np.unique(m)) <= {0, 1, 2, 3, 255}


@pytest.mark.parametrize("train", [True, False])
def test_pipeline_output_types_and_shapes(train: bool) -> None:
    cfg = load_config(profile="smoke")
    image, mask = pattern(0, size=80)
    out = get_transforms(cfg, train=train, seed=0)(image=image, mask=mask)
    assert out["image"].shape == (3, 64, 64) and out["image"].dtype == torch.float32
    assert out["mask"].shape == (64, 64)
    assert set(torch.unique(out["mask"]).tolist()) <= {0, 1, 2, 3, 255}


def test_validation_pipeline_is_deterministic_and_normalised() -> None:
    cfg = load_config(profile="smoke")
    image = np.full((64, 64, 3), 255, np.uint8)
    t = get_transforms(cfg, train=False)
    a = t(image=image, mask=np.zeros((64, 64), np.uint8))["image"]
    b = t(image=image, mask=np.zeros((64, 64), np.uint8))["image"]
    assert torch.equal(a, b)
    # white -> (1 - mean) / std per channel
    assert a[0, 0, 0].item() == pytest.approx((1 - IMAGENET_MEAN[0]) / 0.229, rel=1e-4)
    assert (denormalize(a) == 255).all()


def test_same_seed_same_augmentation() -> None:
    cfg = load_config(profile="smoke")
    image, mask = pattern(3, size=64)
    one = get_transforms(cfg, train=True, seed=7)(image=image, mask=mask)
    two = get_transforms(cfg, train=True, seed=7)(image=image, mask=mask)
    assert torch.equal(one["image"], two["image"]) and torch.equal(one["mask"], two["mask"])


def test_horizontal_flip_moves_both() -> None:
    image, mask = pattern(5)
    out = A.Compose([A.HorizontalFlip(p=1.0)])(image=image, mask=mask)
    np.testing.assert_array_equal(out["mask"], mask[:, ::-1])
    np.testing.assert_array_equal(out["image"], image[:, ::-1])


# ----------------------------------------------------------------------------- get_transforms runs train_transform


def pipeline_before_issue_23(cfg, train: bool, seed: int | None) -> A.Compose:
    """``get_transforms`` as it was written before it called ``train_transform`` (frozen here)."""
    size, aug = cfg.data.image_size, cfg.augment
    steps = [A.Resize(size, size, interpolation=cv2.INTER_AREA, mask_interpolation=cv2.INTER_NEAREST)]
    if train:
        if aug.hflip > 0:
            steps.append(A.HorizontalFlip(p=aug.hflip))
        if aug.vflip > 0:
            steps.append(A.VerticalFlip(p=aug.vflip))
        if aug.rotate90 > 0:
            steps.append(A.RandomRotate90(p=aug.rotate90))
        if aug.shift_scale_rotate > 0:
            steps.append(A.Affine(translate_percent=(-0.06, 0.06), scale=(0.85, 1.15), rotate=(-30, 30),
                                  interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST,
                                  border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=cfg.data.ignore_index,
                                  p=aug.shift_scale_rotate))
        if aug.color_jitter > 0:
            steps.append(A.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.2, hue=0.03, p=aug.color_jitter))
        if aug.noise > 0:
            steps.append(A.GaussNoise(std_range=(0.02, 0.08), p=aug.noise))
    steps += [A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD), ToTensorV2()]
    return A.Compose(steps, seed=seed)


AUGMENT_SETTINGS = {
    "smoke defaults": {},
    "upright view (no vflip, no rotate90)": {"vflip": 0.0, "rotate90": 0.0},
    "every step always": {k: 1.0 for k in ("hflip", "vflip", "rotate90", "shift_scale_rotate", "color_jitter", "noise")},
    "every step off": {k: 0.0 for k in ("hflip", "vflip", "rotate90", "shift_scale_rotate", "color_jitter", "noise")},
    "flips off, the rest on": {"hflip": 0.0, "vflip": 0.0, "rotate90": 0.0, "shift_scale_rotate": 0.7},
    "odd probabilities": {"hflip": 0.3, "vflip": 0.9, "rotate90": 0.2, "shift_scale_rotate": 0.5, "color_jitter": 0.6, "noise": 0.4},
}


def _steps(t: A.Compose) -> list[tuple[str, float]]:
    return [(type(s).__name__, s.p) for s in t.transforms]


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("setting", list(AUGMENT_SETTINGS))
def test_get_transforms_is_the_pipeline_it_was_before_it_called_train_transform(setting: str, train: bool) -> None:
    cfg = load_config(profile="smoke", overrides={"augment": AUGMENT_SETTINGS[setting], "data": {"ignore_index": 250}})
    assert _steps(get_transforms(cfg, train=train, seed=0)) == _steps(pipeline_before_issue_23(cfg, train, 0))
    image, mask = pattern(11, size=80)
    for seed in range(12):
        new, old = get_transforms(cfg, train=train, seed=seed), pipeline_before_issue_23(cfg, train, seed)
        for _ in range(3):  # one generator per pipeline: later draws must agree too
            a, b = new(image=image, mask=mask), old(image=image, mask=mask)
            assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"]), (setting, seed)


def test_training_pipeline_is_train_transform_with_the_recipe_steps() -> None:
    cfg = load_config(profile="smoke")
    taught = [name for name, _ in _steps(train_transform(cfg.data.image_size))]
    assert taught == ["Resize", "HorizontalFlip", "RandomRotate90", "Normalize", "ToTensorV2"]
    recipe = [name for name, _ in _steps(get_transforms(cfg, train=True))]
    assert recipe == ["Resize", "HorizontalFlip", "VerticalFlip", "RandomRotate90", "Affine", "ColorJitter",
                      "GaussNoise", "Normalize", "ToTensorV2"]
    assert [name for name, _ in _steps(train_transform(32, hflip=0.0, rotate90=0.0))] == ["Resize", "Normalize", "ToTensorV2"]


def test_training_calls_train_transform(monkeypatch) -> None:
    import workshop.augment

    seen = []
    original = workshop.augment.train_transform

    def spy(*args, **kwargs):
        seen.append((args, kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(workshop.augment, "train_transform", spy)
    cfg = load_config(profile="smoke")
    get_transforms(cfg, train=True, seed=0)
    assert len(seen) == 1 and seen[0][0] == (cfg.data.image_size,)
    assert {k: seen[0][1][k] for k in ("hflip", "vflip", "rotate90")} == {"hflip": 0.5, "vflip": 0.5, "rotate90": 0.5}


# ----------------------------------------------------------------------------- paired_hflip


def test_paired_hflip_flips_a_class_mask_and_a_stack_of_object_masks_along_the_width() -> None:
    from workshop.augment import paired_hflip

    image = np.arange(2 * 3 * 3).reshape(2, 3, 3).astype(np.uint8)  # (H=2, W=3, 3)
    mask = np.array([[0, 1, 2], [3, 4, 5]])
    objects = np.stack([mask == 1, mask >= 4])  # (K=2, H, W)
    img, m = paired_hflip(image, mask)
    assert img[:, 0].tolist() == image[:, 2].tolist() and m.tolist() == [[2, 1, 0], [5, 4, 3]]
    _, stack = paired_hflip(image, objects)
    assert stack.tolist() == [[[False, True, False], [False, False, False]], [[False, False, False], [True, True, False]]]
    assert img.flags.c_contiguous and stack.flags.c_contiguous and mask.tolist() == [[0, 1, 2], [3, 4, 5]]
