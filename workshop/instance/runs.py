"""``workshop train`` for instance segmentation: a YAML config with ``data.task: instance`` and ``stages:``.

The config file is the usual one (``data:``, ``train:`` ...) plus two sections::

    instance:            # the detector and its recipe (every key below; unknown keys are an error)
      image_size: auto   # Mask R-CNN's min_size = max_size; auto: fitted to the objects
      anchor_sizes: auto # or [[12, 20], [32, 48], [64, 96], [128, 224]] (one list per feature map)
      ...
    stages:              # the progressive plan (see workshop.instance.stages)
      - {title: heads only, epochs: 3, lr: 0.01, step_size: 3, trainable: heads}

The run: data (any source with instances) -> object sizes (``auto`` settings fitted to them) ->
model -> with ``--max-minutes``, time a few steps per stage and resize the stages in steps (or refuse,
before training, when the minimum does not fit) -> train (checkpoints mid-stage) -> validation mAP
after each stage -> ``RUN/checkpoints/best.pt``, ``RUN/summary.json``.

The run folder: ``config.yaml`` (everything, ``instance:`` and ``stages:`` included),
``checkpoints/last.pt`` (resumable), ``checkpoints/stage<k>.pt``, ``checkpoints/best.pt``,
``stages.json``, ``summary.json``, ``predictions.png``.

Taught in: notebooks/10_instance.ipynb
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import yaml

from workshop.errors import ConfigError, WorkshopError

__all__ = ["InstanceConfig", "is_instance_config", "is_instance_run", "load_instance_config", "load_instance_model",
           "train_instance"]


@dataclass
class InstanceConfig:
    """The ``instance:`` section: the detector and the small-data recipe.

    Attributes:
        backbone: ``mobilenet_v2_fpn`` or ``mobilenet_v2`` (see workshop.instance.model).
        image_size: Mask R-CNN input (min_size = max_size), or ``auto`` (fitted to the objects).
        max_image_size: the largest ``auto`` may choose (a CPU step costs about its square).
        min_image_size: the smallest ``auto`` may choose (unless the images are smaller).
        target_object_px: the median object side ``auto`` aims for at the model's input.
        anchor_sizes: one list of sizes per feature map, or ``auto`` (spread over the object sizes).
        detections_per_image: most detections kept per image, or ``auto`` (1.5 x the most objects + 5).
        nms_threshold: boxes of one class overlapping more than this (IoU) are merged (fewer duplicates),
            or ``auto`` (0.3 unless the labels hold objects that overlap more).
        score_threshold: detections below this score are dropped by the model (evaluation keeps low
            ones: mAP needs them).
        batch_size: images per optimiser step.
        hflip, vflip, rotate90: augmentation probabilities (masks move with the image: exact); vflip and
            rotate90 are switched off for upright data (:func:`upright_augment`).
        min_stage_steps: the fewest steps a budget may cut a stage to.
        checkpoint_every: steps between mid-stage checkpoints.
        eval_every_stage: validation mAP after every stage (else only after the last).
        mask_head_layers: 3x3 convolutions in the mask head.
    """

    backbone: str = "mobilenet_v2_fpn"
    image_size: int | str = "auto"
    max_image_size: int = 512
    min_image_size: int = 320
    target_object_px: float = 24.0
    anchor_sizes: list | str = "auto"
    detections_per_image: int | str = "auto"
    nms_threshold: float | str = "auto"
    score_threshold: float = 0.05
    batch_size: int = 2
    hflip: float = 0.5
    vflip: float = 0.5
    rotate90: float = 0.0
    min_stage_steps: int = 20
    checkpoint_every: int = 50
    eval_every_stage: bool = True
    mask_head_layers: int = 2

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


INSTANCE_KEYS = tuple(f.name for f in dataclasses.fields(InstanceConfig))
_AUTO_KEYS = ("image_size", "anchor_sizes", "detections_per_image", "nms_threshold")


def _instance_config(values: dict[str, Any], where: str) -> InstanceConfig:
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: 'instance' must be a mapping of keys, got {values!r}")
    unknown = [k for k in values if k not in INSTANCE_KEYS]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), INSTANCE_KEYS, n=1)
        hint = f" (did you mean 'instance.{close[0]}'?)" if close else ""
        raise ConfigError(f"{where}: unknown key 'instance.{unknown[0]}'{hint}; valid keys: {', '.join(INSTANCE_KEYS)}")
    cfg = InstanceConfig(**values)
    from workshop.instance.model import BACKBONES

    if cfg.backbone not in BACKBONES:
        raise ConfigError(f"instance.backbone={cfg.backbone!r} is not valid; choose one of: {', '.join(BACKBONES)}")
    for key in _AUTO_KEYS:
        value = getattr(cfg, key)
        if isinstance(value, str) and value != "auto":
            raise ConfigError(f"instance.{key}={value!r}: give a value or 'auto'")
    for key in ("image_size", "max_image_size", "min_image_size", "batch_size", "min_stage_steps", "checkpoint_every", "detections_per_image"):
        value = getattr(cfg, key)
        if value != "auto" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"instance.{key} must be a whole number >= 1{' or auto' if key in _AUTO_KEYS else ''}, got {value!r}")
    for key in ("hflip", "vflip", "rotate90", "nms_threshold", "score_threshold"):
        value = getattr(cfg, key)
        if key == "nms_threshold" and value == "auto":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ConfigError(f"instance.{key} must be a number in [0, 1], got {value!r}")
    if cfg.anchor_sizes != "auto":
        a = cfg.anchor_sizes
        if not isinstance(a, list) or not a or not all(isinstance(lv, list) and lv and all(isinstance(x, int) and x > 0 for x in lv) for lv in a):
            raise ConfigError(f"instance.anchor_sizes must be 'auto' or a list of lists of pixel sizes, got {a!r}")
        levels = 4 if cfg.backbone == "mobilenet_v2_fpn" else 1
        if len(a) != levels:
            raise ConfigError(f"instance.anchor_sizes needs {levels} list(s) for backbone {cfg.backbone} (one per feature map), got {len(a)}")
    return cfg


def _split_overrides(overrides: list[str]) -> tuple[list[str], dict[str, Any]]:
    from workshop.config import _parse_scalar

    rest, mine = [], {}
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if key.startswith("instance.") and "=" in item:
            mine[key.split(".", 1)[1]] = _parse_scalar(item.split("=", 1)[1])
        else:
            rest.append(item)
    return rest, mine


def is_instance_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> bool:
    """True when a config file (with its ``--set`` overrides) asks for the instance track."""
    if any(o.replace(" ", "") == "data.task=instance" for o in overrides):
        return True
    if path is None or not Path(path).is_file():
        return False
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and ("stages" in data or (data.get("data") or {}).get("task") == "instance")


def load_instance_config(path: str | os.PathLike, profile: str | None = None, overrides: list[str] = ()):
    """The three parts of an instance config: the usual ``Config``, the ``InstanceConfig``, the stages.

    Raises:
        FileNotFoundError: no such file.
        ConfigError: an unknown key (listing the valid ones), a bad value, no ``stages:``, or a task
            other than ``instance``.
    """
    from workshop.config import _read_yaml, load_config
    from workshop.instance.stages import stages_from_list

    path = Path(path)
    raw = _read_yaml(path)
    stages_raw = raw.pop("stages", None)
    inst_raw = raw.pop("instance", None) or {}
    if stages_raw is None:
        raise ConfigError(f"{path}: an instance config needs a 'stages:' list (see configs/maskrcnn_progressive.yaml)")
    rest, mine = _split_overrides(list(overrides))
    inst_raw = {**inst_raw, **mine}
    prof = profile or raw.pop("profile", None)
    raw.pop("profile", None)
    cfg = load_config(profile=prof, overrides=_merge(raw, rest))
    if cfg.data.task != "instance":
        raise ConfigError(f"{path}: stages: are for the instance track; set data.task: instance (got {cfg.data.task!r})")
    return cfg, _instance_config(inst_raw, str(path)), stages_from_list(stages_raw, source=str(path))


def _merge(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    from workshop.config import _deep_update, _parse_overrides

    merged = copy.deepcopy(raw)
    _deep_update(merged, _parse_overrides(overrides))
    return merged


def save_instance_config(cfg, icfg: InstanceConfig, stages, path: Path) -> None:
    data = cfg.to_dict()
    data["instance"] = icfg.to_dict()
    data["stages"] = [s.to_dict() for s in stages]
    path.write_text(yaml.safe_dump(data, sort_keys=False))


# ----------------------------------------------------------------------------- runs on disk


def _checkpoint_of(run: Path, name: str = "best.pt") -> Path:
    return run / "checkpoints" / name if run.is_dir() else run


def is_instance_run(run: str | os.PathLike) -> bool:
    """True for a run folder (or checkpoint) written by the instance track."""
    run = Path(run)
    if run.is_dir():
        cfg = run / "config.yaml"
        if cfg.is_file():
            try:
                data = yaml.safe_load(cfg.read_text()) or {}
                return isinstance(data, dict) and (data.get("data") or {}).get("task") == "instance"
            except yaml.YAMLError:
                return False
        return (run / "stages.json").is_file()
    if run.is_file() and run.suffix == ".pt":
        state = torch.load(run, map_location="cpu", weights_only=False)
        return isinstance(state, dict) and (state.get("task") == "instance" or ("stages" in state and "config" not in state))
    return False


def load_instance_model(run: str | os.PathLike, device: torch.device | str = "cpu", checkpoint: str = "best.pt"):
    """The trained Mask R-CNN of a run folder (``checkpoints/best.pt``) or a checkpoint file.

    Returns:
        ``(model in eval mode, state)``; ``state`` holds ``class_names``, ``model_args``, ``config``.

    Raises:
        WorkshopError: no checkpoint, or one without the model's arguments (named).
    """
    from workshop.engine import load_checkpoint
    from workshop.instance.model import create_maskrcnn

    path = _checkpoint_of(Path(run), checkpoint)
    if not path.is_file() and Path(run).is_dir():
        path = _checkpoint_of(Path(run), "last.pt")
    state = load_checkpoint(path, map_location="cpu")
    if "model_args" not in state:
        raise WorkshopError(f"{path} has no model_args: it was not written by `workshop train` for instances "
                            "(run_stages checkpoints: rebuild the model with create_maskrcnn and load_state_dict)")
    args = dict(state["model_args"])
    model = create_maskrcnn(weights=None, **args)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    return model, state


# ----------------------------------------------------------------------------- training


def _model_args(icfg: InstanceConfig, fit, num_classes: int) -> dict[str, Any]:
    size = fit.image_size if icfg.image_size == "auto" else int(icfg.image_size)
    anchors = fit.anchor_sizes if icfg.anchor_sizes == "auto" else icfg.anchor_sizes
    if icfg.backbone != "mobilenet_v2_fpn" and icfg.anchor_sizes == "auto":
        anchors = [sorted({a for level in fit.anchor_sizes for a in level})]
    dets = fit.detections_per_image if icfg.detections_per_image == "auto" else int(icfg.detections_per_image)
    return dict(num_classes=num_classes, backbone=icfg.backbone, min_size=size, max_size=size,
                anchor_sizes=[list(a) for a in anchors], mask_head_layers=icfg.mask_head_layers,
                box_detections_per_img=dets,
                box_nms_thresh=float(fit.nms_threshold if icfg.nms_threshold == "auto" else icfg.nms_threshold),
                box_score_thresh=float(icfg.score_threshold), rpn_post_nms_top_n_test=max(150, 3 * dets),
                box_batch_size_per_image=int(getattr(fit, "rois_per_image", 64)),
                rpn_post_nms_top_n_train=int(getattr(fit, "proposals_per_image", 300)),
                rpn_pre_nms_top_n_train=max(600, 2 * int(getattr(fit, "proposals_per_image", 300))))


def upright_augment(cfg, icfg: InstanceConfig, log: Callable[[str], None] = print) -> dict[str, float]:
    """The instance track's flips and turns, after the view rule of the semantic recipe.

    ``workshop.recipe.choose_view`` decides from ``augment.view`` (or the data source) whether the
    images are upright (street scenes, people: no vertical flips, no quarter turns) or seen from above
    (aerial, microscopy: any orientation). Upright data gets ``instance.vflip`` and
    ``instance.rotate90`` switched off, and the log says so and why.

    Returns:
        ``{"hflip": p, "vflip": p, "rotate90": p}`` for ``DetectionDataset``.

    Example:
        >>> from workshop.config import load_config
        >>> upright_augment(load_config(overrides=["data.source=pennfudan"]), InstanceConfig(rotate90=0.5), log=lambda s: None)
        {'hflip': 0.5, 'vflip': 0.0, 'rotate90': 0.0}

    Taught in: notebooks/10_instance.ipynb (the recipe)
    """
    from workshop.recipe import choose_view

    augment = {"hflip": float(icfg.hflip), "vflip": float(icfg.vflip), "rotate90": float(icfg.rotate90)}
    view, why = choose_view(cfg)
    off = [key for key in ("vflip", "rotate90") if view == "upright" and augment[key] > 0]
    for key in off:
        augment[key] = 0.0
    if off:
        hint = "" if "augment.view" in why else "; augment.view=top_down keeps them for aerial or microscopy images"
        log(f"augment: {' and '.join('instance.' + k for k in off)} = 0 ({why}{hint})")
    return augment


def train_instance(
    cfg,
    icfg: InstanceConfig,
    stages,
    run_dir: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    max_minutes: float | None = None,
    log: Callable[[str], None] = print,
    on_step: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Train Mask R-CNN as the config says and fill a run folder (see the module docstring).

    Args:
        cfg, icfg, stages: from :func:`load_instance_config`.
        run_dir: the folder (default: a new one under ``cfg.run_dir``).
        resume: a run folder to continue (its saved config and plan are used).
        max_minutes: the whole command's time budget (data, timing, training, validation).
        on_step: called after every step (tests stop a run with it).

    Returns:
        The summary written to ``summary.json``.

    Raises:
        BudgetTooSmall: the budget cannot fit ``instance.min_stage_steps`` per stage (before training).
        ConfigError / DataError: a bad config, a source without instances, unreadable data.
    """
    from workshop.engine import load_checkpoint
    from workshop.env import get_device, seed_everything
    from workshop.instance.evaluate import evaluate_map
    from workshop.instance.model import create_maskrcnn, resolve_parts
    from workshop.instance.plan import BudgetTooSmall, plan_steps
    from workshop.instance.sizing import fit_detector, format_object_sizes, measure_objects
    from workshop.instance.sources import detection_splits
    from workshop.instance.trainer import calibrate_step_seconds, train_plan
    from workshop.runs import new_run_dir

    t_start = time.monotonic()
    resume_state = None
    if resume is not None:
        run = Path(resume)
        if not (run / "config.yaml").is_file():
            raise WorkshopError(f"cannot resume {run}: no config.yaml there (give a run folder written by `workshop train`)")
        cfg, icfg, stages = load_instance_config(run / "config.yaml")
        last = run / "checkpoints" / "last.pt"
        if last.is_file():
            resume_state = load_checkpoint(last)
    else:
        run = Path(run_dir) if run_dir else new_run_dir(cfg.run_dir, "instance")
    device = get_device(cfg.train.device)
    seed = cfg.train.seed
    seed_everything(seed)
    augment = upright_augment(cfg, icfg, log)
    train_set, val_set, names, how = detection_splits(cfg, max_side=None, augment=augment, seed=seed)
    log(f"data: {len(train_set)} training / {len(val_set)} validation images ({cfg.data.source}; validation: {how}); "
        f"classes: {', '.join(names[1:])}")
    if resume_state is not None:
        args = dict(resume_state["model_args"])
        fit_info = resume_state.get("fit", {})
    else:
        sizes = measure_objects(train_set, limit=300)
        fit = fit_detector(sizes, icfg.target_object_px, icfg.max_image_size, icfg.min_image_size)
        log(format_object_sizes(sizes, fit))
        args = _model_args(icfg, fit, len(names))
        fit_info = {"object_sizes": sizes.summary(), "fitted": fit.to_dict()}
    size = args["min_size"]
    train_set.max_side = val_set.max_side = size
    model = create_maskrcnn(**args)
    for stage in stages:  # fail before any step, naming the stage
        try:
            resolve_parts(model, stage.trainable)
        except ValueError as err:
            raise ConfigError(f"stage {stage.title!r}: {err}") from None
    log(f"model: Mask R-CNN / {args['backbone']} ({model.weights_source}), input {size} px, anchors {args['anchor_sizes']}, "
        f"{args['box_detections_per_img']} detections per image, NMS {args['box_nms_thresh']:g}; device: {device}")
    batch = min(icfg.batch_size, len(train_set))
    per_epoch = math.ceil(len(train_set) / batch)

    deadline, one_eval = None, 0.0  # a budget sets them
    if resume_state is not None:
        from workshop.instance.plan import StagePlan

        plans = [StagePlan(**p) for p in resume_state["plan"]]
        if [p.title for p in plans] != [s.title for s in stages]:
            raise WorkshopError(f"cannot resume {run}: its checkpoint's plan {[p.title for p in plans]} is not the "
                                f"config's stages {[s.title for s in stages]}")
        if max_minutes:
            log(f"resuming: the plan was sized when the run started; --max-minutes {max_minutes:g} is not applied again")
    elif max_minutes:
        budget = max_minutes * 60
        model.to(device)
        seconds = calibrate_step_seconds(model, stages, train_set, batch, device, seed=seed)
        per_image = _seconds_per_prediction(model, val_set, device)
        per_eval = (per_image * len(val_set) + 2.0) * (len(stages) if icfg.eval_every_stage else 1)
        spent = time.monotonic() - t_start
        available = (budget - spent - per_eval) * 0.97  # 3 %: checkpoints, logging
        log(f"time budget {max_minutes:g} min: {spent:.0f} s spent on data, model and timing, ~{per_eval:.0f} s for "
            f"validation; measured {', '.join(f'{s:.2f}' for s in seconds)} s/step (stages 1-{len(stages)})")
        one_eval = per_eval / (len(stages) if icfg.eval_every_stage else 1)
        # the last step ends by then; the validations between stages run before it, the last one after
        deadline = time.monotonic() + available + one_eval * (len(stages) - 1 if icfg.eval_every_stage else 0)
        try:
            plans = plan_steps(stages, per_epoch, available, seconds, icfg.min_stage_steps)
        except BudgetTooSmall as err:
            total = spent + per_eval + err.need_seconds / 0.97
            raise BudgetTooSmall(f"{err}. This run needs at least --max-minutes {math.ceil(total / 6) / 10:.1f} "
                                 f"(training not started)", err.need_seconds) from None
    else:
        plans = plan_steps(stages, per_epoch)
    log("plan: " + " -> ".join(f"{p.title} {p.steps} steps" for p in plans)
        + f" ({sum(p.steps for p in plans)} steps of {batch} image(s); the YAML's epochs are "
          f"{sum(p.full_steps for p in plans)} steps)")

    try:
        run.mkdir(parents=True, exist_ok=True)
        if resume is None:
            save_instance_config(cfg, icfg, stages, run / "config.yaml")
    except OSError as exc:
        raise WorkshopError(f"cannot write the run folder {run}: {exc.strerror or exc} (choose another with --run-dir)") from None

    from workshop.instance.data import collate_detection

    val_batches = [collate_detection([val_set[i] for i in range(j, min(j + 2, len(val_set)))]) for j in range(0, len(val_set), 2)]

    def evaluate(m, final: bool = False):
        if not (icfg.eval_every_stage or final):
            return {}
        return evaluate_map(m, val_batches, device)

    n_stages = len(stages)
    evaluate_stage = (lambda m: evaluate(m)) if icfg.eval_every_stage else None
    extra = {"config": _full_config(cfg, icfg, stages), "class_names": names, "model_args": args, "fit": fit_info}
    t_train = time.monotonic()
    history = train_plan(model, stages, plans, train_set, batch, device, run, seed, resume_state,
                         icfg.checkpoint_every, extra, evaluate_stage, log, on_step=on_step, deadline=deadline,
                         eval_seconds=one_eval, min_steps=icfg.min_stage_steps)
    train_seconds = time.monotonic() - t_train
    final = history[-1]["val"] if history and history[-1].get("val") else evaluate(model, final=True)
    if history and not history[-1].get("val"):
        history[-1]["val"] = final
    from workshop.engine import save_checkpoint

    state = load_checkpoint(run / "checkpoints" / "last.pt")
    state["history"] = history
    save_checkpoint(state, run / "checkpoints" / "best.pt")
    summary = {
        "run": str(run), "task": "instance", "data": cfg.data.source, "classes": names[1:],
        "train_images": len(train_set), "val_images": len(val_set), "validation": how,
        "image_size": size, "batch_size": batch, "augment": augment, "model_args": args, **fit_info,
        "plan": [p.to_dict() for p in plans], "steps": sum(p.steps for p in plans),
        "train_seconds_this_session": round(train_seconds, 1),
        "seconds_per_step": round(sum(h["seconds"] for h in history) / max(sum(h["steps"] for h in history), 1), 3),
        "wall_seconds_this_session": round(time.monotonic() - t_start, 1),
        "max_minutes": max_minutes, "val": final, "history": history,
        "peak_rss_mib": _peak_rss_mib(),
    }
    from workshop.engine import write_json_atomic

    write_json_atomic(summary, run / "summary.json")
    _predictions_png(model, val_set, device, run / "predictions.png")
    del n_stages
    return summary


