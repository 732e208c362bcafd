"""Training Mask R-CNN: the one loop of notebook 10 and ``workshop train``, its checkpoints and resuming.

One step (:func:`training_step`): a batch of images -> the model's dict of losses (under autocast
when AMP is on) -> their sum -> backward -> gradient clipping -> an SGD / AdamW step at the
learning rate of :func:`workshop.instance.stages.stage_lr`. :func:`train_stages` runs the steps of a
plan stage by stage; a stage sets what is trainable and starts a fresh optimiser.

The data path of a step::

    DetectionDataset[(index, epoch)]      (image (3, H, W) float 0..1, target), read in DataLoader workers
      -> StepBatches                      the indices of step t: a seeded permutation per (stage, epoch)
      -> collate_detection                (list of images, list of targets), pinned memory on CUDA
      -> to_device (non_blocking)         -> training_step -> checkpoint

The batches of a step are a pure function of ``(seed, stage, step)``, the augmentation a function
of ``(seed, epoch, image)`` (not of the worker that reads it), and the checkpoint holds the
optimiser's (and GradScaler's) state and torch's random state, CPU and CUDA (Mask R-CNN samples
proposals at random, on the device it runs on). So a run stopped after any checkpoint and resumed
on the same machine ends with the same weights as one that was never stopped; on a GPU this holds
as far as its kernels are deterministic (``torch.use_deterministic_algorithms``).

The one checkpoint layout (``RUN/checkpoints/last.pt``, also ``stage<k>.pt`` at the end of stage k)::

    {"task": "instance", "model": state_dict, "stage": k, "step": t, "stages_done": k,
     "optimizer": state or None, "scaler": state or None, "rng": {"cpu": ..., "cuda": [...] or None},
     "history": [...], "plan": [StagePlan dicts], "stages": [Stage dicts], "titles": [...],
     ... extra_state (workshop train: "config", "class_names", "model_args", "fit")}

It is written every ``checkpoint_every`` steps, at the end of every stage, and when the run is
interrupted (Ctrl-C); ``RUN/stages.json`` beside it is the plan and history in plain JSON.

Taught in: notebooks/10_instance.ipynb
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from workshop.engine import CHECKPOINT_DIR, load_checkpoint, save_checkpoint, write_json_atomic
from workshop.errors import TrainingError, WorkshopError
from workshop.instance.data import collate_detection
from workshop.instance.model import resolve_parts, set_trainable_parts
from workshop.instance.stages import Stage, StagePlan, stage_lr

__all__ = [
    "Hook", "StepBatches", "amp_dtype", "batch_indices", "load_instance_model", "load_resume_state", "loader_settings",
    "make_stage_optimizer", "rng_state", "run_config", "set_rng_state", "to_device", "train_loader", "train_stages",
    "training_step",
]

# ----------------------------------------------------------------------------- batches


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


class StepBatches(Sampler):
    """The batches of one stage from step ``first`` on, as ``(index, epoch)`` keys (endless: the loop stops).

    The epoch key of step ``t`` is ``stage * 1000 + t // steps_per_epoch``, so each stage and each
    epoch draws its own augmentation (see :class:`~workshop.instance.data.DetectionDataset`).

    Example:
        >>> batches = iter(StepBatches(n=3, batch_size=2, seed=0, stage=1, first=1))
        >>> [epoch for _, epoch in next(batches)], [epoch for _, epoch in next(batches)]
        ([1000], [1001, 1001])
    """

    def __init__(self, n: int, batch_size: int, seed: int, stage: int, first: int = 0) -> None:
        self.n, self.batch_size, self.seed, self.stage, self.first = n, batch_size, seed, stage, first

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        per_epoch = math.ceil(self.n / self.batch_size)
        step = self.first
        while True:
            epoch = self.stage * 1000 + step // per_epoch
            yield [(i, epoch) for i in batch_indices(self.n, self.batch_size, self.seed, self.stage, step)]
            step += 1


def loader_settings(device_type: str, cpu_count: int | None, num_workers: int | str = "auto") -> dict[str, Any]:
    """DataLoader keyword arguments for the training batches on a device.

    ``auto``: on CUDA, one worker per CPU core but one (at most 8), and pinned memory, so images are
    decoded and augmented while the GPU computes; elsewhere none (on a CPU the workers would take
    the cores the model computes on).

    Args:
        device_type: ``"cuda"``, ``"mps"`` or ``"cpu"``.
        cpu_count: CPU cores (``os.cpu_count()``; None counts as 1).
        num_workers: ``"auto"`` or a number of worker processes (0: the main process reads).

    Raises:
        ValueError: ``num_workers`` is neither ``"auto"`` nor a whole number >= 0.

    Example:
        >>> loader_settings("cuda", 16)
        {'num_workers': 8, 'pin_memory': True, 'prefetch_factor': 4}
        >>> loader_settings("cpu", 16)
        {'num_workers': 0, 'pin_memory': False}
    """
    if num_workers == "auto":
        workers = min(8, max(1, (cpu_count or 1) - 1)) if device_type == "cuda" else 0
    elif isinstance(num_workers, int) and not isinstance(num_workers, bool) and num_workers >= 0:
        workers = num_workers
    else:
        raise ValueError(f"num_workers must be 'auto' or a whole number >= 0, got {num_workers!r}")
    kwargs: dict[str, Any] = {"num_workers": workers, "pin_memory": device_type == "cuda"}
    if workers:
        kwargs["prefetch_factor"] = 4
    return kwargs


def train_loader(dataset, batch_size: int, seed: int, stage: int, first: int, device: torch.device,
                 num_workers: int | str = "auto") -> DataLoader:
    """The training batches of stage ``stage`` from step ``first`` (see :class:`StepBatches`).

    The loader has its own generator, so starting its workers draws nothing from torch's global
    random state (which the model's proposal sampling uses and the checkpoints save).

    Shape:
        yields ``(images, targets)``: lists of ``batch_size`` (3, H_i, W_i) float tensors and target dicts.
    """
    return DataLoader(dataset, batch_sampler=StepBatches(len(dataset), batch_size, seed, stage, first),
                      collate_fn=collate_detection, generator=torch.Generator().manual_seed(seed),
                      **loader_settings(device.type, os.cpu_count(), num_workers))


def to_device(images: list[torch.Tensor], targets: list[dict[str, Any]], device: torch.device):
    """Move a batch to ``device`` (non-blocking: from pinned memory the copy overlaps the computation).

    Shape:
        the lists of :func:`train_loader`, unchanged but for the device (``image_id`` stays an int).
    """
    images = [img.to(device, non_blocking=True) for img in images]
    targets = [{k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in t.items()}
               for t in targets]
    return images, targets


# ----------------------------------------------------------------------------- one step


def amp_dtype(device_type: str, amp: bool = True, bf16_supported: bool = False) -> torch.dtype | None:
    """The autocast dtype of a training step, or None for full precision.

    On CUDA with ``amp``: bfloat16 where the card supports it (A100, H100: no loss scaling needed),
    else float16 (T4, V100: with a GradScaler). Off on the CPU and MPS (``train.amp`` is "used on
    CUDA only").

    Example:
        >>> amp_dtype("cuda", True, bf16_supported=True), amp_dtype("cuda", True, False), amp_dtype("cpu", True)
        (torch.bfloat16, torch.float16, None)
    """
    if not amp or device_type != "cuda":
        return None
    return torch.bfloat16 if bf16_supported else torch.float16


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, images, targets, max_grad_norm: float | None = 10.0,
                  where: str = "", amp: torch.dtype | None = None,
                  scaler: torch.amp.GradScaler | None = None) -> dict[str, float]:
    """One optimiser step on a batch; returns every loss term and their sum as floats.

    Args:
        model: a torchvision detection model in train mode (returns a dict of losses).
        optimizer: over the trainable parameters.
        images, targets: a batch on the model's device (see :func:`to_device`).
        max_grad_norm: clip the gradient norm to this (guards against the occasional huge mask-loss
            gradient early in training), or None.
        where: named in the error message (e.g. the stage and step).
        amp: autocast dtype (:func:`amp_dtype`), or None.
        scaler: a GradScaler for float16, or None.

    Raises:
        TrainingError: the loss is NaN or infinite (the message names the terms and the likely causes).

    Shape:
        images: list of (3, H_i, W_i) float 0..1; targets: list of {"boxes" (N_i, 4), "labels" (N_i,),
        "masks" (N_i, H_i, W_i)} -> {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness",
        "loss_rpn_box_reg", "loss"} floats.

    Taught in: notebooks/10_instance.ipynb
    """
    with torch.autocast(images[0].device.type, dtype=amp, enabled=amp is not None):
        losses = model(images, targets)
    loss = sum(losses.values())
    if not math.isfinite(loss.item()):
        terms = ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
        raise TrainingError(f"loss became {loss.item()} {where} ({terms}). Likely causes: a learning rate too high "
                            f"(lr={optimizer.param_groups[0]['lr']:.3g}; try 10x lower or more warm-up steps), or "
                            "boxes with zero width or height.")
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # clip the true gradients
    else:
        loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], max_grad_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    out = {k: float(v.item()) for k, v in losses.items()}
    out["loss"] = float(loss.item())
    return out


def make_stage_optimizer(model: nn.Module, stage: Stage) -> torch.optim.Optimizer:
    """The optimiser a stage asks for, over the parameters that are trainable now."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"stage {stage.title!r}: nothing is trainable (trainable={stage.trainable!r})")
    if stage.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=stage.lr, weight_decay=stage.weight_decay)
    return torch.optim.SGD(params, lr=stage.lr, momentum=stage.momentum, weight_decay=stage.weight_decay)


# ----------------------------------------------------------------------------- random state and checkpoints


def rng_state() -> dict[str, Any]:
    """torch's random state: the CPU generator's, and every CUDA device's when CUDA is available."""
    return {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict[str, Any] | torch.Tensor | None) -> None:
    """Restore :func:`rng_state` (a bare tensor is a CPU state); CUDA states only where the devices match."""
    if state is None:
        return
    if isinstance(state, torch.Tensor):
        state = {"cpu": state, "cuda": None}
    torch.set_rng_state(state["cpu"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def load_resume_state(run: str | os.PathLike) -> dict[str, Any] | None:
    """The checkpoint to resume a run folder from (``checkpoints/last.pt``, or a ``.pt`` file), or None."""
    path = Path(run)
    last = path if path.is_file() else path / CHECKPOINT_DIR / "last.pt"
    return load_checkpoint(last, map_location="cpu") if last.is_file() else None


class Hook:
    """Machinery added around :func:`train_stages` (a budget, a test that stops the run): override what you need."""

    def stage_start(self, stage: int, step: int) -> None:
        """Stage ``stage`` (0-based) starts at ``step`` (0, or where a resumed run stopped)."""

    def step_end(self, stage: int, done: int) -> None:
        """``done`` optimiser steps of stage ``stage`` are finished."""


# ----------------------------------------------------------------------------- the loop


def train_stages(
    model: nn.Module,
    stages: Sequence[Stage],
    plans: Sequence[StagePlan],
    dataset,
    batch_size: int,
    device: torch.device | str = "cpu",
    run_dir: str | os.PathLike | None = None,
    seed: int = 0,
    resume: str | os.PathLike | dict[str, Any] | None = None,
    checkpoint_every: int = 50,
    extra_state: dict[str, Any] | None = None,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    log: Callable[[str], None] = print,
    print_every: int = 20,
    hooks: Sequence[Hook] = (),
    max_grad_norm: float | None = 10.0,
    amp: bool = True,
    num_workers: int | str = "auto",
) -> list[dict[str, Any]]:
    """Run the stages' steps in order, with checkpoints (see the module docstring).

    Args:
        model: a model from :func:`~workshop.instance.model.create_maskrcnn`.
        stages: the YAML stages (lr, gamma, trainable, optimiser).
        plans: their steps (from :func:`~workshop.instance.plan.plan_steps`); a hook may change them
            in place (a budget's refit), and the checkpoints hold the plan as it stands.
        dataset: the training :class:`~workshop.instance.data.DetectionDataset`.
        batch_size: images per step.
        device: where to compute.
        run_dir: where ``checkpoints/`` and ``stages.json`` go (None: nothing is saved).
        seed: seed of the batches (the augmentation has the data set's own).
        resume: a run folder, a checkpoint file or a loaded checkpoint of an earlier, unfinished run
            of the same plan; a folder without checkpoints starts from the beginning.
        checkpoint_every: steps between checkpoints inside a stage.
        extra_state: stored in every checkpoint (the config, the class names, the model's arguments).
        evaluate: ``evaluate(model) -> dict`` after each stage (validation mAP), or None.
        log: where log lines go.
        print_every: steps between progress lines (0: only at the end of a stage).
        hooks: :class:`Hook` s called at the start of each stage and after every step.
        max_grad_norm: gradient clipping (see :func:`training_step`).
        amp: mixed precision on CUDA (:func:`amp_dtype`); ignored elsewhere.
        num_workers: DataLoader workers (:func:`loader_settings`).

    Returns:
        The history, one record per stage: ``stage``, ``title``, ``steps``, ``trainable``, ``train``
        (mean losses over the stage's last 20 steps), ``val``, ``seconds``, ``seconds_per_step``.

    Raises:
        ValueError: a stage names an unknown part (checked for every stage before training).
        WorkshopError: ``resume`` holds another plan.
        TrainingError: non-finite loss.
        KeyboardInterrupt: after writing a checkpoint to resume from.

    Taught in: notebooks/10_instance.ipynb
    """
    device = torch.device(device)
    model.to(device)
    for stage in stages:  # fail before the first step, not after an hour
        try:
            resolve_parts(model, stage.trainable)
        except ValueError as err:
            raise ValueError(f"stage {stage.title!r}: {err}") from None
    run = Path(run_dir) if run_dir is not None else None
    dtype = amp_dtype(device.type, amp, device.type == "cuda" and torch.cuda.is_bf16_supported())
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    state = load_resume_state(resume) if isinstance(resume, (str, os.PathLike)) else resume
    stage0, step0, history, opt_state = 0, 0, [], None
    if state is not None:
        stage0, step0 = _check_resume(state, stages, plans)
        history, opt_state = list(state.get("history", [])), state.get("optimizer")
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state.get("rng"))
        model.load_state_dict(state["model"])
        log("resuming: the plan is already complete" if stage0 >= len(stages) else
            f"resuming: stage {stage0 + 1}/{len(stages)} ({stages[stage0].title}) at step {step0}/{plans[stage0].steps}")
    per_epoch = math.ceil(len(dataset) / batch_size)

    def save(stage: int, step: int, optimizer, stage_file: int | None = None) -> None:
        if run is None:
            return
        state = {
            "task": "instance", "model": model.state_dict(), "stage": stage, "step": step, "stages_done": stage,
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None, "rng": rng_state(),
            "history": history, "plan": [p.to_dict() for p in plans], "stages": [s.to_dict() for s in stages],
            "titles": [s.title for s in stages], **(extra_state or {}),
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
        for hook in hooks:
            hook.stage_start(k, first)
        t0 = time.monotonic()
        recent: list[dict[str, float]] = []
        completed = first  # steps of this stage whose optimiser step is done
        batches = iter(train_loader(dataset, batch_size, seed, k, first, device, num_workers))
        try:
            step = first
            while step < plan.steps:  # a hook may move the end of the stage
                lr = stage_lr(stage, plan, step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                images, targets = to_device(*next(batches), device)
                losses = training_step(model, optimizer, images, targets, max_grad_norm,
                                       where=f"in stage {k + 1} ({stage.title}), step {step}", amp=dtype, scaler=scaler)
                completed = done = step + 1
                recent = (recent + [losses])[-20:]
                if (print_every and done % print_every == 0) or done == plan.steps:
                    mean = {key: float(np.mean([r[key] for r in recent])) for key in recent[0]}
                    rate = (time.monotonic() - t0) / max(done - first, 1)
                    log(f"[{stage.title}] step {done}/{plan.steps}  loss {mean['loss']:.4f} (mask {mean.get('loss_mask', float('nan')):.4f})"
                        f"  lr {lr:.2e}  {rate:.2f} s/step  eta {rate * (plan.steps - done):.0f} s")
                if checkpoint_every and done % checkpoint_every == 0 and done < plan.steps:
                    save(k, done, optimizer)
                for hook in hooks:
                    hook.step_end(k, done)
                step += 1
        except KeyboardInterrupt:
            save(k, completed, optimizer)  # the step in flight (if any) is not counted: it is redone on resume
            log(f"interrupted in stage {k + 1} at step {completed}; continue with: workshop train --resume {run}")
            raise
        finally:
            del batches  # stops the loader's workers
        seconds = time.monotonic() - t0
        train = {key: float(np.mean([r[key] for r in recent])) for key in recent[0]} if recent else {}
        val = evaluate(model) if evaluate is not None else {}
        history.append({"stage": k + 1, "title": stage.title, "steps": plan.steps, "trainable": trainable, "train": train,
                        "val": val, "seconds": round(seconds, 1),
                        "seconds_per_step": round(seconds / max(plan.steps - first, 1), 3)})
        if val:
            log(f"[{stage.title}] validation: " + ", ".join(f"{key} {v:.4f}" for key, v in val.items()
                                                       if key in ("segm_map", "segm_map_50", "bbox_map", "bbox_map_50")))
        save(k + 1, 0, None, stage_file=k + 1)
    return history


def _check_resume(state: dict[str, Any], stages: Sequence[Stage], plans: Sequence[StagePlan]) -> tuple[int, int]:
    """Where a checkpoint resumes: ``(stage, step)``; refuses one written for another plan."""
    titles = [s.title for s in stages]
    if "stage" not in state or list(state.get("titles", titles)) != titles:
        raise WorkshopError(f"cannot resume: the checkpoint's stages {state.get('titles')} are not this plan's {titles} "
                            "(use a new run folder, or the same stage file)")
    return int(state["stage"]), int(state["step"])


# ----------------------------------------------------------------------------- a trained run, back from disk


def load_instance_model(run: str | os.PathLike, device: torch.device | str = "cpu", checkpoint: str = "best.pt"):
    """The trained Mask R-CNN of a run folder (``checkpoints/best.pt``, else ``last.pt``) or a checkpoint file.

    Returns:
        ``(model in eval mode, state)``; ``state`` holds ``class_names``, ``model_args``, ``config``.

    Raises:
        WorkshopError: no checkpoint, or one without the model's arguments (named).
    """
    from workshop.instance.model import create_maskrcnn

    run = Path(run)
    path = run / CHECKPOINT_DIR / checkpoint if run.is_dir() else run
    if not path.is_file() and run.is_dir():
        path = run / CHECKPOINT_DIR / "last.pt"
    state = load_checkpoint(path, map_location="cpu")
    if "model_args" not in state:
        raise WorkshopError(f"{path} has no model_args: it was not written by `workshop train` for instances "
                            "(a notebook's checkpoint: rebuild the model with create_maskrcnn and load_state_dict, "
                            "or pass extra_state={'model_args': ...} to train_stages)")
    model = create_maskrcnn(weights=None, **dict(state["model_args"]))
    model.load_state_dict(state["model"])
    model.to(device).eval()
    return model, state


def run_config(state: dict[str, Any]):
    """The run's ``Config`` (its data section) from a checkpoint's saved config, or None when it has none."""
    from workshop.config import load_config

    saved = {k: v for k, v in dict(state.get("config") or {}).items() if k not in ("instance", "stages")}
    if not saved:
        return None
    return load_config(overrides=saved, profile=saved.get("profile"))
