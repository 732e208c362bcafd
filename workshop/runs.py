"""A whole training run from a config: data, model, loss, optimiser, ``fit``, and the run folder.

The run folder holds::

    config.yaml              the configuration used
    checkpoints/best.pt      best model by the monitored validation metric (and last.pt)
    metrics.json             per epoch: train/val loss, IoU, Dice, learning rate, wall time
    curves.png               loss and IoU curves
    predictions.png          image / ground truth / prediction for validation images

Taught in: notebooks/07_training.ipynb
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import torch

from workshop import distributed
from workshop.config import Config, load_config, save_config
from workshop.engine import FitResult, fit, make_optimizer, make_scheduler
from workshop.hooks import ChannelsLast, CheckpointExtras, EpochEnd, Hook, TrainingMetrics
from workshop.models import build_model  # noqa: F401  (here before: workshop.runs.build_model)
from workshop.env import get_device, seed_everything
from workshop.errors import WorkshopError


def new_run_dir(base: str | os.PathLike, name: str = "run") -> Path:
    """A fresh, time-stamped folder under ``base`` (never reuses an existing one)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(base) / f"{name}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = Path(base) / f"{name}-{stamp}-{n}"
    return path


def train_from_config(
    cfg: Config,
    run_dir: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    on_epoch_end: Callable[[list[dict[str, Any]]], None] | None = None,
    log: Callable[[str], None] = print,
    name: str = "train",
) -> FitResult:
    """Train the model that ``cfg`` describes and fill a run folder.

    Args:
        cfg: the configuration.
        run_dir: the folder to fill (default: a new one under ``cfg.run_dir``).
        resume: a run folder to continue (its config is used; ``run_dir`` is that folder).
        on_epoch_end: callback with the history after each epoch.
        log: where progress lines go (``print``; pass ``lambda s: None`` for silence).
        name: the default run folder is ``<cfg.run_dir>/<name>-TIMESTAMP`` (``quickstart`` names its own).

    Returns:
        The ``FitResult`` (history, best epoch, run folder).
    """
    from workshop.data.loaders import class_names
    from workshop.losses import create_loss
    from workshop import recipe

    if resume is not None:
        run_path = Path(resume)
        cfg = load_config(run_path / "config.yaml", overrides=_budget_overrides(cfg))
    else:
        run_path = Path(run_dir) if run_dir else new_run_dir(cfg.run_dir, name)
    device = distributed.setup(get_device(cfg.train.device))  # torchrun: join the job, cuda:LOCAL_RANK
    run_path = distributed.same_on_all_ranks(run_path)  # one time-stamped folder for every rank
    log = log if distributed.is_main() else (lambda line: None)  # rank 0 speaks for the run
    seed_everything(cfg.train.seed)
    t0 = time.monotonic()
    with distributed.main_process_first():  # torchrun: rank 0 generates the embedded data, the others read it
        label_map = check_data(cfg, log)
    recorded = recipe.read_recorded_plan(run_path / "config.yaml") if resume is not None else None
    data = recipe.prepare_data(cfg, device, recorded=recorded)  # views, fingerprint, batch size, loaders
    cfg, plan, train_loader, val_loader = data.cfg, data.plan, data.train_loader, data.val_loader
    log(f"data: {len(train_loader.dataset)} training / {len(val_loader.dataset)} validation images "
        f"({cfg.data.source}, {cfg.data.task}, {cfg.data.image_size}px) checked and ready in {time.monotonic() - t0:.1f}s")
    names = list(class_names(cfg, label_map))
    from workshop.fingerprint import describe

    log(describe(plan.fingerprint, names))
    if device.type == "cuda":
        from workshop.config import describe_gpu_profile, detect_gpu_card

        for line in describe_gpu_profile(cfg, detect_gpu_card()):
            log(line)
        torch.backends.cudnn.benchmark = bool(cfg.train.cudnn_benchmark)  # fixed input size: tune kernels once
    num_classes = len(names)
    model = build_model(cfg, num_classes)
    widths = getattr(model, "decoder_channels", None)
    decoder = f"decoder {'-'.join(map(str, widths))}" if widths else "standard decoder"
    log(f"model: {cfg.model.arch} / {cfg.model.encoder} ({decoder}), weights: "
        f"{getattr(model, 'weights_source', cfg.model.encoder_weights)}; device: {device}")
    loss_fn = create_loss(cfg.train.loss, cfg.data.task, ignore_index=cfg.data.ignore_index,
                          class_weights=plan.class_weights)
    if isinstance(loss_fn, torch.nn.Module):
        loss_fn.to(device)  # its class weights beside the logits (fit does it too; the calibration comes first)
    precision = dict(amp=cfg.train.amp, amp_dtype=cfg.train.amp_dtype, channels_last=cfg.train.channels_last)
    t_budget = time.monotonic()  # the budget covers calibration, training, validation and checkpoints
    if cfg.train.max_minutes and recorded is None:
        if distributed.is_main():  # torchrun: rank 0 alone times the machine and decides; the others wait for its plan
            shard_train, shard_val = distributed.shard_loaders(train_loader, val_loader)  # the share one rank steps through
            with distributed.alone():  # no collective call: the other ranks are waiting in the broadcast below
                # the model before SyncBatchNorm (which would wait for the other ranks), timed with the
                # run's own mixed precision and memory format
                timing = recipe.calibrate(model, loss_fn, lambda m: make_optimizer(m, cfg.train.optimizer, cfg.train.lr,
                                          cfg.train.weight_decay), shard_train, shard_val, device,
                                          num_classes=num_classes, ignore_index=cfg.data.ignore_index, **precision)
            recipe.lay_over_budget(plan, cfg, timing, time.monotonic() - t_budget)
        plan = data.plan = distributed.same_on_all_ranks(plan)  # torchrun: every rank runs rank 0's plan, or they hang
        cfg.train.epochs = plan.epochs
        train_loader = data.rebuild_train_loader()  # the plan may make an epoch several passes
    model = distributed.convert_sync_batchnorm(model, cfg.train.sync_bn, device)  # train.sync_bn, off by default
    optimizer = make_optimizer(model, cfg.train.optimizer, cfg.train.lr, cfg.train.weight_decay)
    keeper = None
    budgeted = recorded.get("budget_s") is not None if recorded is not None else bool(cfg.train.max_minutes)
    if budgeted:
        # a budgeted run: a schedule in steps that the recipe re-plans against the clock after every epoch
        scheduler = recipe.StepSchedule(optimizer, cfg.train.scheduler, cfg.train.lr, plan.total_steps)
        if cfg.train.max_minutes and distributed.world_size() == 1:  # re-planning per rank would diverge;
            # under torchrun the plan is rank 0's and rank 0's clock stops every rank (budget.Budget)
            keeper = recipe.BudgetKeeper(plan, scheduler, t_budget + cfg.train.max_minutes * 60,
                                         cfg.train.max_minutes * 60, log, grow=recorded is None)
    else:
        scheduler = make_scheduler(optimizer, cfg.train.scheduler, cfg.train.lr, total_steps=plan.total_steps)
    log(plan.explain())
    try:
        run_path.mkdir(parents=True, exist_ok=True)
        if resume is None and distributed.is_main():
            recipe.record_plan(cfg, plan, run_path / "config.yaml")
    except OSError as exc:
        raise WorkshopError(
            f"cannot write the run folder {run_path}: {exc.strerror or exc} (choose another folder with --run-dir)"
        ) from None

    def report(history: list[dict[str, Any]]) -> None:
        h = history[-1]
        planned = cfg.train.epochs  # a re-planned budget changes the steps: count the epochs they make now
        if keeper is not None:
            planned = max(h["epoch"], -(-keeper.total // max(plan.steps_per_epoch, 1)))
        log(f"epoch {h['epoch']:>3}/{planned}  train loss {h['train_loss']:.4f}  "
            f"val loss {h['val_loss']:.4f}  val IoU {h['val_iou']:.4f}  val Dice {h['val_dice']:.4f}  "
            f"({h['epoch_time_s']:.1f}s)")

    hooks = run_hooks(cfg, device, num_classes, keeper.max_steps if keeper else plan.total_steps,
                      t_budget + cfg.train.max_minutes * 60 if cfg.train.max_minutes else None,
                      [EpochEnd(report), *([keeper] if keeper else [])],
                      CheckpointExtras(config=cfg.to_dict(), class_names=names, recipe=plan.to_dict()))
    shard_train, shard_val = distributed.shard_loaders(train_loader, val_loader)  # torchrun: this rank's share
    result = fit(  # under a budget the steps end the run; the epochs only bound a schedule the clock stretches
        model, shard_train, shard_val, loss_fn, optimizer, 10 * cfg.train.epochs + 10 if keeper and keeper.grow else cfg.train.epochs,
        device, scheduler, run_dir=run_path, num_classes=num_classes, monitor=cfg.train.monitor, seed=cfg.train.seed,
        resume=resume, amp=cfg.train.amp and cfg.train.amp_dtype, progress=cfg.train.progress and distributed.is_main(),
        on_epoch_end=on_epoch_end, hooks=hooks,
    )
    result.summary["replans"] = keeper.replans if keeper else []
    if result.history and distributed.is_main():
        recipe.summarize_against_baselines(result, data.val_ds, len(names), cfg, names, log)
        write_run_figures(result, model, val_loader, device, threshold=cfg.train.threshold)
    return result



MAX_REPORT_LINES = 20


def run_hooks(cfg: Config, device: torch.device, num_classes: int, max_steps: int | Callable[[int], int] | None,
              deadline: float | None, on_epoch: list[Hook] = (), *more: Hook) -> list[Hook]:
    """The machinery's hooks of a run from ``cfg``, in order, for ``engine.fit``.

    Channels-last memory (``train.channels_last`` on CUDA), the metrics' threshold and ignore index,
    torchrun, what every checkpoint stores (``more``), the per-epoch log and budget keeper
    (``on_epoch``), then the time budget and the step cap (last: it reads the plan as re-made).
    """
    from workshop.budget import Budget

    hooks: list[Hook] = [ChannelsLast(device)] if cfg.train.channels_last and device.type == "cuda" else []
    hooks += [TrainingMetrics(num_classes, cfg.data.ignore_index, cfg.train.threshold), distributed.DistributedHooks(device),
              *more, *on_epoch, Budget(cfg.train.max_minutes, max_steps, deadline, device)]
    return hooks


def check_data(cfg: Config, log: Callable[[str], None] = print):
    """Scan the data ``cfg`` points at before training; refuse with the report if it is broken.

    Every file is read once (``workshop.data.check.check_config``), so a corrupt file, an unpaired
    file or a mask with invalid values stops the run here, with all of them listed, instead of
    crashing an epoch later. Warnings (resized masks, EXIF, duplicates, mixed modes) go to ``log``.

    Returns:
        The label map of the data (None for binary tasks).

    Raises:
        DataError: the data has errors; the message holds the report (errors only, the first
            ``MAX_REPORT_LINES`` lines).

    Taught in: notebooks/03_dataset.ipynb
    """
    from workshop.data.check import check_config
    from workshop.errors import DataError

    reports, label_map = check_config(cfg)  # the training data, then data.val and data.test when given
    for report in reports:
        if not report.ok:
            raise DataError(_refusal(report))
    for report in reports:
        if report.warnings:
            log(f"data check ({report.layout}): {len(report.warnings)} warning(s), training goes on:")
            for line in report.format("warning", max_lines=MAX_REPORT_LINES).splitlines()[1:-2]:
                log(f"  {line}")
    return label_map


def _refusal(report) -> str:
    c = report.counts
    body = report.format("error", max_lines=MAX_REPORT_LINES).splitlines()[1:-2]
    return "\n".join([
        f"data check found {c['errors']} error(s) in {c['files_with_errors']} file(s) under {report.root}; "
        "training not started (full report: workshop data check)",
        *body,
    ])


def _budget_overrides(cfg: Config) -> dict[str, Any]:
    """On resume, keep the saved config but let the new time budget and epochs apply."""
    return {"train": {"max_minutes": cfg.train.max_minutes}}


def write_run_figures(result: FitResult, model, val_loader, device, rows: int = 6, threshold: float = 0.5) -> None:
    """``curves.png`` and ``predictions.png`` (best checkpoint on the first validation images).

    ``threshold``: the run's ``train.threshold``, so the figure shows the masks its metrics scored.
    """
    from workshop.augment import denormalize
    from workshop.engine import load_checkpoint
    from workshop.metrics import logits_to_labels
    from workshop.viz import plot_history, save_figure, show_samples

    run = result.run_dir
    save_figure(plot_history(result.history), run / "curves.png")
    best = run / "checkpoints" / "best.pt"
    if best.is_file():
        model.load_state_dict(load_checkpoint(best, map_location=device)["model"])
    model.eval()
    images, masks, preds = [], [], []
    with torch.no_grad():
        for batch in val_loader:
            logits = model(batch["image"].to(device)).float()
            labels = logits_to_labels(logits, threshold).cpu().numpy()
            for i in range(batch["image"].shape[0]):
                images.append(denormalize(batch["image"][i]))
                masks.append(batch["mask"][i].numpy())
                preds.append(labels[i])
            if len(images) >= rows:
                break
    save_figure(show_samples(images[:rows], masks[:rows], preds[:rows]), run / "predictions.png")


def quickstart(profile: str | None = None, run_dir: str | os.PathLike | None = None, overrides=None, log=print) -> FitResult:
    """The README's main job: embedded data, the profile's recipe, a filled run folder.

    Taught in: notebooks/07_training.ipynb
    """
    cfg = load_config(profile=profile, overrides=overrides)
    log(f"workshop quickstart: profile {cfg.profile!r}, {cfg.train.epochs} epochs")
    return train_from_config(cfg, run_dir=run_dir, log=log, name="quickstart")


def summarize(result: FitResult) -> str:
    """A few lines naming the best epoch and the files of the run."""
    run = result.run_dir
    best = result.best or {}
    lines = [
        f"finished ({result.stopped_reason}): best epoch {best.get('epoch')} "
        f"val IoU {best.get('val_iou', float('nan')):.4f}, val Dice {best.get('val_dice', float('nan')):.4f}",
        *result.summary.get("lines", []),  # steps run, the trivial baselines (workshop.recipe)
        f"run folder: {run}",
    ]
    for name in ("config.yaml", "metrics.json", "checkpoints/best.pt", "curves.png", "predictions.png"):
        if (run / name).exists():
            lines.append(f"  {run / name}")
    return "\n".join(lines)
