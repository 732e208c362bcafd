"""Training and validation loops: ``train_one_epoch``, ``evaluate``, ``fit``, checkpoints.

``train_one_epoch`` and ``evaluate`` are the loops of notebook 06 and the loops ``fit`` runs; what a
real run adds (mixed precision, the schedule, checks, metrics, progress, the budget, torchrun)
comes in as hooks at fixed points of them (``workshop.hooks``), never as code inside them.

What ``fit`` guarantees:
    * the best checkpoint (by the monitored validation metric) and the last one are written
      atomically (write to a temporary file, then rename), so a crash never leaves a corrupt file;
    * a non-finite loss stops the run with a message naming the likely causes, before anything
      is saved from the broken model: the last good checkpoint stays;
    * a time budget (the hook ``workshop.budget.Budget``) ends the run cleanly: the current step
      finishes, the model is evaluated and saved;
    * Ctrl-C / a kernel interrupt saves ``interrupted.pt`` and keeps ``last.pt`` of the last
      finished epoch; ``fit(..., resume=RUN_DIR)`` continues with the same optimiser,
      scheduler, epoch, history and random streams;
    * every epoch re-seeds the shuffle, the augmentations and torch from ``seed + epoch``, so
      two runs with the same seed give the same history on the CPU, resumed or not.

Shape:
    batch["image"] (N, 3, H, W) float32, batch["mask"] (N, H, W) int64 -> logits (N, C, H, W).

Taught in: notebooks/06_train_val_functions.ipynb (the loops) and notebooks/07_training.ipynb (fit)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from workshop.config import MONITORS  # validation metrics that can pick the best checkpoint
from workshop.errors import WorkshopError
from workshop.hooks import (AMP_DTYPES, SYNC_EVERY, EpochEnd, Hook, Hooks, MixedPrecision, NonFiniteCheck,  # noqa: F401
                            ProgressBars, Schedule, TrainingMetrics, mixed_precision)
from workshop.metrics import SegmentationMetrics

CHECKPOINT_DIR = "checkpoints"


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device | str = "cpu",
    hooks: Hooks | Sequence[Hook] | None = None,
) -> float:
    """One pass over ``loader``: the training loop of notebook 06, the one ``fit`` runs.

    For every batch: move it to the device, compute the logits and the loss, clear the old
    gradients, back-propagate, take an optimiser step. ``hooks`` add what a real run needs at
    fixed points of the loop (see ``workshop.hooks``): ``fit`` passes mixed precision, the
    learning-rate schedule, the non-finite-loss check, training metrics, a progress bar and the
    time budget. Without hooks this is the plain loop.

    The loss is summed on the device (``loss.item()`` at every step would make Python wait for a
    GPU) and read once, at the end.

    Args:
        model: returns logits (N, C, H, W); put in training mode here.
        loader: yields ``{"image", "mask"}`` batches.
        loss_fn: ``loss_fn(logits, masks) -> scalar``.
        optimizer: the optimiser over the model's parameters.
        device: where to compute (the model must already be there).
        hooks: a :class:`~workshop.hooks.Hooks` or a list of hooks, or None.

    Returns:
        The mean loss per image over the epoch, a Python float.

    Shape:
        batch["image"] (N, 3, H, W) float32, batch["mask"] (N, H, W) int64 -> logits (N, C, H, W).

    Taught in: notebooks/06_train_val_functions.ipynb
    """
    hooks = Hooks.of(hooks)
    model.train()  # dropout on, batch-norm statistics from the batch
    total, count = 0.0, 0
    for batch in hooks.batches(loader):  # hooks: a progress bar; the step cap or the deadline may end it early
        images = batch["image"].to(device, non_blocking=True)
        masks = batch["mask"].to(device, non_blocking=True)
        with hooks.autocast():  # hooks: mixed precision on a GPU
            logits = model(images)
            loss = loss_fn(logits, masks)
        hooks.after_loss(loss, logits, masks)  # hooks: the non-finite check, training metrics
        optimizer.zero_grad()  # gradients add up in .grad unless cleared
        hooks.scale(loss).backward()  # the loss itself (float16: scaled by a GradScaler)
        hooks.step(optimizer)  # optimizer.step(), then hooks: the learning-rate schedule
        total += loss.detach().float() * len(images)  # stays on the device: no wait for the GPU
        count += len(images)
    return hooks.epoch_mean(total, count)  # float(total) / count (torchrun: over every process)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module | None,
    device: torch.device | str = "cpu",
    num_classes: int = 2,
    threshold: float = 0.5,
    ignore_index: int | None = 255,
    class_names: list[str] | None = None,
    hooks: Hooks | Sequence[Hook] | None = None,
) -> dict[str, Any]:
    """Validation: mean loss and confusion-matrix metrics over the whole loader.

    The mirror image of :func:`train_one_epoch`: ``model.eval()``, no gradients, and every batch's
    predictions added to one confusion matrix (:class:`~workshop.metrics.SegmentationMetrics`), read
    once at the end. ``workshop evaluate`` scores with the same metric functions.

    Args:
        num_classes: classes of the task (binary: 2, although the model has one output channel).
        threshold: probability above which a binary pixel is foreground.
        ignore_index: mask value left out of the loss and the metrics.
        hooks: ``fit``'s hooks: mixed precision (the loss and the metrics read float32 logits either
            way), a progress bar, and under torchrun sums over the processes' shards.

    Returns:
        ``{"loss", "iou", "dice", "pixel_accuracy", "per_class_iou", "per_class_dice", "confusion"}``;
        IoU and Dice are computed from one confusion matrix (``confusion``, rows = true class) over
        all pixels of the data set (binary: the foreground class; multiclass: mean over classes
        that occur).

    Taught in: notebooks/06_train_val_functions.ipynb
    """
    hooks = Hooks.of(hooks)
    model.eval()  # dropout off, batch-norm uses its stored statistics
    hooks.before_validation(model)
    metrics = SegmentationMetrics(num_classes, ignore_index=ignore_index, threshold=threshold, class_names=class_names)
    total, count = 0.0, 0
    for batch in hooks.val_batches(loader):
        images = batch["image"].to(device, non_blocking=True)
        masks = batch["mask"].to(device, non_blocking=True)
        with hooks.autocast():
            logits = model(images)
        logits = logits.float()
        if loss_fn is not None:
            total += loss_fn(logits, masks).float() * len(images)
        count += len(images)
        metrics.update(logits, masks)  # the confusion matrix, on the device
    metrics.confusion, total, count = hooks.sum_over_processes(metrics.confusion, float(total), count)
    result = dict(metrics.compute())
    result["confusion"] = metrics.confusion.tolist()
    result["loss"] = total / max(count, 1) if loss_fn is not None else float("nan")
    return result


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` with ``torch.save`` atomically: a temporary file in the same folder, then a rename.

    Raises:
        WorkshopError: the folder cannot be written (read-only, disk full); the message names it.
            Files saved before are left as they were.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise WorkshopError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:  # also Ctrl-C mid-write: never leave the temporary file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise WorkshopError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``.

    Raises:
        WorkshopError: missing or unreadable file (named in the message).
    """
    path = Path(path)
    if not path.is_file():
        raise WorkshopError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # corrupt pickles raise many different types
        raise WorkshopError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})") from None


