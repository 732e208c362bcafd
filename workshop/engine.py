"""Training and validation loops: ``train_one_epoch``, ``evaluate``, ``fit``, checkpoints.

What ``fit`` guarantees:
    * the best checkpoint (by the monitored validation metric) and the last one are written
      atomically (write to a temporary file, then rename), so a crash never leaves a corrupt file;
    * a non-finite loss stops the run with a message naming the likely causes, before anything
      is saved from the broken model: the last good checkpoint stays;
    * ``max_minutes`` ends the run cleanly: the current step finishes, the model is evaluated
      and saved;
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
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from workshop import distributed  # torchrun / DDP hooks; no-ops on one process
from workshop.config import MONITORS  # validation metrics that can pick the best checkpoint
from workshop.errors import TrainingError, WorkshopError
from workshop import metrics as _metrics  # reads_are_free: may a value be read without a GPU sync?
from workshop.metrics import SegmentationMetrics

CHECKPOINT_DIR = "checkpoints"


def _progress(iterable, enabled: bool, desc: str, total: int | None = None):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)


AMP_DTYPES = ("auto", "float16", "bfloat16")  # train.amp_dtype
SYNC_EVERY = 25  # on a GPU, the non-finite check (and torchrun's shared decisions) read the device every N steps


def mixed_precision(device: torch.device | str, amp: bool, amp_dtype: str = "auto") -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
    """The autocast dtype and the ``GradScaler`` of a run: what ``fit`` and the calibration both use.

    Mixed precision runs on CUDA only. ``bfloat16`` has float32's range, so it needs no loss
    scaling; ``float16`` does (a ``GradScaler``). ``auto`` takes bfloat16 where the card computes it
    natively (compute capability 8.0 and later: A100, L4, H100) and float16 elsewhere (T4, V100).

    Returns:
        ``(dtype, scaler)``: ``(None, None)`` without mixed precision; ``scaler`` is None for bfloat16.

    Raises:
        ValueError: unknown ``amp_dtype`` (the message lists the valid ones).
    """
    if amp_dtype not in AMP_DTYPES:
        raise ValueError(f"amp_dtype must be one of: {', '.join(AMP_DTYPES)} (got {amp_dtype!r})")
    device = torch.device(device)
    if not amp or device.type != "cuda":
        return None, None
    if amp_dtype == "auto":
        major, _ = torch.cuda.get_device_capability(device)
        amp_dtype = "bfloat16" if major >= 8 else "float16"
    if amp_dtype == "bfloat16":
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


def _autocast(device: torch.device, dtype: torch.dtype | bool | None):
    if dtype is True:  # the old flag: float16
        dtype = torch.float16
    if dtype and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=dtype)
    return contextlib.nullcontext()


def _to_device(batch: dict[str, Any], device: torch.device, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's images and masks on ``device`` (copies that do not block, from pinned memory)."""
    images = batch["image"].to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, batch["mask"].to(device, non_blocking=True)


def _non_finite_message(loss: torch.Tensor, masks: torch.Tensor, optimizer: torch.optim.Optimizer, where: str,
                        bad_ranks: list[int] | None = None) -> str:
    values = torch.unique(masks).tolist()
    shown = ", ".join(str(v) for v in values[:10]) + (", ..." if len(values) > 10 else "")
    lr = optimizer.param_groups[0].get("lr")
    if distributed.world_size() > 1:  # every rank stops; name the rank(s) whose loss broke
        where += f" on rank {', '.join(map(str, bad_ranks or []))} of {distributed.world_size()}"
    return (
        f"loss became {loss.item() if not torch.isfinite(loss) else 'non-finite'} at {where}. Likely causes: a learning rate too high "
        f"(lr={lr:.3g}; try 10x lower), mask values that are not class ids (this batch has {{{shown}}}), "
        "or images that were not normalised. The last good checkpoint is kept."
    )


