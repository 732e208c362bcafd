"""Training Mask R-CNN: one epoch with a metric logger, and progressive stages with checkpoints.

``train_one_epoch`` follows the shape of torchvision's detection references (written afresh here,
without their distributed plumbing): the model returns a dict of losses in training mode, their sum
is minimised, and a :class:`MetricLogger` prints smoothed values (median over a window, and the
average over the epoch) with the time per step and an ETA.

``run_stages`` runs a plan of :class:`~workshop.instance.stages.Stage` s in order. Before each stage
it sets what is trainable, builds a fresh optimiser and a ``StepLR`` schedule; after each stage it
writes ``RUN/checkpoints/stage<k>.pt`` and ``RUN/checkpoints/last.pt`` atomically (with
:func:`workshop.engine.save_checkpoint`) and ``RUN/stages.json``. ``run_stages(..., resume=RUN)``
reloads the last finished stage and skips the stages already done.

Shape:
    batches from ``collate_detection``: (list of (3, H, W) float images, list of target dicts).

Taught in: notebooks/10_instance.ipynb
"""

from __future__ import annotations

import datetime
import math
import os
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader

from workshop.engine import CHECKPOINT_DIR, load_checkpoint, save_checkpoint, write_json_atomic
from workshop.errors import TrainingError, WorkshopError
from workshop.instance.model import resolve_parts, set_trainable_parts
from workshop.instance.stages import Stage

__all__ = ["MetricLogger", "SmoothedValue", "make_stage_optimizer", "run_stages", "train_one_epoch"]


class SmoothedValue:
    """A running series: the median and mean of the last ``window`` values, and the overall average.

    Example:
        >>> v = SmoothedValue(window=2)
        >>> for x in (1.0, 2.0, 6.0): v.update(x)
        >>> v.median, v.avg, v.global_avg, v.value
        (2.0, 4.0, 3.0, 6.0)

    Taught in: notebooks/10_instance.ipynb
    """

    def __init__(self, window: int = 20, fmt: str = "{median:.4f} ({global_avg:.4f})") -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.values: deque[float] = deque(maxlen=window)
        self.total = 0.0
        self.count = 0
        self.fmt = fmt

    def update(self, value: float, n: int = 1) -> None:
        """Add ``value`` (seen ``n`` times) to the series."""
        self.values.append(float(value))
        self.total += float(value) * n
        self.count += n

    @property
    def median(self) -> float:
        ordered = sorted(self.values)
        if not ordered:
            return float("nan")
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2

    @property
    def avg(self) -> float:
        return sum(self.values) / len(self.values) if self.values else float("nan")

    @property
    def global_avg(self) -> float:
        return self.total / self.count if self.count else float("nan")

    @property
    def value(self) -> float:
        return self.values[-1] if self.values else float("nan")

    def __str__(self) -> str:
        return self.fmt.format(median=self.median, avg=self.avg, global_avg=self.global_avg, value=self.value)


