"""Typed configuration: defaults, profiles (smoke / cpu / gpu) and YAML files.

A configuration is built in layers, each overriding the one before::

    defaults  ->  profile  ->  YAML file  ->  overrides (dict or ``key=value`` strings)

Every key is checked: a misspelt key is an error that lists the valid keys (and the
closest match), and a value outside its choices names the valid choices.

Example:
    >>> cfg = load_config(profile="smoke")
    >>> cfg.data.image_size
    64
    >>> cfg = load_config(profile="smoke", overrides=["train.lr=0.01"])
    >>> cfg.train.lr
    0.01

Taught in: notebooks/01_configuration.ipynb
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workshop.errors import ConfigError

PROFILES = ("smoke", "cpu", "gpu")
TASKS = ("binary", "multiclass", "instance")  # instance: Mask R-CNN, `workshop train` with a stages: plan (workshop.instance.runs)
SOURCES = ("embedded", "folder", "csv", "annotations", "human_seg", "camvid", "pets", "pennfudan")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("cosine", "onecycle", "step", "none")
MONITORS = ("iou", "dice", "loss")
DEVICES = ("auto", "cpu", "cuda", "mps")
DECODERS = ("light", "standard")  # model.decoder; see workshop.models.LIGHT_DECODER_CHANNELS
VIEWS = ("auto", "upright", "top_down")  # augment.view; see workshop.recipe.VIEW_BY_SOURCE
CLASS_WEIGHTS = ("auto", "none", "sqrt_inverse", "inverse")  # train.class_weights; see workshop.recipe
AMP_DTYPES = ("auto", "float16", "bfloat16")  # train.amp_dtype; see workshop.engine.mixed_precision

# Allowed ranges of numeric fields, by "section.key": (low, high, low included, high included);
# None for no bound. A value outside is refused with the range (epochs=-1 would "finish" with nan).
RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "data.num_images": (2, None, True, True),
    "data.image_size": (8, 4096, True, True),
    "data.val_fraction": (0, 1, False, False),
    "data.batch_size": (1, None, True, True),
    "data.num_workers": (0, 64, True, True),
    "data.ignore_index": (0, 255, True, True),
    "data.seed": (0, None, True, True),
    **{f"augment.{name}": (0, 1, True, True)
       for name in ("hflip", "vflip", "rotate90", "shift_scale_rotate", "color_jitter", "noise")},
    "train.epochs": (1, None, True, True),
    "train.lr": (0, 10, False, True),
    "train.weight_decay": (0, 1, True, True),
    "train.threshold": (0, 1, False, False),
    "train.seed": (0, None, True, True),
    "train.max_minutes": (0, None, False, True),
}


def _check_range(key: str, value: float) -> None:
    """Refuse a number outside ``RANGES[key]``, naming the range."""
    if key not in RANGES:
        return
    low, high, low_in, high_in = RANGES[key]
    too_low = low is not None and (value < low if low_in else value <= low)
    too_high = high is not None and (value > high if high_in else value >= high)
    if too_low or too_high:
        left = "" if low is None else f"{'>=' if low_in else '>'} {low:g}"
        right = "" if high is None else f"{'<=' if high_in else '<'} {high:g}"
        raise ConfigError(f"{key}={value!r} is out of range; expected a value {' and '.join(p for p in (left, right) if p)}")


# Allowed values for string fields, by "section.key".
CHOICES: dict[str, tuple[str, ...]] = {
    "profile": PROFILES,
    "data.source": SOURCES,
    "data.task": TASKS,
    "model.decoder": DECODERS,
    "augment.view": VIEWS,
    "train.class_weights": CLASS_WEIGHTS,
    "train.amp_dtype": AMP_DTYPES,
    "train.optimizer": OPTIMIZERS,
    "train.scheduler": SCHEDULERS,
    "train.monitor": MONITORS,
    "train.device": DEVICES,
}


@dataclass
class DataConfig:
    """Where the images come from and how they are batched."""

    source: str = "embedded"  # one of SOURCES (annotations: data.root is a COCO/VIA/CVAT file or a LabelMe folder)
    task: str = "binary"  # binary: building vs rest; multiclass: 5 classes
    root: str | None = None  # data folder for folder / csv / real data sets
    images_dir: str = "images"  # folder source: images sub-folder
    masks_dir: str | None = None  # folder source: masks sub-folder (default: masks/, or masks/binary|multiclass by task)
    class_masks: bool = False  # folder source: masks_dir holds one folder of binary masks per class (merged)
    csv_file: str | None = None  # csv source: file with image,mask columns
    label_map: str | None = None  # JSON of class names, ids, colours (colour masks)
    val: str | None = None  # validation data: a folder, CSV, list file or annotation file (then val_fraction is not used)
    test: str | None = None  # test data, same kinds as val (workshop evaluate RUN --split test)
    label_attribute: str | None = None  # annotations: the region attribute that holds the class (VIA)
    keep_unannotated: bool = False  # annotations: keep images listed without regions, as all background
    num_images: int = 320  # embedded data set size
    image_size: int = 128  # side of the square training crop
    val_fraction: float = 0.2  # share held out for validation (camvid and pets keep their official split)
    batch_size: int = 8  # cpu: 32 steps per epoch on the embedded 256 training images
    num_workers: int = 0  # cpu: the model's step keeps the cores busy, workers would compete; gpu sets 2
    ignore_index: int = 255
    seed: int = 0  # seed of the embedded generator and of the train/val split


@dataclass
class AugmentConfig:
    """Probabilities of the training augmentations (0 switches one off)."""

    hflip: float = 0.5
    vflip: float = 0.5
    rotate90: float = 0.5
    shift_scale_rotate: float = 0.3
    color_jitter: float = 0.3
    noise: float = 0.2
    view: str = "auto"  # upright (no vflip/rotate90) | top_down (aerial, microscopy) | auto: from data.source


@dataclass
class ModelConfig:
    """Which network to build (see ``workshop.models.create_model``)."""

    arch: str = "unet"
    encoder: str = "mobilenet_v2"
    encoder_weights: str | None = "imagenet"
    decoder: str = "light"  # light: U-Net decoder widths 128..8 (fast on a CPU); standard: smp's 256..16


@dataclass
class TrainConfig:
    """Optimisation, schedule, loss and the stopping rules."""

    epochs: int = 5  # cpu: 5 x 32 = 160 steps, about a minute on 2 cores
    lr: float = 3e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    scheduler: str = "onecycle"
    loss: str = "dice_bce"
    class_weights: str = "auto"  # auto: square-root inverse frequency for imbalanced multiclass data
    monitor: str = "iou"  # metric that picks the best checkpoint
    threshold: float = 0.5
    amp: bool = True  # mixed precision, used on CUDA only (training and validation)
    amp_dtype: str = "auto"  # auto: bfloat16 where the card has it (no GradScaler), else float16 + GradScaler
    channels_last: bool = False  # CUDA: model and images in channels-last memory order (faster convolutions)
    cudnn_benchmark: bool = False  # CUDA: cuDNN times its kernels once per input shape and keeps the fastest
    device: str = "auto"
    seed: int = 42
    max_minutes: float | None = None  # stop cleanly after this many minutes
    progress: bool = True  # tqdm progress bars
    sync_bn: bool = False  # torchrun on GPUs: batch-norm statistics over the global batch (SyncBatchNorm)


@dataclass
class Config:
    """The whole configuration of a run."""

    profile: str = "cpu"
    run_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict, ready for YAML or JSON."""
        return dataclasses.asdict(self)