def write_json_atomic(data: Any, path: str | os.PathLike) -> Path:
    """Write JSON via a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, default=_json_default))
        os.replace(tmp, path)
    except OSError as exc:
        raise WorkshopError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return str(value)


# ----------------------------------------------------------------------------- fit


@dataclass
class FitResult:
    """What ``fit`` returns: the per-epoch history and where things were saved."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    run_dir: Path | None = None
    stopped_reason: str = "finished"
    summary: dict[str, Any] = field(default_factory=dict)  # filled by the recipe: baselines, steps

    @property
    def best_checkpoint(self) -> Path | None:
        return self.run_dir / CHECKPOINT_DIR / "best.pt" if self.run_dir else None


def _seed_epoch(seed: int, epoch: int, loader: DataLoader, rank: int = 0) -> None:
    """Give epoch ``epoch`` its own random streams, derived from ``seed`` alone (``rank``: torchrun's process)."""
    s = seed * 1000 + epoch
    random.seed(s)
    np.random.seed(s % (2**32))
    torch.manual_seed(s)
    generator = getattr(loader, "generator", None)
    if generator is not None:
        generator.manual_seed(s)
        if getattr(loader, "persistent_workers", False) and getattr(loader, "_iterator", None) is not None:
            # a new DataLoader iterator draws its workers' base seed from this generator before the
            # shuffle draws; persistent workers keep the first epoch's iterator: draw as it would, so
            # the order of an epoch does not depend on whether its workers started in it (resume)
            torch.empty((), dtype=torch.int64).random_(generator=generator)
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):  # torchrun: DistributedSampler's shuffle of epoch s
        sampler.set_epoch(s)
    transform = getattr(getattr(loader, "dataset", None), "transform", None)
    if hasattr(transform, "set_random_seed"):
        transform.set_random_seed(s + 7919 * rank)  # each rank its own augmentations
    worker_seeding = getattr(loader, "worker_init_fn", None)
    if hasattr(worker_seeding, "set_epoch_seed"):  # workers (persistent ones too): each its own, every epoch
        worker_seeding.set_epoch_seed(s + 7919 * rank)