class MetricLogger:
    """Smoothed training values with a printed line every ``print_freq`` steps (and the ETA).

    Args:
        window: steps in the smoothing window of every value.
        print_freq: print every this many steps (and at the last one); 0 prints nothing.
        log: where lines go (``print`` by default; a list's ``append`` collects them).

    Example:
        >>> logger = MetricLogger(print_freq=0)
        >>> for batch in logger.log_every(range(3), header="demo"):
        ...     logger.update(loss=0.5)
        >>> round(logger.meters["loss"].global_avg, 2)
        0.5

    Taught in: notebooks/10_instance.ipynb
    """

    def __init__(self, window: int = 20, print_freq: int = 10, log: Callable[[str], None] = print) -> None:
        self.window = window
        self.print_freq = print_freq
        self.log = log
        self.meters: dict[str, SmoothedValue] = {}

    def update(self, **values: float) -> None:
        """Add one value per named series (tensors are turned into floats)."""
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                value = value.item()
            self.meters.setdefault(name, SmoothedValue(self.window)).update(float(value))

    def __str__(self) -> str:
        return "  ".join(f"{name}: {meter}" for name, meter in self.meters.items())

    def summary(self) -> dict[str, float]:
        """The average of every series over all steps so far."""
        return {name: meter.global_avg for name, meter in self.meters.items()}

    def log_every(self, iterable: Iterable[Any], header: str = "", total: int | None = None) -> Iterable[Any]:
        """Yield from ``iterable``, timing each step and printing progress lines with an ETA."""
        if total is None:
            total = len(iterable) if hasattr(iterable, "__len__") else None  # type: ignore[arg-type]
        step_time = SmoothedValue(self.window, fmt="{avg:.3f}")
        data_time = SmoothedValue(self.window, fmt="{avg:.3f}")
        start = end = time.monotonic()
        done = 0
        try:
            for index, item in enumerate(iterable):
                data_time.update(time.monotonic() - end)
                yield item
                step_time.update(time.monotonic() - end)
                end = time.monotonic()
                done = index + 1
                last = total is not None and done == total
                if self.print_freq and (index % self.print_freq == 0 or last):
                    if total is not None:
                        eta = datetime.timedelta(seconds=round(step_time.global_avg * (total - done)))
                        where = f"[{done}/{total}] eta {eta}"
                    else:
                        where = f"[{done}]"
                    self.log(f"{header} {where}  {self}  time: {step_time} s  data: {data_time} s".strip())
        finally:  # also when the loop is left early (a time budget, an error)
            if self.print_freq and done:
                seconds = time.monotonic() - start
                ended = "done" if total is None or done == total else f"stopped after {done}/{total}"
                self.log(f"{header} {ended}: {done} steps in {datetime.timedelta(seconds=round(seconds))} "
                         f"({seconds / done:.3f} s/step)  {self}".strip())


def _to_device(images: list[torch.Tensor], targets: list[dict[str, Any]], device: torch.device):
    images = [img.to(device) for img in images]
    targets = [{k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in t.items()} for t in targets]
    return images, targets


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    device: torch.device | str = "cpu",
    epoch: int = 1,
    print_freq: int = 10,
    warmup_steps: int = 0,
    deadline: float | None = None,
    log: Callable[[str], None] = print,
    header: str | None = None,
    max_grad_norm: float | None = 10.0,
) -> dict[str, float]:
    """Train a torchvision detection model for one pass over ``loader``.

    Args:
        model: returns a dict of losses when called as ``model(images, targets)`` in train mode.
        optimizer: over the trainable parameters.
        loader: yields ``(images, targets)`` (see :func:`~workshop.instance.data.collate_detection`).
        device: where to compute.
        epoch: number shown in the log.
        print_freq: log every this many steps (0: silent).
        warmup_steps: raise the learning rate linearly from 1/1000 to its value over these steps.
        deadline: ``time.monotonic()`` after which the epoch ends after the current step.
        log: where log lines go.
        header: log prefix (default ``"epoch <epoch>"``).
        max_grad_norm: clip the gradient norm to this value (guards against the occasional huge
            mask-loss gradient early in training), or None.

    Returns:
        The epoch's average of every loss term and of ``loss`` (their sum), plus ``steps`` and
        ``stopped_early`` (1.0 when the deadline cut the epoch short).

    Raises:
        TrainingError: the loss became NaN or infinite (the message names the loss terms).

    Taught in: notebooks/10_instance.ipynb
    """
    device = torch.device(device)
    model.train()
    logger = MetricLogger(print_freq=print_freq, log=log)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    steps, stopped = 0, 0.0
    for images, targets in logger.log_every(loader, header=header or f"epoch {epoch}"):
        images, targets = _to_device(images, targets, device)
        if steps < warmup_steps:
            factor = 1e-3 + (1 - 1e-3) * steps / warmup_steps
            for group, lr in zip(optimizer.param_groups, base_lrs):
                group["lr"] = lr * factor
        elif steps == warmup_steps and warmup_steps:
            for group, lr in zip(optimizer.param_groups, base_lrs):
                group["lr"] = lr
        losses = model(images, targets)
        loss = sum(losses.values())
        if not math.isfinite(loss.item()):
            terms = ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
            raise TrainingError(
                f"loss became {loss.item()} at epoch {epoch}, step {steps} ({terms}). Likely causes: a learning "
                f"rate too high (lr={optimizer.param_groups[0]['lr']:.3g}; try 10x lower or warm-up steps), "
                "or boxes with zero width or height."
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], max_grad_norm)
        optimizer.step()
        steps += 1
        logger.update(loss=loss, lr=optimizer.param_groups[0]["lr"], **losses)
        if deadline is not None and time.monotonic() >= deadline:
            stopped = 1.0
            break
    if warmup_steps and steps <= warmup_steps:
        for group, lr in zip(optimizer.param_groups, base_lrs):
            group["lr"] = lr
    out = {k: v for k, v in logger.summary().items() if k != "lr"}
    out.update(steps=float(steps), stopped_early=stopped)
    return out


