"""Tests for workshop.losses: hand-computed values, agreement with torch, ignore pixels, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workshop.losses import (
    LOSSES,
    BCEWithIgnore,
    CEWithIgnore,
    ComboLoss,
    DiceLoss,
    FocalLoss,
    create_loss,
)

LN3 = math.log(3.0)  # sigmoid(ln 3) = 0.75, sigmoid(-ln 3) = 0.25

# every (name, mode) pair create_loss accepts
VALID_COMBINATIONS = [
    ("dice", "binary"),
    ("bce", "binary"),
    ("dice_bce", "binary"),
    ("focal", "binary"),
    ("dice", "multiclass"),
    ("ce", "multiclass"),
    ("dice_ce", "multiclass"),
    ("focal", "multiclass"),
]


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64)


def random_batch(mode: str, seed: int = 0, n: int = 2, classes: int = 3, size: int = 6):
    """Random logits and target for a mode, with a few ignored (255) pixels."""
    gen = torch.Generator().manual_seed(seed)
    channels = 1 if mode == "binary" else classes
    num_classes = 2 if mode == "binary" else classes
    logits = torch.randn(n, channels, size, size, generator=gen)
    target = torch.randint(0, num_classes, (n, size, size), generator=gen)
    target[:, 0, :2] = 255
    return logits, target


def confident_logits(target: torch.Tensor, mode: str, classes: int = 3) -> torch.Tensor:
    """Logits of a model that is right and sure: +/-20 on every pixel."""
    if mode == "binary":
        return (target.float() * 40 - 20).unsqueeze(1)
    return F.one_hot(target, classes).permute(0, 3, 1, 2).float() * 40 - 20


def test_losses_tuple():
    assert LOSSES == ("dice", "bce", "dice_bce", "ce", "dice_ce", "focal")


# ----------------------------------------------------------------------------------------------
# Dice, by hand
# ----------------------------------------------------------------------------------------------
# logits (N, C, H, W), target (N, H, W), mode, expected loss with smooth = 1, computed by hand
DICE_TABLE = [
    pytest.param(
        # p = 0.5 everywhere; I = 0.5 + 0.5 = 1, sum_p = 2, sum_t = 2 -> 1 - (2 + 1) / (4 + 1)
        [[[[0.0, 0.0], [0.0, 0.0]]]], [[[1, 0], [0, 1]]], "binary", 1 - 3 / 5, id="binary-p-half"
    ),
    pytest.param(
        # p = .75, .25, .75, .25; I = .75, sum_p = 2, sum_t = 1 -> 1 - (1.5 + 1) / (3 + 1)
        [[[[LN3, -LN3, LN3, -LN3]]]], [[[1, 0, 0, 0]]], "binary", 1 - 2.5 / 4, id="binary-quarters"
    ),
    pytest.param(
        # the ignored pixel (p = .75, target 255) drops out: I = .75, sum_p = 1, sum_t = 1
        [[[[LN3, -LN3, LN3]]]], [[[1, 0, 255]]], "binary", 1 - 2.5 / 3, id="binary-ignore"
    ),
    pytest.param(
        # empty target and confident-empty prediction: (0 + 1) / (~0 + 0 + 1) -> loss ~0
        [[[[-30.0, -30.0]]]], [[[0, 0]]], "binary", 0.0, id="binary-empty-empty"
    ),
    pytest.param(
        # softmax of equal logits = 0.5 per class; each class: I = .5, sums 1 + 1 -> dice 2/3
        [[[[0.0, 0.0]], [[0.0, 0.0]]]], [[[0, 1]]], "multiclass", 1 - 2 / 3, id="multiclass-half"
    ),
    pytest.param(
        # class 0: p = [.75, .25], t = [1, 0] -> (1.5 + 1) / (1 + 1 + 1)
        # class 1: p = [.25, .75], t = [0, 1] -> same; mean dice 2.5 / 3
        [[[[LN3, 0.0]], [[0.0, LN3]]]], [[[0, 1]]], "multiclass", 1 - 2.5 / 3, id="multiclass-75"
    ),
]


@pytest.mark.parametrize(("logits", "target", "mode", "expected"), DICE_TABLE)
def test_dice_loss_by_hand(logits, target, mode, expected):
    loss = DiceLoss(mode, smooth=1.0)(torch.tensor(logits), t(target))
    assert loss.shape == ()
    assert loss.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_dice_loss_confident_and_right_is_near_zero(mode):
    _, target = random_batch(mode)
    target[target == 255] = 0
    loss = DiceLoss(mode)(confident_logits(target, mode), target)
    assert loss.item() < 1e-4


@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_dice_loss_confident_and_wrong_is_near_one(mode):
    target = t([[[0, 1, 1, 0]]]) if mode == "binary" else t([[[0, 1, 2, 2]]])
    wrong = (target + 1) % (2 if mode == "binary" else 3)
    loss = DiceLoss(mode, smooth=0.0)(confident_logits(wrong, mode), target)
    assert loss.item() == pytest.approx(1.0, abs=1e-6)


def test_dice_loss_float16_logits_do_not_overflow():
    # 90 000 pixels of p ~ 1: the sums overflow float16 (max 65 504) unless cast to float32
    logits = torch.full((1, 1, 300, 300), 10.0, dtype=torch.float16)
    loss = DiceLoss("binary")(logits, torch.ones(1, 300, 300, dtype=torch.int64))
    assert torch.isfinite(loss) and loss.item() < 1e-3


# ----------------------------------------------------------------------------------------------
# BCE / CE / focal against torch and by hand
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pos_weight", [None, 3.0])
def test_bce_equals_torch_bce_on_valid_pixels(pos_weight):
    logits, target = random_batch("binary", seed=1)
    valid = target != 255
    expected = F.binary_cross_entropy_with_logits(
        logits[:, 0][valid],
        target[valid].float(),
        pos_weight=None if pos_weight is None else torch.tensor(pos_weight),
    )
    loss = BCEWithIgnore(pos_weight=pos_weight)(logits, target)
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("weight", [None, [0.2, 1.0, 3.0]])
def test_ce_equals_torch_cross_entropy_with_ignore(weight):
    logits, target = random_batch("multiclass", seed=2)
    weight_t = None if weight is None else torch.tensor(weight)
    expected = nn.CrossEntropyLoss(weight=weight_t, ignore_index=255)(logits, target)
    torch.testing.assert_close(CEWithIgnore(weight=weight)(logits, target), expected)


def test_bce_by_hand():
    # logit 0 -> -ln 0.5 for either target; logit ln 3 with target 1 -> -ln 0.75
    loss = BCEWithIgnore()(torch.tensor([[[[0.0, LN3, 5.0]]]]), t([[[0, 1, 255]]]))
    assert loss.item() == pytest.approx((math.log(2) - math.log(0.75)) / 2)


@pytest.mark.parametrize(
    ("mode", "reference"),
    [
        ("binary", lambda x, y: BCEWithIgnore()(x, y)),
        ("multiclass", lambda x, y: CEWithIgnore()(x, y)),
    ],
)
def test_focal_with_gamma_zero_is_cross_entropy(mode, reference):
    logits, target = random_batch(mode, seed=3)
    focal = FocalLoss(mode, gamma=0.0)(logits, target)
    torch.testing.assert_close(focal, reference(logits, target))


# one pixel, logit 0 (binary) or equal logits (multiclass): p_t = 1/2 (binary) or 1/3 (3 classes)
FOCAL_TABLE = [
    pytest.param("binary", [[[[0.0]]]], [[[1]]], 2.0, None, 0.25 * math.log(2), id="binary-g2"),
    pytest.param("binary", [[[[0.0]]]], [[[1]]], 2.0, 0.25, 0.25 * 0.25 * math.log(2), id="binary-alpha-fg"),
    pytest.param("binary", [[[[0.0]]]], [[[0]]], 2.0, 0.25, 0.75 * 0.25 * math.log(2), id="binary-alpha-bg"),
    pytest.param("binary", [[[[0.0]]]], [[[1]]], 1.0, None, 0.5 * math.log(2), id="binary-g1"),
    pytest.param(
        "multiclass", [[[[0.0]], [[0.0]], [[0.0]]]], [[[2]]], 2.0, None,
        (2 / 3) ** 2 * math.log(3), id="multiclass-g2",
    ),
    pytest.param(
        "multiclass", [[[[0.0]], [[0.0]], [[0.0]]]], [[[2]]], 2.0, [1.0, 1.0, 0.5],
        0.5 * (2 / 3) ** 2 * math.log(3), id="multiclass-alpha",
    ),
]


@pytest.mark.parametrize(("mode", "logits", "target", "gamma", "alpha", "expected"), FOCAL_TABLE)
def test_focal_by_hand(mode, logits, target, gamma, alpha, expected):
    loss = FocalLoss(mode, gamma=gamma, alpha=alpha)(torch.tensor(logits), t(target))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_focal_down_weights_easy_pixels():
    easy = torch.tensor([[[[4.0]]]])  # confident and right
    target = t([[[1]]])
    ratio = FocalLoss(gamma=2.0)(easy, target) / BCEWithIgnore()(easy, target)
    assert ratio.item() == pytest.approx((1 - torch.sigmoid(easy)).item() ** 2, rel=1e-5)


# ----------------------------------------------------------------------------------------------
# ignore pixels, gradients, all-ignored batches: every loss the factory builds
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "mode"), VALID_COMBINATIONS)
def test_ignored_pixels_do_not_change_the_loss(name, mode):
    loss_fn = create_loss(name, mode=mode)
    logits, target = random_batch(mode, seed=4)
    target[..., -1] = 255  # ignore the last column everywhere
    with_ignored = loss_fn(logits, target)
    cropped = loss_fn(logits[..., :-1], target[..., :-1])
    torch.testing.assert_close(with_ignored, cropped)
    scrambled = logits.clone()
    scrambled[..., -1] = 100.0  # whatever the model says there, nothing changes
    torch.testing.assert_close(loss_fn(scrambled, target), with_ignored)


@pytest.mark.parametrize(("name", "mode"), VALID_COMBINATIONS)
def test_gradients_flow_and_skip_ignored_pixels(name, mode):
    logits, target = random_batch(mode, seed=5)
    logits.requires_grad_(True)
    loss = create_loss(name, mode=mode)(logits, target)
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    grad = logits.grad
    assert grad is not None and bool(torch.isfinite(grad).all())
    ignored = (target == 255).unsqueeze(1).expand_as(grad)
    assert bool((grad[ignored] == 0).all())
    assert float(grad[~ignored].abs().sum()) > 0


@pytest.mark.parametrize(("name", "mode"), VALID_COMBINATIONS)
def test_all_ignored_batch_gives_zero_not_nan(name, mode):
    logits, target = random_batch(mode, seed=6)
    target.fill_(255)
    logits.requires_grad_(True)
    loss = create_loss(name, mode=mode)(logits, target)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    loss.backward()
    assert bool((logits.grad == 0).all())


@pytest.mark.parametrize(("name", "mode"), VALID_COMBINATIONS)
def test_ignore_index_none_uses_every_pixel(name, mode):
    logits, target = random_batch(mode, seed=7)
    target[target == 255] = 0
    torch.testing.assert_close(
        create_loss(name, mode=mode, ignore_index=None)(logits, target),
        create_loss(name, mode=mode)(logits, target),
    )


@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_losses_accept_channel_target(mode):
    logits, target = random_batch(mode, seed=8)
    loss_fn = create_loss("focal", mode=mode)
    torch.testing.assert_close(loss_fn(logits, target.unsqueeze(1)), loss_fn(logits, target))


# ----------------------------------------------------------------------------------------------
# ComboLoss and the factory
# ----------------------------------------------------------------------------------------------
def test_combo_loss_is_weighted_sum():
    logits, target = random_batch("binary", seed=9)
    dice, bce = DiceLoss("binary"), BCEWithIgnore()
    combo = ComboLoss([dice, bce], [0.3, 2.0])
    expected = 0.3 * dice(logits, target) + 2.0 * bce(logits, target)
    torch.testing.assert_close(combo(logits, target), expected)


@pytest.mark.parametrize(
    ("name", "mode", "parts"),
    [
        ("dice", "binary", ["DiceLoss"]),
        ("bce", "binary", ["BCEWithIgnore"]),
        ("dice_bce", "binary", ["DiceLoss", "BCEWithIgnore"]),
        ("ce", "multiclass", ["CEWithIgnore"]),
        ("dice_ce", "multiclass", ["DiceLoss", "CEWithIgnore"]),
        ("focal", "multiclass", ["FocalLoss"]),
    ],
)
def test_create_loss_builds_the_named_loss(name, mode, parts):
    loss_fn = create_loss(name, mode=mode)
    modules = list(loss_fn.losses) if isinstance(loss_fn, ComboLoss) else [loss_fn]
    assert [type(m).__name__ for m in modules] == parts


def test_create_loss_passes_ignore_index():
    loss_fn = create_loss("dice_ce", mode="multiclass", ignore_index=0)
    assert all(part.ignore_index == 0 for part in loss_fn.losses)


def test_create_loss_class_weights():
    bce = create_loss("bce", class_weights=[2.0, 6.0])
    assert float(bce.pos_weight) == pytest.approx(3.0)
    focal = create_loss("focal", class_weights=[1.0, 3.0])
    assert float(focal.alpha) == pytest.approx(0.75)
    ce = create_loss("ce", mode="multiclass", class_weights=[0.5, 1.0, 2.0])
    assert ce.weight.tolist() == [0.5, 1.0, 2.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "jaccard"}, "valid names: dice, bce, dice_bce, ce, dice_ce, focal"),
        ({"name": "dice", "mode": "multilabel"}, "valid modes: binary, multiclass"),
        ({"name": "bce", "mode": "multiclass"}, "fits mode='binary'.*dice, ce, dice_ce, focal"),
        ({"name": "dice_bce", "mode": "multiclass"}, "fits mode='binary'"),
        ({"name": "ce", "mode": "binary"}, "fits mode='multiclass'.*dice, bce, dice_bce, focal"),
        ({"name": "dice_ce", "mode": "binary"}, "fits mode='multiclass'"),
        ({"name": "dice", "class_weights": [1.0, 2.0]}, "takes no class_weights"),
        ({"name": "bce", "class_weights": [1.0, 2.0, 3.0]}, r"\[background, foreground\]"),
        ({"name": "ce", "mode": "multiclass", "class_weights": [1.0, -1.0]}, "non-negative"),
    ],
    ids=[
        "unknown-name", "unknown-mode", "bce-multiclass", "dice_bce-multiclass", "ce-binary",
        "dice_ce-binary", "dice-weights", "binary-weights-length", "negative-weights",
    ],
)
def test_create_loss_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        create_loss(**kwargs)


@pytest.mark.parametrize(
    "make",
    [
        lambda: DiceLoss("softmax"),
        lambda: FocalLoss("sigmoid"),
    ],
    ids=["dice", "focal"],
)
def test_loss_classes_reject_unknown_mode(make):
    with pytest.raises(ValueError, match="valid modes: binary, multiclass"):
        make()


@pytest.mark.parametrize(
    ("loss_fn", "logits", "target", "message"),
    [
        (DiceLoss("binary"), torch.zeros(1, 2, 2, 2), t([[[0, 1], [1, 0]]]), "mode='multiclass'"),
        (DiceLoss("multiclass"), torch.zeros(1, 1, 2, 2), t([[[0, 1], [1, 0]]]), "mode='binary'"),
        (BCEWithIgnore(), torch.zeros(1, 1, 1, 2), t([[[0, 2]]]), r"values \[2\]"),
        (CEWithIgnore(), torch.zeros(1, 3, 1, 2), t([[[0, 3]]]), r"values \[3\].*0\.\.2"),
        (CEWithIgnore(), torch.zeros(1, 3, 1, 2), torch.zeros(1, 1, 2), "int64"),
        (CEWithIgnore(), torch.zeros(1, 3, 1, 2), t([[0, 1]]), r"\(N, H, W\)"),
        (CEWithIgnore(weight=[1.0, 2.0]), torch.zeros(1, 3, 1, 2), t([[[0, 1]]]), "3 classes"),
        (FocalLoss("multiclass", alpha=[1.0]), torch.zeros(1, 3, 1, 2), t([[[0, 1]]]), "one weight per class"),
        (DiceLoss("binary"), torch.zeros(1, 2, 2), t([[0, 1]]), r"\(N, C, H, W\)"),
    ],
    ids=[
        "binary-2-channels", "multiclass-1-channel", "binary-target-2", "ce-target-3",
        "float-target", "target-shape", "ce-weight-length", "focal-alpha-length", "3d-logits",
    ],
)
def test_losses_reject_bad_input(loss_fn, logits, target, message):
    with pytest.raises(ValueError, match=message):
        loss_fn(logits, target)


def test_focal_binary_alpha_out_of_range():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        FocalLoss("binary", alpha=1.5)


def test_combo_loss_weight_count_must_match():
    with pytest.raises(ValueError, match="one weight per loss"):
        ComboLoss([DiceLoss(), BCEWithIgnore()], [1.0])
