"""The clock side of the recipe: time the machine, count the steps that fit, keep the schedule to the budget.

* :func:`calibrate` times a few real steps of ``engine.train_one_epoch`` (:func:`time_steps`, the
  library's one step timer), a validation and the checkpoints, on a throwaway copy of the model;
* :class:`Budget` is the hook that stops ``engine.fit`` at the deadline and at the schedule's last step;
* :func:`steps_in_budget` turns those seconds into optimiser steps and epochs;
* :class:`StepSchedule` is a learning-rate schedule sized in steps that can be re-planned;
* :class:`BudgetKeeper` (a hook too) re-plans it after every epoch from the real times, so a machine
  that gets busier after the calibration still ends the schedule inside the budget.

``workshop.recipe`` puts them together (``lay_over_budget``); ``workshop.runs`` uses them.

Taught in: notebooks/07_training.ipynb
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
import time
from pathlib import Path
from functools import partial
from typing import Any, Callable, Iterable

import torch

from workshop.hooks import SYNC_EVERY, Hook
from workshop.metrics import reads_are_free

__all__ = ["BUDGET_RESERVE", "CALIBRATION_STEPS", "WARMUP_STEPS", "Budget", "calibrate", "time_steps", "steps_in_budget",
           "StepSchedule", "BudgetKeeper", "without_sync_batchnorm"]

BUDGET_RESERVE = 0.04  # share of the budget kept free for the variation of step times
CALIBRATION_STEPS = 4  # timed steps, after the warm-up steps
WARMUP_STEPS = 2  # untimed: first allocations, lazy initialisation, cuDNN's autotuning, workers starting


def calibrate(
    model: torch.nn.Module,
    loss_fn: Callable,
    optimizer_factory: Callable[[torch.nn.Module], torch.optim.Optimizer],
    train_loader,
    val_loader,
    device: torch.device | str = "cpu",
    steps: int = CALIBRATION_STEPS,
    checkpoint_dir: str | os.PathLike | None = None,
    num_classes: int = 2,
    ignore_index: int | None = 255,
    amp: bool = False,
    amp_dtype: str = "auto",
    channels_last: bool = False,
    warmup: int = WARMUP_STEPS,
) -> dict[str, float]:
    """Time this machine: training steps, a validation pass and an epoch's checkpoints.

    Real steps of ``engine.train_one_epoch`` (batch loading, the step, the training metrics) on
    real batches, and ``engine.evaluate`` on the first validation batches, on a throwaway copy of
    the model (so the run itself starts from the untouched model). The steps are the ones the run
    will take: the same mixed precision (``amp``, ``amp_dtype``: autocast, and a GradScaler for
    float16) and memory format. The first ``warmup`` steps of the same pass are not timed, nor is
    the first validation batch (it starts the loader's workers). The copy holds plain BatchNorm
    where the model has ``SyncBatchNorm``: under torchrun rank 0 calibrates alone, and a
    SyncBatchNorm would wait for the other ranks, which wait for rank 0's plan.

    Returns:
        ``{"step_s", "val_s", "checkpoint_s", "seconds"}``: seconds per training step, per full
        validation pass (estimated from its first batches), per epoch of checkpoint writing
        (``best.pt`` + ``last.pt``), and how long the calibration took.
    """
    import itertools

    from workshop import engine
    from workshop.hooks import MixedPrecision

    t_start = time.monotonic()
    device = torch.device(device)
    channels_last = channels_last and device.type == "cuda"
    probe = without_sync_batchnorm(copy.deepcopy(model))
    probe = probe.to(device, memory_format=torch.channels_last) if channels_last else probe.to(device)
    if isinstance(loss_fn, torch.nn.Module):
        loss_fn.to(device)
    optimizer = optimizer_factory(probe)
    dtype, scaler = engine.mixed_precision(device, amp, amp_dtype)
    precision = [MixedPrecision(device, dtype=dtype, scaler=scaler)]
    if channels_last:
        from workshop.hooks import ChannelsLast

        precision.append(ChannelsLast(device))
    step_s, timed, warmup = time_steps(probe, loss_fn, optimizer, train_loader, device, steps, warmup, precision,
                                       num_classes=num_classes, ignore_index=ignore_index)

    val_batches = len(val_loader)
    timed_val = min(2, val_batches)
    evaluate = partial(engine.evaluate, num_classes=num_classes, ignore_index=ignore_index, hooks=precision)
    evaluate(probe, itertools.islice(val_loader, 1), loss_fn, device)  # starts the workers: not timed
    _synchronize(device)
    t0 = time.monotonic()
    evaluate(probe, itertools.islice(val_loader, timed_val), loss_fn, device)
    _synchronize(device)
    val_s = (time.monotonic() - t0) / max(timed_val, 1) * val_batches
    state = {"model": probe.state_dict(), "optimizer": optimizer.state_dict()}
    with tempfile.TemporaryDirectory(dir=checkpoint_dir) as tmp:
        saves = []
        for k in range(2):  # the first write is often slower (a cold file system cache)
            t0 = time.monotonic()
            engine.save_checkpoint(state, Path(tmp) / f"probe{k}.pt")
            saves.append(time.monotonic() - t0)
        checkpoint_s = 2 * min(saves)  # best.pt and last.pt
    del probe, optimizer, state
    return {"step_s": step_s, "val_s": val_s, "checkpoint_s": checkpoint_s, "seconds": time.monotonic() - t_start,
            "warmup_steps": warmup, "timed_steps": timed}


def time_steps(
    model: torch.nn.Module,
    loss_fn: Callable,
    optimizer: torch.optim.Optimizer,
    loader,
    device: torch.device | str = "cpu",
    steps: int = CALIBRATION_STEPS,
    warmup: int = WARMUP_STEPS,
    hooks: list | tuple = (),
    num_classes: int = 2,
    ignore_index: int | None = 255,
) -> tuple[float, int, int]:
    """Seconds per training step: ``warmup`` untimed steps, then ``steps`` timed ones, of ``engine.train_one_epoch``.

    The steps are the run's own: batch loading, the forward and backward passes, the optimiser step
    and the training metrics, with ``hooks`` (mixed precision). ``model`` and ``optimizer`` are
    trained by it: pass copies. The one step timer of the library (``calibrate`` and
    ``workshop.estimate`` use it).

    Returns:
        ``(seconds per step, timed steps, warm-up steps)``; fewer when the loader is short.
    """
    from workshop import engine
    from workshop.hooks import TrainingMetrics

    device = torch.device(device)
    batches = len(loader)
    warmup = max(0, min(warmup, batches - 1))
    steps = max(1, min(steps, batches - warmup))
    clock = _StepClock(loader, warmup, device)
    counted = TrainingMetrics(num_classes, ignore_index=ignore_index)
    engine.train_one_epoch(model, clock, loss_fn, optimizer, device, [*hooks, counted, Budget(max_steps=warmup + steps)])
    _synchronize(device)
    timed = counted.steps - warmup
    return (time.monotonic() - clock.started) / max(timed, 1), timed, warmup


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _StepClock:
    """Iterates ``loader`` and notes the time when batch number ``start`` is asked for (the warm-up is over)."""

    def __init__(self, loader, start: int, device: torch.device) -> None:
        self.loader, self.start, self.device = loader, start, device
        self.started = time.monotonic()

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        batches = iter(self.loader)
        k = 0
        while True:
            if k == self.start:
                _synchronize(self.device)  # the warm-up steps' queued GPU work is not counted
                self.started = time.monotonic()
            try:
                batch = next(batches)
            except StopIteration:
                return
            yield batch
            k += 1


class Budget(Hook):
    """The time budget and the step cap of a run, as a hook of ``engine.fit``.

    The deadline ends the epoch after the step that passes it (the model is then validated and
    saved, and the run stops); the step cap ends the run when the schedule's optimiser steps are
    done, even within an epoch. Under torchrun rank 0's clock decides, every ``SYNC_EVERY`` steps
    on a GPU, so every process stops at the same step.

    Args:
        max_minutes: the budget in minutes (named in the stop reason), or None.
        max_steps: optimiser steps of the whole run, or a callable asked before every step with the
            steps done so far (``BudgetKeeper.max_steps``: the plan re-made against the clock).
        deadline: ``time.monotonic()`` at which the budget ends, when it started before ``fit``
            (the calibration counts in it); default: ``max_minutes`` from the start of ``fit``.
        device: where the run computes (how often the clock may be read under torchrun).
    """

    def __init__(self, max_minutes: float | None = None, max_steps: int | Callable[[int], int] | None = None,
                 deadline: float | None = None, device: torch.device | str = "cpu") -> None:
        self.max_minutes, self.max_steps, self.deadline = max_minutes, max_steps, deadline
        self.every = 1 if reads_are_free(torch.device(device)) else SYNC_EVERY
        self.done, self.stopped, self.epochs = 0, False, 0

    def limit(self, done: int) -> int | None:
        """The run's step cap, asked with the steps done so far."""
        return self.max_steps(done) if callable(self.max_steps) else self.max_steps

    def before_fit(self, model, epochs):
        self.epochs = epochs
        if self.deadline is None and self.max_minutes:
            self.deadline = time.monotonic() + self.max_minutes * 60
        return model

    def should_stop(self, history):
        done = sum(int(h.get("steps", 0)) for h in history)
        cap = self.limit(done)
        return cap is not None and done >= cap

    def before_epoch(self, epoch, history):
        self.done = sum(int(h.get("steps", 0)) for h in history)

    def batches(self, batches: Iterable) -> Iterable:
        self.stopped = False
        done = 0
        for batch in batches:
            cap = self.limit(self.done + done)
            if cap is not None and self.done + done >= cap:  # the schedule's last step is done
                return
            yield batch
            done += 1
            if self.deadline is not None and (self.hooks.world_size == 1 or done % self.every == 0) \
                    and self.hooks.decided_by_main(time.monotonic() >= self.deadline):  # rank 0's clock
                self.stopped = True
                return

    def epoch_summary(self):
        return {"stopped_early": self.stopped}

    def after_epoch(self, history):
        if self.stopped:
            return f"time budget of {self.max_minutes} min reached"
        done = sum(int(h.get("steps", 0)) for h in history)
        cap = self.limit(done)
        if cap is not None and done >= cap and history[-1]["epoch"] < self.epochs:
            return f"schedule complete: {done} optimiser steps"
        return None


def without_sync_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with every ``SyncBatchNorm`` replaced by a ``BatchNorm2d`` holding the same tensors.

    For the calibration's copy of the model, which one rank runs on its own (a SyncBatchNorm would
    gather statistics from ranks that are not running it). Changes ``module`` in place.
    """
    if isinstance(module, torch.nn.SyncBatchNorm):
        plain = torch.nn.BatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                                     module.track_running_stats)
        if module.affine:
            plain.weight, plain.bias = module.weight, module.bias
        plain.running_mean, plain.running_var = module.running_mean, module.running_var
        plain.num_batches_tracked = module.num_batches_tracked
        plain.train(module.training)
        return plain
    for name, child in module.named_children():
        replaced = without_sync_batchnorm(child)
        if replaced is not child:
            setattr(module, name, replaced)
    return module


def steps_in_budget(available_s: float, step_s: float, per_epoch_s: float, steps_per_epoch_: int) -> tuple[int, int]:
    """How many optimiser steps (and epochs) fit in ``available_s`` seconds.

    Every epoch costs ``steps_per_epoch * step_s + per_epoch_s`` (validation and checkpoints); a
    last, partial epoch takes the steps that still fit with its own validation.

    Returns:
        (total steps, epochs); at least (1, 1).

    Example:
        >>> steps_in_budget(100.0, 1.0, 5.0, 10)   # 15 s per epoch: 6 epochs (90 s), then 5 steps + validation
        (65, 7)
        >>> steps_in_budget(100.0, 1.0, 5.0, 20)   # 25 s per epoch: 4 epochs exactly
        (80, 4)
        >>> steps_in_budget(50.0, 1.0, 5.0, 20)    # 2 epochs (50 s)
        (40, 2)
        >>> steps_in_budget(40.0, 1.0, 5.0, 20)    # 1 epoch (25 s) + 15 s: 10 steps and a validation
        (30, 2)
    """
    if step_s <= 0 or steps_per_epoch_ < 1:
        raise ValueError("step_s must be positive and steps_per_epoch at least 1")
    epoch_s = steps_per_epoch_ * step_s + per_epoch_s
    full = int(max(available_s, 0.0) // epoch_s)
    rest = available_s - full * epoch_s
    extra = int((rest - per_epoch_s) // step_s) if rest > per_epoch_s else 0
    extra = max(0, min(extra, steps_per_epoch_ - 1))
    total = full * steps_per_epoch_ + extra
    epochs = full + (1 if extra else 0)
    if total < 1:
        return 1, 1
    return total, epochs


class StepSchedule(torch.optim.lr_scheduler.LRScheduler):
    """A learning-rate schedule sized in optimiser steps that can be re-planned during the run.

    The learning rate is a function of the schedule's progress ``p`` (0 at the first step, 1 at
    the last): ``onecycle`` (cosine up from ``lr / 25`` to ``lr`` over the first 15 %, then cosine
    down to ``lr / 25e4``, as ``torch.optim.lr_scheduler.OneCycleLR``), ``cosine`` (``lr`` to 0),
    ``step`` (x0.1 after the first and after the second third: two drops) or ``none``. :meth:`replan` changes the number of steps left
    without a jump: the progress reached so far is kept and the rest is spread over the new
    steps. Past the last step the learning rate stays at its final value.

    Args:
        optimizer: the optimiser (every parameter group gets the same learning rate).
        name: ``onecycle``, ``cosine``, ``step`` or ``none``.
        lr: the peak learning rate.
        total_steps: optimiser steps of the schedule.

    Example:
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        >>> s = StepSchedule(opt, "cosine", 0.1, total_steps=5)
        >>> [round(s.lr_at(p), 4) for p in (0.0, 0.5, 1.0)]
        [0.1, 0.05, 0.0]
    """

    PCT_START, DIV, FINAL_DIV = 0.15, 25.0, 1e4

    def __init__(self, optimizer: torch.optim.Optimizer, name: str, lr: float, total_steps: int) -> None:
        if name not in ("onecycle", "cosine", "step", "none"):
            raise ValueError(f"unknown scheduler {name!r}; choose one of: onecycle, cosine, step, none")
        self.name, self.peak = name, float(lr)
        self.total = max(1, int(total_steps))
        self.anchor_step, self.anchor_progress = 0, 0.0
        super().__init__(optimizer)

    def progress(self, step: int) -> float:
        """Progress (0..1) of the schedule at optimiser step ``step`` (0-based)."""
        span = self.total - 1 - self.anchor_step
        if span <= 0:
            return 1.0
        return min(1.0, self.anchor_progress + (step - self.anchor_step) / span * (1.0 - self.anchor_progress))

    def lr_at(self, p: float) -> float:
        """The learning rate at progress ``p``."""
        peak = self.peak
        if self.name == "none":
            return peak
        if self.name == "cosine":
            return peak * (1 + math.cos(math.pi * p)) / 2
        if self.name == "step":
            return peak * 0.1 ** min(2, int(p * 3 + 1e-9))  # p = 1 (the last step) is still in the last third
        low, final = peak / self.DIV, peak / self.DIV / self.FINAL_DIV
        if p < self.PCT_START:
            q = p / self.PCT_START
            return low + (peak - low) * (1 - math.cos(math.pi * q)) / 2
        q = (p - self.PCT_START) / (1 - self.PCT_START)
        return final + (peak - final) * (1 + math.cos(math.pi * q)) / 2

    def get_lr(self) -> list[float]:  # called by LRScheduler.step()
        value = self.lr_at(self.progress(self.last_epoch))
        return [value for _ in self.optimizer.param_groups]

    def replan(self, total_steps: int) -> None:
        """Spread what is left of the schedule over ``total_steps - steps done`` steps."""
        step = self.last_epoch
        self.anchor_progress = self.progress(step)
        self.anchor_step = step
        self.total = max(int(total_steps), step + 1)


class BudgetKeeper(Hook):
    """After every epoch, checks the plan against the clock and re-plans the schedule's rest.

    The calibration is a few steps; a machine that gets busier (or quieter) later would overrun
    (or waste) the budget. From the last epoch's real seconds per step and per validation, the
    steps that still fit before the deadline are computed (:func:`steps_in_budget`); when they
    differ from the steps left by more than ``tolerance``, the schedule (:class:`StepSchedule`)
    is stretched or squeezed to end at the deadline, and ``max_steps()`` follows (``engine.fit``
    asks it before every step). ``grow=False`` (a resumed run keeps its recorded plan) only squeezes.

    A plan of one epoch has no "after the first epoch" to re-plan at: such a run checks its plan
    once within the epoch, after ``EARLY_SHARE`` of its steps (at least ``EARLY_MIN_STEPS``), from
    the seconds per step measured so far, so a calibration that was off still ends on budget.
    """

    EARLY_SHARE = 0.25
    EARLY_MIN_STEPS = 3

    def __init__(self, plan: Any, schedule: StepSchedule, deadline: float, budget_s: float,
                 log: Callable[[str], None] = print, tolerance: float = 0.08, grow: bool = True) -> None:
        self.plan, self.schedule, self.deadline, self.budget_s = plan, schedule, deadline, budget_s
        self.log, self.tolerance, self.grow = log, tolerance, grow
        self.total = plan.total_steps
        self.replans: list[dict[str, Any]] = []
        self._early: tuple[int, float | None] | None = None  # (steps done, time) where the in-epoch clock started
        self._early_done = plan.epochs > 1  # only a one-epoch plan re-plans within its epoch

    def max_steps(self, done: int | None = None) -> int:
        """The steps of the whole run; ``done`` (steps done so far) lets a one-epoch plan re-plan early."""
        if done is not None and not self._early_done:
            self._check_within_first_epoch(done)
        return self.total

    def _check_within_first_epoch(self, done: int) -> None:
        now = time.monotonic()
        if self._early is None:  # the first step is about to start: it is not timed (workers start, caches fill)
            self._early = (done + 1, None)
            return
        start, t0 = self._early
        if t0 is None:
            if done >= start:
                self._early = (done, now)
            return
        measured = done - start
        if measured < max(self.EARLY_MIN_STEPS, math.ceil(self.EARLY_SHARE * (self.total - start))):
            return
        self._early_done = True
        step_s = (now - t0) / measured
        self._replan(done, step_s, (self.plan.val_s or 0.0) + (self.plan.checkpoint_s or 0.0), "within epoch 1")

    def after_epoch(self, history: list[dict[str, Any]]) -> None:
        """As a hook of ``fit``: re-plan after every epoch (the stop itself is :class:`Budget`'s)."""
        self(history)
        return None

    def __call__(self, history: list[dict[str, Any]]) -> None:
        self._early_done = True
        h = history[-1]
        if not h.get("steps"):
            return
        done = sum(int(r.get("steps", 0)) for r in history)
        left = self.total - done
        if left <= 0:
            return
        # the slower of the last epoch and the run so far: a noisy machine must not stretch the plan
        step_s = max(h["train_time_s"] / h["steps"],
                     sum(r["train_time_s"] for r in history) / max(1, sum(int(r.get("steps", 0)) for r in history)))
        per_epoch = max(h["epoch_time_s"] - h["train_time_s"], 0.0) + (self.plan.checkpoint_s or 0.0)
        self._replan(done, step_s, per_epoch, f"in epoch {h['epoch']}")

    def _replan(self, done: int, step_s: float, per_epoch: float, when: str) -> None:
        left = self.total - done
        if left <= 0:
            return
        remaining = self.deadline - time.monotonic() - BUDGET_RESERVE * self.budget_s / 2
        possible = steps_in_budget(remaining, step_s, per_epoch, self.plan.steps_per_epoch)[0] \
            if remaining > step_s + per_epoch else 0
        if abs(possible - left) <= max(self.tolerance * left, 1) or (possible > left and not self.grow):
            return
        new_total = done + possible
        note = {"after_step": done, "steps_left_planned": left, "steps_left_now": possible,
                "step_s": round(step_s, 4), "remaining_s": round(max(remaining, 0.0), 1)}
        self.replans.append(note)
        calibrated = f" (calibrated {self.plan.step_s:.3f} s)" if self.plan.step_s else ""
        self.log(f"recipe: {step_s:.3f} s per step {when}{calibrated}: "
                 f"{possible} steps fit in the {max(remaining, 0):.0f} s left instead of {left}; the schedule's rest is "
                 f"spread over {possible} steps")
        self.total = new_total
        self.schedule.replan(new_total)