def train_epoch_simple(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device | str = "cpu",
) -> float:
    """One pass over ``loader``: the training loop of notebook 06, with nothing else around it.

    For every batch: move it to the device, compute the logits and the loss, clear the old
    gradients, back-propagate, take an optimiser step. :func:`train_one_epoch` is the same loop
    plus mixed precision, a per-step LR schedule, training metrics, a time budget and a check
    for a non-finite loss; ``fit`` uses that one.

    Args:
        model: returns logits (N, C, H, W); put in training mode here.
        loader: yields ``{"image", "mask"}`` batches.
        loss_fn: ``loss_fn(logits, masks) -> scalar``.
        optimizer: the optimiser over the model's parameters.
        device: where to compute (the model must already be there).

    Returns:
        The mean of the batch losses, a Python float.

    Shape:
        batch["image"] (N, 3, H, W) float32, batch["mask"] (N, H, W) int64 -> logits (N, C, H, W).

    Taught in: notebooks/06_train_val_functions.ipynb
    """
    model.train()  # dropout on, batch-norm statistics from the batch
    total, batches = 0.0, 0
    for batch in loader:
        images = batch["image"].to(device)
        masks = batch["mask"].to(device)
        loss = loss_fn(model(images), masks)
        optimizer.zero_grad()  # gradients add up in .grad unless cleared
        loss.backward()
        optimizer.step()
        total += loss.item()  # .item(): a float, so the graph is not kept alive
        batches += 1
    return total / max(batches, 1)


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device | str = "cpu",
    scheduler: Any | None = None,
    scaler: torch.amp.GradScaler | None = None,
    metrics: SegmentationMetrics | None = None,
    progress: bool = False,
    deadline: float | None = None,
    epoch: int = 0,
    max_steps: int | Callable[[int], int | None] | None = None,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> dict[str, float]:
    """Train for one pass over ``loader``.

    The loop of :func:`train_epoch_simple` (the one written in notebook 06), plus mixed
    precision, a per-step schedule, training metrics, a time budget and a non-finite-loss check.

    Args:
        model: returns logits (N, C, H, W).
        loader: yields ``{"image", "mask"}`` batches.
        loss_fn: ``loss_fn(logits, masks) -> scalar``.
        optimizer: the optimiser.
        device: where to compute.
        scheduler: stepped after every batch (per-step schedules), or None.
        scaler: a ``GradScaler`` for float16 mixed precision on CUDA, or None.
        metrics: accumulates training IoU / Dice from the batches' predictions, or None.
        progress: show a tqdm bar.
        deadline: ``time.monotonic()`` value after which the loop stops after the current step.
        epoch: epoch number, for messages.
        max_steps: stop after this many optimiser steps (the end of a schedule sized in steps); a
            callable is asked before every step, with the steps done in this epoch.
        amp_dtype: autocast dtype on CUDA (``torch.float16`` with ``scaler``, ``torch.bfloat16``
            without); None: float16 when ``scaler`` is given, else no autocast.
        channels_last: images in channels-last memory order (faster convolutions on tensor cores;
            the model should be converted too).

    On a GPU, nothing in a step reads a value back from the device (which would make Python wait
    for the GPU): the loss is summed on the device, the confusion matrix too, and the non-finite
    check reads the summed loss every ``SYNC_EVERY`` steps and at the end. On the CPU reads are
    free, and the check runs at every step, before the optimiser step.

    Returns:
        ``{"loss": mean loss over samples, "steps": batches done, "stopped_early": 0/1}``
        plus ``iou``/``dice`` when ``metrics`` is given.

    Raises:
        TrainingError: the loss is NaN or infinite.
    """
    device = torch.device(device)
    model.train()
    total, count, steps, stopped = None, 0, 0, 0  # total: the summed loss, a device tensor
    autocast_dtype = amp_dtype if amp_dtype is not None else (torch.float16 if scaler is not None else None)
    limit = max_steps if callable(max_steps) else (lambda done: max_steps)
    every = 1 if _metrics.reads_are_free(device) else SYNC_EVERY
    if metrics is not None:
        metrics.reset()
    for batch in _progress(loader, progress, f"epoch {epoch} train"):
        cap = limit(steps)
        if cap is not None and steps >= cap:
            break
        images, masks = _to_device(batch, device, channels_last)
        with _autocast(device, autocast_dtype):
            logits = model(images)
            loss = loss_fn(logits, masks)
        n = images.shape[0]
        total = loss.detach().float() * n if total is None else total + loss.detach().float() * n
        if (steps + 1) % every == 0:  # CPU: every step, before the optimiser step; GPU: every SYNC_EVERY steps
            _check_finite(loss if every == 1 else total, masks, optimizer, epoch, steps, every)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)  # one read of the device: did the scaled gradients overflow?
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            with _quiet_skipped_first_step(scaler):
                scheduler.step()
        count += n
        steps += 1
        if metrics is not None:
            metrics.update(logits.detach().float(), masks)
        if deadline is not None and (not distributed.active() or steps % every == 0) \
                and distributed.decided_by_main(time.monotonic() >= deadline):  # rank 0's clock
            stopped = 1
            break
    if total is not None and steps % every != 0:  # the steps since the last check
        _check_finite(total, masks, optimizer, epoch, steps - 1, every)
    total_value = float(total) if total is not None else 0.0  # one read of the device per epoch
    total_value, count = distributed.sum_over_ranks(total_value, count)  # the loss of the global batch, for the log
    out = {"loss": total_value / max(count, 1), "steps": float(steps), "stopped_early": float(stopped)}
    if metrics is not None and count:
        distributed.reduce_confusion(metrics)
        result = metrics.compute()
        out.update(iou=float(result["iou"]), dice=float(result["dice"]))
    return out