# What each profile changes relative to the defaults above (which are the cpu recipe).
PROFILE_OVERRIDES: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {
        "data": {"num_images": 16, "image_size": 64, "batch_size": 8},
        "train": {"epochs": 1, "progress": False},
    },
    "cpu": {},
    "gpu": {  # a 16 GB T4 with 2 vCPUs (Colab); on a card that is found, size_gpu_profile adjusts it
        "data": {"num_images": 1000, "image_size": 256, "batch_size": 32, "num_workers": 2},
        "model": {"encoder": "resnet34", "decoder": "standard"},
        "train": {"epochs": 25, "lr": 1e-3, "amp_dtype": "float16", "channels_last": True, "cudnn_benchmark": True},
    },
}

GPU_REFERENCE_BATCH, GPU_REFERENCE_LR = 32, 1e-3  # the gpu profile's recipe on a 16 GB card
GPU_MAX_WORKERS = 8


@dataclass(frozen=True)
class GpuCard:
    """What the gpu profile sizes itself to: the card's name, memory and compute capability, and the CPUs.

    ``workshop.env``-free on purpose: a plain record, so :func:`size_gpu_profile` is a pure function
    that tests feed with made-up cards.
    """

    name: str
    memory_gib: float
    capability: tuple[int, int]
    cpu_count: int


