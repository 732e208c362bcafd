"""One recipe that sizes itself to the data and to the clock, used by the CLI, the notebooks and the benchmarks.

The rules, each written down in the run log and in the run's ``config.yaml`` (``recipe:``) with
its reason:

* **Augmentations suit the view.** Street scenes and photos of people are *upright*: the sky is
  up, so no vertical flips and no 90-degree rotations. Aerial and microscopy images are
  *top-down*: any orientation is as likely as another, so they may. ``augment.view`` chooses;
  ``auto`` takes the data source's usual view (:data:`VIEW_BY_SOURCE`).
* **The batch fits the data.** At least :data:`MIN_BATCHES_PER_EPOCH` batches per epoch: the
  batch is capped to the largest power of two at most ``training images / 4`` ("batch 4 because
  24 training images"). The last incomplete batch is dropped only when it holds a small share of
  the epoch (at most :data:`MAX_DROPPED_SHARE`) or a single image (BatchNorm cannot normalise one
  image at the deepest, 1x1, stage).
* **Schedules are sized in optimiser steps.** Without a budget: ``train.epochs`` epochs, the
  learning-rate schedule sized to their steps. With ``train.max_minutes``: a few real steps time
  the machine (:func:`workshop.budget.calibrate`, counted in the budget), then the schedule (one-cycle, cosine,
  ...) is laid over the steps that fit in the budget, validation and checkpoints included
  (:func:`workshop.budget.steps_in_budget`). After every epoch the plan is checked against the
  clock and the rest of the schedule re-planned (:class:`workshop.budget.BudgetKeeper`). The run then completes its schedule inside the budget, with the
  learning rate annealed, instead of being cut off at a high learning rate.
* **A warning under** :data:`MIN_TOTAL_STEPS` **optimiser steps in all**: a handful of steps is
  not training.
* **Data that fits in memory is decoded once** (:class:`InMemoryDataset`): images are resized to
  the training size once and kept; augmentations still run on every item.

Example:
    >>> from workshop.config import load_config
    >>> plan = plan_recipe(load_config(profile="smoke"), num_train=24)
    >>> plan.batch_size, plan.steps_per_epoch, plan.total_steps
    (4, 6, 6)
    >>> print(plan.explain().splitlines()[2])
      data.batch_size = 4 (configured 8): 24 training images: at most a quarter of them per batch (a power of two), so an epoch has at least 4 steps

Taught in: notebooks/07_training.ipynb
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from workshop import budget
from workshop.budget import BudgetKeeper, StepSchedule, calibrate, steps_in_budget
from workshop.config import Config

__all__ = [
    "VIEWS", "VIEW_BY_SOURCE", "Choice", "StepSchedule", "BudgetKeeper", "RecipePlan", "choose_view", "apply_view", "choose_batch_size",
    "choose_drop_last", "steps_per_epoch", "plan_recipe", "calibrate", "steps_in_budget", "lay_over_budget",
    "InMemoryDataset", "PreparedData", "prepare_data", "record_plan", "read_recorded_plan",
]

VIEWS = ("auto", "upright", "top_down")
"""Values of ``augment.view``: how the camera looks at the scene."""

VIEW_BY_SOURCE: dict[str, str] = {
    "embedded": "top_down",  # synthetic aerial tiles (buildings seen from above)
    "camvid": "upright",  # street scenes from a car
    "human_seg": "upright",  # photos of people
    "pets": "upright",  # photos of cats and dogs
    "pennfudan": "upright",  # pedestrians
}
"""The usual view of each registered data source; any other source defaults to ``upright``."""

MIN_BATCHES_PER_EPOCH = 4
MAX_DROPPED_SHARE = 0.1
MIN_TOTAL_STEPS = 100
PRELOAD_MAX_BYTES = 2**30  # decode once and keep in memory below this size
MAX_OVERHEAD_SHARE = 0.1  # validation + checkpoints: at most this share of an epoch under a budget ...
MIN_VALIDATIONS = 6  # ... while the budget still holds this many validations
IMBALANCE_FOR_WEIGHTS = 10.0  # class_weights=auto weighs multiclass losses when shares differ this much


@dataclass
class Choice:
    """One decision of the recipe: the config key, the value used, the value configured, and why."""

    key: str
    value: Any
    configured: Any
    why: str

    def line(self) -> str:
        changed = f" (configured {self.configured})" if self.configured != self.value else ""
        return f"{self.key} = {self.value}{changed}: {self.why}"


@dataclass
class RecipePlan:
    """What the recipe decided for one run.

    Attributes:
        num_train: training images.
        batch_size, drop_last, steps_per_epoch: the training loader.
        epochs: epochs to run (the last may be partial when a budget sizes the schedule).
        total_steps: optimiser steps of the whole run; the LR schedule is sized to exactly these.
        budget_s: the time budget in seconds (None: no budget).
        step_s, val_s, checkpoint_s: calibrated seconds per training step, per validation pass and
            per epoch's checkpoints (None without a budget).
        choices: every decision with its reason; warnings: what the user should know.
    """

    num_train: int
    batch_size: int
    drop_last: bool
    steps_per_epoch: int
    epochs: int
    total_steps: int
    budget_s: float | None = None
    step_s: float | None = None
    val_s: float | None = None
    checkpoint_s: float | None = None
    preload: bool = False
    passes_per_epoch: int = 1
    class_weights: list[float] | None = None
    choices: list[Choice] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fingerprint: Any | None = None

    def choose(self, key: str, value: Any, configured: Any, why: str) -> None:
        """Record (or replace) the decision for ``key``."""
        self.choices = [c for c in self.choices if c.key != key] + [Choice(key, value, configured, why)]

    def explain(self) -> str:
        """Every decision and warning, one per line: what a learner reads to see the rule."""
        lines = [f"recipe: {self.total_steps} optimiser steps = {self._steps_words()}"]
        lines += [f"  {c.line()}" for c in self.choices]
        lines += [f"  WARNING: {w}" for w in self.warnings]
        return "\n".join(lines)

    def _steps_words(self) -> str:
        full, rest = divmod(self.total_steps, self.steps_per_epoch) if self.steps_per_epoch else (0, 0)
        words = f"{full} epoch(s) x {self.steps_per_epoch} steps"
        return words + (f" + {rest} steps" if rest else "")

    def to_dict(self) -> dict[str, Any]:
        """The ``recipe:`` section of ``config.yaml``."""
        out: dict[str, Any] = {
            "total_steps": self.total_steps,
            "epochs": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "batch_size": self.batch_size,
            "drop_last": self.drop_last,
            "num_train": self.num_train,
            "passes_per_epoch": self.passes_per_epoch,
            "preload": self.preload,
            "class_weights": None if self.class_weights is None else [round(w, 4) for w in self.class_weights],
        }
        if self.budget_s is not None:
            out["budget_s"] = round(self.budget_s, 3)
            out["calibration"] = {"step_s": _r(self.step_s), "val_s": _r(self.val_s), "checkpoint_s": _r(self.checkpoint_s)}
        out["choices"] = {c.key: {"value": c.value, "configured": c.configured, "why": c.why} for c in self.choices}
        out["warnings"] = list(self.warnings)
        if self.fingerprint is not None:
            out["fingerprint"] = self.fingerprint.to_dict()
        return out


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


# ----------------------------------------------------------------------------- augmentations


def choose_view(cfg: Config) -> tuple[str, str]:
    """The view of the data (``upright`` or ``top_down``) and why.

    Returns:
        (view, reason): ``augment.view`` when it is set, else the source's usual view.
    """
    configured = getattr(cfg.augment, "view", "auto")
    if configured in ("upright", "top_down"):
        return configured, f"augment.view={configured} in the config"
    source = cfg.data.source
    if source in VIEW_BY_SOURCE:
        view = VIEW_BY_SOURCE[source]
        kind = "images seen from above" if view == "top_down" else "upright scenes (the sky is up)"
        return view, f"data.source {source} holds {kind}"
    return "upright", (f"data.source {source}: upright assumed (photos); set augment.view=top_down "
                       "for aerial or microscopy images")


def apply_view(cfg: Config, plan: RecipePlan | None = None) -> Config:
    """A copy of ``cfg`` whose orientation augmentations suit its view (vflip, rotate90 off when upright).

    Args:
        cfg: the configuration (not changed).
        plan: where to record the decisions (optional).

    Returns:
        The new configuration, with ``augment.view`` resolved.
    """
    cfg = copy.deepcopy(cfg)
    view, why = choose_view(cfg)
    configured = getattr(cfg.augment, "view", "auto")
    if hasattr(cfg.augment, "view"):
        cfg.augment.view = view
    if plan is not None:
        plan.choose("augment.view", view, configured, why)
    if view == "upright":
        for key in ("vflip", "rotate90"):
            before = getattr(cfg.augment, key)
            if before > 0:
                setattr(cfg.augment, key, 0.0)
                if plan is not None:
                    plan.choose(f"augment.{key}", 0.0, before, "upright view: an upside-down or sideways scene never occurs")
    return cfg


# ----------------------------------------------------------------------------- batches and steps


def choose_batch_size(num_train: int, configured: int) -> tuple[int, str]:
    """The batch size for ``num_train`` training images, at most ``configured``.

    The batch is capped to the largest power of two at most ``num_train / MIN_BATCHES_PER_EPOCH``
    (at least 2, and never more than the training set).

    Example:
        >>> choose_batch_size(24, 16)[0], choose_batch_size(232, 8)[0], choose_batch_size(3, 16)[0]
        (4, 8, 2)
    """
    if num_train < 1:
        raise ValueError("the training set is empty: no batch size fits")
    if configured < 1:
        raise ValueError(f"data.batch_size must be at least 1, got {configured}")
    cap = num_train // MIN_BATCHES_PER_EPOCH
    cap = 2 ** int(math.log2(cap)) if cap >= 2 else 2
    cap = min(cap, num_train)
    if configured <= cap:
        return configured, f"as configured ({num_train} training images: at least {MIN_BATCHES_PER_EPOCH} batches per epoch)"
    return cap, (f"{num_train} training images: at most a quarter of them per batch (a power of two), "
                 f"so an epoch has at least {MIN_BATCHES_PER_EPOCH} steps")


def choose_drop_last(num_train: int, batch_size: int) -> tuple[bool, str]:
    """Whether the training loader drops its last incomplete batch, and why.

    Dropped only when it would hold a small share of the epoch (at most ``MAX_DROPPED_SHARE``) or
    a single image; never when the training set is a single batch.

    Example:
        >>> choose_drop_last(24, 16)[0], choose_drop_last(257, 16)[0], choose_drop_last(232, 8)[0]
        (False, True, False)
    """
    rest = num_train % batch_size
    if rest == 0:
        return False, f"{num_train} images fill {num_train // batch_size} batches exactly"
    if num_train <= batch_size:
        return False, "the training set is a single batch"
    share = rest / num_train
    if rest == 1:
        return True, "the last batch would hold 1 image (BatchNorm cannot train on one image)"
    if share <= MAX_DROPPED_SHARE:
        return True, f"the last batch of {rest} images is {share:.0%} of the data"
    return False, f"dropping the last batch would skip {rest} of {num_train} images ({share:.0%}) every epoch"


def steps_per_epoch(num_train: int, batch_size: int, drop_last: bool) -> int:
    """Optimiser steps in one epoch (``len`` of the training DataLoader)."""
    return num_train // batch_size if drop_last else math.ceil(num_train / batch_size)


def plan_recipe(cfg: Config, train_ds: Dataset | None = None, num_train: int | None = None, fingerprint: Any | None = None,
                world: int | None = None) -> RecipePlan:
    """The recipe's decisions for ``cfg`` on a training set (before any time budget is applied).

    Args:
        cfg: the configuration (``data.batch_size``, ``train.epochs``, ``augment``).
        train_ds: the training data set (only its length is used), or give ``num_train``.
        num_train: number of training images, when no data set is at hand.
        fingerprint: the training set's :class:`workshop.fingerprint.Fingerprint`, kept in the plan.
        world: processes of a torchrun job (default: this job's ``workshop.distributed.world_size()``).
            The batch is the global batch, split evenly over them: a batch the recipe capped is
            rounded down to a multiple of ``world`` (the reason says so).

    Returns:
        The :class:`RecipePlan`: batch size, drop_last, epochs and total steps, with reasons.

    Raises:
        ConfigError: the configured ``data.batch_size``, kept as it is, is not a multiple of ``world``.

    Example:
        >>> plan = plan_recipe(cfg, train_ds)  # doctest: +SKIP
        >>> print(plan.explain())  # doctest: +SKIP

    Taught in: notebooks/07_training.ipynb
    """
    n = len(train_ds) if train_ds is not None else num_train
    if n is None:
        raise ValueError("plan_recipe needs the training set or num_train")
    batch, why_batch = choose_batch_size(n, cfg.data.batch_size)
    batch, why_batch = _split_over_processes(batch, why_batch, cfg.data.batch_size, world)
    drop, why_drop = choose_drop_last(n, batch)
    spe = steps_per_epoch(n, batch, drop)
    epochs = max(1, cfg.train.epochs)
    plan = RecipePlan(num_train=n, batch_size=batch, drop_last=drop, steps_per_epoch=spe, epochs=epochs,
                      total_steps=epochs * spe, fingerprint=fingerprint)
    apply_view(cfg, plan)
    plan.choose("data.batch_size", batch, cfg.data.batch_size, why_batch)
    plan.choose("drop_last", drop, "auto", why_drop)
    plan.choose("train.epochs", epochs, cfg.train.epochs, f"train.epochs; the {cfg.train.scheduler} schedule is sized to their {epochs * spe} steps")
    _check_steps(plan, cfg)
    return plan


def _split_over_processes(batch: int, why: str, configured: int, world: int | None) -> tuple[int, str]:
    """The global batch as a multiple of the torchrun processes (each takes ``batch / world`` images a step).

    A batch the recipe chose (smaller than configured) is rounded down to a multiple of ``world``
    (at least ``world``); a configured batch is kept, and refused when it does not split evenly.

    Example:
        >>> _split_over_processes(4, "cap", 16, 3)
        (3, 'cap; rounded down to 3, a multiple of the 3 processes (each takes 1 image(s) a step)')
    """
    from workshop import distributed

    world = distributed.world_size() if world is None else world
    if world > 1 and batch % world and batch < configured:
        batch = max(world, batch - batch % world)
        why += f"; rounded down to {batch}, a multiple of the {world} processes (each takes {batch // world} image(s) a step)"
    distributed.per_rank_batch(batch, world)  # ConfigError naming data.batch_size and the valid choices
    return batch, why


def _check_steps(plan: RecipePlan, cfg: Config) -> None:
    plan.warnings = [w for w in plan.warnings if "optimiser steps in all" not in w]
    if plan.total_steps < MIN_TOTAL_STEPS:
        need = math.ceil(MIN_TOTAL_STEPS / plan.steps_per_epoch)
        advice = (f"give it more time (--max-minutes)" if plan.budget_s else
                  f"set train.epochs to at least {need}, or give a time budget (--max-minutes)")
        plan.warnings.append(f"only {plan.total_steps} optimiser steps in all ({plan._steps_words()}): "
                             f"too few to train a network; {advice}")


# ----------------------------------------------------------------------------- the clock


def lay_over_budget(plan: RecipePlan, cfg: Config, timing: dict[str, float], elapsed_s: float) -> RecipePlan:
    """Size the plan's schedule to the steps that fit in ``cfg.train.max_minutes``.

    Args:
        plan: from :func:`plan_recipe` (changed in place and returned).
        cfg: the configuration (``train.max_minutes``, ``train.scheduler``).
        timing: :func:`calibrate`'s result.
        elapsed_s: seconds of the budget already used (the calibration).
    """
    budget_s = float(cfg.train.max_minutes) * 60.0
    plan.budget_s = budget_s
    plan.step_s, plan.val_s, plan.checkpoint_s = timing["step_s"], timing["val_s"], timing["checkpoint_s"]
    available = budget_s * (1 - budget.BUDGET_RESERVE) - elapsed_s
    one_epoch_part = plan.step_s + plan.val_s + plan.checkpoint_s
    if available < one_epoch_part:
        plan.warnings.append(
            f"the budget of {cfg.train.max_minutes:g} min leaves {max(available, 0):.1f} s after the calibration, less "
            f"than one step and a validation ({one_epoch_part:.1f} s) on this machine: the configured "
            f"{plan.epochs} epoch(s) start and the clock stops them (the schedule will not complete)")
        _check_steps(plan, cfg)
        return plan
    choose_passes_per_epoch(plan, available)
    total, epochs = steps_in_budget(available, plan.step_s, plan.val_s + plan.checkpoint_s, plan.steps_per_epoch)
    plan.total_steps, plan.epochs = total, epochs
    plan.choose(
        "train.epochs", epochs, cfg.train.epochs,
        f"a budget of {cfg.train.max_minutes:g} min: {plan.step_s:.3f} s per step, {plan.val_s + plan.checkpoint_s:.1f} s "
        f"per validation and checkpoints (measured in {timing['seconds']:.1f} s) leave room for {total} steps in "
        f"{available:.0f} s; the {cfg.train.scheduler} schedule is laid over these {total} steps",
    )
    _check_steps(plan, cfg)
    return plan


def choose_class_weights(cfg: Config, fingerprint: Any | None, plan: RecipePlan | None = None) -> list[float] | None:
    """Loss weights per class from the training set's class shares (``train.class_weights``).

    ``auto``: a multiclass task whose most common class has at least ``IMBALANCE_FOR_WEIGHTS``
    times the pixels of its rarest present class gets square-root inverse-frequency weights
    (``workshop.multiclass.inverse_frequency_weights(power=0.5)``, notebook 09); anything else, none.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> cfg = NS(train=NS(class_weights="auto"), data=NS(task="multiclass"))
        >>> [round(w, 3) for w in choose_class_weights(cfg, NS(class_shares=[0.64, 0.32, 0.04]))]
        [0.798, 1.129, 3.193]
    """
    from workshop.multiclass import inverse_frequency_weights

    mode = getattr(cfg.train, "class_weights", "none")
    shares = list(getattr(fingerprint, "class_shares", []) or [])
    present = [s for s in shares if s > 0]
    weights, why = None, "none"
    if mode == "auto":
        if cfg.data.task != "multiclass" or len(present) < 2:
            why = "auto: no weights for a binary task (the Dice part of the loss balances it)" if cfg.data.task == "binary" \
                else "auto: fewer than two classes present"
        else:
            ratio = max(present) / min(present)
            if ratio >= IMBALANCE_FOR_WEIGHTS:
                weights = inverse_frequency_weights(shares, power=0.5)
                why = (f"auto: the most common class has {ratio:.0f}x the pixels of the rarest (fingerprint): "
                       "square-root inverse-frequency weights")
            else:
                why = f"auto: class shares within {ratio:.1f}x of each other: no weights"
    elif mode in ("sqrt_inverse", "inverse"):
        if not present:
            raise ValueError("train.class_weights needs class shares, and the training masks have no labelled pixel")
        weights = inverse_frequency_weights(shares, power=0.5 if mode == "sqrt_inverse" else 1.0)
        why = f"train.class_weights={mode}, from the training set's class shares"
    if plan is not None:
        plan.class_weights = None if weights is None else [float(w) for w in weights]
        shown = "none" if weights is None else "[" + ", ".join(f"{w:.2f}" for w in weights) + "]"
        plan.choose("train.class_weights", shown, mode, why)
    return weights


def choose_passes_per_epoch(plan: RecipePlan, available_s: float) -> int:
    """Under a budget, how many passes over the training set make one epoch (one validation).

    A small training set makes short epochs, and validating and writing checkpoints after each
    one can take more time than the training. The epoch grows by whole passes until validation and
    checkpoints take at most ``MAX_OVERHEAD_SHARE`` of it, but not beyond the point where the
    budget holds fewer than ``MIN_VALIDATIONS`` epochs. Changes ``plan`` (passes, drop_last, steps
    per epoch) and returns the number of passes.
    """
    per = (plan.val_s or 0.0) + (plan.checkpoint_s or 0.0)
    step_s = plan.step_s or 0.0
    one = steps_per_epoch(plan.num_train, plan.batch_size, plan.drop_last)
    k = 1
    while k < 64 and per > MAX_OVERHEAD_SHARE * (k * one * step_s + per):
        k += 1
    while k > 1 and available_s / (k * one * step_s + per) < MIN_VALIDATIONS:
        k -= 1
    if k > 1:
        plan.passes_per_epoch = k
        plan.drop_last, why_drop = choose_drop_last(k * plan.num_train, plan.batch_size)
        plan.steps_per_epoch = steps_per_epoch(k * plan.num_train, plan.batch_size, plan.drop_last)
        plan.choose("drop_last", plan.drop_last, "auto", why_drop)
        plan.choose("passes_per_epoch", k, 1,
                    f"validation and checkpoints take {per:.1f} s against {one * step_s:.1f} s for one pass over the "
                    f"{plan.num_train} training images: an epoch of {k} passes ({plan.steps_per_epoch} steps) keeps them "
                    f"under {MAX_OVERHEAD_SHARE:.0%} of the time")
    return k


def train_loader_for(plan: RecipePlan, train_ds: Dataset, cfg: Config, device: torch.device | None = None):
    """The training DataLoader of ``plan``: its batch size, drop_last and passes per epoch, a seeded shuffle.

    Built by ``make_train_val_loaders`` (notebook 04's exercise). ``engine.fit`` re-seeds
    ``loader.generator`` every epoch; the sampler draws from the same generator, so the order of
    every epoch follows from the seed.
    """
    return loaders_for(plan, train_ds, train_ds, cfg, device)[0]


def loaders_for(plan: RecipePlan, train_ds: Dataset, val_ds: Dataset, cfg: Config, device: torch.device | None = None):
    """``(train_loader, val_loader)`` of ``plan`` with ``make_train_val_loaders`` (notebook 04's exercise)."""
    from workshop.data.loaders import make_train_val_loaders

    return make_train_val_loaders(train_ds, val_ds, plan.batch_size, cfg.data.num_workers, device, cfg.train.seed,
                                  drop_last=plan.drop_last, passes=plan.passes_per_epoch)


class InMemoryDataset(Dataset):
    """A data set decoded and resized once; its transform (augmentations) still runs on every item.

    The training transforms of ``workshop.augment.get_transforms`` start by resizing to
    ``data.image_size``; this does that resize once, up front, with the same interpolations
    (area for the image, nearest for the mask), so each item then skips the JPEG/PNG decode and
    the large resize. The result is the same pipeline, faster.

    Args:
        source: a data set with ``load(i) -> (image (H, W, 3) uint8, mask (H, W) int)`` and a
            ``transform`` (``PairDataset`` and the data sets of ``make_datasets``).
        size: side of the square the images are resized to.
        workers: threads that decode (default: the CPU count, at most 8).

    Attributes:
        original_sizes: (height, width) of every image before resizing (for the fingerprint).
        masks: the resized masks, (size, size) uint8 class ids each (int64 when an id exceeds 255).

    Shape:
        item: whatever ``source.transform`` returns from a (size, size, 3) image and its mask.
    """

    def __init__(self, source: Any, size: int, workers: int | None = None) -> None:
        import cv2
        from concurrent.futures import ThreadPoolExecutor

        self.transform = source.transform
        for name in ("task", "label_map", "ignore_index", "num_classes", "pairs"):
            if hasattr(source, name):
                setattr(self, name, getattr(source, name))

        def one(i: int):
            image, mask = source.load(i)
            image, mask = np.asarray(image), np.asarray(mask)
            hw = (int(image.shape[0]), int(image.shape[1]))
            if image.shape[:2] != (size, size):
                image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
            if mask.shape[:2] != (size, size):
                mask = cv2.resize(mask.astype(np.int32 if mask.max(initial=0) > 255 else np.uint8), (size, size),
                                  interpolation=cv2.INTER_NEAREST)
            small = mask.max(initial=0) <= 255 and mask.min(initial=0) >= 0
            return image, mask.astype(np.uint8 if small else np.int64), hw

        t0 = time.perf_counter()
        n_workers = workers or min(8, os.cpu_count() or 1)
        if n_workers > 1 and len(source) > 1:
            with ThreadPoolExecutor(max_workers=n_workers) as pool:
                items = list(pool.map(one, range(len(source))))
        else:
            items = [one(i) for i in range(len(source))]
        self.images = [im for im, _, _ in items]
        self.masks = [m for _, m, _ in items]
        self.original_sizes = [hw for _, _, hw in items]
        self.build_seconds = time.perf_counter() - t0

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The resized image and mask of item ``index`` (no augmentation)."""
        return self.images[index], self.masks[index]

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, mask = self.images[index], self.masks[index]
        if self.transform is None:
            return {"image": image, "mask": mask}
        small = mask.astype(np.uint8) if mask.max(initial=0) < 256 else mask.astype(np.int32)
        out = self.transform(image=image, mask=small)
        m = out["mask"]
        out["mask"] = m.long() if isinstance(m, torch.Tensor) else np.asarray(m).astype(np.int64)
        return out


def _preload_bytes(n: int, size: int) -> int:
    return n * size * size * (3 + 1)  # uint8 pixels and uint8 class ids


# ----------------------------------------------------------------------------- the whole data side


@dataclass
class PreparedData:
    """What :func:`prepare_data` returns: the effective config, the data and the loaders, and the plan."""

    cfg: Config
    train_ds: Dataset
    val_ds: Dataset
    train_loader: Any
    val_loader: Any
    plan: RecipePlan
    device: torch.device | None = None

    def rebuild_train_loader(self):
        """The training loader again, after the budget changed the plan (passes per epoch)."""
        self.train_loader = train_loader_for(self.plan, self.train_ds, self.cfg, self.device)
        return self.train_loader


def prepare_data(
    cfg: Config,
    device: torch.device | None = None,
    recorded: dict[str, Any] | None = None,
    preload: bool | None = None,
) -> PreparedData:
    """Data sets, fingerprint, batch size and loaders for ``cfg``, the recipe's way.

    Args:
        cfg: the configuration (not changed; the returned ``cfg`` holds what the recipe chose).
        device: where batches go (pinned memory on CUDA).
        recorded: the ``recipe:`` section of a run being resumed: its batch size, drop_last,
            epochs and steps are kept as they were.
        preload: decode once into memory (default: when the data fit in ``PRELOAD_MAX_BYTES``).

    Returns:
        :class:`PreparedData`.
    """
    from workshop.data.loaders import make_datasets
    from workshop.fingerprint import fingerprint_dataset, fingerprint_masks

    probe = RecipePlan(num_train=0, batch_size=0, drop_last=False, steps_per_epoch=0, epochs=0, total_steps=0)
    cfg_v = apply_view(cfg, probe)
    train_ds, val_ds = make_datasets(cfg_v)
    size = cfg_v.data.image_size
    can_preload = all(callable(getattr(ds, "load", None)) and hasattr(ds, "transform") for ds in (train_ds, val_ds))
    want = preload if preload is not None else _preload_bytes(len(train_ds) + len(val_ds), size) <= PRELOAD_MAX_BYTES
    fp_kwargs = dict(task=cfg.data.task, ignore_index=cfg.data.ignore_index,
                     num_classes=getattr(train_ds, "num_classes", None) or None)
    why_preload = ""
    if want and can_preload:
        train_ds = InMemoryDataset(train_ds, size)
        val_ds = InMemoryDataset(val_ds, size)
        fp = fingerprint_masks(train_ds.masks, train_ds.original_sizes, **fp_kwargs)
        mb = _preload_bytes(len(train_ds) + len(val_ds), size) / 2**20
        why_preload = (f"{len(train_ds) + len(val_ds)} images decoded and resized to {size}px once "
                       f"({train_ds.build_seconds + val_ds.build_seconds:.1f} s, about {mb:.0f} MB)")
    else:
        fp = fingerprint_dataset(train_ds, **fp_kwargs)
        why_preload = ("the data set has no load()/transform to decode it once" if want
                       else f"the images would take more than {PRELOAD_MAX_BYTES / 2**30:.0f} GB in memory")
    plan = plan_recipe(cfg_v, train_ds, fingerprint=fp)
    plan.choices = [c for c in probe.choices] + [c for c in plan.choices if not c.key.startswith("augment.")]
    plan.preload = bool(want and can_preload)
    choose_class_weights(cfg, fp, plan)
    plan.choose("data.preload", plan.preload, "auto", why_preload)
    if recorded:
        plan.batch_size = int(recorded["batch_size"])
        plan.drop_last = bool(recorded["drop_last"])
        plan.passes_per_epoch = int(recorded.get("passes_per_epoch", 1))
        plan.steps_per_epoch = steps_per_epoch(plan.passes_per_epoch * len(train_ds), plan.batch_size, plan.drop_last)
        plan.epochs = int(recorded["epochs"])
        plan.total_steps = int(recorded["total_steps"])
        plan.budget_s = recorded.get("budget_s")
        plan.class_weights = recorded.get("class_weights")
        plan.choose("train.epochs", plan.epochs, cfg.train.epochs, f"resumed run: its recorded plan of {plan.total_steps} steps is kept")
    eff = copy.deepcopy(cfg_v)
    eff.data.batch_size = plan.batch_size
    eff.train.epochs = plan.epochs
    train_loader, val_loader = loaders_for(plan, train_ds, val_ds, eff, device)
    return PreparedData(eff, train_ds, val_ds, train_loader, val_loader, plan, device)


# ----------------------------------------------------------------------------- config.yaml


def record_plan(cfg: Config, plan: RecipePlan, path: str | os.PathLike) -> Path:
    """Write ``cfg`` (what ran) and the plan's ``recipe:`` section to ``config.yaml``.

    ``load_config`` reads such a file back (the ``recipe:`` section is a record, not settings).
    """
    import yaml

    data = cfg.to_dict()
    data["train"]["epochs"] = plan.epochs
    data["recipe"] = _plain(plan.to_dict())
    path = Path(path)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def read_recorded_plan(path: str | os.PathLike) -> dict[str, Any] | None:
    """The ``recipe:`` section of a run's ``config.yaml`` (None when it has none)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text()) or {}
    return data.get("recipe") if isinstance(data, dict) else None


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def describe_choices(choices: Sequence[Choice]) -> list[str]:
    """One line per choice, as in the run log."""
    return [c.line() for c in choices]


# ----------------------------------------------------------------------------- the run summary


def summarize_against_baselines(result: Any, val_ds: Dataset, num_classes: int, cfg: Config,
                                class_names: Sequence[str] | None = None,
                                log: Callable[[str], None] = print) -> dict[str, Any]:
    """Compare the run's best validation IoU with the trivial baselines, and say it plainly.

    Fills ``result.summary`` (``steps``, ``baselines``, ``margin``, ``beats_baselines``, ``lines``
    for ``workshop.runs.summarize``) and adds the same keys to the run's ``metrics.json``.

    Returns:
        ``result.summary``.
    """
    import json

    from workshop.baselines import compare_with_baselines, trivial_baselines, validation_masks
    from workshop.engine import write_json_atomic

    baselines = trivial_baselines(validation_masks(val_ds), num_classes, cfg.data.ignore_index, "iou")
    best = result.best or {}
    value = float(best.get("val_iou", float("nan")))
    margin, sentence = compare_with_baselines(value, baselines, "IoU", class_names)
    steps = sum(int(h.get("steps", 0)) for h in result.history)
    metric = "val mIoU" if num_classes > 2 else "val IoU"
    lines = [f"{steps} optimiser steps in {len(result.history)} epoch(s); best {metric} {value:.4f}", sentence]
    summary = {"steps": steps, "baselines": baselines, "margin": None if math.isnan(margin) else round(margin, 4),
               "beats_baselines": bool(margin > 0), "lines": lines}
    result.summary.update(summary)
    if result.run_dir is not None and (Path(result.run_dir) / "metrics.json").is_file():
        path = Path(result.run_dir) / "metrics.json"
        data = json.loads(path.read_text())
        data.update({k: v for k, v in result.summary.items() if k != "lines"})
        write_json_atomic(data, path)
    return result.summary
