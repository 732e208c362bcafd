"""Training Mask R-CNN through a plan of stages counted in optimiser steps, resumable mid-stage.

One step: a batch of ``batch_size`` training images -> the model's dict of losses -> their sum ->
backward -> gradient clipping -> an SGD / AdamW step at the learning rate of
:func:`workshop.instance.plan.stage_lr`. A stage sets what is trainable and starts a fresh optimiser.

The batches of a step are a pure function of ``(seed, stage, step)`` (a seeded permutation per
stage and epoch), the augmentation a function of ``(seed, epoch, image)``, and the checkpoint holds
the optimiser's state and torch's random state (Mask R-CNN samples proposals at random). So a run
stopped after any checkpoint and resumed ends with the same weights as one that was never
stopped. Checkpoints (``RUN/checkpoints/last.pt``) are written every ``checkpoint_every`` steps, at
the end of every stage (also ``stage<k>.pt``), and when the run is interrupted (Ctrl-C).

Taught in: notebooks/10_instance.ipynb
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from workshop.engine import CHECKPOINT_DIR, save_checkpoint, write_json_atomic
from workshop.errors import TrainingError
from workshop.instance.data import collate_detection
from workshop.instance.engine import make_stage_optimizer
from workshop.instance.model import set_trainable_parts
from workshop.instance.plan import DEFAULT_MIN_STEPS, REFIT_EVERY, StagePlan, refit_remaining, stage_lr

REFIT_LOG_CHANGE = 0.1
"""A refit is logged when it changes the steps left by at least this share."""
from workshop.instance.stages import Stage

__all__ = ["batch_indices", "calibrate_step_seconds", "train_plan", "training_step"]


def batch_indices(n: int, batch_size: int, seed: int, stage: int, step: int) -> list[int]:
    """The images of step ``step`` of stage ``stage``: a seeded permutation per (stage, epoch), cut in batches.

    Example:
        >>> sorted(batch_indices(5, 2, 0, 0, 0) + batch_indices(5, 2, 0, 0, 1) + batch_indices(5, 2, 0, 0, 2))
        [0, 1, 2, 3, 4]
    """
    per_epoch = math.ceil(n / batch_size)
    epoch, b = divmod(step, per_epoch)
    order = np.random.default_rng([seed, stage, epoch]).permutation(n)
    return order[b * batch_size:(b + 1) * batch_size].tolist()


def _batch(dataset, indices: Sequence[int], device: torch.device):
    images, targets = collate_detection([dataset[i] for i in indices])
    images = [im.to(device) for im in images]
    targets = [{k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in t.items()} for t in targets]
    return images, targets


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, images, targets, max_grad_norm: float | None = 10.0,
                  where: str = "") -> dict[str, float]:
    """One optimiser step on a batch; returns every loss term and their sum as floats.

    Raises:
        TrainingError: the loss is NaN or infinite (the message names the terms and the likely causes).
    """
    losses = model(images, targets)
    loss = sum(losses.values())
    if not math.isfinite(loss.item()):
        terms = ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
        raise TrainingError(f"loss became {loss.item()} {where} ({terms}). Likely causes: a learning rate too high "
                            f"(lr={optimizer.param_groups[0]['lr']:.3g}; try 10x lower or more warm-up steps), or "
                            "boxes with zero width or height.")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], max_grad_norm)
    optimizer.step()
    out = {k: float(v.item()) for k, v in losses.items()}
    out["loss"] = float(loss.item())
    return out


def calibrate_step_seconds(model: nn.Module, stages: Sequence[Stage], dataset, batch_size: int, device: torch.device,
                           timed_steps: int = 2, seed: int = 0) -> list[float]:
    """Seconds per optimiser step of each stage, measured on a copy of the model (the model is unchanged).

    One untimed step per stage (first calls allocate), then ``timed_steps`` timed ones. Torch's
    random state is restored afterwards, so calibrating does not change the training run.
    """
    import copy

    rng = torch.get_rng_state()
    probe = copy.deepcopy(model).to(device)
    probe.train()
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
            times = []
            for t in range(1 + timed_steps):
                images, targets = _batch(dataset, batch_indices(len(dataset), batch_size, seed + 7919, k, t), device)
                t0 = time.perf_counter()
                training_step(probe, opt, images, targets, where="while timing the steps")
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
            cache[key] = float(np.mean(times[1:])) if timed_steps else times[0]
            seconds.append(cache[key])
    finally:
        del probe
        torch.set_rng_state(rng)
    return seconds


def _refit_to_deadline(plans: Sequence[StagePlan], k: int, done: int, mark: tuple[int, float], deadline: float,
                       min_steps: int, log: Callable[[str], None]) -> tuple[int, float]:
    """Refit the rest of the plan to ``deadline`` from the step time since ``mark`` (steps, time); the new mark.

    The running stage is timed by its steps since the last refit; the later stages by their timing
    before training, scaled by the same drift.
    """
    now = time.monotonic()
    rate = (now - mark[1]) / (done - mark[0])
    timed = plans[k].seconds_per_step or rate
    estimate = [rate if j == k else (p.seconds_per_step or rate) * rate / timed for j, p in enumerate(plans)]
    left = deadline - now
    factor = refit_remaining(plans, k, done, estimate, left, min_steps)
    if factor is not None and abs(factor - 1) >= REFIT_LOG_CHANGE:  # small corrections silently
        log(f"[{plans[k].title}] {rate:.2f} s/step now (timed {timed:.2f} before training): the rest of the plan "
            f"is refitted to the {max(left, 0):.0f} s left: " + " -> ".join(f"{p.title} {p.steps} steps" for p in plans[k:]))
    return done, now


def train_plan(
    model: nn.Module,
    stages: Sequence[Stage],
    plans: Sequence[StagePlan],
    dataset,
    batch_size: int,
    device: torch.device | str = "cpu",
    run_dir: str | Path | None = None,
    seed: int = 0,
    resume_state: dict[str, Any] | None = None,
    checkpoint_every: int = 50,
    extra_state: dict[str, Any] | None = None,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    log: Callable[[str], None] = print,
    print_every: int = 20,
    on_step: Callable[[int, int], None] | None = None,
    max_grad_norm: float | None = 10.0,
    deadline: float | None = None,
    eval_seconds: float = 0.0,
    min_steps: int = DEFAULT_MIN_STEPS,
) -> list[dict[str, Any]]:
    """Run the stages' steps in order (see the module docstring).

    Args:
        model: a model from :func:`~workshop.instance.model.create_maskrcnn`.
        stages: the YAML stages (lr, gamma, trainable, optimiser).
        plans: their steps (from :func:`~workshop.instance.plan.plan_steps`).
        dataset: the training :class:`~workshop.instance.data.DetectionDataset`.
        batch_size: images per step.
        run_dir: where ``checkpoints/`` and ``stages.json`` go (None: nothing is saved).
        resume_state: a checkpoint of an earlier, unfinished run of the same plan.
        checkpoint_every: steps between checkpoints inside a stage.
        extra_state: stored in every checkpoint (the config, the class names, the model's arguments).
        evaluate: ``evaluate(model) -> dict`` after each stage (validation mAP), or None.
        on_step: ``on_step(stage_index, steps_done_in_stage)`` after every step (e.g. to stop a test).
        deadline: ``time.monotonic()`` by which the last step should end (a budget), or None. Every
            ``REFIT_EVERY`` steps the rest of the plan is fitted to the time left from the step time of
            the last ``REFIT_EVERY`` steps (:func:`~workshop.instance.plan.refit_remaining`); ``plans``
            change in place, and the checkpoints hold the plan as it stands.
        eval_seconds: the time one ``evaluate`` takes (kept free for each stage still to validate).
        min_steps: the fewest steps a refit leaves a stage.

    Returns:
        The history, one record per stage: ``stage``, ``title``, ``steps``, ``train`` (mean losses
        over the stage's last 20 steps), ``val``, ``seconds``.

    Raises:
        TrainingError: non-finite loss.
        KeyboardInterrupt: after writing a checkpoint to resume from.
    """
    device = torch.device(device)
    model.to(device)
    run = Path(run_dir) if run_dir is not None else None
    stage0, step0, history = 0, 0, []
    opt_state = None
    if resume_state is not None:
        stage0, step0 = int(resume_state["stage"]), int(resume_state["step"])
        history = list(resume_state.get("history", []))
        opt_state = resume_state.get("optimizer")
        if resume_state.get("rng") is not None:
            torch.set_rng_state(resume_state["rng"])
        model.load_state_dict(resume_state["model"])
        done_all = stage0 >= len(stages)
        log("resuming: the plan is already complete" if done_all else
            f"resuming: stage {stage0 + 1}/{len(stages)} ({stages[stage0].title}) at step {step0}/{plans[stage0].steps}")
    n = len(dataset)
    per_epoch = math.ceil(n / batch_size)

    def save(stage: int, step: int, optimizer, stage_file: int | None = None) -> None:
        if run is None:
            return
        state = {
            "task": "instance", "model": model.state_dict(), "stage": stage, "step": step,
            "optimizer": optimizer.state_dict() if optimizer is not None else None, "rng": torch.get_rng_state(),
            "history": history, "plan": [p.to_dict() for p in plans], "stages": [s.to_dict() for s in stages],
            "titles": [s.title for s in stages], "stages_done": stage, **(extra_state or {}),
        }
        save_checkpoint(state, run / CHECKPOINT_DIR / "last.pt")
        if stage_file is not None:
            save_checkpoint(state, run / CHECKPOINT_DIR / f"stage{stage_file}.pt")
        write_json_atomic({"stages": [s.to_dict() for s in stages], "plan": [p.to_dict() for p in plans],
                           "history": history, "stage": stage, "step": step}, run / "stages.json")

    for k in range(stage0, len(stages)):
        stage, plan = stages[k], plans[k]
        trainable = set_trainable_parts(model, stage.trainable)
        optimizer = make_stage_optimizer(model, stage)
        first = step0 if k == stage0 else 0
        if k == stage0 and opt_state is not None and first > 0:
            optimizer.load_state_dict(opt_state)
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        log(f"== stage {k + 1}/{len(stages)}: {stage.title} | {plan.steps} steps (~{plan.steps / per_epoch:.1f} epochs "
            f"of {per_epoch}), lr {stage.lr:g} x{stage.gamma:g} every {plan.lr_step} steps, warm-up {plan.warmup_steps} "
            f"| trainable: {', '.join(trainable)} ({n_train:,} parameters)")
        model.train()
        t0 = time.monotonic()
        recent: list[dict[str, float]] = []
        completed = first  # steps of this stage whose optimiser step is done
        mark = (first, t0)  # (steps, time) at the last refit
        try:
            step = first
            while step < plan.steps:  # a refit may move the end of the stage
                lr = stage_lr(stage, plan, step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                epoch = step // per_epoch
                if hasattr(dataset, "set_epoch"):
                    dataset.set_epoch(k * 1000 + epoch)
                images, targets = _batch(dataset, batch_indices(n, batch_size, seed, k, step), device)
                losses = training_step(model, optimizer, images, targets, max_grad_norm,
                                       where=f"in stage {k + 1} ({stage.title}), step {step}")
                completed = done = step + 1
                recent = (recent + [losses])[-20:]
                if print_every and (done % print_every == 0 or done == plan.steps):
                    mean = {key: float(np.mean([r[key] for r in recent])) for key in recent[0]}
                    rate = (time.monotonic() - t0) / max(done - first, 1)
                    log(f"[{stage.title}] step {done}/{plan.steps}  loss {mean['loss']:.4f} (mask {mean.get('loss_mask', float('nan')):.4f})"
                        f"  lr {lr:.2e}  {rate:.2f} s/step  eta {rate * (plan.steps - done):.0f} s")
                if checkpoint_every and done % checkpoint_every == 0 and done < plan.steps:
                    save(k, done, optimizer)
                if deadline is not None and done % REFIT_EVERY == 0 and done - mark[0] >= REFIT_EVERY // 2 and done < plan.steps:
                    evals_left = len(stages) - k - 1 if evaluate is not None else 0
                    mark = _refit_to_deadline(plans, k, done, mark, deadline - evals_left * eval_seconds, min_steps, log)
                if on_step is not None:
                    on_step(k, done)
                step += 1
        except KeyboardInterrupt:
            save(k, completed, optimizer)  # the step in flight (if any) is not counted: it is redone on resume
            log(f"interrupted in stage {k + 1} at step {completed}; continue with: workshop train --resume {run}")
            raise
        seconds = time.monotonic() - t0
        train = {key: float(np.mean([r[key] for r in recent])) for key in recent[0]} if recent else {}
        t_eval = time.monotonic()
        val = evaluate(model) if evaluate is not None else {}
        if evaluate is not None:
            eval_seconds = time.monotonic() - t_eval
        history.append({"stage": k + 1, "title": stage.title, "steps": plan.steps, "trainable": trainable, "train": train,
                        "val": val, "seconds": round(seconds, 1),
                        "seconds_per_step": round(seconds / max(plan.steps - first, 1), 3)})
        if val:
            log(f"[{stage.title}] validation: " + ", ".join(f"{key} {v:.4f}" for key, v in val.items()
                                                       if key in ("segm_map", "segm_map_50", "bbox_map", "bbox_map_50")))
        save(k + 1, 0, None, stage_file=k + 1)
    return history
