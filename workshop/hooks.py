"""Hooks: what ``fit`` adds around the loops of notebook 06, without changing a line of them.

``engine.train_one_epoch`` and ``engine.evaluate`` are the loops a learner writes in notebook 06.
Everything else a real run needs comes in as a *hook* (a callback, as fastai calls it): an object
whose methods the loops call at fixed points. The default of every method changes nothing, so with
no hooks the loops are exactly the plain ones.

The points, in the order a training step meets them::

    for batch in hooks.batches(loader):        # progress bar; the step cap and the deadline end the epoch
        ... to(device) ...
        with hooks.autocast():                 # mixed precision
            logits = model(images); loss = loss_fn(logits, masks)
        hooks.after_loss(loss, logits, masks)  # the non-finite check, training metrics
        optimizer.zero_grad()
        hooks.scale(loss).backward()           # float16: the GradScaler's scaled loss
        hooks.step(optimizer)                  # optimizer.step() (or the GradScaler's), then the schedule
    return hooks.epoch_mean(total, count)      # the mean loss (torchrun: over every process)

and around the epochs (``fit``): :meth:`Hook.before_fit`, :meth:`Hook.before_epoch`,
:meth:`Hook.should_stop`, :meth:`Hook.before_validation`, :meth:`Hook.after_epoch`,
:meth:`Hook.checkpoint_state` / :meth:`Hook.load_checkpoint_state`, :meth:`Hook.on_error`.

The hooks here belong to the book (mixed precision, the schedule, the non-finite check, training
metrics, progress bars, a per-epoch callback). The machinery adds its own: the time budget and the
step cap (``workshop.budget.Budget``), torchrun (``workshop.distributed.DistributedHooks``).

Taught in: notebooks/07_training.ipynb (what ``fit`` adds to the loop of notebook 06)
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from torch import nn

from workshop import metrics as _metrics  # reads_are_free: may a value be read without a GPU sync?
from workshop.errors import TrainingError
from workshop.metrics import SegmentationMetrics

__all__ = ["AMP_DTYPES", "SYNC_EVERY", "ChannelsLast", "CheckpointExtras", "EpochEnd", "Hook", "Hooks", "MixedPrecision", "NonFiniteCheck",
           "ProgressBars", "Schedule", "TrainingMetrics", "mixed_precision"]

AMP_DTYPES = ("auto", "float16", "bfloat16")  # train.amp_dtype
SYNC_EVERY = 25  # on a GPU, the non-finite check (and torchrun's shared decisions) read the device every N steps


class Hook:
    """One hook: override the methods you need; every default leaves the loop as it is.

    ``self.hooks`` is the :class:`Hooks` the hook was added to (so a hook can ask, e.g., for sums
    over the processes of a torchrun job).
    """

    hooks: "Hooks"
    writes = True  # False: this process writes no files (torchrun: every rank but 0)
    rank, world_size = 0, 1

    # --- the training step
    def batches(self, batches: Iterable) -> Iterable:
        """Wrap the loader (a progress bar; ``return`` from the generator ends the epoch early)."""
        return batches

    def autocast(self) -> contextlib.AbstractContextManager:
        """A context for the forward pass and the loss (mixed precision)."""
        return contextlib.nullcontext()

    def after_loss(self, loss: torch.Tensor, logits: torch.Tensor, masks: torch.Tensor) -> None:
        """The step's loss and logits, before the backward pass."""

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """The tensor to back-propagate (a GradScaler scales it)."""
        return loss

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> bool:
        """Take the optimiser step instead of ``optimizer.step()``; True when it did."""
        return False

    def after_step(self) -> None:
        """After the optimiser step (a per-step learning-rate schedule)."""

    def val_batches(self, batches: Iterable) -> Iterable:
        """Wrap the validation loader (a progress bar)."""
        return batches

    def before_mean(self, total: torch.Tensor | float) -> None:
        """The epoch's summed loss, before the mean is taken (the last non-finite check)."""

    def sum_over_processes(self, *values: Any) -> tuple[Any, ...]:
        """Each value summed over the processes of a torchrun job (floats, or tensors summed in place)."""
        return values

    def ranks_where(self, flag: bool) -> list[int]:
        """The processes where ``flag`` is true (one process: ``[0]`` or ``[]``)."""
        return [0] if flag else []

    def decided_by_main(self, flag: bool) -> bool:
        """Process 0's ``flag`` on every process (one process: ``flag``)."""
        return bool(flag)

    # --- around the epochs (fit)
    def before_fit(self, model: nn.Module, epochs: int) -> nn.Module:
        """The model to train (channels-last memory order; DistributedDataParallel)."""
        return model

    def before_epoch(self, epoch: int, history: list[dict[str, Any]]) -> None:
        """Before the epoch's first batch."""

    def should_stop(self, history: list[dict[str, Any]]) -> bool:
        """True to end the run before the next epoch (a schedule already complete on resume)."""
        return False

    def epoch_summary(self) -> dict[str, Any]:
        """Numbers of the training epoch just done, for the history (training IoU, steps)."""
        return {}

    def before_validation(self, model: nn.Module) -> None:
        """Before validation (torchrun: rank 0's batch-norm statistics on every rank)."""

    def after_epoch(self, history: list[dict[str, Any]]) -> str | None:
        """After the epoch's record and checkpoints; return a reason to end the run, or None."""
        return None

    def checkpoint_state(self) -> dict[str, Any]:
        """Entries to add to every checkpoint."""
        return {}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`checkpoint_state` saved (resume)."""

    def on_error(self, exc: Exception, run_dir: Any) -> None:
        """An exception ends the run; raise a clearer one instead, or return to let it through."""


class Hooks(Hook):
    """Several hooks called as one, in order. ``Hooks.of(None)`` is the empty list: the plain loop."""

    def __init__(self, hooks: Sequence[Hook] = ()) -> None:
        self.items = list(hooks)
        for hook in self.items:
            hook.hooks = self

    @classmethod
    def of(cls, hooks: "Hooks | Sequence[Hook] | None") -> "Hooks":
        if isinstance(hooks, Hooks):
            return hooks
        return cls(hooks or ())

    def find(self, kind: type) -> Any:
        """The first hook of type ``kind``, or None."""
        return next((h for h in self.items if isinstance(h, kind)), None)

    @property
    def writes(self) -> bool:  # type: ignore[override]
        return all(h.writes for h in self.items)

    @property
    def rank(self) -> int:  # type: ignore[override]
        return max((h.rank for h in self.items), default=0)

    @property
    def world_size(self) -> int:  # type: ignore[override]
        return max((h.world_size for h in self.items), default=1)

    @property
    def scaler(self) -> torch.amp.GradScaler | None:
        return next((h.scaler for h in self.items if getattr(h, "scaler", None) is not None), None)

    def batches(self, batches):
        for h in self.items:
            batches = h.batches(batches)
        return batches

    def val_batches(self, batches):
        for h in self.items:
            batches = h.val_batches(batches)
        return batches

    def autocast(self):
        stack = contextlib.ExitStack()
        for h in self.items:
            stack.enter_context(h.autocast())
        return stack

    def after_loss(self, loss, logits, masks):
        for h in self.items:
            h.after_loss(loss, logits, masks)

    def scale(self, loss):
        for h in self.items:
            loss = h.scale(loss)
        return loss

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()`` (or a hook's, e.g. the GradScaler's), then every ``after_step``."""
        if not any(h.optimizer_step(optimizer) for h in self.items):
            optimizer.step()
        for h in self.items:
            h.after_step()

    def epoch_mean(self, total: torch.Tensor | float, count: int) -> float:
        """The mean loss per sample: ``float(total) / count``, both summed over the processes first."""
        for h in self.items:
            h.before_mean(total)
        total, count = self.sum_over_processes(float(total), count)  # one read of the device per epoch
        return total / max(count, 1)

    def sum_over_processes(self, *values):
        for h in self.items:
            values = h.sum_over_processes(*values)
        return values

    def ranks_where(self, flag):
        for h in self.items:
            if type(h).ranks_where is not Hook.ranks_where:
                return h.ranks_where(flag)
        return [0] if flag else []

    def decided_by_main(self, flag):
        for h in self.items:
            if type(h).decided_by_main is not Hook.decided_by_main:
                return h.decided_by_main(flag)
        return bool(flag)

    def before_fit(self, model, epochs):
        for h in self.items:
            model = h.before_fit(model, epochs)
        return model

    def before_epoch(self, epoch, history):
        for h in self.items:
            h.before_epoch(epoch, history)

    def should_stop(self, history):
        return any(h.should_stop(history) for h in self.items)

    def epoch_summary(self):
        out: dict[str, Any] = {}
        for h in self.items:
            out.update(h.epoch_summary())
        return out

    def before_validation(self, model):
        for h in self.items:
            h.before_validation(model)

    def after_epoch(self, history):
        reasons = [h.after_epoch(history) for h in self.items]  # every hook runs, then the first reason wins
        return next((r for r in reasons if r), None)

    def checkpoint_state(self):
        out: dict[str, Any] = {}
        for h in self.items:
            out.update(h.checkpoint_state())
        return out

    def load_checkpoint_state(self, state):
        for h in self.items:
            h.load_checkpoint_state(state)

    def on_error(self, exc, run_dir):
        for h in self.items:
            h.on_error(exc, run_dir)


