"""Properties that must hold for any input: resizes keep the label set, the training pipeline keeps
image and mask aligned, ignored pixels never change the loss.

(Metric properties live in tests/test_metrics.py.)
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from workshop.augment import denormalize, get_transforms
from workshop.config import load_config
from workshop.data.datasets import apply_transform
from workshop.data.io import resize_mask_nearest
from workshop.losses import create_loss

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
IGNORE = 255

labels = st.sampled_from([0, 1, 2, 3, 7, IGNORE])
sides = st.integers(1, 40)


@st.composite
def masks(draw, max_side: int = 24) -> np.ndarray:
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    return draw(arrays(np.uint8, (h, w), elements=labels))


# ----------------------------------------------------------------------------- resizes keep the label set


@FAST
@given(mask=masks(), height=sides, width=sides)
def test_resize_mask_nearest_never_invents_labels(mask: np.ndarray, height: int, width: int) -> None:
    out = resize_mask_nearest(mask.astype(np.int64), height, width)
    assert out.shape == (height, width) and out.dtype == np.int64
    assert set(np.unique(out)) <= set(np.unique(mask))
    if height >= mask.shape[0] and width >= mask.shape[1]:  # growing keeps every label
        assert set(np.unique(out)) == set(np.unique(mask))


@FAST
@given(mask=masks(), size=st.integers(8, 48))
def test_pipeline_resize_never_invents_labels(mask: np.ndarray, size: int) -> None:
    cfg = load_config(profile="smoke", overrides={"data": {"image_size": size}})
    image = np.zeros((*mask.shape, 3), np.uint8)
    out = apply_transform(get_transforms(cfg, train=False), image, mask.astype(np.int64))
    assert tuple(out["mask"].shape) == (size, size) and out["mask"].dtype == torch.int64
    found = set(torch.unique(out["mask"]).tolist())
    assert found <= set(np.unique(mask).tolist())
    if size >= max(mask.shape):
        assert found == set(np.unique(mask).tolist())


# ----------------------------------------------------------------------------- augmentations keep alignment


def painted(seed: int, h: int, w: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Classes 1..3 as rectangles in three quadrants on background 0; the image paints class k grey 60*k.

    Regions keep a margin of 3 output pixels (after resizing to ``size``) from their quadrant's
    border, so no sliver is thinner than the resampling blur.
    """
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), np.uint8)
    gy, gx = int(np.ceil(3 * h / size)), int(np.ceil(3 * w / size))
    qh, qw = h // 2, w // 2
    quadrants = [(0, 0), (0, qw), (qh, 0), (qh, qw)]
    for k, q in zip((1, 2, 3), rng.permutation(4)[:3]):
        y0, x0 = quadrants[q]
        room_y, room_x = qh - 2 * gy, qw - 2 * gx
        rh, rw = int(rng.integers(room_y // 2, room_y + 1)), int(rng.integers(room_x // 2, room_x + 1))
        y, x = y0 + gy + int(rng.integers(0, room_y - rh + 1)), x0 + gx + int(rng.integers(0, room_x - rw + 1))
        mask[y : y + rh, x : x + rw] = k
    return np.repeat((mask * 60)[:, :, None], 3, axis=2), mask


def interior(mask: np.ndarray, radius: int = 2) -> np.ndarray:
    """Pixels whose whole (2r+1)^2 neighbourhood has their class, away from ignored pixels and the
    picture's edge (where bilinear sampling blends in the black fill)."""
    keep = mask != IGNORE
    padded = np.pad(mask.astype(int), radius, constant_values=IGNORE)
    h, w = mask.shape
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            keep &= padded[radius + dy : radius + dy + h, radius + dx : radius + dx + w] == mask
    return keep


@FAST
@given(seed=st.integers(0, 10_000), h=st.integers(40, 120), w=st.integers(40, 120), size=st.sampled_from([32, 48, 64]))
def test_full_training_pipeline_keeps_image_and_mask_aligned(seed: int, h: int, w: int, size: int) -> None:
    # Every geometric step always on (resize, flips, rotate90, Affine); colour steps are tested below.
    cfg = load_config(profile="smoke", overrides={
        "data": {"image_size": size},
        "augment": {"hflip": 1.0, "vflip": 1.0, "rotate90": 1.0, "shift_scale_rotate": 1.0, "color_jitter": 0.0, "noise": 0.0},
    })
    image, mask = painted(seed, h, w, size)
    out = apply_transform(get_transforms(cfg, train=True, seed=seed), image, mask.astype(np.int64))
    m = out["mask"].numpy()
    readback = np.rint(denormalize(out["image"])[..., 0] / 60.0).astype(int)
    inner = interior(m)
    assert inner.sum() > 0.1 * m.size
    assert (readback[inner] == m[inner]).mean() > 0.995
    assert set(np.unique(m)) <= {0, 1, 2, 3, IGNORE}


@FAST
@given(seed=st.integers(0, 10_000), h=st.integers(40, 120), w=st.integers(40, 120))
def test_colour_and_noise_steps_never_touch_the_mask(seed: int, h: int, w: int) -> None:
    cfg = load_config(profile="smoke", overrides={
        "augment": {"hflip": 0.0, "vflip": 0.0, "rotate90": 0.0, "shift_scale_rotate": 0.0, "color_jitter": 1.0, "noise": 1.0},
    })
    image, mask = painted(seed, h, w)
    plain = apply_transform(get_transforms(cfg, train=False), image, mask.astype(np.int64))
    jittered = apply_transform(get_transforms(cfg, train=True, seed=seed), image, mask.astype(np.int64))
    assert torch.equal(plain["mask"], jittered["mask"])
    assert not torch.equal(plain["image"], jittered["image"])


# ----------------------------------------------------------------------------- ignored pixels never count

LOSSES = [("dice", "binary"), ("bce", "binary"), ("dice_bce", "binary"), ("focal", "binary"),
          ("dice", "multiclass"), ("ce", "multiclass"), ("dice_ce", "multiclass"), ("focal", "multiclass")]


@settings(max_examples=25, deadline=None)
@given(
    which=st.sampled_from(LOSSES),
    seed=st.integers(0, 2**16),
    ignore_fraction=st.floats(0.0, 0.9),
    ignore_index=st.sampled_from([255, -1, 9]),
    garbage=st.floats(-1e3, 1e3, allow_nan=False),
)
def test_loss_is_invariant_to_ignored_pixels(which, seed, ignore_fraction, ignore_index, garbage) -> None:
    name, mode = which
    g = torch.Generator().manual_seed(seed)
    classes = 1 if mode == "binary" else 4
    logits = torch.randn(2, classes, 5, 7, generator=g) * 3
    target = torch.randint(0, 2 if mode == "binary" else classes, (2, 5, 7), generator=g)
    ignored = torch.rand(2, 5, 7, generator=g) < ignore_fraction
    ignored[0, 0, 0] = False  # at least one pixel counts
    target[ignored] = ignore_index
    loss_fn = create_loss(name, mode=mode, ignore_index=ignore_index)
    reference = loss_fn(logits, target)
    # 1. Whatever the model predicts on ignored pixels changes nothing.
    scrambled = torch.where(ignored.unsqueeze(1), torch.full_like(logits, garbage), logits)
    torch.testing.assert_close(loss_fn(scrambled, target), reference)
    # 2. The loss equals the loss over the counted pixels alone (gathered into one row).
    keep = ~ignored
    only = logits.permute(1, 0, 2, 3)[:, keep].reshape(1, classes, 1, -1)
    torch.testing.assert_close(loss_fn(only, target[keep].reshape(1, 1, -1)), reference)
