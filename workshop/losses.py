"""Segmentation losses (Dice, BCE, cross-entropy, focal, and weighted sums of them) with ignore pixels.

Stage in the data path::

    model -> logits (N,C,H,W) --loss(logits, target (N,H,W) int64)--> scalar -> backward -> optimiser

One mask convention for every loss: ``target`` holds int64 class ids.

* ``mode="binary"``: the model has ONE output channel (N,1,H,W) read through a sigmoid; target is 0/1.
* ``mode="multiclass"``: the model has C >= 2 channels read through a softmax; target is 0..C-1.

Pixels whose target equals ``ignore_index`` (default 255) contribute nothing: not to the loss, not to
its gradient, not to the count the mean divides by. A batch whose pixels are all ignored gives 0.

Losses are computed in float32 even when the logits are float16 (mixed precision), because sums
over a batch of pixels overflow float16.

Example:
    >>> import torch
    >>> loss_fn = create_loss("dice_bce", mode="binary")
    >>> logits = torch.zeros(2, 1, 8, 8, requires_grad=True)
    >>> target = torch.randint(0, 2, (2, 8, 8))
    >>> loss = loss_fn(logits, target)
    >>> loss.backward()

Taught in: notebooks/06_train_val_functions.ipynb
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workshop import metrics as _metrics  # reads_are_free: may a value be read without a GPU sync?

__all__ = [
    "LOSSES",
    "MODES",
    "BCEWithIgnore",
    "CEWithIgnore",
    "ComboLoss",
    "DiceLoss",
    "FocalLoss",
    "create_loss",
    "dice_loss",
]

#: Names accepted by :func:`create_loss`.
LOSSES: tuple[str, ...] = ("dice", "bce", "dice_bce", "ce", "dice_ce", "focal")
#: Task modes accepted by the losses.
MODES: tuple[str, ...] = ("binary", "multiclass")

_BINARY_ONLY = ("bce", "dice_bce")
_MULTICLASS_ONLY = ("ce", "dice_ce")


# ----------------------------------------------------------------------------------------------
# shared checks
# ----------------------------------------------------------------------------------------------
def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}")
    return mode


def _prepare(
    logits: Tensor, target: Tensor, mode: str, ignore_index: int | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Check shapes and values; return float32 logits, target with ignored pixels set to 0, valid mask.

    Class ids are checked where reading them is free (a CPU tensor): a wrong id raises at once,
    naming the values. On a GPU reading them would make every step wait for the device (a
    host-device synchronisation), so a wrong id is not read here: its pixels are marked invalid
    and given a NaN loss instead (see :func:`_poison`), which the training loop's non-finite
    check reports with the batch's mask values.

    Shape:
        - logits: (N, C, H, W)
        - target: (N, H, W) (a (N, 1, H, W) mask is accepted)
        - outputs: (N, C, H, W) float32, (N, H, W) int64, (N, H, W) bool
    """
    if logits.ndim != 4:
        raise ValueError(f"logits must be (N, C, H, W), got shape {tuple(logits.shape)}")
    if target.ndim == 4 and target.shape[1] == 1:
        target = target[:, 0]
    if target.is_floating_point():
        raise ValueError(
            f"target must hold integer class ids (int64), got dtype {target.dtype}; "
            "convert the mask with mask.long()"
        )
    if target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"target must be (N, H, W) = {(logits.shape[0], *logits.shape[2:])} to match logits "
            f"{tuple(logits.shape)}, got {tuple(target.shape)}"
        )
    channels = logits.shape[1]
    if mode == "binary" and channels != 1:
        raise ValueError(
            f"mode='binary' expects logits with 1 channel (N, 1, H, W), got {channels} channels; "
            "use mode='multiclass' for a model with one channel per class"
        )
    if mode == "multiclass" and channels < 2:
        raise ValueError(
            "mode='multiclass' expects logits with one channel per class (C >= 2), got 1 channel; "
            "use mode='binary' for a single-channel model"
        )
    target = target.long()
    if ignore_index is None:
        valid = torch.ones_like(target, dtype=torch.bool)
    else:
        valid = target != ignore_index
    num_classes = 2 if mode == "binary" else channels
    bad = valid & ((target < 0) | (target >= num_classes))
    if _metrics.reads_are_free(target):
        if bool(bad.any()):
            offending = sorted(torch.unique(target[bad]).tolist())
            ignore_note = "" if ignore_index is None else f" or the ignore_index {ignore_index}"
            raise ValueError(
                f"target holds values {offending}; mode={mode!r} with {channels} channel(s) expects "
                f"class ids 0..{num_classes - 1}{ignore_note}"
            )
    else:
        valid = valid & ~bad  # never index a class weight or a one-hot with a wrong id on the device
    target = torch.where(valid, target, torch.zeros_like(target))
    return logits.float(), target, valid