def is_improvement(value: float, best: float | None, monitor: str) -> bool:
    """Is ``value`` better than the best so far? Decides when ``fit`` saves ``best.pt``.

    Higher is better for ``"iou"`` and ``"dice"``, lower for ``"loss"``. A value equal to the best
    is no improvement (the earlier checkpoint is kept). A NaN or infinite value never improves,
    not even as the first value (a broken epoch must not become the best). Any finite first value
    (``best is None``) improves, including 0.0.

    Args:
        value: this epoch's validation metric.
        best: the best value so far, or None before the first epoch.
        monitor: ``"iou"``, ``"dice"`` or ``"loss"``.

    Returns:
        True when ``value`` should replace ``best``.

    Raises:
        ValueError: unknown ``monitor`` (the message lists the valid ones).

    Example:
        >>> is_improvement(0.61, 0.58, "iou"), is_improvement(0.30, 0.25, "loss")
        (True, False)

    Taught in: notebooks/07_training.ipynb
    """
    if monitor not in MONITORS:
        raise ValueError(f"monitor must be one of: {', '.join(MONITORS)} (got {monitor!r})")
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    if monitor == "loss":
        return value < best
    return value > best


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    device: torch.device | str = "cpu",
    scheduler: Any | None = None,
    *,
    run_dir: str | os.PathLike | None = None,
    num_classes: int = 2,
    monitor: str = "iou",
    seed: int = 42,
    resume: str | os.PathLike | None = None,
    amp: bool | str = True,
    progress: bool = False,
    on_epoch_end: Callable[[list[dict[str, Any]]], None] | None = None,
    hooks: Sequence[Hook] = (),
) -> FitResult:
    """Train for ``epochs`` epochs: :func:`train_one_epoch`, then :func:`evaluate`, then checkpoints.

    Every epoch re-seeds the shuffle, the augmentations and torch from ``seed * 1000 + epoch``,
    runs the loops of notebook 06 with the hooks of :func:`fit_hooks` (mixed precision, the
    schedule, the non-finite check, training metrics, a progress bar, and ``hooks``), appends a
    row to the history, saves ``last.pt`` and, when :func:`is_improvement` says so, ``best.pt``.

    Args:
        model, train_loader, val_loader, loss_fn, optimizer: the usual pieces.
        epochs: total number of epochs (a resumed run continues up to this number).
        scheduler: per-step LR schedule (stepped after every batch), or None.
        run_dir: where ``checkpoints/{best,last}.pt`` and ``metrics.json`` go; None saves nothing.
        num_classes: classes of the task (binary: 2).
        monitor: ``"iou"``, ``"dice"`` (higher is better) or ``"loss"`` (lower is better).
        seed: base seed; epoch e uses ``seed * 1000 + e`` for shuffle, augmentations and torch.
        resume: a run folder (or a checkpoint file) to continue from.
        amp: mixed precision on CUDA (True: bfloat16 where the card supports it, else float16 +
            GradScaler; or name the dtype: ``"float16"``, ``"bfloat16"``).
        progress: progress bars.
        on_epoch_end: called with the history after every epoch (e.g. a live plot).
        hooks: more hooks (``workshop.hooks``): a time budget, torchrun, channels-last memory...

    Returns:
        ``FitResult`` with the history (one dict per epoch: train/val loss, IoU, Dice, lr, times).

    Raises:
        TrainingError: non-finite loss (the last good checkpoint is kept).

    Taught in: notebooks/07_training.ipynb
    """
    if monitor not in MONITORS:
        raise ValueError(f"monitor must be one of: {', '.join(MONITORS)} (got {monitor!r})")
    device = torch.device(device)
    hooks = fit_hooks(optimizer, device, scheduler, amp, progress, num_classes, on_epoch_end, hooks)
    model.to(device)
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(device)  # its buffers (class weights, pos_weight) beside the logits
    train_model = hooks.before_fit(model, epochs)  # hooks: channels-last memory, DistributedDataParallel
    metrics = hooks.find(TrainingMetrics).metrics  # its threshold and ignore index are validation's too
    result = FitResult(run_dir=Path(run_dir) if run_dir is not None else None)
    ckpt = result.run_dir / CHECKPOINT_DIR if result.run_dir and hooks.writes else None  # torchrun: rank 0 writes
    start, best = _resume(resume, model, optimizer, hooks, result) if resume is not None else (1, None)
    state = lambda epoch, **more: _checkpoint(model, optimizer, epoch, result, best, monitor, num_classes, hooks, more)  # noqa: E731
    t_run, before = time.monotonic(), result.history[-1]["elapsed_s"] if result.history else 0.0
    epoch = start - 1
    try:
        for epoch in range(start, epochs + 1):
            if hooks.should_stop(result.history):  # a resumed run whose schedule is complete
                break
            _seed_epoch(seed, epoch, train_loader, hooks.rank)
            hooks.before_epoch(epoch, result.history)
            t0 = time.monotonic()
            train_loss = train_one_epoch(train_model, train_loader, loss_fn, optimizer, device, hooks)
            train = {"loss": train_loss, "seconds": time.monotonic() - t0, **hooks.epoch_summary()}
            val = evaluate(model, val_loader, loss_fn, device, num_classes, metrics.threshold, metrics.ignore_index, hooks=hooks)
            result.history.append(_record(epoch, train, val, optimizer, t0, before + time.monotonic() - t_run))
            if is_improvement(val[monitor], best, monitor):
                best, result.best = val[monitor], dict(result.history[-1])
                if ckpt:
                    save_checkpoint(state(epoch), ckpt / "best.pt")
            if ckpt:
                save_checkpoint(state(epoch), ckpt / "last.pt")
                write_json_atomic({"history": result.history, "best": result.best, "monitor": monitor}, result.run_dir / "metrics.json")
            reason = hooks.after_epoch(result.history)  # on_epoch_end; hooks: the time budget, the step cap
            if reason:
                result.stopped_reason = reason
                break
    except KeyboardInterrupt:
        result.stopped_reason = "interrupted"
        if ckpt:
            save_checkpoint(state(epoch - 1, interrupted=True), ckpt / "interrupted.pt")
            print(_interrupted_message(epoch, ckpt, result.run_dir))
    except Exception as exc:
        hooks.on_error(exc, result.run_dir)  # torchrun: another process died -> a readable message
        raise
    return result