def size_gpu_profile(card: GpuCard) -> dict[str, tuple[Any, str]]:
    """The gpu profile's settings for ``card``, each with the reason: ``{"section.key": (value, why)}``.

    * ``data.num_workers``: one per CPU core, one core left to the training loop (all of them with
      2 cores or fewer), at most ``GPU_MAX_WORKERS``.
    * ``data.batch_size``: from the GPU's memory: 16 under 12 GiB, 32 under 24 GiB (a 16 GB T4),
      64 above (the embedded data's 800 training images give 12 steps an epoch at 64).
    * ``train.lr``: scaled with the square root of the batch (Adam's rule of thumb), from 1e-3 at 32.
    * ``train.amp_dtype``: bfloat16 from compute capability 8.0 (A100, L4, H100; no GradScaler and
      no overflow), float16 with a GradScaler before (T4, V100).
    * ``train.cudnn_benchmark`` and ``train.channels_last``: on.

    Example:
        >>> sized = size_gpu_profile(GpuCard("Tesla T4", 14.7, (7, 5), 2))
        >>> sized["data.batch_size"][0], sized["data.num_workers"][0], sized["train.amp_dtype"][0]
        (32, 2, 'float16')
    """
    cpus = max(1, int(card.cpu_count))
    workers = min(GPU_MAX_WORKERS, cpus if cpus <= 2 else cpus - 1)
    if card.memory_gib < 12:
        batch, tier = 16, "under 12 GiB"
    elif card.memory_gib < 24:
        batch, tier = 32, "12 to 24 GiB"
    else:
        batch, tier = 64, "24 GiB or more"
    lr = round(GPU_REFERENCE_LR * math.sqrt(batch / GPU_REFERENCE_BATCH), 6)
    bf16 = tuple(card.capability) >= (8, 0)
    cc = f"{card.capability[0]}.{card.capability[1]}"
    return {
        "data.num_workers": (workers, f"{cpus} CPU core(s): {'all of them' if cpus <= 2 else 'one per core, one left to the training loop'}"
                                      f"{f', at most {GPU_MAX_WORKERS}' if workers == GPU_MAX_WORKERS else ''}"),
        "data.batch_size": (batch, f"{card.memory_gib:.0f} GiB of GPU memory ({tier})"),
        "train.lr": (lr, f"batch {batch}: {GPU_REFERENCE_LR:g} x sqrt({batch}/{GPU_REFERENCE_BATCH})"),
        "train.amp_dtype": ("bfloat16" if bf16 else "float16",
                            f"compute capability {cc}: " + ("bfloat16 runs natively (no GradScaler needed)" if bf16
                                                            else "no native bfloat16, so float16 with a GradScaler")),
        "train.cudnn_benchmark": (True, "the input size is fixed (data.image_size): cuDNN picks its fastest kernels once"),
        "train.channels_last": (True, "tensor cores take channels-last convolutions without transposing"),
    }


