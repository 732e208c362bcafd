"""Exercises of notebooks/06_train_val_functions.ipynb: dice_loss, iou_score, train_one_epoch.

For each: the reference (the library's function) passes, the untouched stub fails with "not implemented
yet", and plausible wrong answers fail with a message that names the mistake. The library functions
behind the references are tested against the library's other implementations too.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from workshop import tasks
from workshop.engine import fit_hooks, train_one_epoch
from workshop.losses import DiceLoss, dice_loss
from workshop.metrics import SegmentationMetrics, iou_score


def stub(name: str):
    namespace: dict = {}
    exec(tasks.get_exercise(name).stub, namespace)
    return namespace[name]


def fails_with(name: str, candidate, words: list[str]) -> None:
    verdict = tasks.get_exercise(name).run_checks(candidate)
    assert not verdict.passed, f"{candidate.__name__} passed"
    for word in words:
        assert word in verdict.message, verdict.message


# =============================================================== dice_loss: wrong answers


def dice_without_smooth(logits, target, smooth=1.0):
    p = torch.sigmoid(logits)
    t = target.unsqueeze(1).float()
    return 1 - 2 * (p * t).sum() / (p.sum() + t.sum())


def dice_on_logits(logits, target, smooth=1.0):
    p = logits  # no sigmoid
    t = target.unsqueeze(1).float()
    return 1 - (2 * (p * t).sum() + smooth) / (p.sum() + t.sum() + smooth)


def dice_per_pixel(logits, target, smooth=1.0):
    """Takes the Dice ratio of every pixel, then the mean: not the Dice of the mask."""
    p = torch.sigmoid(logits)
    t = target.unsqueeze(1).float()
    return 1 - ((2 * p * t + smooth) / (p + t + smooth)).mean()


def dice_fixed_smooth(logits, target, smooth=1.0):
    p = torch.sigmoid(logits)
    t = target.unsqueeze(1).float()
    return 1 - (2 * (p * t).sum() + 1.0) / (p.sum() + t.sum() + 1.0)


def dice_per_image_mean(logits, target, smooth=1.0):
    p = torch.sigmoid(logits)
    t = target.unsqueeze(1).float()
    dims = (1, 2, 3)
    return (1 - (2 * (p * t).sum(dims) + smooth) / (p.sum(dims) + t.sum(dims) + smooth)).mean()


def dice_broadcast(logits, target, smooth=1.0):
    """Forgets the channel axis: (N, 1, H, W) * (N, H, W) broadcasts to (N, N, H, W)."""
    p = torch.sigmoid(logits)
    t = target.float()
    return 1 - (2 * (p * t).sum() + smooth) / (p.sum() + t.sum() + smooth)


def dice_thresholded(logits, target, smooth=1.0):
    p = (torch.sigmoid(logits) > 0.5).float()
    t = target.unsqueeze(1).float()
    return 1 - (2 * (p * t).sum() + smooth) / (p.sum() + t.sum() + smooth)


def dice_item(logits, target, smooth=1.0):
    return dice_loss(logits, target, smooth).item()


DICE_WRONG = [
    (dice_without_smooth, ["value on a 2x2 example", "0.3750", "without the smoothing term"]),
    (dice_on_logits, ["value on a 2x2 example", "below 0", "no sigmoid"]),
    (dice_per_pixel, ["value on a 2x2 example", "0.3000", "mean of per-pixel ratios"]),
    (dice_fixed_smooth, ["the smooth argument", "`smooth` argument is ignored"]),
    (dice_per_image_mean, ["sums over the batch", "mean of per-image losses"]),
    (dice_broadcast, ["sums over the batch", "the target (N, H, W) broadcasts against the logits"]),
    (dice_thresholded, ["has a gradient", "a thresholded mask (p > 0.5) has no gradient"]),
    (dice_item, ["has a gradient", "float without grad", "a Python number (.item())"]),
]


@pytest.mark.parametrize(("wrong", "words"), DICE_WRONG, ids=[w.__name__ for w, _ in DICE_WRONG])
def test_dice_loss_wrong_answers(wrong, words) -> None:
    fails_with("dice_loss", wrong, words)


def test_dice_without_smooth_gives_nan_on_truly_empty_masks() -> None:
    """Why the smoothing term matters: with p exactly 0 and no target, 0 / 0."""
    logits = torch.full((1, 1, 2, 2), -math.inf)
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    assert math.isnan(dice_without_smooth(logits, target).item())
    assert dice_loss(logits, target).item() == 0.0


# =============================================================== dice_loss: the library function


@pytest.mark.parametrize(
    ("logits", "target", "smooth", "expected"),
    [
        ([[[[0.0, 0.0], [0.0, 0.0]]]], [[[1, 0], [0, 0]]], 1.0, 1 - 2 / 4),  # p = .5: (1 + 1) / (2 + 1 + 1)
        ([[[[math.log(3), 0.0], [0.0, -math.log(3)]]]], [[[1, 1], [0, 0]]], 1.0, 1 - 3.5 / 5),
        ([[[[math.log(3), 0.0], [0.0, -math.log(3)]]]], [[[1, 1], [0, 0]]], 0.0, 1 - 2.5 / 4),
        ([[[[20.0, 20.0]]]], [[[1, 1]]], 1.0, 0.0),
    ],
)
def test_dice_loss_by_hand(logits, target, smooth, expected) -> None:
    loss = dice_loss(torch.tensor(logits), torch.tensor(target), smooth)
    assert loss.shape == () and loss.item() == pytest.approx(expected, abs=1e-6)


def test_diceloss_binary_is_dice_loss_on_the_valid_pixels() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 8, 8, generator=g, requires_grad=True)
    target = torch.randint(0, 2, (3, 8, 8), generator=g)
    assert DiceLoss("binary")(logits, target).item() == pytest.approx(dice_loss(logits, target).item(), abs=1e-6)
    ignored = target.clone()
    ignored[:, :2] = 255
    loss = DiceLoss("binary")(logits, ignored)
    expected = dice_loss(logits[:, :, 2:], target[:, 2:])
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    loss.backward()
    assert torch.all(logits.grad[:, :, :2] == 0) and torch.isfinite(logits.grad).all()


# =============================================================== iou_score


def iou_on_logits(logits, target, threshold=0.5):
    """Soft IoU on raw logits instead of thresholded predictions."""
    t = target.unsqueeze(1).float()
    inter = (logits * t).sum()
    union = logits.sum() + t.sum() - inter
    return 1.0 if union == 0 else (inter / union).item()


def iou_threshold_on_logits(logits, target, threshold=0.5):
    pred = logits > threshold
    truth = target.unsqueeze(1) == 1
    union = (pred | truth).sum().item()
    return 1.0 if union == 0 else (pred & truth).sum().item() / union


def dice_instead_of_iou(logits, target, threshold=0.5):
    pred = torch.sigmoid(logits) > threshold
    truth = target.unsqueeze(1) == 1
    total = pred.sum().item() + truth.sum().item()
    return 1.0 if total == 0 else 2 * (pred & truth).sum().item() / total


def iou_zero_division(logits, target, threshold=0.5):
    pred = torch.sigmoid(logits) > threshold
    truth = target.unsqueeze(1) == 1
    return (pred & truth).sum().item() / (pred | truth).sum().item()


def iou_mean_per_image(logits, target, threshold=0.5):
    pred = torch.sigmoid(logits) > threshold
    truth = target.unsqueeze(1) == 1
    scores = []
    for p, t in zip(pred, truth):
        union = (p | t).sum().item()
        scores.append(1.0 if union == 0 else (p & t).sum().item() / union)
    return sum(scores) / len(scores)


def iou_fixed_threshold(logits, target, threshold=0.5):
    return iou_score(logits, target, 0.5)


IOU_WRONG = [
    (iou_on_logits, ["value on a 4-pixel example", "thresholded prediction"]),
    (iou_threshold_on_logits, ["threshold on probabilities", "0.3333", "compared with the logits"]),
    (dice_instead_of_iou, ["value on a 4-pixel example", "0.5000", "Dice score"]),
    (iou_zero_division, ["both empty", "ZeroDivisionError", "nothing handles that case"]),
    (iou_mean_per_image, ["counts over the batch", "mean of per-image IoUs"]),
    (iou_fixed_threshold, ["threshold on probabilities", "threshold 0.7", "`threshold` argument is ignored"]),
]


@pytest.mark.parametrize(("wrong", "words"), IOU_WRONG, ids=[w.__name__ for w, _ in IOU_WRONG])
def test_iou_score_wrong_answers(wrong, words) -> None:
    fails_with("iou_score", wrong, words)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_iou_score_equals_the_confusion_matrix_iou(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(4, 1, 16, 16, generator=g)
    target = torch.randint(0, 2, (4, 16, 16), generator=g)
    target[0, :3] = 255
    metrics = SegmentationMetrics(num_classes=2)
    metrics.update(logits, target)
    assert iou_score(logits, target) == pytest.approx(metrics.compute()["iou"], abs=1e-12)


@pytest.mark.parametrize(
    ("logits", "target", "threshold", "expected"),
    [
        ([[[[3.0, 3.0, -3.0, -3.0]]]], [[[1, 0, 1, 0]]], 0.5, 1 / 3),
        ([[[[0.3, 0.3, -2.0, 2.0]]]], [[[1, 1, 0, 1]]], 0.5, 1.0),
        ([[[[0.3, 0.3, -2.0, 2.0]]]], [[[1, 1, 0, 1]]], 0.7, 1 / 3),
        ([[[[-5.0, -5.0]]]], [[[0, 0]]], 0.5, 1.0),  # both empty
        ([[[[5.0, -5.0]]]], [[[255, 0]]], 0.5, 1.0),  # the only predicted pixel is ignored
    ],
)
def test_iou_score_by_hand(logits, target, threshold, expected) -> None:
    assert iou_score(torch.tensor(logits), torch.tensor(target), threshold) == pytest.approx(expected)


def test_dice_and_iou_stubs_are_not_implemented() -> None:
    for name in ("dice_loss", "iou_score", "train_one_epoch"):
        verdict = tasks.get_exercise(name).run_checks(stub(name))
        assert not verdict.passed and "not implemented yet" in verdict.message


# =============================================================== train_one_epoch


def epoch_without_zero_grad(model, loader, loss_fn, optimizer, device):
    model.train()
    total = 0.0
    for batch in loader:
        loss = loss_fn(model(batch["image"].to(device)), batch["mask"].to(device))
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(loader)


def epoch_without_train_mode(model, loader, loss_fn, optimizer, device):
    total = 0.0
    for batch in loader:
        loss = loss_fn(model(batch["image"].to(device)), batch["mask"].to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(loader)


def epoch_returning_the_sum(model, loader, loss_fn, optimizer, device):
    model.train()
    total = 0.0
    for batch in loader:
        loss = loss_fn(model(batch["image"].to(device)), batch["mask"].to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total


def epoch_without_step(model, loader, loss_fn, optimizer, device):
    model.train()
    total = 0.0
    for batch in loader:
        loss = loss_fn(model(batch["image"].to(device)), batch["mask"].to(device))
        optimizer.zero_grad()
        loss.backward()
        total += loss.item()
    return total / len(loader)


def epoch_returning_a_tensor(model, loader, loss_fn, optimizer, device):
    model.train()
    total = 0.0
    for batch in loader:
        loss = loss_fn(model(batch["image"].to(device)), batch["mask"].to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total = total + loss
    return total / len(loader)


def epoch_returning_the_last_loss(model, loader, loss_fn, optimizer, device):
    model.train()
    for batch in loader:
        loss = loss_fn(model(batch["image"].to(device)), batch["mask"].to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


EPOCH_WRONG = [
    (epoch_without_zero_grad, ["weights after two steps", "[0.6, 0.6, 0.5]", "never cleared"]),
    (epoch_without_train_mode, ["training mode", "stayed in the eval mode"]),
    (epoch_returning_the_sum, ["mean loss", "7.1000", "sum of the batch losses"]),
    (epoch_without_step, ["mean loss", "3.5000", "no optimiser step"]),
    (epoch_returning_a_tensor, ["mean loss", "added up as tensors", "graph in memory"]),
    (epoch_returning_the_last_loss, ["mean loss", "1.1000", "one batch's loss"]),
]


@pytest.mark.parametrize(("wrong", "words"), EPOCH_WRONG, ids=[w.__name__ for w, _ in EPOCH_WRONG])
def test_train_one_epoch_wrong_answers(wrong, words) -> None:
    fails_with("train_one_epoch", wrong, words)


def test_reference_answers_pass_and_are_the_library() -> None:
    for name, ref in (("dice_loss", dice_loss), ("iou_score", iou_score), ("train_one_epoch", train_one_epoch)):
        ex = tasks.get_exercise(name)
        assert ex.reference is ref
        assert ex.run_checks(ex.reference).passed, ex.run_checks(ex.reference).message


def test_fits_hooks_add_checks_and_metrics_without_changing_the_training() -> None:
    """Same data, same start: the plain loop and the loop with fit's hooks (CPU: no mixed precision,
    no schedule) end with the same weights and the same mean loss; the hooks also counted the steps."""
    g = torch.Generator().manual_seed(0)
    images = torch.randn(8, 3, 8, 8, generator=g)
    masks = torch.randint(0, 2, (8, 8, 8), generator=g)
    loader = DataLoader([{"image": i, "mask": m} for i, m in zip(images, masks)], batch_size=4)
    torch.manual_seed(0)
    first = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 1, 1))
    second = copy.deepcopy(first)
    loss_fn = DiceLoss("binary")
    simple = train_one_epoch(first, loader, loss_fn, torch.optim.SGD(first.parameters(), lr=0.1), "cpu")
    optimizer = torch.optim.SGD(second.parameters(), lr=0.1)
    hooks = fit_hooks(optimizer, "cpu", amp=True)
    full = train_one_epoch(second, loader, loss_fn, optimizer, "cpu", hooks)
    assert isinstance(simple, float) and simple == full
    assert hooks.epoch_summary()["steps"] == 2 and 0 <= hooks.epoch_summary()["iou"] <= 1
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)


def test_train_one_epoch_learns() -> None:
    g = torch.Generator().manual_seed(1)
    masks = torch.randint(0, 2, (8, 8, 8), generator=g)
    images = (2 * masks.float() - 1).unsqueeze(1).expand(8, 3, 8, 8) + 0.1 * torch.randn(8, 3, 8, 8, generator=g)
    loader = DataLoader(TensorDataset(images, masks), batch_size=4)
    loader = [{"image": i, "mask": m} for i, m in loader]
    torch.manual_seed(0)
    model = nn.Conv2d(3, 1, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    losses = [train_one_epoch(model, loader, DiceLoss("binary"), opt) for _ in range(10)]
    assert losses[-1] < losses[0] * 0.5


@pytest.mark.parametrize("name", ["dice_loss", "iou_score", "train_one_epoch"])
@pytest.mark.parametrize("n", [0, 4])
def test_hint_out_of_range(name: str, n: int) -> None:
    with pytest.raises(ValueError, match="hints 1..3"):
        tasks.get_exercise(name).hint(n)