def _check_finite(value: torch.Tensor, masks: torch.Tensor, optimizer: torch.optim.Optimizer, epoch: int, step: int,
                  every: int) -> None:
    """Stop every rank when ``value`` (this step's loss, or the loss summed since the epoch began) is not finite."""
    bad_ranks = distributed.ranks_where(not bool(torch.isfinite(value)))  # any rank's NaN stops every rank
    if bad_ranks:
        where = f"epoch {epoch}, step {step}" if every == 1 else f"epoch {epoch}, by step {step}"
        raise TrainingError(_non_finite_message(value, masks, optimizer, where, bad_ranks))


@contextlib.contextmanager
def _quiet_skipped_first_step(scaler: torch.amp.GradScaler | None):
    """GradScaler skips an optimiser step whose gradients overflowed, often the very first one (its
    initial scale is tuned by trying). The schedule still counts the step, as intended; PyTorch would
    warn that the scheduler stepped before the optimiser. Checking whether the step was skipped
    would read the device every step, so the warning is silenced instead, for scaled runs only."""
    if scaler is None:
        yield
        return
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before `optimizer\.step\(\)`")
        yield


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module | None,
    device: torch.device | str = "cpu",
    num_classes: int = 2,
    threshold: float = 0.5,
    ignore_index: int | None = 255,
    progress: bool = False,
    class_names: list[str] | None = None,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> dict[str, Any]:
    """Validation: mean loss and confusion-matrix metrics over the whole loader.

    Args:
        num_classes: classes of the task (binary: 2, although the model has one output channel).
        amp_dtype: autocast dtype on CUDA (as in training), or None for float32; the loss and the
            metrics read float32 logits either way.
        channels_last: images in channels-last memory order (as in training).

    The loss sum and the confusion matrix stay on the device until the end: one read per pass.

    Returns:
        ``{"loss", "iou", "dice", "pixel_accuracy", "per_class_iou", "per_class_dice", "confusion"}``;
        IoU and Dice are computed from one confusion matrix (``confusion``, rows = true class) over
        all pixels of the data set (binary: the foreground class; multiclass: mean over classes
        that occur). Under torchrun each rank evaluates its shard and the matrices are summed.
    """
    device = torch.device(device)
    model.eval()
    distributed.broadcast_buffers(model)  # torchrun: every rank evaluates rank 0's batch-norm statistics
    metrics = SegmentationMetrics(num_classes, ignore_index=ignore_index, threshold=threshold, class_names=class_names)
    total, count = None, 0
    for batch in _progress(loader, progress, "validate"):
        images, masks = _to_device(batch, device, channels_last)
        with _autocast(device, amp_dtype):
            logits = model(images)
        logits = logits.float()
        if loss_fn is not None:
            batch_loss = loss_fn(logits, masks).detach().float() * images.shape[0]
            total = batch_loss if total is None else total + batch_loss
        count += images.shape[0]
        metrics.update(logits, masks)
    distributed.reduce_confusion(metrics)  # under torchrun: one matrix summed over the ranks' shards
    total, count = distributed.sum_over_ranks(float(total) if total is not None else 0.0, count)
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