# ----------------------------------------------------------------------------- mixed precision


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


class MixedPrecision(Hook):
    """Autocast for the forward pass and the loss, and a GradScaler for float16 (CUDA only).

    Args:
        device: where the run computes (no mixed precision off CUDA).
        amp: False for float32; True or ``"auto"``/``"float16"``/``"bfloat16"`` (see :func:`mixed_precision`).
        dtype, scaler: given directly instead (tests, the calibration); ``dtype`` None with a scaler: float16.
    """

    def __init__(self, device: torch.device | str = "cpu", amp: bool | str = True, dtype: torch.dtype | None = None,
                 scaler: torch.amp.GradScaler | None = None) -> None:
        self.device = torch.device(device)
        if dtype is None and scaler is None:
            dtype, scaler = mixed_precision(self.device, bool(amp), amp if isinstance(amp, str) else "auto")
        self.dtype = dtype if dtype is not None else (torch.float16 if scaler is not None else None)
        self.scaler = scaler

    def autocast(self):
        if self.dtype is not None and self.device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=self.dtype)
        return contextlib.nullcontext()

    def scale(self, loss):
        return self.scaler.scale(loss) if self.scaler is not None else loss

    def optimizer_step(self, optimizer):
        if self.scaler is None:
            return False
        self.scaler.step(optimizer)  # one read of the device: did the scaled gradients overflow?
        self.scaler.update()
        return True

    def checkpoint_state(self):
        return {"scaler": self.scaler.state_dict()} if self.scaler is not None else {}

    def load_checkpoint_state(self, state):
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])


