"""How long will training take? A measured estimate, shown before a long cell starts.

A learner on a loaded laptop should know before a training cell starts whether it takes two minutes
or twenty. ``estimate_fit_seconds`` times a few real training steps on a copy of the model, so the
model, the optimiser and the random streams of the run are untouched, and scales them to the whole
run. The steps are timed by ``workshop.budget.time_steps``, the timer the recipe's calibration uses.

Taught in: notebooks/07_training.ipynb
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import torch
from torch import nn

# Validation costs a forward pass only: about a third of a training step per batch.
VALIDATION_SHARE = 1 / 3


def estimate_fit_seconds(
    model: nn.Module,
    train_loader: Any,
    loss_fn: Callable[..., torch.Tensor],
    device: torch.device | str,
    epochs: int,
    val_batches: int = 0,
    steps: int = 2,
) -> float:
    """Seconds that ``epochs`` epochs of training are likely to take, from ``steps`` timed steps.

    Args:
        model: the model to train (a deep copy is timed; the model itself is not changed).
        train_loader: yields ``{"image", "mask"}`` batches; ``len(train_loader)`` batches per epoch.
        loss_fn: ``loss_fn(logits, masks) -> scalar``.
        device: where the model lives.
        epochs: number of epochs planned.
        val_batches: validation batches per epoch (each counted as a third of a training step).
        steps: timed steps after one untimed warm-up step.

    Returns:
        The estimate in seconds (logging and checkpoints add a little).

    Shape:
        batch["image"] (N, 3, H, W) float32, batch["mask"] (N, H, W) int64.
    """
    from workshop.budget import time_steps

    if epochs < 1 or len(train_loader) == 0:
        return 0.0
    device = torch.device(device)
    probe = copy.deepcopy(model).to(device)
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(device)  # class weights beside the logits (as engine.fit does)
    optimizer = torch.optim.SGD(probe.parameters(), lr=0.0)  # a step's cost; the copy is thrown away
    per_step, _, _ = time_steps(probe, loss_fn, optimizer, train_loader, device, steps=max(steps, 1), warmup=1)
    per_epoch = per_step * (len(train_loader) + VALIDATION_SHARE * val_batches)
    return per_epoch * epochs


def describe_estimate(seconds: float, max_minutes: float | None = None) -> str:
    """One line for the learner: the estimate, and the time budget when one is set."""
    minutes = seconds / 60
    shown = f"about {minutes:.0f} min" if minutes >= 1.5 else f"about {seconds:.0f} s" if seconds >= 1 else "under a second"
    line = f"estimated training time: {shown} on this machine"
    if max_minutes:
        cap = "" if minutes <= max_minutes else ", so the run will stop early, cleanly, at the budget"
        line += f" (time budget: cfg.train.max_minutes = {max_minutes:g} min{cap})"
    else:
        line += " (set cfg.train.max_minutes to cap it)"
    return line
