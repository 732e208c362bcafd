"""Exercises of notebooks/06_train_val_functions.ipynb: the loss, the metric and the training loop.

Every check uses inputs small enough to work out by hand; the expected numbers are written next to
them (``p`` = sigmoid(logit): sigmoid(ln 3) = 0.75, sigmoid(0) = 0.5, sigmoid(-ln 3) = 0.25).

Taught in: notebooks/06_train_val_functions.ipynb
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from workshop.engine import train_one_epoch
from workshop.losses import dice_loss
from workshop.metrics import iou_score
from workshop.tasks.core import Check, CheckFailure, Exercise, expect

LN3 = math.log(3.0)


def _number(value: Any, what: str, hint: int) -> float:
    """``value`` as a float, or a CheckFailure that says what came back instead."""
    if isinstance(value, Tensor):
        expect(value.numel() == 1, f"{what} to be a single number", f"a tensor of shape {tuple(value.shape)}", hint=hint)
        return float(value.detach())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise CheckFailure(f"{what} to be a number", f"{type(value).__name__}", hint)


def _near(found: float, expected: float, tol: float = 1e-4) -> bool:
    return math.isfinite(found) and abs(found - expected) <= tol


# ============================================================================ dice_loss

DICE_LOSS_STUB = '''import torch


def dice_loss(logits, target, smooth=1.0):
    """Binary soft Dice loss: 1 - (2 * sum(p * t) + smooth) / (sum(p) + sum(t) + smooth).

    p = torch.sigmoid(logits): the foreground probability of every pixel.
    t = the target as floats (0.0 or 1.0), shaped like p.
    The sums run over the whole batch: every pixel of every image.

    Shape: logits (N, 1, H, W) float, target (N, H, W) int64 -> a scalar tensor.
    """
    # your code here (about 5 lines)
    raise NotImplementedError("your code here")'''


def _dice_example() -> tuple[Tensor, Tensor]:
    """p = [[0.75, 0.5], [0.5, 0.25]], t = [[1, 1], [0, 0]]: sum(p t) = 1.25, sum(p) = 2, sum(t) = 2."""
    logits = torch.tensor([[[[LN3, 0.0], [0.0, -LN3]]]], requires_grad=True)
    return logits, torch.tensor([[[1, 1], [0, 0]]])


def _dice_diagnosis(found: float, no_smooth: float) -> str:
    if _near(found, no_smooth):
        return f"{found:.4f} -> that is the loss without the smoothing term: smooth is in neither the numerator nor the denominator"
    per_pixel = 1 - (2.5 / 2.75 + 2 / 2.5 + 1 / 1.5 + 1 / 1.25) / 4  # mean of the 4 pixels' own ratios
    if _near(found, per_pixel):
        return f"{found:.4f} -> that is a mean of per-pixel ratios, not one ratio of sums over all the pixels"
    if math.isfinite(found) and found < 0:
        return f"{found:.4f}: a Dice loss below 0 means p is not a probability -> the logits were used as probabilities (no sigmoid)"
    return f"{found:.4f}"


def _check_dice_value(candidate) -> None:
    logits, target = _dice_example()
    found = _number(candidate(logits, target, smooth=1.0), "dice_loss(...)", hint=1)
    # 1 - (2 * 1.25 + 1) / (2 + 2 + 1) = 1 - 3.5 / 5 = 0.3
    expect(_near(found, 0.3), "a loss of 0.3000 for p = [[0.75, 0.5], [0.5, 0.25]], t = [[1, 1], [0, 0]], smooth=1 "
           "(1 - 3.5 / 5)", _dice_diagnosis(found, 0.375), hint=2)


def _check_dice_smooth_argument(candidate) -> None:
    logits, target = _dice_example()
    found = _number(candidate(logits, target, smooth=0.0), "dice_loss(...)", hint=1)
    # 1 - 2 * 1.25 / 4 = 0.375
    expect(_near(found, 0.375), "a loss of 0.3750 for the same example with smooth=0 (1 - 2.5 / 4)",
           f"{found:.4f} -> the `smooth` argument is ignored: a fixed number is used instead", hint=2)


def _check_dice_empty(candidate) -> None:
    logits = torch.full((1, 1, 4, 4), -30.0)  # p ~ 1e-13: nothing predicted
    target = torch.zeros(1, 4, 4, dtype=torch.long)  # nothing to find
    found = _number(candidate(logits, target, smooth=1.0), "dice_loss(...)", hint=1)
    expect(_near(found, 0.0, 1e-6), "a loss of about 0.0 for an empty mask predicted empty (nothing to find, "
           "nothing found: a perfect answer)",
           f"{found:.4f} -> smooth is missing from the numerator or the denominator (with both, this case is "
           "(0 + 1) / (0 + 1) = 1, a loss of 0)", hint=1)


def _check_dice_batch(candidate) -> None:
    # image 1: p = [0.75, 0.25], t = [1, 0]; image 2: p = [0.5, 0.5], t = [1, 1]
    logits = torch.tensor([[[[LN3, -LN3]]], [[[0.0, 0.0]]]])
    target = torch.tensor([[[1, 0]], [[1, 1]]])
    found = _number(candidate(logits, target, smooth=1.0), "dice_loss(...)", hint=1)
    # whole batch: sum(p t) = 1.75, sum(p) = 2, sum(t) = 3 -> 1 - 4.5 / 6 = 0.25
    if _near(found, 1 - (2.5 / 3 + 3 / 4) / 2):
        why = " -> that is the mean of per-image losses, not one ratio of sums over the whole batch"
    else:
        why = (" -> the target (N, H, W) broadcasts against the logits (N, 1, H, W): p * target is (N, N, H, W), "
               "every image multiplied with every other image's target")
    expect(_near(found, 0.25), "a loss of 0.2500 for a batch of 2 images (sums over the batch: 1 - 4.5 / 6)",
           f"{found:.4f}{why}", hint=2)


def _check_dice_gradient(candidate) -> None:
    logits, target = _dice_example()
    loss = candidate(logits, target, smooth=1.0)
    expect(isinstance(loss, Tensor) and loss.requires_grad, "a tensor with a gradient (training calls loss.backward())",
           lambda: f"{type(loss).__name__} without grad -> the graph was cut on the way: a Python number (.item()) "
           "or a thresholded mask (p > 0.5) has no gradient", hint=2)
    loss.backward()
    grad = logits.grad
    expect(grad is not None and bool(grad.abs().sum() > 0), "a non-zero gradient on the logits",
           "no gradient reached the logits -> the loss was not computed from the logits it was given", hint=2)


DICE_LOSS = Exercise(
    name="dice_loss",
    notebook="06_train_val_functions.ipynb",
    stub=DICE_LOSS_STUB,
    reference=dice_loss,
    checks=[
        Check("has a gradient", _check_dice_gradient),
        Check("value on a 2x2 example", _check_dice_value),
        Check("the smooth argument", _check_dice_smooth_argument),
        Check("empty mask predicted empty", _check_dice_empty),
        Check("sums over the batch", _check_dice_batch),
    ],
    hints=[
        "Dice compares the soft prediction p with the target t over the whole batch: three sums over every "
        "pixel of every image, of p * t (the soft intersection), of p and of t, then one ratio. smooth goes "
        "into the numerator and the denominator, so an empty mask predicted empty gives (0 + 1) / (0 + 1) = 1, "
        "a loss of 0. Stay with tensors of probabilities all the way: training needs the gradient.",
        "p = torch.sigmoid(logits) is (N, 1, H, W) but target is (N, H, W): target.unsqueeze(1).float() gives it "
        "the channel axis, so p * t multiplies pixel by pixel instead of broadcasting to (N, N, H, W). "
        ".sum() with no argument sums everything.",
        "p = torch.sigmoid(logits); t = target.unsqueeze(1).float(); "
        "return 1 - (2 * (p * t).sum() + smooth) / (p.sum() + t.sum() + smooth)",
    ],
)

# ============================================================================ iou_score

IOU_SCORE_STUB = '''import torch


def iou_score(logits, target, threshold=0.5):
    """Foreground IoU of a binary model over a whole batch: |P and T| / |P or T|.

    P: the pixels whose probability sigmoid(logits) is above `threshold`.
    T: the pixels where target == 1.
    Count over every pixel of every image. When P and T are both empty, return 1.0.

    Shape: logits (N, 1, H, W) float, target (N, H, W) int64 -> a Python float.
    """
    # your code here (about 5 lines)
    raise NotImplementedError("your code here")'''


def _row(values: list[float]) -> Tensor:
    """A (1, 1, 1, W) logits tensor from one row of values."""
    return torch.tensor(values).reshape(1, 1, 1, -1)


def _iou(candidate, logits: Tensor, target: Tensor, **kwargs: Any) -> float:
    """Call the learner's iou_score and insist on a Python float, as the notebook's later cells use it."""
    value = candidate(logits, target, **kwargs)
    if isinstance(value, Tensor):
        raise CheckFailure("a Python float (the later cells format it, average it and store it in the history)",
                           f"a tensor ({value!r}) -> the counts were divided as tensors, never turned into Python numbers", 2)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CheckFailure("a Python float", type(value).__name__, 1)
    if isinstance(value, int):
        raise CheckFailure("a Python float (IoU is a fraction)", f"the int {value} -> an integer division (`//` "
                           "rounds down to a whole number), or a whole 1 for the empty case", 2)
    return float(value)


def _floor_divides(candidate) -> bool:
    """True when the answers look rounded down: 0 where the IoU is 1/2, 1 where it is 1."""
    try:
        half = candidate(_row([2.0, -1.0]), torch.tensor([[[1, 1]]]))
        whole = candidate(_row([2.0, 2.0]), torch.tensor([[[1, 1]]]))
        return float(half) == 0.0 and float(whole) == 1.0
    except Exception:  # noqa: BLE001 - only a diagnosis; the check itself reports the failure
        return False


def _check_iou_value(candidate) -> None:
    # predicted 1 1 0 0, target 1 0 1 0: intersection 1, union 3
    found = _iou(candidate, _row([3.0, 3.0, -3.0, -3.0]), torch.tensor([[[1, 0, 1, 0]]]))
    if found == 0.0 and _floor_divides(candidate):
        why = " -> 1 pixel shared out of 3 was rounded down to 0 by integer division (`//`)"
    elif _near(found, 0.5):
        why = " -> that is the Dice score 2|P and T| / (|P| + |T|), not the intersection over the union"
    else:
        why = " -> not the intersection over the union of the thresholded prediction and the target"
    expect(_near(found, 1 / 3), "IoU 0.3333 for predicted [1, 1, 0, 0] and target [1, 0, 1, 0] (1 pixel shared, "
           "3 in the union)", f"{found:.4f}{why}", hint=2)


def _check_iou_threshold(candidate) -> None:
    # sigmoid(0.3) = 0.574, sigmoid(2) = 0.881, sigmoid(-2) = 0.119
    logits = _row([0.3, 0.3, -2.0, 2.0])
    target = torch.tensor([[[1, 1, 0, 1]]])
    found = _iou(candidate, logits, target, threshold=0.5)
    expect(_near(found, 1.0), "IoU 1.0000 for logits [0.3, 0.3, -2, 2] (probabilities 0.57, 0.57, 0.12, 0.88) "
           "against target [1, 1, 0, 1] at threshold 0.5",
           f"{found:.4f} -> the threshold was compared with the logits, but it is a probability", hint=2)
    found = _iou(candidate, logits, target, threshold=0.7)
    expect(_near(found, 1 / 3), "IoU 0.3333 for the same example at threshold 0.7 (only 0.88 is above it)",
           f"{found:.4f} -> the `threshold` argument is ignored", hint=2)


def _check_iou_empty(candidate) -> None:
    logits = torch.full((1, 1, 2, 2), -5.0)
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    try:
        found = _iou(candidate, logits, target)
    except ZeroDivisionError:
        raise CheckFailure("1.0 when the prediction and the target are both empty", "ZeroDivisionError -> "
                           "the union is 0 here (nothing to find, nothing found) and nothing handles that case", 3) from None
    expect(_near(found, 1.0), "1.0 when the prediction and the target are both empty (a perfect answer)",
           f"{found} -> the union is 0 here: nothing to find and nothing found is a perfect answer", hint=3)


def _check_iou_batch(candidate) -> None:
    # image 1: P = {0}, T = {0} (IoU 1); image 2: P = {0, 1}, T = {2} (IoU 0); batch: 1 / 4
    logits = torch.tensor([[[[4.0, -4.0, -4.0]]], [[[4.0, 4.0, -4.0]]]])
    target = torch.tensor([[[1, 0, 0]], [[0, 0, 1]]])
    found = _iou(candidate, logits, target)
    why = (" -> that is the mean of per-image IoUs, not one ratio of the counts over the whole batch"
           if _near(found, 0.5) else "")
    expect(_near(found, 0.25), "IoU 0.2500 for a batch of 2 images (intersection 1, union 4 over the batch)",
           f"{found:.4f}{why}", hint=2)


def _check_iou_channel(candidate) -> None:
    # image 1: P = T = {0} (IoU 1); image 2: P and T empty. Batch: intersection 1, union 1 -> 1.0.
    # Without target.unsqueeze(1), (N, 1, H, W) against (N, H, W) broadcasts to (N, N, H, W): every
    # prediction is compared with every target -> intersection 1, union 3 -> 1/3.
    logits = torch.tensor([[[[4.0, -4.0]]], [[[-4.0, -4.0]]]])
    target = torch.tensor([[[1, 0]], [[0, 0]]])
    found = _iou(candidate, logits, target)
    why = (" -> the target (N, H, W) broadcasts against the prediction (N, 1, H, W) to (N, N, H, W): every "
           "image is compared with every other image's target"
           if _near(found, 1 / 3) else "")
    expect(_near(found, 1.0), "IoU 1.0000 for a batch of 2 images each predicted exactly (logits (2, 1, 1, 2), "
           "target (2, 1, 2))", f"{found:.4f}{why}", hint=2)


IOU_SCORE = Exercise(
    name="iou_score",
    notebook="06_train_val_functions.ipynb",
    stub=IOU_SCORE_STUB,
    reference=iou_score,
    checks=[
        Check("value on a 4-pixel example", _check_iou_value),
        Check("threshold on probabilities", _check_iou_threshold),
        Check("both empty", _check_iou_empty),
        Check("counts over the batch", _check_iou_batch),
        Check("target (N, H, W) against logits (N, 1, H, W)", _check_iou_channel),
    ],
    hints=[
        "Two True/False masks of the same shape: the prediction (probabilities above the threshold) and the "
        "truth (target == 1). Count over the whole batch the pixels True in both (the intersection) and in "
        "either (the union), then divide once. An empty union means nothing to find and nothing found: 1.0.",
        "torch.sigmoid(logits) > threshold is (N, 1, H, W); target.unsqueeze(1) == 1 has the same shape (without "
        "unsqueeze, (N, H, W) broadcasts to (N, N, H, W)). (a & b).sum() and (a | b).sum() count pixels; "
        ".item() turns a count into a Python number, and / divides without rounding (// rounds down).",
        "pred = torch.sigmoid(logits) > threshold; truth = target.unsqueeze(1) == 1; "
        "union = (pred | truth).sum().item(); "
        "return 1.0 if union == 0 else (pred & truth).sum().item() / union",
    ],
)

# ============================================================================ train_one_epoch

TRAIN_ONE_EPOCH_STUB = '''def train_one_epoch(model, loader, loss_fn, optimizer, device):
    """Train `model` for one pass over `loader`; return the mean of the batch losses (a float).

    For every batch (a dict with "image" and "mask"): move both to `device`, compute the
    logits and the loss, clear the old gradients, back-propagate, take an optimiser step.
    Remember to put the model in training mode first.
    """
    # your code here (about 10 lines)
    raise NotImplementedError("your code here")'''


class _ModeRecorder(nn.Module):
    """Passes its input through and records whether the model was in training mode."""

    def __init__(self) -> None:
        super().__init__()
        self.modes: list[bool] = []

    def forward(self, x: Tensor) -> Tensor:
        self.modes.append(self.training)
        return x


class _ConstantImages(Dataset):
    """4 images of 2x2 pixels, each channel constant: [1, 2, 3], [1, 2, 3], [2, 0, -1], [2, 0, -1]."""

    VALUES = ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [2.0, 0.0, -1.0], [2.0, 0.0, -1.0])

    def __len__(self) -> int:
        return len(self.VALUES)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        image = torch.tensor(self.VALUES[i]).reshape(3, 1, 1).expand(3, 2, 2).clone()
        return {"image": image, "mask": torch.zeros(2, 2, dtype=torch.long)}


def _mean_logit(logits: Tensor, masks: Tensor) -> Tensor:
    """A loss whose gradient is known by hand: the mean logit (masks unused)."""
    return logits.mean()


class _RecordingSGD(torch.optim.SGD):
    """SGD that writes "zero_grad" and "step" into ``events`` when called."""

    def __init__(self, params: Any, events: list[str], lr: float) -> None:
        super().__init__(params, lr=lr)
        self.events = events

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.events.append("zero_grad")
        super().zero_grad(set_to_none=set_to_none)

    def step(self, closure: Any = None) -> Any:
        self.events.append("step")
        return super().step(closure)


def _one_epoch(candidate) -> tuple[Any, nn.Module, _ModeRecorder, list[str]]:
    """Train logit = w . pixel (w = [1, 1, 1], SGD lr 0.1) on 2 batches, starting in eval mode.

    Batch 1 (pixels [1, 2, 3]): loss 6, gradient [1, 2, 3] -> w = [0.9, 0.8, 0.7].
    Batch 2 (pixels [2, 0, -1]): loss 1.8 - 0.7 = 1.1, gradient [2, 0, -1] -> w = [0.7, 0.8, 0.8].
    Mean loss (6 + 1.1) / 2 = 3.55.

    Returns the result, the model, its mode recorder and the order of the calls that matter
    ("zero_grad", "backward", "step"), as recorded by the optimiser, the model and the loss.
    """
    events: list[str] = []
    conv = nn.Conv2d(3, 1, kernel_size=1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    recorder = _ModeRecorder()
    model = nn.Sequential(conv, recorder).eval()
    model.zero_grad = lambda set_to_none=True: (events.append("zero_grad"), nn.Module.zero_grad(model, set_to_none))[-1]

    def loss_fn(logits: Tensor, masks: Tensor) -> Tensor:
        loss = _mean_logit(logits, masks)
        if loss.requires_grad:
            loss.register_hook(lambda grad: events.append("backward"))
        return loss

    loader = DataLoader(_ConstantImages(), batch_size=2, shuffle=False)
    optimizer = _RecordingSGD(model.parameters(), events, lr=0.1)
    result = candidate(model, loader, loss_fn, optimizer, "cpu")
    return result, model, recorder, events


def _order_problem(events: list[str]) -> str:
    """What is wrong with the order of zero_grad / backward / step, or "" when it is right."""
    if "backward" not in events:
        return " -> no gradient was computed (no backward pass)"
    if "step" not in events:
        return " -> the weights were never updated (no optimiser step)"
    for i, event in enumerate(events):
        if event == "step":
            before = [e for e in events[:i] if e in ("zero_grad", "backward")]
            if before and before[-1] == "zero_grad":
                return (" -> the gradients were cleared between the backward pass and the optimiser step, so every "
                        "step found them already cleared")
    if events.count("zero_grad") == 0:
        return (" -> batch 1's gradient was added to batch 2's: the old gradients were never cleared "
                "(PyTorch adds new gradients to .grad)")
    return ""


def _weights(model: nn.Module) -> list[float]:
    return [round(v, 4) for v in model[0].weight.detach().flatten().tolist()]


def _check_epoch_mean(candidate) -> None:
    result, _, _, events = _one_epoch(candidate)
    if isinstance(result, Tensor):
        raise CheckFailure("a Python float", f"a tensor ({result!r}) -> the batch losses were added up as tensors, "
                           "which also keeps every batch's graph in memory", 2)
    found = _number(result, "train_one_epoch(...)", hint=2)
    if _near(found, 7.1):
        why = " -> that is the sum of the batch losses, not their mean"
    elif _near(found, 1.1) or _near(found, 6.0):
        why = " -> that is one batch's loss, not the mean over all the batches"
    elif _near(found, 3.5):
        why = " -> batch 2 was scored with the starting weights" + (
            _order_problem(events).replace(" -> ", ": ", 1) or ": the weights were never updated (no optimiser step)")
    else:
        why = ""
    expect(_near(found, 3.55), "a mean loss of 3.5500 for two batches with losses 6.0 and 1.1", f"{found:.4f}{why}", hint=2)


def _check_epoch_weights(candidate) -> None:
    _, model, _, events = _one_epoch(candidate)
    found = _weights(model)
    if found == [1.0, 1.0, 1.0]:
        why = _order_problem(events) or " -> the weights did not move (no optimiser step)"
    elif found == [0.6, 0.6, 0.5]:
        why = (" -> batch 1's gradient was added to batch 2's: the old gradients were never cleared "
               "(PyTorch adds new gradients to .grad)")
    else:
        why = _order_problem(events)
    expect(found == [0.7, 0.8, 0.8], "weights [0.7, 0.8, 0.8] after 2 SGD steps (lr 0.1) from [1, 1, 1] with "
           "gradients [1, 2, 3] then [2, 0, -1]", f"{found}{why}", hint=3)


def _check_epoch_train_mode(candidate) -> None:
    _, _, recorder, _ = _one_epoch(candidate)
    expect(bool(recorder.modes) and all(recorder.modes), "the model in training mode for every batch",
           lambda: f"training flags {recorder.modes} -> the model stayed in the eval mode it was given: dropout "
           "and batch-norm behave differently while training", hint=1)


class _NotMoved(Tensor):
    """A batch tensor that records ``.to(...)``; ``.to`` hands back a plain tensor, so a model can tell."""

    moves: list[str] = []

    def to(self, *args: Any, **kwargs: Any) -> Tensor:  # type: ignore[override]
        _NotMoved.moves.append(str(args[0] if args else kwargs.get("device")))
        return self.as_subclass(Tensor).to(*args, **kwargs)

    def cuda(self, *args: Any, **kwargs: Any) -> Tensor:  # type: ignore[override]
        _NotMoved.moves.append("cuda (ignoring `device`)")
        return self.as_subclass(Tensor)


class _DeviceProbe(nn.Module):
    """logit = w . pixel; records whether each input reached it through ``.to(device)``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, kernel_size=1, bias=False)
        self.moved: list[bool] = []

    def forward(self, x: Tensor) -> Tensor:
        self.moved.append(not isinstance(x, _NotMoved))
        return self.conv(x.as_subclass(Tensor))