class ChannelsLast(Hook):
    """The model and the images in channels-last memory order (CUDA: faster convolutions on tensor cores)."""

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)

    def before_fit(self, model, epochs):
        return model.to(self.device, memory_format=torch.channels_last)

    def batches(self, batches):
        for batch in batches:  # on the device first (a pinned copy that does not block), then reordered there
            image = batch["image"].to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            yield {**batch, "image": image}

    val_batches = batches


# ----------------------------------------------------------------------------- schedule, checks, metrics


class Schedule(Hook):
    """Step a per-step learning-rate schedule after every optimiser step; saved in checkpoints."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def after_step(self):
        with _quiet_skipped_first_step(self.hooks.scaler):
            self.scheduler.step()

    def checkpoint_state(self):
        return {"scheduler": self.scheduler.state_dict()}

    def load_checkpoint_state(self, state):
        if state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])


@contextlib.contextmanager
def _quiet_skipped_first_step(scaler: torch.amp.GradScaler | None) -> Iterator[None]:
    """GradScaler skips an optimiser step whose gradients overflowed, often the very first one (its
    initial scale is tuned by trying). The schedule still counts the step, as intended; PyTorch would
    warn that the scheduler stepped before the optimiser. Checking whether the step was skipped
    would read the device every step, so the warning is silenced instead, for scaled runs only."""
    if scaler is None:
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before `optimizer\.step\(\)`")
        yield


class NonFiniteCheck(Hook):
    """Stop the run when the loss is NaN or infinite, naming the likely causes.

    On the CPU reading a value is free: every step's loss is checked before its optimiser step. On
    a GPU a read makes Python wait for the device, so the loss is summed on the device and the sum
    is checked every ``SYNC_EVERY`` steps and at the end of the epoch. Under torchrun a NaN on any
    process stops every process.

    Args:
        optimizer: its learning rate goes into the message.
        device: where the loss lives.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, device: torch.device | str = "cpu") -> None:
        self.optimizer = optimizer
        self.every = 1 if _metrics.reads_are_free(torch.device(device)) else SYNC_EVERY
        self.epoch = 0
        self._reset()

    def _reset(self) -> None:
        self.total: torch.Tensor | None = None
        self.masks: torch.Tensor | None = None
        self.steps = 0

    def before_epoch(self, epoch, history):
        self.epoch = epoch

    def batches(self, batches):
        self._reset()
        return batches

    def after_loss(self, loss, logits, masks):
        n = logits.shape[0]
        self.total = loss.detach().float() * n if self.total is None else self.total + loss.detach().float() * n
        self.masks = masks
        self.steps += 1
        if self.steps % self.every == 0:  # CPU: every step, before the optimiser step; GPU: every SYNC_EVERY steps
            self._check(loss if self.every == 1 else self.total, self.steps - 1)

    def before_mean(self, total):
        if self.total is not None and self.steps % self.every != 0:  # the steps since the last check
            self._check(self.total, self.steps - 1)

    def _check(self, value: torch.Tensor, step: int) -> None:
        bad_ranks = self.hooks.ranks_where(not bool(torch.isfinite(value)))  # any rank's NaN stops every rank
        if bad_ranks:
            where = f"epoch {self.epoch}, step {step}" if self.every == 1 else f"epoch {self.epoch}, by step {step}"
            raise TrainingError(non_finite_message(value, self.masks, self.optimizer, where, bad_ranks,
                                                   self.hooks.world_size))