def _poison(loss: Tensor, target: Tensor, mode: str, channels: int, ignore_index: int | None) -> Tensor:
    """``loss``, or NaN when a device batch holds class ids outside the task (no synchronisation).

    A CPU batch was checked by :func:`_prepare` (it raised); there this returns ``loss`` untouched.
    """
    if _metrics.reads_are_free(target):
        return loss
    if target.ndim == 4 and target.shape[1] == 1:
        target = target[:, 0]
    target = target.long()
    num_classes = 2 if mode == "binary" else channels
    bad = (target < 0) | (target >= num_classes)
    if ignore_index is not None:
        bad = bad & (target != ignore_index)
    return torch.where(bad.any(), torch.full_like(loss, float("nan")), loss)


def _masked_mean(per_pixel: Tensor, valid: Tensor) -> Tensor:
    """Mean of ``per_pixel`` over valid pixels; 0 (with a zero gradient) when none is valid."""
    weights = valid.to(per_pixel.dtype)
    return (per_pixel * weights).sum() / weights.sum().clamp_min(1.0)


def _as_float_tensor(values: float | Sequence[float] | Tensor | None, what: str) -> Tensor | None:
    if values is None:
        return None
    tensor = torch.as_tensor(values, dtype=torch.float32).reshape(-1)
    if bool((tensor < 0).any()):
        raise ValueError(f"{what} must be non-negative, got {tensor.tolist()}")
    return tensor


# ----------------------------------------------------------------------------------------------
# losses
# ----------------------------------------------------------------------------------------------
def dice_loss(logits: Tensor, target: Tensor, smooth: float = 1.0) -> Tensor:
    """Binary soft Dice loss: ``1 - (2 * sum(p * t) + smooth) / (sum(p) + sum(t) + smooth)``.

    ``p`` is the foreground probability ``sigmoid(logits)`` (soft, so the loss has a gradient) and
    ``t`` the 0/1 target. The sums run over the whole batch: every pixel of every image. ``smooth``
    keeps the ratio defined for an empty mask (an empty mask predicted empty scores loss 0) and
    softens the gradient on tiny objects. :class:`DiceLoss` uses this function for binary tasks
    (after taking ignored pixels out).

    Args:
        logits: raw model output for one foreground channel (before the sigmoid).
        target: 0/1 class ids.
        smooth: added to the numerator and the denominator (>= 0).

    Returns:
        The loss, a scalar in [0, 1] (0 = perfect overlap).

    Shape:
        - logits: (N, 1, H, W)
        - target: (N, H, W) int64 (a (N, 1, H, W) mask works too)
        - output: () scalar

    Example:
        >>> logits = torch.zeros(1, 1, 2, 2)                     # p = 0.5 everywhere
        >>> target = torch.tensor([[[1, 0], [0, 0]]])
        >>> dice_loss(logits, target).item()                     # 1 - (2 * 0.5 + 1) / (2 + 1 + 1)
        0.5

    Taught in: notebooks/06_train_val_functions.ipynb
    """
    probs = torch.sigmoid(logits.float())  # float32: sums over many pixels overflow float16
    truth = target.reshape(probs.shape).to(probs.dtype)  # (N, H, W) -> (N, 1, H, W)
    intersection = (probs * truth).sum()
    total = probs.sum() + truth.sum()
    # clamp: with smooth=0 and nothing in either mask the ratio would be 0 / 0
    dice = (2 * intersection + smooth) / (total + smooth).clamp_min(1e-7)
    return 1 - dice