def _check_epoch_device(candidate) -> None:
    """On a GPU the model's weights live on the GPU: a batch left on the CPU crashes the first forward pass."""
    model = _DeviceProbe()
    masks_moved: list[bool] = []

    def loss_fn(logits: Tensor, masks: Tensor) -> Tensor:
        masks_moved.append(not isinstance(masks, _NotMoved))
        return logits.as_subclass(Tensor).mean()

    batches = [{"image": torch.ones(2, 3, 2, 2).as_subclass(_NotMoved),
                "mask": torch.zeros(2, 2, 2, dtype=torch.long).as_subclass(_NotMoved)} for _ in range(2)]
    device = torch.device("cpu")
    _NotMoved.moves = []
    candidate(model, batches, loss_fn, torch.optim.SGD(model.parameters(), lr=0.1), device)
    expect(bool(model.moved) and all(model.moved),
           "every batch's images moved with .to(device) before the model sees them (on a GPU the model's weights "
           "are on the GPU, and a CPU batch crashes the forward pass)",
           lambda: f"images reaching the model not moved to the device (moves seen: {_NotMoved.moves or 'none'}) "
           "-> the batch stayed where the loader made it, on the CPU", hint=1)
    expect(bool(masks_moved) and all(masks_moved), "the masks moved with .to(device) too (the loss compares them "
           "with logits that live on the device)",
           "masks reaching the loss not moved to the device -> the masks stayed on the CPU", hint=1)


