"""Stages sized in optimiser steps, and laid over a time budget.

A stage in YAML says ``epochs`` and ``step_size`` (in epochs), because that is how people think about
a data set. Training counts optimiser steps, because a step is what costs time::

    full plan:  steps_k = epochs_k * steps_per_epoch        (steps_per_epoch = ceil(images / batch))
    budget B:   f = B_train / sum_k(steps_k * seconds_per_step_k)
                steps_k <- max(min_steps, floor(f * steps_k))    (stages clamped to the minimum are
                                                                  fixed, the others share what is left)

``seconds_per_step_k`` is measured before training (a frozen backbone makes a step cheaper, so each
stage is timed). Every stage keeps its share of the plan: a short budget shortens all of them, a
long one lengthens all of them, and none drops below ``min_steps``. When even the minimum does not
fit, :class:`BudgetTooSmall` says so (with the budget that would fit) before any training step.

Steps get slower as the detector learns (more proposals match objects, so the mask head gets more
of them: about 20 % on Penn-Fudan), so under a budget the plan is fitted again every
``REFIT_EVERY`` steps from the real step times (:func:`refit_remaining`): the rest of the running
stage and the stages after it are scaled together to the time left.

The StepLR period and the warm-up follow the stage's new length: ``step_size`` epochs become
``round(step_size * steps_per_epoch * f_k)`` steps, where ``f_k`` is the stage's scale.

Taught in: notebooks/10_instance.ipynb
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from workshop.errors import ConfigError
from workshop.instance.stages import Stage, StagePlan, stage_lr  # noqa: F401  (the book's; named here too)

__all__ = ["BudgetTooSmall", "StagePlan", "plan_steps", "refit_remaining", "scale_steps", "stage_lr"]

DEFAULT_MIN_STEPS = 20
"""Fewest optimiser steps a stage may be cut to: below this the heads barely move from their random start."""

REFIT_EVERY = 50
"""Steps between two fits of the plan to the time left, under a budget."""

REFIT_TOLERANCE = 0.03
"""The plan is left alone while its projected end is within this share of the time left."""


class BudgetTooSmall(ConfigError):
    """The time budget cannot fit the minimum number of steps of every stage.

    Attributes:
        need_seconds: the training time the minimum plan needs.
    """

    def __init__(self, message: str, need_seconds: float = 0.0) -> None:
        super().__init__(message)
        self.need_seconds = need_seconds


def scale_steps(full: Sequence[int], seconds: Sequence[float], available: float, min_steps: int | Sequence[int]) -> list[int]:
    """Scale step counts in proportion so that ``sum(steps * seconds) <= available``, none below ``min_steps``.

    Args:
        full: the plan's steps per stage.
        seconds: seconds per step of each stage (> 0).
        available: seconds for training.
        min_steps: the fewest steps of a stage (one number for all, or one per stage).

    Returns:
        Steps per stage (whole numbers; rounded down, so the budget is not exceeded).

    Raises:
        BudgetTooSmall: ``min_steps`` in every stage takes longer than ``available``.

    Example:
        >>> scale_steps([10, 30, 60], [1.0, 1.0, 1.0], 50.0, 10)   # stage 1 clamped at 10, 40 s left for 90 steps
        [10, 13, 26]
    """
    if len(full) != len(seconds) or not full:
        raise ValueError(f"need one step time per stage, got {len(full)} stages and {len(seconds)} times")
    if any(s <= 0 for s in seconds):
        raise ValueError(f"seconds per step must be > 0, got {list(seconds)}")
    mins = [min_steps] * len(full) if isinstance(min_steps, int) else list(min_steps)
    need = sum(m * s for m, s in zip(mins, seconds))
    if need > available:
        raise BudgetTooSmall(
            f"the time budget leaves {max(available, 0):.0f} s for training, but the minimum of {min_steps} "
            f"steps in each of the {len(full)} stages takes {need:.0f} s at the measured "
            f"{', '.join(f'{s:.2f}' for s in seconds)} s/step; give a larger --max-minutes (or lower "
            "instance.min_stage_steps, the image size or the batch size)",
            need_seconds=need,
        )
    fixed: dict[int, int] = {}
    while True:
        free = [k for k in range(len(full)) if k not in fixed]
        left = available - sum(fixed[k] * seconds[k] for k in fixed)
        cost = sum(full[k] * seconds[k] for k in free)
        factor = left / cost if cost > 0 else 0.0
        clamped = [k for k in free if math.floor(factor * full[k]) < mins[k]]
        if not clamped:
            steps = {k: math.floor(factor * full[k] + 1e-9) for k in free}
            steps.update(fixed)
            return [steps[k] for k in range(len(full))]
        for k in clamped:
            fixed[k] = mins[k]


def plan_steps(
    stages: Sequence[Stage],
    steps_per_epoch: int,
    budget_seconds: float | None = None,
    seconds_per_step: Sequence[float] | None = None,
    min_steps: int = DEFAULT_MIN_STEPS,
) -> list[StagePlan]:
    """The stages in optimiser steps, resized to a time budget when one is given.

    Args:
        stages: the YAML plan.
        steps_per_epoch: optimiser steps in one pass over the training images.
        budget_seconds: seconds available for the training steps (already without calibration and
            validation time), or None to keep the YAML's epochs.
        seconds_per_step: measured seconds per step of each stage (needed with a budget).
        min_steps: the fewest steps of a stage.

    Returns:
        One :class:`StagePlan` per stage.

    Raises:
        BudgetTooSmall: the budget cannot fit ``min_steps`` per stage.
        ValueError: a budget without step times.

    Example:
        >>> s = [Stage("a", epochs=3, lr=0.01, step_size=3), Stage("b", epochs=3, lr=0.01, step_size=1)]
        >>> [(p.steps, p.lr_step) for p in plan_steps(s, 10, budget_seconds=90, seconds_per_step=[1, 2])]
        [(30, 30), (30, 10)]

    Taught in: notebooks/10_instance.ipynb
    """
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    if min_steps < 1:
        raise ValueError(f"min_steps must be >= 1, got {min_steps}")
    full = [s.epochs * steps_per_epoch for s in stages]
    if budget_seconds is None:
        steps = list(full)
    else:
        if seconds_per_step is None:
            raise ValueError("a time budget needs the measured seconds per step of each stage")
        steps = scale_steps(full, seconds_per_step, budget_seconds, min_steps)
    plans = []
    for k, (stage, n, n_full) in enumerate(zip(stages, steps, full)):
        factor = n / n_full
        plans.append(StagePlan(
            title=stage.title,
            steps=n,
            full_steps=n_full,
            lr_step=max(1, round(stage.step_size * steps_per_epoch * factor)),
            warmup_steps=min(stage.warmup_steps, n // 2),
            seconds_per_step=None if seconds_per_step is None else float(seconds_per_step[k]),
        ))
    return plans


def refit_remaining(plans: Sequence[StagePlan], k: int, done: int, seconds_per_step: Sequence[float],
                    seconds_left: float, min_steps: int = DEFAULT_MIN_STEPS) -> float | None:
    """Fit the rest of the plan to the time left: stage ``k`` from step ``done`` on, and the stages after it.

    The remaining steps are scaled together, in proportion (:func:`scale_steps`), so that they take
    ``seconds_left`` at ``seconds_per_step``; no stage drops below ``min_steps`` in all (nor the
    running one below ``done + 1``). Each resized stage's StepLR period and warm-up keep their share
    of the stage. ``plans`` are changed in place; nothing changes while the projected end is within
    ``REFIT_TOLERANCE`` of the time left.

    Args:
        plans: the stage plans (changed in place).
        k: the running stage (0-based); ``done``: its steps done so far.
        seconds_per_step: the current estimate for every stage (measured for stage ``k``, the
            calibration scaled by the same drift for the later ones).
        seconds_left: training time left.
        min_steps: the fewest steps of a stage.

    Returns:
        The factor by which the remaining steps changed (new / old), or None when the plan was kept.

    Example:
        >>> p = [StagePlan("a", 100, 100, 100, 0), StagePlan("b", 100, 100, 50, 0)]
        >>> refit_remaining(p, 0, 50, [1.2, 1.2], 120.0)     # 150 steps left at 1.2 s = 180 s: x 2/3, rounded down
        0.66
        >>> [(x.steps, x.lr_step) for x in p]                 # 50 done + 33, then 66 (its decay still halfway)
        [(83, 83), (66, 33)]
    """
    rest = [plans[k].steps - done] + [p.steps for p in plans[k + 1:]]
    cost = sum(n * s for n, s in zip(rest, seconds_per_step[k:]))
    if cost <= 0 or sum(rest) == 0 or abs(cost - seconds_left) <= REFIT_TOLERANCE * max(seconds_left, 1e-9):
        return None
    mins = [max(min_steps - done, 1)] + [min_steps] * (len(rest) - 1)
    try:
        new = scale_steps(rest, seconds_per_step[k:], seconds_left, mins)
    except BudgetTooSmall:
        new = mins  # out of time: every stage still gets its minimum
    if new == rest:
        return None
    for j, new_n in enumerate(new):
        plan = plans[k + j]
        old_total, new_total = plan.steps, (done if j == 0 else 0) + new_n
        plan.lr_step = max(1, round(plan.lr_step * new_total / old_total))
        if j > 0:
            plan.warmup_steps = min(plan.warmup_steps, new_total // 2)
        plan.steps = new_total
    return sum(new) / sum(rest)