class DiceLoss(nn.Module):
    """Soft Dice loss: ``1 - (2 * intersection + smooth) / (sum_p + sum_t + smooth)``.

    Probabilities replace the hard 0/1 prediction so the loss has a gradient. Binary: sigmoid of the
    single channel against the 0/1 target, summed over the whole batch. Multiclass: softmax against
    the one-hot target, one Dice per class (summed over the batch), averaged over all classes.
    ``smooth`` keeps the ratio defined when a class is absent (an absent class predicted absent
    scores Dice 1, loss 0) and softens the gradient on tiny objects.

    Dice looks at overlap rather than at each pixel, so it is not swamped by a large background;
    it is often combined with BCE/CE (see :class:`ComboLoss`) for smoother early training.

    Args:
        mode: "binary" or "multiclass".
        smooth: additive smoothing in numerator and denominator.
        ignore_index: target value whose pixels are left out, or None.

    Shape:
        - logits: (N, C, H, W), C == 1 for binary
        - target: (N, H, W) int64
        - output: () scalar

    Example:
        >>> confident = torch.full((1, 1, 2, 2), 10.0)          # sigmoid(10) ~ 1 everywhere
        >>> loss = DiceLoss("binary")(confident, torch.ones(1, 2, 2, dtype=torch.long))
        >>> round(loss.item(), 4)
        0.0

    Taught in: notebooks/06_train_val_functions.ipynb
    """

    def __init__(self, mode: str = "binary", smooth: float = 1.0, ignore_index: int | None = 255):
        super().__init__()
        self.mode = _check_mode(mode)
        if smooth < 0:
            raise ValueError(f"smooth must be >= 0, got {smooth}")
        self.smooth = float(smooth)
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        raw_target, channels = target, logits.shape[1]
        logits, target, valid = _prepare(logits, target, self.mode, self.ignore_index)
        return _poison(self._dice(logits, target, valid), raw_target, self.mode, channels, self.ignore_index)

    def _dice(self, logits: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        if self.mode == "binary":
            # An ignored pixel gets probability sigmoid(-inf) = 0 and target 0 (set by _prepare),
            # so it adds nothing to any sum of dice_loss, and no gradient.
            logits = logits.masked_fill(~valid.unsqueeze(1), float("-inf"))
            return dice_loss(logits, target, self.smooth)
        weights = valid.unsqueeze(1).to(logits.dtype)  # (N, 1, H, W)
        probs = torch.softmax(logits, dim=1)
        truth = F.one_hot(target, num_classes=logits.shape[1]).permute(0, 3, 1, 2).to(logits.dtype)
        probs = probs * weights
        truth = truth * weights
        dims = (0, 2, 3)  # sum over batch and pixels, keep the class axis
        intersection = (probs * truth).sum(dims)
        denominator = probs.sum(dims) + truth.sum(dims)
        dice = (2 * intersection + self.smooth) / (denominator + self.smooth).clamp_min(1e-7)
        return 1 - dice.mean()

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, smooth={self.smooth}, ignore_index={self.ignore_index}"


class BCEWithIgnore(nn.Module):
    """Binary cross-entropy on logits, averaged over non-ignored pixels.

    Same numbers as ``nn.BCEWithLogitsLoss`` applied to the valid pixels only (it uses the stable
    log-sum-exp form, so never apply a sigmoid before it).

    Args:
        pos_weight: weight of the foreground term (> 1 pushes recall up on rare foreground),
            or None for 1.
        ignore_index: target value whose pixels are left out, or None.

    Shape:
        - logits: (N, 1, H, W)
        - target: (N, H, W) int64 in {0, 1} (or ignore_index)
        - output: () scalar

    Taught in: notebooks/06_train_val_functions.ipynb
    """

    pos_weight: Tensor | None

    def __init__(
        self, pos_weight: float | Tensor | None = None, ignore_index: int | None = 255
    ) -> None:
        super().__init__()
        weight = _as_float_tensor(pos_weight, "pos_weight")
        if weight is not None and weight.numel() != 1:
            raise ValueError(f"pos_weight must be a single number, got {weight.tolist()}")
        self.register_buffer("pos_weight", weight)
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        raw_target = target
        logits, target, valid = _prepare(logits, target, "binary", self.ignore_index)
        per_pixel = F.binary_cross_entropy_with_logits(
            logits[:, 0], target.to(logits.dtype), reduction="none",
            pos_weight=None if self.pos_weight is None else self.pos_weight.to(logits.device),
        )
        return _poison(_masked_mean(per_pixel, valid), raw_target, "binary", 1, self.ignore_index)

    def extra_repr(self) -> str:
        weight = None if self.pos_weight is None else float(self.pos_weight)
        return f"pos_weight={weight}, ignore_index={self.ignore_index}"


class CEWithIgnore(nn.Module):
    """Cross-entropy over classes, with optional class weights and ignored pixels.

    Same numbers as ``nn.CrossEntropyLoss(weight=weight, ignore_index=ignore_index)``: with weights,
    the mean divides by the summed weights of the valid pixels. Unlike torch's version, a batch with
    every pixel ignored gives 0 instead of NaN.

    Args:
        weight: one weight per class (up-weights rare classes), or None.
        ignore_index: target value whose pixels are left out, or None.

    Shape:
        - logits: (N, C, H, W), C >= 2
        - target: (N, H, W) int64 in [0, C) (or ignore_index)
        - output: () scalar

    Taught in: notebooks/06_train_val_functions.ipynb
    """

    weight: Tensor | None

    def __init__(
        self, weight: Tensor | Sequence[float] | None = None, ignore_index: int | None = 255
    ) -> None:
        super().__init__()
        self.register_buffer("weight", _as_float_tensor(weight, "weight"))
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        raw_target, channels = target, logits.shape[1]
        logits, target, valid = _prepare(logits, target, "multiclass", self.ignore_index)
        per_pixel = F.cross_entropy(logits, target, reduction="none")
        if self.weight is None:
            loss = _masked_mean(per_pixel, valid)
        else:
            if self.weight.numel() != logits.shape[1]:
                raise ValueError(
                    f"weight has {self.weight.numel()} entries but logits have {logits.shape[1]} classes"
                )
            # a buffer: loss_fn.to(device) (engine.fit does it) puts it beside the logits once, and
            # .to() is then free; without it, every call would copy it to the GPU and wait
            pixel_weight = self.weight.to(logits.device)[target] * valid
            loss = (per_pixel * pixel_weight).sum() / pixel_weight.sum().clamp_min(1e-12)
        return _poison(loss, raw_target, "multiclass", channels, self.ignore_index)

    def extra_repr(self) -> str:
        weight = None if self.weight is None else self.weight.tolist()
        return f"weight={weight}, ignore_index={self.ignore_index}"


class FocalLoss(nn.Module):
    """Focal loss: cross-entropy scaled by ``(1 - p_t) ** gamma`` to focus on hard pixels.

    ``p_t`` is the probability the model gives the true class. Easy pixels (``p_t`` near 1) are
    down-weighted, so the many easy background pixels stop dominating. ``gamma=0`` and ``alpha=None``
    give plain BCE (binary) or cross-entropy (multiclass). The mean is over valid pixels.

    Args:
        mode: "binary" or "multiclass".
        gamma: focusing strength, >= 0 (2 is the usual choice).
        alpha: class balance. Binary: a float in [0, 1], weight of foreground pixels (background
            gets ``1 - alpha``). Multiclass: one weight per class. None: no weighting.
        ignore_index: target value whose pixels are left out, or None.

    Shape:
        - logits: (N, C, H, W), C == 1 for binary
        - target: (N, H, W) int64
        - output: () scalar

    Taught in: notebooks/06_train_val_functions.ipynb
    """

    alpha: Tensor | None

    def __init__(
        self,
        mode: str = "binary",
        gamma: float = 2.0,
        alpha: float | Sequence[float] | Tensor | None = None,
        ignore_index: int | None = 255,
    ) -> None:
        super().__init__()
        self.mode = _check_mode(mode)
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        alpha_tensor = _as_float_tensor(alpha, "alpha")
        if mode == "binary" and alpha_tensor is not None:
            if alpha_tensor.numel() != 1 or not 0.0 <= float(alpha_tensor) <= 1.0:
                raise ValueError(
                    f"binary alpha must be one number in [0, 1] (foreground weight), got {alpha}"
                )
        if mode == "binary" and alpha_tensor is not None:
            alpha_tensor = alpha_tensor.reshape(())  # a scalar broadcasts on any device
        self.gamma = float(gamma)
        self.register_buffer("alpha", alpha_tensor)
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        raw_target, channels = target, logits.shape[1]
        logits, target, valid = _prepare(logits, target, self.mode, self.ignore_index)
        if self.mode == "binary":
            truth = target.to(logits.dtype)
            ce = F.binary_cross_entropy_with_logits(logits[:, 0], truth, reduction="none")
            alpha_t = None if self.alpha is None else torch.where(target == 1, self.alpha, 1 - self.alpha)
        else:
            log_p_t = torch.log_softmax(logits, dim=1).gather(1, target.unsqueeze(1))[:, 0]
            ce = -log_p_t
            alpha_t = None
            if self.alpha is not None:
                if self.alpha.numel() != logits.shape[1]:
                    raise ValueError(
                        f"multiclass alpha needs one weight per class ({logits.shape[1]}), "
                        f"got {self.alpha.numel()}"
                    )
                alpha_t = self.alpha.to(logits.device)[target]  # a buffer: free once loss_fn.to(device)
        p_t = torch.exp(-ce)  # probability of the true class
        per_pixel = (1 - p_t).clamp_min(0).pow(self.gamma) * ce
        if alpha_t is not None:
            per_pixel = per_pixel * alpha_t
        return _poison(_masked_mean(per_pixel, valid), raw_target, self.mode, channels, self.ignore_index)

    def extra_repr(self) -> str:
        alpha = None if self.alpha is None else self.alpha.tolist()
        return f"mode={self.mode!r}, gamma={self.gamma}, alpha={alpha}, ignore_index={self.ignore_index}"


class ComboLoss(nn.Module):
    """Weighted sum of losses: ``sum(w_i * loss_i(logits, target))``.

    Args:
        losses: loss modules, each called as ``loss(logits, target)``.
        weights: one weight per loss; None gives every loss weight 1.

    Shape:
        - logits: (N, C, H, W)
        - target: (N, H, W) int64
        - output: () scalar

    Example:
        >>> loss_fn = ComboLoss([DiceLoss("binary"), BCEWithIgnore()], [1.0, 0.5])

    Taught in: notebooks/06_train_val_functions.ipynb
    """

    def __init__(self, losses: Sequence[nn.Module], weights: Sequence[float] | None = None) -> None:
        super().__init__()
        if len(losses) == 0:
            raise ValueError("ComboLoss needs at least one loss")
        weights = [1.0] * len(losses) if weights is None else [float(w) for w in weights]
        if len(weights) != len(losses):
            raise ValueError(f"got {len(losses)} losses but {len(weights)} weights; give one weight per loss")
        self.losses = nn.ModuleList(losses)
        self.weights = weights

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        total = self.weights[0] * self.losses[0](logits, target)
        for weight, loss in zip(self.weights[1:], self.losses[1:]):
            total = total + weight * loss(logits, target)
        return total

    def extra_repr(self) -> str:
        return f"weights={self.weights}"


# ----------------------------------------------------------------------------------------------
# factory
# ----------------------------------------------------------------------------------------------
def create_loss(
    name: str,
    mode: str = "binary",
    ignore_index: int | None = 255,
    class_weights: list[float] | None = None,
) -> nn.Module:
    """Build a loss by name.

    ===========  ==========  ==================================================
    name         mode        loss
    ===========  ==========  ==================================================
    "dice"       both        :class:`DiceLoss`
    "bce"        binary      :class:`BCEWithIgnore`
    "dice_bce"   binary      Dice + BCE (weights 1, 1)
    "ce"         multiclass  :class:`CEWithIgnore`
    "dice_ce"    multiclass  Dice + CE (weights 1, 1)
    "focal"      both        :class:`FocalLoss` (gamma 2)
    ===========  ==========  ==================================================

    ``class_weights`` has one weight per class (binary: ``[background, foreground]``). It becomes
    ``pos_weight = w1 / w0`` for BCE, ``weight`` for CE, and ``alpha`` for focal (binary:
    ``w1 / (w0 + w1)``). The Dice loss takes no class weights.

    Args:
        name: one of :data:`LOSSES`.
        mode: "binary" (1 output channel) or "multiclass" (one channel per class).
        ignore_index: target value whose pixels are left out, or None.
        class_weights: optional per-class weights (not for "dice").

    Returns:
        A module called as ``loss_fn(logits, target)``.

    Raises:
        ValueError: unknown name or mode (the message lists the valid ones), a name that does not
            fit the mode (the message says which mode it fits), or unusable class_weights.

    Example:
        >>> loss_fn = create_loss("dice_ce", mode="multiclass", class_weights=[0.5, 1.0, 2.0])
        >>> [type(part).__name__ for part in loss_fn.losses]
        ['DiceLoss', 'CEWithIgnore']

    Taught in: notebooks/06_train_val_functions.ipynb
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(LOSSES)}")
    _check_mode(mode)
    if mode == "multiclass" and name in _BINARY_ONLY:
        raise ValueError(
            f"loss {name!r} fits mode='binary' only (one output channel); for mode='multiclass' "
            f"use one of: {', '.join(n for n in LOSSES if n not in _BINARY_ONLY)}"
        )
    if mode == "binary" and name in _MULTICLASS_ONLY:
        raise ValueError(
            f"loss {name!r} fits mode='multiclass' only (one channel per class); for mode='binary' "
            f"use one of: {', '.join(n for n in LOSSES if n not in _MULTICLASS_ONLY)}"
        )
    weights = _as_float_tensor(class_weights, "class_weights")
    if weights is not None:
        if name == "dice":
            raise ValueError(
                "the 'dice' loss takes no class_weights; use one of: "
                f"{', '.join(n for n in LOSSES if n != 'dice')}"
            )
        if mode == "binary" and (weights.numel() != 2 or float(weights[0]) == 0.0):
            raise ValueError(
                "binary class_weights must be [background, foreground] with background > 0, "
                f"got {weights.tolist()}"
            )

    dice = DiceLoss(mode, ignore_index=ignore_index)
    if name == "dice":
        return dice
    if name in ("bce", "dice_bce"):
        pos_weight = None if weights is None else weights[1] / weights[0]
        bce = BCEWithIgnore(pos_weight=pos_weight, ignore_index=ignore_index)
        return bce if name == "bce" else ComboLoss([dice, bce], [1.0, 1.0])
    if name in ("ce", "dice_ce"):
        ce = CEWithIgnore(weight=weights, ignore_index=ignore_index)
        return ce if name == "ce" else ComboLoss([dice, ce], [1.0, 1.0])
    # name == "focal"
    alpha: Tensor | None = weights
    if weights is not None and mode == "binary":
        alpha = weights[1] / weights.sum()
    return FocalLoss(mode, alpha=alpha, ignore_index=ignore_index)