def non_finite_message(loss: torch.Tensor, masks: torch.Tensor, optimizer: torch.optim.Optimizer, where: str,
                       bad_ranks: list[int] | None = None, world_size: int = 1) -> str:
    """What a non-finite loss means and what to try, with the batch's mask values and the learning rate."""
    values = torch.unique(masks).tolist()
    shown = ", ".join(str(v) for v in values[:10]) + (", ..." if len(values) > 10 else "")
    lr = optimizer.param_groups[0].get("lr")
    if world_size > 1:  # every rank stops; name the rank(s) whose loss broke
        where += f" on rank {', '.join(map(str, bad_ranks or []))} of {world_size}"
    return (
        f"loss became {loss.item() if not torch.isfinite(loss) else 'non-finite'} at {where}. Likely causes: a learning rate too high "
        f"(lr={lr:.3g}; try 10x lower), mask values that are not class ids (this batch has {{{shown}}}), "
        "or images that were not normalised. The last good checkpoint is kept."
    )


class TrainingMetrics(Hook):
    """Count the optimiser steps of an epoch and its training IoU / Dice (a confusion matrix on the device).

    ``epoch_summary()`` gives ``{"steps"}``, plus ``{"iou", "dice"}`` when the epoch had a batch.
    """

    def __init__(self, num_classes: int = 2, ignore_index: int | None = 255, threshold: float = 0.5,
                 metrics: SegmentationMetrics | None = None) -> None:
        self.metrics = metrics if metrics is not None else SegmentationMetrics(num_classes, ignore_index=ignore_index,
                                                                               threshold=threshold)
        self.steps = 0

    def batches(self, batches):
        self.metrics.reset()
        self.steps = 0
        return batches

    def after_loss(self, loss, logits, masks):
        self.steps += 1
        self.metrics.update(logits.detach().float(), masks)

    def epoch_summary(self):
        out: dict[str, Any] = {"steps": self.steps}
        if self.steps:
            (self.metrics.confusion,) = self.hooks.sum_over_processes(self.metrics.confusion)
            result = self.metrics.compute()
            out.update(iou=float(result["iou"]), dice=float(result["dice"]))
        return out


class ProgressBars(Hook):
    """A tqdm bar over the batches of every training epoch and validation."""

    def __init__(self) -> None:
        self.desc = "train"

    def before_epoch(self, epoch, history):
        self.desc = f"epoch {epoch} train"

    def batches(self, batches):
        from tqdm.auto import tqdm

        return tqdm(batches, desc=self.desc, leave=False, dynamic_ncols=True)

    def val_batches(self, batches):
        from tqdm.auto import tqdm

        return tqdm(batches, desc="validate", leave=False, dynamic_ncols=True)


class CheckpointExtras(Hook):
    """Store ``entries`` in every checkpoint (the run's config, its class names, the recipe's plan)."""

    def __init__(self, **entries: Any) -> None:
        self.entries = entries

    def checkpoint_state(self):
        return dict(self.entries)


class EpochEnd(Hook):
    """Call ``callback(history)`` after every epoch (a live plot, a logger)."""

    def __init__(self, callback: Callable[[list[dict[str, Any]]], None]) -> None:
        self.callback = callback

    def after_epoch(self, history):
        self.callback(history)
        return None
