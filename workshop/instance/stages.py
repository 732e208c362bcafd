"""Progressive training plans: a YAML file of stages, each saying how long, how fast and what learns.

Fine-tuning a pretrained detector in stages is gentler than training everything at once: the new,
randomly initialised heads first learn on top of a frozen backbone (they would otherwise send large,
noisy gradients into the pretrained layers), then the deepest backbone stages join in, then
everything. The plan lives in a YAML file so it can be changed without touching code::

    stages:
      - title: heads only
        epochs: 2
        lr: 0.01
        step_size: 2          # StepLR: multiply the learning rate by gamma every step_size epochs
        trainable: heads      # neck (FPN) + rpn + roi_heads; the backbone is frozen
      - title: heads + last backbone stages
        epochs: 2
        lr: 0.005
        step_size: 1
        trainable: [heads, backbone.stage4, backbone.stage5]
      - title: everything
        epochs: 2
        lr: 0.001
        step_size: 1
        trainable: all

Every key is checked: an unknown key is an error that lists the valid keys (and names the file
and the stage). The part names in ``trainable`` are checked against the model by
:func:`workshop.instance.model.set_trainable_parts` before any training starts.

Taught in: notebooks/10_instance.ipynb
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from workshop.errors import ConfigError

__all__ = ["OPTIMIZERS", "STAGE_KEYS", "Stage", "load_stages", "stages_from_list"]

OPTIMIZERS = ("sgd", "adamw")
"""Optimisers a stage may ask for."""

TOP_LEVEL_KEYS = ("stages",)
CONFIG_SECTIONS = ("profile", "run_dir", "data", "augment", "model", "train", "instance")
"""Sections of a whole ``workshop train`` config that may sit beside ``stages:`` (read by
:func:`workshop.instance.runs.load_instance_config`, not here)."""


@dataclass
class Stage:
    """One stage of a progressive training plan.

    Args:
        title: a short name shown in the logs (and used to check a resumed run's plan).
        epochs: passes over the training set in this stage (>= 1).
        lr: learning rate at the start of the stage (> 0).
        step_size: StepLR period in epochs: the rate is multiplied by ``gamma`` every
            ``step_size`` epochs (>= 1).
        trainable: ``"heads"`` (neck + rpn + roi_heads, backbone frozen), ``"all"``, or a list of
            part names such as ``["heads", "backbone.stage5"]`` (see
            :func:`workshop.instance.model.part_names`).
        gamma: StepLR factor (0 < gamma <= 1).
        optimizer: ``"sgd"`` (momentum 0.9, as torchvision's detection recipes) or ``"adamw"``.
        momentum: SGD momentum.
        weight_decay: L2 penalty on the trainable weights.
        warmup_steps: linear learning-rate warm-up over the first steps of the stage (0: none).

    Taught in: notebooks/10_instance.ipynb
    """

    title: str
    epochs: int
    lr: float
    step_size: int
    trainable: str | list[str] = "heads"
    gamma: float = 0.1
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        where = f"stage {self.title!r}"
        if not isinstance(self.title, str) or not self.title.strip():
            raise ConfigError(f"every stage needs a non-empty title, got {self.title!r}")
        _check_int(self.epochs, "epochs", where, minimum=1)
        _check_int(self.step_size, "step_size", where, minimum=1)
        _check_int(self.warmup_steps, "warmup_steps", where, minimum=0)
        for name in ("lr", "gamma", "momentum", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where}: {name} must be a number, got {value!r}")
            setattr(self, name, float(value))
        if self.lr <= 0:
            raise ConfigError(f"{where}: lr must be > 0, got {self.lr}")
        if not 0 < self.gamma <= 1:
            raise ConfigError(f"{where}: gamma must be in (0, 1], got {self.gamma}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"{where}: optimizer {self.optimizer!r} is not valid; choose one of: {', '.join(OPTIMIZERS)}")
        trainable = self.trainable
        if isinstance(trainable, str):
            trainable = [trainable]
        if not isinstance(trainable, (list, tuple)) or not trainable or not all(isinstance(t, str) for t in trainable):
            raise ConfigError(
                f"{where}: trainable must be 'heads', 'all' or a list of part names, got {self.trainable!r}"
            )
        self.trainable = list(trainable) if len(trainable) > 1 else trainable[0]

    @property
    def parts(self) -> list[str]:
        """``trainable`` as a list of part names."""
        return [self.trainable] if isinstance(self.trainable, str) else list(self.trainable)

    def to_dict(self) -> dict[str, Any]:
        """The stage as plain YAML-ready values."""
        return dataclasses.asdict(self)


STAGE_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Stage))
"""Keys a stage may have, in the order of :class:`Stage`."""

_REQUIRED = ("title", "epochs", "lr", "step_size")


def _check_int(value: Any, name: str, where: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: {name} must be an integer >= {minimum}, got {value!r}")


def stages_from_list(items: Sequence[dict[str, Any]], source: str = "stages") -> list[Stage]:
    """Check a list of stage dictionaries and turn it into :class:`Stage` objects.

    Args:
        items: one mapping per stage, with the keys of :data:`STAGE_KEYS`.
        source: what to name in error messages (a file name).

    Returns:
        The stages, in order.

    Raises:
        ConfigError: an unknown key (the message lists the valid keys and the closest match),
            a missing required key, a bad value, or two stages with the same title.

    Example:
        >>> [s.title for s in stages_from_list([{"title": "heads", "epochs": 1, "lr": 0.01, "step_size": 1}])]
        ['heads']

    Taught in: notebooks/10_instance.ipynb
    """
    if not isinstance(items, (list, tuple)) or not items:
        raise ConfigError(f"{source}: 'stages' must be a non-empty list of stages")
    stages: list[Stage] = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise ConfigError(f"{source}: stage {index} must be a mapping of keys, got {item!r}")
        name = item.get("title", f"#{index}")
        unknown = [key for key in item if key not in STAGE_KEYS]
        if unknown:
            key = unknown[0]
            close = difflib.get_close_matches(str(key), STAGE_KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(
                f"{source}: stage {index} ({name!r}) has unknown key '{key}'{hint}; valid keys: {', '.join(STAGE_KEYS)}"
            )
        missing = [key for key in _REQUIRED if key not in item]
        if missing:
            raise ConfigError(
                f"{source}: stage {index} ({name!r}) is missing {', '.join(missing)}; "
                f"required keys: {', '.join(_REQUIRED)}"
            )
        try:
            stages.append(Stage(**item))
        except ConfigError as err:
            raise ConfigError(f"{source}: stage {index}: {err}") from None
    titles = [s.title for s in stages]
    repeated = sorted({t for t in titles if titles.count(t) > 1})
    if repeated:
        raise ConfigError(f"{source}: stage titles must be unique (they name checkpoints); repeated: {repeated}")
    return stages


def load_stages(path: str | Path) -> list[Stage]:
    """Read a YAML file of training stages (see the module docstring for the format).

    Args:
        path: YAML file with a top-level ``stages:`` list.

    Returns:
        The stages, in order.

    Raises:
        FileNotFoundError: no such file (the message names it).
        ConfigError: invalid YAML, an unknown top-level or stage key (the message lists the
            valid keys), or a bad value.

    Example:
        >>> stages = load_stages("configs/maskrcnn_progressive.yaml")  # doctest: +SKIP
        >>> [s.trainable for s in stages]  # doctest: +SKIP
        ['heads', ['heads', 'backbone.stage4', 'backbone.stage5'], 'all']

    Taught in: notebooks/10_instance.ipynb
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"stage file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'stages' list, got {type(data).__name__}")
    unknown = [key for key in data if key not in TOP_LEVEL_KEYS + CONFIG_SECTIONS]
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key '{unknown[0]}'; valid keys: "
                          f"{', '.join(TOP_LEVEL_KEYS + CONFIG_SECTIONS)}")
    if "stages" not in data:
        raise ConfigError(f"{path}: no 'stages' list")
    return stages_from_list(data["stages"], source=str(path))