def fit_hooks(
    optimizer: torch.optim.Optimizer,
    device: torch.device | str = "cpu",
    scheduler: Any | None = None,
    amp: bool | str = True,
    progress: bool = False,
    num_classes: int = 2,
    on_epoch_end: Callable[[list[dict[str, Any]]], None] | None = None,
    more: Sequence[Hook] = (),
) -> Hooks:
    """The hooks ``fit`` puts around the loops of notebook 06, in the order they are called.

    A progress bar, mixed precision, the per-step schedule, the non-finite-loss check, training
    metrics (a :class:`~workshop.hooks.TrainingMetrics` in ``more`` takes that place: its threshold
    and ignore index are validation's too), then ``more``, then ``on_epoch_end``.
    """
    metrics = next((h for h in more if isinstance(h, TrainingMetrics)), None) or TrainingMetrics(num_classes)
    return Hooks([
        *([ProgressBars()] if progress else []),
        MixedPrecision(device, amp),
        *([Schedule(scheduler)] if scheduler is not None else []),
        NonFiniteCheck(optimizer, device),
        metrics,
        *[h for h in more if h is not metrics],
        *([EpochEnd(on_epoch_end)] if on_epoch_end is not None else []),
    ])


def _resume(resume: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer, hooks: Hooks,
            result: FitResult) -> tuple[int, float | None]:
    """Load a checkpoint into the run's objects; returns the epoch to start with and the best value so far."""
    # to the CPU: load_state_dict copies the weights to the model's device and the optimiser's
    # state to its parameters' devices, but keeps Adam's step counters on the CPU, where
    # reading them costs no synchronisation (on the GPU: one per parameter per step)
    state = load_checkpoint(_resume_file(resume), map_location="cpu")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    hooks.load_checkpoint_state(state)  # the schedule, the GradScaler
    result.history = list(state.get("history", []))
    result.best = state.get("best")
    return int(state["epoch"]) + 1, state.get("best_value")