def detect_gpu_card() -> GpuCard | None:
    """The first CUDA card and this process's CPU count, or None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    try:
        props = torch.cuda.get_device_properties(0)
    except (RuntimeError, AssertionError):  # CUDA said yes but no card answers (a broken driver): no sizing
        return None
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    return GpuCard(props.name, props.total_memory / 2**30, (props.major, props.minor), cpus)


def describe_gpu_profile(cfg: "Config", card: GpuCard | None) -> list[str]:
    """Run-log lines: what the gpu profile chose for ``card`` and why (or that a setting was configured)."""
    if cfg.profile != "gpu" or card is None:
        return []
    lines = [f"gpu profile sized to {card.name} ({card.memory_gib:.0f} GiB, compute capability "
             f"{card.capability[0]}.{card.capability[1]}) and {card.cpu_count} CPU core(s):"]
    for key, (value, why) in size_gpu_profile(card).items():
        section, name = key.split(".")
        used = getattr(getattr(cfg, section), name)
        lines.append(f"  {key} = {used}: {why}" if used == value else f"  {key} = {used} (configured; the card suggests {value}: {why})")
    return lines


def _nest(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    nested: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        section, name = key.split(".")
        nested.setdefault(section, {})[name] = value
    return nested


def resolve_profile(name: str | None = None) -> str:
    """Pick the profile: the argument, else ``$WORKSHOP_PROFILE``, else the hardware.

    Args:
        name: ``"smoke"``, ``"cpu"``, ``"gpu"`` or None.

    Returns:
        The profile name; without a choice, ``"gpu"`` when CUDA is available, else ``"cpu"``.

    Raises:
        ConfigError: the name is not a profile (the message lists the profiles).
    """
    chosen = name or os.environ.get("WORKSHOP_PROFILE") or None
    if chosen is None:
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    if chosen not in PROFILES:
        source = "WORKSHOP_PROFILE" if not name else "profile"
        raise ConfigError(f"unknown {source} {chosen!r}; valid profiles: {', '.join(PROFILES)}")
    return chosen


def load_config(
    path: str | os.PathLike | None = None,
    profile: str | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
) -> Config:
    """Build a checked ``Config`` from defaults, a profile, a YAML file and overrides.

    Args:
        path: optional YAML file with any subset of the keys (nested by section).
            A ``profile:`` key in the file is used when ``profile`` is not given.
        profile: ``smoke`` / ``cpu`` / ``gpu``; default: see ``resolve_profile``.
        overrides: nested dict, or ``["train.lr=0.01", ...]`` strings (values parsed as YAML).

    Returns:
        The configuration.

    Raises:
        ConfigError: unknown key (lists valid keys), wrong type, or value not among the choices.
        FileNotFoundError: ``path`` does not exist (the message names it).
    """
    from_file: dict[str, Any] = {}
    if path is not None:
        from_file = _read_yaml(Path(path))
    profile = resolve_profile(profile or from_file.get("profile"))
    merged: dict[str, Any] = {"profile": profile}
    _deep_update(merged, copy.deepcopy(PROFILE_OVERRIDES[profile]))
    if profile == "gpu":  # the profile sizes itself to the card it finds (the file and overrides still win)
        card = detect_gpu_card()
        if card is not None:
            _deep_update(merged, _nest({k: v for k, (v, _) in size_gpu_profile(card).items()}))
    # a run's config.yaml also holds the recipe's record of its choices (workshop.recipe): not settings
    _deep_update(merged, {k: v for k, v in from_file.items() if k not in ("profile", "recipe")})
    if overrides:
        _deep_update(merged, _parse_overrides(overrides))
    return _build(Config, merged, prefix="")


def save_config(cfg: Config, path: str | os.PathLike) -> Path:
    """Write ``cfg`` as YAML (the file round-trips through ``load_config``)."""
    path = Path(path)
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return path


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def _parse_overrides(overrides: dict[str, Any] | list[str]) -> dict[str, Any]:
    if isinstance(overrides, dict):
        return overrides
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        dotted, raw = item.split("=", 1)
        node = nested
        *parents, leaf = dotted.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _parse_scalar(raw)
    return nested


def _parse_scalar(raw: str) -> Any:
    """A ``key=value`` value as YAML would read it, except that ``1e-3`` is a number (YAML 1.1 says string)."""
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _deep_update(base: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in values if key not in names]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), names, n=1)
        hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
        raise ConfigError(
            f"unknown config key '{prefix}{key}'{hint}; valid keys in "
            f"{prefix.rstrip('.') or 'the top level'}: {', '.join(names)}"
        )
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, prefix=f"{prefix}{name}.")
        else:
            kwargs[name] = _check_value(f"{prefix}{name}", value, hint)
    return cls(**kwargs)


def _check_value(key: str, value: Any, hint: Any) -> Any:
    allowed = [a for a in typing.get_args(hint)] or [hint]
    if value is None:
        if type(None) in allowed:
            return None
        raise ConfigError(f"{key} must not be empty")
    if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in allowed:
        return None
    if bool in allowed:
        if isinstance(value, bool):
            return value
    elif int in allowed and isinstance(value, int) and not isinstance(value, bool):
        _check_range(key, value)
        return value
    elif float in allowed and isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_range(key, float(value))
        return float(value)
    elif str in allowed and isinstance(value, str):
        choices = CHOICES.get(key)
        if choices and value not in choices:
            raise ConfigError(f"{key}={value!r} is not valid; choose one of: {', '.join(choices)}")
        return value
    expected = " or ".join(getattr(a, "__name__", str(a)) for a in allowed)
    raise ConfigError(f"{key}={value!r} has the wrong type; expected {expected}")