def _seconds_per_prediction(model, dataset, device, images: int = 2) -> float:
    """Seconds to predict one validation image (after one untimed call, which allocates)."""
    model.eval()
    times = []
    with torch.no_grad():
        for i in range(min(images, len(dataset)) + 1):
            image, _ = dataset[i % len(dataset)]
            t0 = time.perf_counter()
            model([image.to(device)])
            times.append(time.perf_counter() - t0)
    model.train()
    return float(sum(times[1:]) / max(len(times) - 1, 1))


def _full_config(cfg, icfg, stages) -> dict[str, Any]:
    data = cfg.to_dict()
    data["instance"] = icfg.to_dict()
    data["stages"] = [s.to_dict() for s in stages]
    return data


def _peak_rss_mib() -> float | None:
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB
    except (ImportError, OSError):
        return None


def _predictions_png(model, dataset, device, path: Path, rows: int = 4) -> None:
    import matplotlib.pyplot as plt  # never matplotlib.use(): a notebook's backend stays as it is

    from workshop.instance.viz import show_predictions

    model.eval()
    images, targets, preds = [], [], []
    with torch.no_grad():
        for i in range(min(rows, len(dataset))):
            image, target = dataset[i]
            images.append(image)
            targets.append(target)
            preds.append({k: v.cpu() for k, v in model([image.to(device)])[0].items()})
    fig = show_predictions(images, targets, preds, score_threshold=0.5)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def summarize_instance(summary: dict[str, Any]) -> str:
    """A few lines: the steps, the validation mAP, the run folder."""
    v = summary.get("val") or {}

    def f(key):
        value = v.get(key)
        return "n/a" if value is None else f"{value:.3f}"

    lines = [
        f"finished: {summary['steps']} steps at {summary['seconds_per_step']:.2f} s/step; validation ({summary['val_images']} "
        f"images): mask mAP {f('segm_map')} (@.5 {f('segm_map_50')}), box mAP {f('bbox_map')} (@.5 {f('bbox_map_50')})",
        f"run folder: {summary['run']}",
    ]
    run = Path(summary["run"])
    for name in ("config.yaml", "summary.json", "checkpoints/best.pt", "predictions.png"):
        if (run / name).exists():
            lines.append(f"  {run / name}")
    lines.append(f"next: workshop evaluate {run} DATA   |   workshop predict {run} IMAGES")
    return "\n".join(lines)


def _cfg_of_state(state: dict[str, Any]):
    """The run's ``Config`` (data section) from a checkpoint's saved config."""
    from workshop.config import load_config

    saved = {k: v for k, v in dict(state.get("config") or {}).items() if k not in ("instance", "stages")}
    if not saved:
        return None
    return load_config(overrides=saved, profile=saved.get("profile"))
