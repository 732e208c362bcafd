"""The time budget of an instance run (``workshop train --max-minutes``): timing steps, refitting the plan.

Machinery around the loop of :mod:`workshop.instance.engine`, not part of it:

* :func:`calibrate_step_seconds` times a few steps of every stage before training (a frozen
  backbone makes a step cheaper), as the run will take them (AMP as configured);
* :func:`seconds_per_prediction` times a validation prediction (the budget keeps time for them);
* :class:`RefitToDeadline` is a :class:`~workshop.instance.engine.Hook`: every ``REFIT_EVERY``
  steps it fits the rest of the plan to the time left, from the real step times
  (:func:`~workshop.instance.plan.refit_remaining`).

On CUDA the clocks are read after ``torch.cuda.synchronize()``: kernels run asynchronously, and
without it a step would be timed when it is queued, not when it is done.

Taught in: notebooks/10_instance.ipynb (the command line, section 8)
"""

from __future__ import annotations

import copy
import time
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from workshop.instance.data import collate_detection
from workshop.instance.engine import Hook, amp_dtype, batch_indices, rng_state, set_rng_state, to_device, training_step
from workshop.instance.model import set_trainable_parts
from workshop.instance.plan import REFIT_EVERY, StagePlan, refit_remaining
from workshop.instance.stages import Stage

__all__ = ["REFIT_LOG_CHANGE", "RefitToDeadline", "calibrate_step_seconds", "seconds_per_prediction"]

REFIT_LOG_CHANGE = 0.1
"""A refit is logged when it changes the steps left by at least this share."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def calibrate_step_seconds(model: nn.Module, stages: Sequence[Stage], dataset, batch_size: int, device: torch.device,
                           timed_steps: int = 2, seed: int = 0, amp: bool = True) -> list[float]:
    """Seconds per optimiser step of each stage, measured on a copy of the model (the model is unchanged).

    One untimed step per stage (first calls allocate), then ``timed_steps`` timed ones, with the
    autocast dtype and GradScaler the run will use. Torch's random state (CPU and CUDA) is restored
    afterwards, so calibrating does not change the training run.
    """
    state = rng_state()
    probe = copy.deepcopy(model).to(device)
    probe.train()
    dtype = amp_dtype(device.type, amp, device.type == "cuda" and torch.cuda.is_bf16_supported())
    seconds: list[float] = []
    cache: dict[str, float] = {}
    try:
        for k, stage in enumerate(stages):
            key = repr(stage.parts)
            if key in cache:
                seconds.append(cache[key])
                continue
            set_trainable_parts(probe, stage.trainable)
            opt = torch.optim.SGD([p for p in probe.parameters() if p.requires_grad], lr=0.0)
            scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
            times = []
            for t in range(1 + timed_steps):
                batch = collate_detection([dataset[i] for i in batch_indices(len(dataset), batch_size, seed + 7919, k, t)])
                images, targets = to_device(*batch, device)
                _sync(device)
                t0 = time.perf_counter()
                training_step(probe, opt, images, targets, where="while timing the steps", amp=dtype, scaler=scaler)
                _sync(device)
                times.append(time.perf_counter() - t0)
            cache[key] = float(np.mean(times[1:])) if timed_steps else times[0]
            seconds.append(cache[key])
    finally:
        del probe
        set_rng_state(state)
    return seconds


def seconds_per_prediction(model: nn.Module, dataset, device: torch.device, images: int = 2) -> float:
    """Seconds to predict one validation image (after one untimed call, which allocates).

    The model is left in train mode.
    """
    model.eval()
    times = []
    with torch.no_grad():
        for i in range(min(images, len(dataset)) + 1):
            image, _ = dataset[i % len(dataset)]
            image = image.to(device)
            _sync(device)
            t0 = time.perf_counter()
            model([image])
            _sync(device)
            times.append(time.perf_counter() - t0)
    model.train()
    return float(sum(times[1:]) / max(len(times) - 1, 1))


class RefitToDeadline(Hook):
    """Fit the rest of the plan to a deadline every ``REFIT_EVERY`` steps (a hook of ``train_stages``).

    The running stage is timed by its steps since the last refit; the later stages by their timing
    before training, scaled by the same drift. Time for the validations still to come is kept free.

    Args:
        plans: the plan ``train_stages`` runs (changed in place).
        deadline: ``time.monotonic()`` by which the last step should end.
        min_steps: the fewest steps a refit leaves a stage.
        eval_seconds: the time one validation takes (update it when one has been measured).
        evaluations: whether a validation follows every stage.
        log: where a refit that changes the plan by ``REFIT_LOG_CHANGE`` or more is said.
    """

    def __init__(self, plans: Sequence[StagePlan], deadline: float, min_steps: int, eval_seconds: float = 0.0,
                 evaluations: bool = True, log: Callable[[str], None] = print) -> None:
        self.plans, self.deadline, self.min_steps = plans, deadline, min_steps
        self.eval_seconds, self.evaluations, self.log = eval_seconds, evaluations, log
        self.mark = (0, time.monotonic())  # (steps, time) at the last refit

    def stage_start(self, stage: int, step: int) -> None:
        self.mark = (step, time.monotonic())

    def step_end(self, stage: int, done: int) -> None:
        plans = self.plans
        if done % REFIT_EVERY or done - self.mark[0] < REFIT_EVERY // 2 or done >= plans[stage].steps:
            return
        evals_left = len(plans) - stage - 1 if self.evaluations else 0
        now = time.monotonic()
        rate = (now - self.mark[1]) / (done - self.mark[0])
        timed = plans[stage].seconds_per_step or rate
        estimate = [rate if j == stage else (p.seconds_per_step or rate) * rate / timed for j, p in enumerate(plans)]
        left = self.deadline - evals_left * self.eval_seconds - now
        factor = refit_remaining(plans, stage, done, estimate, left, self.min_steps)
        if factor is not None and abs(factor - 1) >= REFIT_LOG_CHANGE:  # small corrections silently
            self.log(f"[{plans[stage].title}] {rate:.2f} s/step now (timed {timed:.2f} before training): the rest of the "
                     f"plan is refitted to the {max(left, 0):.0f} s left: "
                     + " -> ".join(f"{p.title} {p.steps} steps" for p in plans[stage:]))
        self.mark = (done, now)
