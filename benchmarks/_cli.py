"""What the benchmark scripts share: run `workshop ...` as a user types it, read the run folder, evaluate a checkpoint.

No training here: the benchmarks train only through the ``workshop`` command (``workshop.runs`` /
``workshop.recipe``), so their numbers are the numbers a user gets. They may choose settings
(``--config``, ``--set``, ``--max-minutes``) and evaluate the saved checkpoint afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run_workshop(args: list[str], threads: int | None = None, echo: bool = True) -> dict[str, Any]:
    """Run ``python -m workshop.cli ARGS`` in a fresh process (this checkout first on the path).

    Returns:
        ``{"wall_s", "stdout", "stderr", "returncode"}``.
    """
    env = dict(os.environ, WORKSHOP_OFFLINE="1")
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "workshop.cli", *map(str, args)]
    if echo:
        print("$ workshop " + " ".join(map(str, args)), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    out = {"wall_s": time.perf_counter() - t0, "stdout": proc.stdout, "stderr": proc.stderr, "returncode": proc.returncode}
    if proc.returncode != 0:
        raise SystemExit(f"workshop {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return out


def read_run(run_dir: Path) -> dict[str, Any]:
    """metrics.json and the ``recipe:`` section of config.yaml of a finished run."""
    import yaml

    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    history = metrics["history"]
    return {
        "metrics": metrics,
        "config": config,
        "recipe": config.get("recipe", {}),
        "steps": sum(int(h.get("steps", 0)) for h in history),
        "epochs": len(history),
        "train_s": round(history[-1]["elapsed_s"], 1) if history else 0.0,
        "best": metrics.get("best") or {},
    }


def first_time_at(history: list[dict[str, Any]], key: str, value: float) -> float | None:
    """Seconds (``elapsed_s``) of the first epoch whose ``key`` reaches ``value``, or None."""
    for h in history:
        if h.get(key) is not None and h[key] >= value:
            return h["elapsed_s"]
    return None


def evaluate_full_resolution(run_dir: Path, class_names: list[str] | None = None):
    """The best checkpoint on the run's validation split, logits upsampled to each label's own size.

    Uses the run's config (``workshop.data.loaders.make_datasets``) for the split and the
    validation images' raw masks (``dataset.load``), so the numbers are at the labels' resolution.

    Returns:
        The filled ``SegmentationMetrics``.
    """
    import torch
    import torch.nn.functional as F

    from workshop.augment import get_inference_transform
    from workshop.config import load_config
    from workshop.data.loaders import make_datasets
    from workshop.inference import load_trained_model
    from workshop.metrics import SegmentationMetrics

    cfg = load_config(run_dir / "config.yaml")
    model, state = load_trained_model(run_dir, torch.device("cpu"))
    names = class_names or list(state.get("class_names") or [])
    _, val = make_datasets(cfg)
    num_classes = max(2, len(names))
    metrics = SegmentationMetrics(num_classes, ignore_index=cfg.data.ignore_index,
                                  class_names=names if len(names) == num_classes else None)
    transform = get_inference_transform(cfg.data.image_size)
    model.eval()
    with torch.no_grad():
        for i in range(len(val)):
            image, mask = val.load(i)
            x = transform(image=image)["image"][None]
            logits = model(x).float()
            target = torch.as_tensor(mask).long()
            logits = F.interpolate(logits, size=tuple(target.shape), mode="bilinear", align_corners=False)
            metrics.update(logits, target[None])
    return metrics