def make_stage_optimizer(model: nn.Module, stage: Stage) -> torch.optim.Optimizer:
    """The optimiser a stage asks for, over the parameters that are trainable now."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"stage {stage.title!r}: nothing is trainable (trainable={stage.trainable!r})")
    if stage.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=stage.lr, weight_decay=stage.weight_decay)
    return torch.optim.SGD(params, lr=stage.lr, momentum=stage.momentum, weight_decay=stage.weight_decay)


def _stage_file(run_dir: Path, index: int) -> Path:
    return run_dir / CHECKPOINT_DIR / f"stage{index}.pt"


def _load_resume(model: nn.Module, resume: str | os.PathLike, stages: Sequence[Stage], device: torch.device) -> tuple[int, list[dict[str, Any]]]:
    path = Path(resume)
    last = path if path.is_file() else path / CHECKPOINT_DIR / "last.pt"
    if not last.is_file():
        return 0, []  # nothing finished yet: start from the first stage
    state = load_checkpoint(last, map_location=device)
    done = int(state["stages_done"])
    titles = [s.title for s in stages]
    if state.get("titles", titles)[:done] != titles[:done]:
        raise WorkshopError(
            f"cannot resume from {last}: its finished stages {state['titles'][:done]} are not the first "
            f"stages of this plan {titles}; use a new run folder or the same stage file"
        )
    model.load_state_dict(state["model"])
    return done, list(state.get("history", []))


def run_stages(
    model: nn.Module,
    stages: Sequence[Stage],
    train_loader: DataLoader,
    val_loader: DataLoader | None = None,
    run_dir: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    resume: str | os.PathLike | None = None,
    max_minutes: float | None = None,
    print_freq: int = 10,
    evaluate: Callable[[nn.Module, DataLoader], dict[str, float]] | None = None,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Train ``model`` through ``stages`` in order, checkpointing after each stage.

    Args:
        model: a model from :func:`~workshop.instance.model.create_maskrcnn`.
        stages: the plan (e.g. from :func:`~workshop.instance.stages.load_stages`).
        train_loader: training batches.
        val_loader: validation batches for ``evaluate`` after each stage, or None.
        run_dir: where ``checkpoints/stage<k>.pt``, ``checkpoints/last.pt`` and ``stages.json`` go;
            None saves nothing.
        device: where to compute.
        resume: a run folder (or its ``last.pt``) to continue: finished stages are skipped and the
            model weights of the last finished stage are loaded. A folder without checkpoints starts
            from the first stage.
        max_minutes: total time budget. Each stage gets a share proportional to its epochs, plus
            whatever earlier stages left unused; a stage that runs out ends early (and is still
            checkpointed), so every stage gets its turn.
        print_freq: steps between log lines (0: one line per epoch).
        evaluate: ``evaluate(model, val_loader) -> dict of floats`` run after each stage
            (e.g. ``lambda m, l: evaluate_map(m, l)``), or None.
        log: where log lines go.

    Returns:
        The history: one record per finished stage (``stage``, ``title``, ``epochs_done``,
        ``trainable``, ``train`` (last epoch's averages), ``val``, ``seconds``), resumed ones included.

    Raises:
        ValueError: a stage names an unknown part (checked for every stage before training).
        WorkshopError: ``resume`` holds a different plan.
        TrainingError: non-finite loss.

    Taught in: notebooks/10_instance.ipynb
    """
    device = torch.device(device)
    model.to(device)
    for stage in stages:  # fail before the first step, not after an hour
        try:
            resolve_parts(model, stage.trainable)
        except ValueError as err:
            raise ValueError(f"stage {stage.title!r}: {err}") from None
    run_path = Path(run_dir) if run_dir is not None else None
    done, history = (0, [])
    if resume is not None:
        done, history = _load_resume(model, resume, stages, device)
        if done:
            log(f"resuming: stages 1-{done} already done ({', '.join(s.title for s in stages[:done])})")
    total_epochs = sum(s.epochs for s in stages[done:]) or 1
    budget = max_minutes * 60 if max_minutes else None
    start_all = time.monotonic()
    spent_share = 0.0
    for index in range(done, len(stages)):
        stage = stages[index]
        number = index + 1
        trainable = set_trainable_parts(model, stage.trainable)
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        log(f"== stage {number}/{len(stages)}: {stage.title} | {stage.epochs} epoch(s), lr {stage.lr:g}, "
            f"StepLR step {stage.step_size} gamma {stage.gamma:g} | trainable: {', '.join(trainable)} ({n_train:,} parameters)")
        optimizer = make_stage_optimizer(model, stage)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=stage.step_size, gamma=stage.gamma)
        deadline = None
        if budget is not None:
            spent_share += budget * stage.epochs / total_epochs
            deadline = start_all + spent_share
        t0 = time.monotonic()
        train: dict[str, float] = {}
        epochs_done = 0
        for epoch in range(1, stage.epochs + 1):
            dataset = getattr(train_loader, "dataset", None)
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(index * 1000 + epoch)
            train = train_one_epoch(
                model, optimizer, train_loader, device, epoch=epoch, print_freq=print_freq,
                warmup_steps=stage.warmup_steps if epoch == 1 else 0, deadline=deadline, log=log,
                header=f"[{stage.title}] epoch {epoch}/{stage.epochs}",
            )
            scheduler.step()
            epochs_done = epoch
            if not print_freq:
                log(f"[{stage.title}] epoch {epoch}/{stage.epochs}: loss {train['loss']:.4f} ({int(train['steps'])} steps)")
            if train["stopped_early"]:
                log(f"[{stage.title}] time share used up after epoch {epoch} (partial)")
                break
        val = evaluate(model, val_loader) if (evaluate is not None and val_loader is not None) else {}
        record = {
            "stage": number,
            "title": stage.title,
            "epochs_done": epochs_done,
            "trainable": trainable,
            "train": train,
            "val": val,
            "seconds": round(time.monotonic() - t0, 1),
        }
        history.append(record)
        if val:
            shown = {k: v for k, v in val.items() if isinstance(v, float) and not k.endswith(("_small", "_medium", "_large"))}
            log(f"[{stage.title}] validation: " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))
        if run_path is not None:
            state = {
                "model": model.state_dict(),
                "stages_done": number,
                "titles": [s.title for s in stages],
                "stages": [s.to_dict() for s in stages],
                "history": history,
            }
            save_checkpoint(state, _stage_file(run_path, number))
            save_checkpoint(state, run_path / CHECKPOINT_DIR / "last.pt")
            write_json_atomic({"stages": [s.to_dict() for s in stages], "history": history}, run_path / "stages.json")
    return history