TRAIN_ONE_EPOCH = Exercise(
    name="train_one_epoch",
    notebook="06_train_val_functions.ipynb",
    stub=TRAIN_ONE_EPOCH_STUB,
    reference=train_one_epoch,
    checks=[
        Check("mean loss", _check_epoch_mean),
        Check("weights after two steps", _check_epoch_weights),
        Check("training mode", _check_epoch_train_mode),
        Check("batches moved to the device", _check_epoch_device),
    ],
    hints=[
        "One epoch: put the model in training mode, then for every batch move the images and masks to the "
        "device, predict, compute the loss, and update the weights in this order: clear the old gradients, "
        "back-propagate, step. Return the mean of the batch losses as a Python float.",
        "model.train(); batch['image'].to(device) and batch['mask'].to(device); optimizer.zero_grad(), "
        "loss.backward(), optimizer.step(), in that order (PyTorch adds new gradients to .grad, so clear them "
        "first). loss.item() is a batch's loss as a float; len(loader) is the number of batches.",
        "model.train(); total = 0.0\nfor batch in loader:\n    loss = loss_fn(model(batch['image'].to(device)), "
        "batch['mask'].to(device))\n    optimizer.zero_grad(); loss.backward(); optimizer.step(); total += loss.item()\n"
        "return total / len(loader)",
    ],
)

EXERCISES = [DICE_LOSS, IOU_SCORE, TRAIN_ONE_EPOCH]