@dataclass
class StagePlan:
    """One stage, in optimiser steps.

    Attributes:
        title: the stage's title.
        steps: optimiser steps of the stage.
        full_steps: steps of the YAML plan (``epochs * steps_per_epoch``).
        lr_step: StepLR period in steps (the rate is multiplied by ``gamma`` every ``lr_step`` steps).
        warmup_steps: linear warm-up steps at the start of the stage.
        seconds_per_step: measured (or None when no budget was given).
    """

    title: str
    steps: int
    full_steps: int
    lr_step: int
    warmup_steps: int
    seconds_per_step: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stage_lr(stage: Stage, plan: StagePlan, step: int) -> float:
    """The learning rate at ``step`` (0-based) of a stage: linear warm-up, then StepLR in steps.

    Example:
        >>> st = Stage("a", epochs=1, lr=0.1, step_size=1, gamma=0.5, warmup_steps=2)
        >>> p = StagePlan("a", steps=10, full_steps=10, lr_step=4, warmup_steps=2)
        >>> [round(stage_lr(st, p, t), 4) for t in (0, 1, 2, 4, 8)]
        [0.0001, 0.05, 0.1, 0.05, 0.025]
    """
    lr = stage.lr * stage.gamma ** (step // plan.lr_step)
    if step < plan.warmup_steps:
        lr *= 1e-3 + (1 - 1e-3) * step / plan.warmup_steps
    return lr