def _seed_epoch(seed: int, epoch: int, loader: DataLoader) -> None:
    """Give epoch ``epoch`` its own random streams, derived from ``seed`` alone."""
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
    distributed.set_epoch(loader, s)  # torchrun: DistributedSampler's shuffle of epoch s
    transform = getattr(getattr(loader, "dataset", None), "transform", None)
    if hasattr(transform, "set_random_seed"):
        transform.set_random_seed(s + 7919 * distributed.rank())  # each rank its own augmentations
    worker_seeding = getattr(loader, "worker_init_fn", None)
    if hasattr(worker_seeding, "set_epoch_seed"):  # workers (persistent ones too): each its own, every epoch
        worker_seeding.set_epoch_seed(s + 7919 * distributed.rank())


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
    run_dir: str | os.PathLike | None = None,
    num_classes: int = 2,
    monitor: str = "iou",
    threshold: float = 0.5,
    ignore_index: int | None = 255,
    amp: bool = True,
    max_minutes: float | None = None,
    seed: int = 42,
    progress: bool = False,
    resume: str | os.PathLike | None = None,
    on_epoch_end: Callable[[list[dict[str, Any]]], None] | None = None,
    extra_state: dict[str, Any] | None = None,
    max_steps: int | Callable[..., int] | None = None,
    deadline: float | None = None,
    amp_dtype: str = "auto",
    channels_last: bool = False,
) -> FitResult:
    """Train for ``epochs`` epochs, validating after each and keeping the best checkpoint.

    Args:
        model, train_loader, val_loader, loss_fn, optimizer: the usual pieces.
        epochs: total number of epochs (a resumed run continues up to this number).
        scheduler: per-step LR schedule (stepped after every batch), or None.
        run_dir: where ``checkpoints/{best,last}.pt`` and ``metrics.json`` go; None saves nothing.
        num_classes: classes of the task (binary: 2).
        monitor: ``"iou"``, ``"dice"`` (higher is better) or ``"loss"`` (lower is better).
        amp: mixed precision when the device is CUDA, in training and validation (see
            :func:`mixed_precision`: bfloat16 where the card supports it, else float16 + GradScaler).
        amp_dtype: ``auto``, ``float16`` or ``bfloat16``.
        channels_last: convert the model and the images to channels-last memory order (CUDA only;
            faster convolutions with mixed precision).
        max_minutes: wall-clock budget; the run stops cleanly when it is used up.
        seed: base seed; epoch e uses ``seed * 1000 + e`` for shuffle, augmentations and torch.
        resume: a run folder (or a checkpoint file) to continue from.
        on_epoch_end: called with the history after every epoch (e.g. a live plot).
        extra_state: stored in every checkpoint (e.g. the config, class names).
        max_steps: optimiser steps of the whole run (the schedule's length, see
            ``workshop.recipe``); the run ends when they are done, even within an epoch. A
            callable is asked before every step with the steps done so far in the run (the
            recipe re-plans against the clock, within the first epoch too).
        deadline: ``time.monotonic()`` at which ``max_minutes`` ends, when the budget started
            before ``fit`` (the recipe's calibration counts in it); default: now + ``max_minutes``.

    Returns:
        ``FitResult`` with the history (one dict per epoch: train/val loss, IoU, Dice, lr, times).

    Raises:
        TrainingError: non-finite loss (the last good checkpoint is kept).
    """
    if monitor not in MONITORS:
        raise ValueError(f"monitor must be one of: {', '.join(MONITORS)} (got {monitor!r})")
    device = torch.device(device)
    channels_last = channels_last and device.type == "cuda"
    if channels_last:
        model.to(device, memory_format=torch.channels_last)
    else:
        model.to(device)
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(device)  # its buffers (class weights, pos_weight) beside the logits
    autocast_dtype, scaler = mixed_precision(device, amp, amp_dtype)
    run_path = Path(run_dir) if run_dir is not None else None
    ckpt_dir = run_path / CHECKPOINT_DIR if run_path and distributed.is_main() else None  # rank 0 writes
    progress = progress and distributed.is_main()
    train_loader, val_loader = distributed.shard_loaders(train_loader, val_loader)  # torchrun: this rank's share
    train_model = distributed.wrap_model(model, device)  # torchrun: DDP; `model` stays the bare one to save
    result = FitResult(run_dir=run_path)
    best_value: float | None = None
    start_epoch = 1

    if resume is not None:
        # to the CPU: load_state_dict copies the weights to the model's device and the optimiser's
        # state to its parameters' devices, but keeps Adam's step counters on the CPU, where
        # reading them costs no synchronisation (on the GPU: one per parameter per step)
        state = load_checkpoint(_resume_file(resume), map_location="cpu")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler") is not None:
            scaler.load_state_dict(state["scaler"])
        result.history = list(state.get("history", []))
        result.best = state.get("best")
        best_value = state.get("best_value")
        start_epoch = int(state["epoch"]) + 1

    def state_dict(epoch: int, **more: Any) -> dict[str, Any]:
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "epoch": epoch,
            "history": result.history,
            "best": result.best,
            "best_value": best_value,
            "monitor": monitor,
            "num_classes": num_classes,
            **(extra_state or {}),
            **more,
        }

    if deadline is None:
        deadline = time.monotonic() + max_minutes * 60 if max_minutes else None
    t_run = time.monotonic()
    prior_elapsed = result.history[-1]["elapsed_s"] if result.history else 0.0
    train_metrics = SegmentationMetrics(num_classes, ignore_index=ignore_index, threshold=threshold)
    epoch = start_epoch - 1
    steps_done = sum(int(h.get("steps", 0)) for h in result.history)
    if callable(max_steps):
        step_limit = lambda done=None: max_steps(steps_done if done is None else done)  # noqa: E731
    else:
        step_limit = lambda done=None: max_steps  # noqa: E731
    try:
        for epoch in range(start_epoch, epochs + 1):
            if step_limit() is not None and steps_done >= step_limit():
                break
            _seed_epoch(seed, epoch, train_loader)
            t0 = time.monotonic()
            def epoch_limit(done_in_epoch: int, first: int = steps_done) -> int | None:
                limit = step_limit(first + done_in_epoch)
                return None if limit is None else limit - first

            train = train_one_epoch(
                train_model, train_loader, loss_fn, optimizer, device, scheduler, scaler,
                metrics=train_metrics, progress=progress, deadline=deadline, epoch=epoch,
                max_steps=epoch_limit, amp_dtype=autocast_dtype, channels_last=channels_last,
            )
            steps_done += int(train["steps"])
            t_train = time.monotonic() - t0
            val = evaluate(model, val_loader, loss_fn, device, num_classes, threshold, ignore_index, progress,
                           amp_dtype=autocast_dtype, channels_last=channels_last)
            record = {
                "epoch": epoch,
                "train_loss": train["loss"],
                "train_iou": train.get("iou"),
                "train_dice": train.get("dice"),
                "val_loss": val["loss"],
                "val_iou": val["iou"],
                "val_dice": val["dice"],
                "lr": optimizer.param_groups[0]["lr"],
                "train_time_s": round(t_train, 3),
                "epoch_time_s": round(time.monotonic() - t0, 3),
                "elapsed_s": round(prior_elapsed + time.monotonic() - t_run, 3),
                "partial": bool(train["stopped_early"]),
                "steps": int(train["steps"]),
            }
            result.history.append(record)
            value = val[monitor]
            if is_improvement(value, best_value, monitor):
                best_value = value
                result.best = dict(record)
                if ckpt_dir:
                    save_checkpoint(state_dict(epoch), ckpt_dir / "best.pt")
            if ckpt_dir:
                save_checkpoint(state_dict(epoch), ckpt_dir / "last.pt")
                write_json_atomic({"history": result.history, "best": result.best, "monitor": monitor}, run_path / "metrics.json")
            if on_epoch_end is not None:
                on_epoch_end(result.history)
            if train["stopped_early"]:
                result.stopped_reason = f"time budget of {max_minutes} min reached"
                break
            if step_limit() is not None and steps_done >= step_limit():
                if epoch < epochs:
                    result.stopped_reason = f"schedule complete: {steps_done} optimiser steps"
                break
    except KeyboardInterrupt:
        result.stopped_reason = "interrupted"
        if ckpt_dir:
            save_checkpoint(state_dict(epoch - 1, interrupted=True), ckpt_dir / "interrupted.pt")
            last = ckpt_dir / "last.pt"
            print(
                f"Interrupted during epoch {epoch}. Saved {ckpt_dir / 'interrupted.pt'}; "
                f"{'resume from ' + str(last) if last.exists() else 'no epoch had finished yet'}"
                f" with fit(..., resume=\"{run_path}\") (command line: workshop train --resume {run_path})"
            )
    except Exception as exc:  # torchrun: another rank died or the launcher stopped this one
        if not distributed.is_lost_contact(exc):
            raise
        raise distributed.lost_contact(exc, run_path) from None
    return result


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