def _checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int, result: FitResult, best: float | None,
                monitor: str, num_classes: int, hooks: Hooks, more: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint holds: everything needed to resume, and what hooks add (the run's config)."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": None,
        "scaler": None,
        "epoch": epoch,
        "history": result.history,
        "best": result.best,
        "best_value": best,
        "monitor": monitor,
        "num_classes": num_classes,
        **hooks.checkpoint_state(),  # the schedule's and the GradScaler's state, the run's config
        **more,
    }


def _record(epoch: int, train: dict[str, Any], val: dict[str, Any], optimizer: torch.optim.Optimizer, t0: float,
            elapsed: float) -> dict[str, Any]:
    """One row of the history."""
    return {
        "epoch": epoch,
        "train_loss": train["loss"],
        "train_iou": train.get("iou"),
        "train_dice": train.get("dice"),
        "val_loss": val["loss"],
        "val_iou": val["iou"],
        "val_dice": val["dice"],
        "lr": optimizer.param_groups[0]["lr"],
        "train_time_s": round(train["seconds"], 3),
        "epoch_time_s": round(time.monotonic() - t0, 3),
        "elapsed_s": round(elapsed, 3),
        "partial": bool(train.get("stopped_early", False)),
        "steps": int(train.get("steps", 0)),
    }


def _interrupted_message(epoch: int, ckpt: Path, run_dir: Path | None) -> str:
    last = ckpt / "last.pt"
    return (f"Interrupted during epoch {epoch}. Saved {ckpt / 'interrupted.pt'}; "
            f"{'resume from ' + str(last) if last.exists() else 'no epoch had finished yet'}"
            f" with fit(..., resume=\"{run_dir}\") (command line: workshop train --resume {run_dir})")


def _resume_file(resume: str | os.PathLike) -> Path:
    path = Path(resume)
    if path.is_file():
        return path
    for name in ("last.pt", "interrupted.pt"):
        candidate = path / CHECKPOINT_DIR / name
        if candidate.is_file():
            return candidate
    raise WorkshopError(f"nothing to resume in {path}: no {CHECKPOINT_DIR}/last.pt or interrupted.pt")


# ----------------------------------------------------------------------------- builders


def make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """``adam`` / ``adamw`` / ``sgd`` over the trainable parameters.

    Taught in: notebooks/07_training.ipynb
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of: adam, adamw, sgd")


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str,
    lr: float,
    epochs: int = 0,
    steps_per_epoch: int = 0,
    total_steps: int | None = None,
):
    """A per-step LR schedule: ``onecycle``, ``cosine``, ``step`` (x0.1 after each of the first two thirds) or ``none``.

    Sized in optimiser steps: ``total_steps`` when given (``workshop.recipe`` lays it over a time
    budget), else ``epochs * steps_per_epoch``. One-cycle's last step runs at its final,
    lowest learning rate; cosine reaches 0 after the last step.

    Taught in: notebooks/07_training.ipynb
    """
    total = max(1, total_steps if total_steps is not None else epochs * steps_per_epoch)
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total, pct_start=0.15)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if name == "step":
        # two drops, after the first and the second third of the steps (as recipe.StepSchedule); a
        # StepLR of total // 3 steps would drop a third time when total is not a multiple of 3
        first, second = math.ceil((total - 1) / 3), math.ceil(2 * (total - 1) / 3)
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=sorted({max(1, first), max(1, second)}), gamma=0.1)
    if name == "none":
        return None
    raise ValueError(f"unknown scheduler {name!r}; choose one of: onecycle, cosine, step, none")
