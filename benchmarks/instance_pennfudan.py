"""Instance benchmark: progressive Mask R-CNN training on Penn-Fudan for a fixed CPU time, then COCO mAP.

What it measures: mask (and box) mAP@[.5:.95] and mAP@.5, computed by torchmetrics'
``MeanAveragePrecision`` with pycocotools, on the fixed Penn-Fudan validation split (34 of 170
images, ``workshop.instance.data.pennfudan_dataset``), after ``--minutes`` of training of the
notebook-10 recipe: Mask R-CNN on an offline ImageNet MobileNetV2 + FPN, images at most ``--size``
pixels, the three stages of ``configs/maskrcnn_progressive.yaml`` (heads; + last backbone stages;
everything). The time budget is shared by the stages in proportion to their epochs
(``run_stages(max_minutes=...)``), so every stage runs even when the plan does not fit.

The plan's 9 epochs take about 4.5 minutes on 2 quiet cores (0.4-0.5 s per step of 2 images at 320
px). ``--epochs-scale K`` multiplies every stage's epochs and StepLR period by K so that a longer
budget is used by the same recipe, stretched: the reported 15-minute run uses ``--epochs-scale 3``
(27 epochs).

Usage (from the repository root)::

    python benchmarks/instance_pennfudan.py --minutes 15 --epochs-scale 3 --threads 2   # the reported numbers
    python benchmarks/instance_pennfudan.py --quick                 # a ~1-minute smoke run of the script
    python benchmarks/instance_pennfudan.py --minutes 15 --out results.json

Data: ``../shared/datasets/pennfudan`` (or a downloaded copy, see ``workshop data download pennfudan``).

Taught in: notebooks/10_instance.ipynb (the recipe)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workshop.env import seed_everything  # noqa: E402
from workshop.instance.data import collate_detection, find_pennfudan, pennfudan_dataset  # noqa: E402
from workshop.instance.engine import run_stages  # noqa: E402
from workshop.instance.evaluate import evaluate_map, per_instance_iou, predict  # noqa: E402
from workshop.instance.model import create_maskrcnn, format_parameter_counts, parameter_counts  # noqa: E402
from workshop.instance.stages import load_stages  # noqa: E402

DEFAULT_PLAN = ROOT / "configs" / "maskrcnn_progressive.yaml"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget in minutes (default 15)")
    parser.add_argument("--quick", action="store_true", help="a tiny run that only proves the script works")
    parser.add_argument("--root", default=None, help="the pennfudan folder (default: found automatically)")
    parser.add_argument("--plan", default=str(DEFAULT_PLAN), help="YAML file of training stages")
    parser.add_argument("--epochs-scale", type=int, default=1,
                        help="multiply every stage's epochs and step_size by this (default 1; 3 fills 15 minutes)")
    parser.add_argument("--size", type=int, default=320, help="min_size = max_size of Mask R-CNN (default 320)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--run-dir", default=None, help="where checkpoints go (default: a temporary folder)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir (finished stages are skipped)")
    parser.add_argument("--out", default=None, help="write the results as JSON here (e.g. benchmarks/results/NAME.json)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("WORKSHOP_OFFLINE", "1")
    t_start = time.monotonic()
    seed_everything(0)
    root = find_pennfudan(args.root)
    if root is None:
        print("Penn-Fudan is not available: pass --root, or run `workshop data download pennfudan`.")
        return 2
    size = 128 if args.quick else args.size
    minutes = 1.0 if args.quick else args.minutes
    train_set = pennfudan_dataset(root, "train", max_side=size)
    val_set = pennfudan_dataset(root, "val", max_side=size)
    stages = load_stages(args.plan)
    if args.epochs_scale < 1:
        print(f"--epochs-scale must be a whole number >= 1, got {args.epochs_scale}")
        return 2
    for stage in stages:
        stage.epochs *= args.epochs_scale
        stage.step_size *= args.epochs_scale
    if args.quick:
        train_set.items, val_set.items = train_set.items[:4], val_set.items[:2]
        for stage in stages:
            stage.epochs, stage.warmup_steps = 1, 1
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, collate_fn=collate_detection,
                              generator=torch.Generator().manual_seed(0))
    val_loader = DataLoader(val_set, batch_size=args.batch_size, collate_fn=collate_detection)
    model = create_maskrcnn(num_classes=2, min_size=size, max_size=size)
    print(f"data: {len(train_set)} train / {len(val_set)} val images at most {size} px | batch {args.batch_size} "
          f"| threads {torch.get_num_threads()} | backbone {model.backbone_name}, {model.weights_source}")
    print(format_parameter_counts(parameter_counts(model)))
    print("plan: " + " -> ".join(f"{s.title} ({s.epochs} ep, lr {s.lr:g})" for s in stages))

    run_dir = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="pennfudan-bench-"))
    remaining = minutes - (time.monotonic() - t_start) / 60
    history = run_stages(model, stages, train_loader, run_dir=run_dir, device="cpu", max_minutes=round(max(remaining, 0.1), 3),
                         print_freq=0 if args.quick else 20, resume=run_dir if args.resume else None)
    train_minutes = (time.monotonic() - t_start) / 60

    t_eval = time.monotonic()
    scores = evaluate_map(model, val_loader)
    ious = []
    for preds, targets in predict(model, val_loader):
        for pred, target in zip(preds, targets):
            ious.extend(per_instance_iou(pred["masks"], target["masks"], pred["scores"], 0.5).tolist())
    mean_iou = sum(ious) / len(ious) if ious else float("nan")
    print(f"\ntraining: {train_minutes:.1f} min from start (budget {minutes:g} min); "
          + ", ".join(f"{h['title']}: {h['epochs_done']} ep, {h['seconds']:.0f} s" for h in history))
    print(f"Penn-Fudan val ({len(val_set)} images, {len(ious)} people), evaluation {time.monotonic() - t_eval:.0f} s:")
    for kind in ("segm", "bbox"):
        print(f"  {'mask' if kind == 'segm' else 'box '} mAP@[.5:.95] {scores[kind + '_map']:.4f} | mAP@.5 "
              f"{scores[kind + '_map_50']:.4f} | mAP@.75 {scores[kind + '_map_75']:.4f}")
    print(f"  mean IoU of each person with its matched mask (score >= 0.5, 0 if missed): {mean_iou:.4f}")
    if args.out:
        payload = {
            "benchmark": "instance_pennfudan", "quick": args.quick, "minutes": minutes, "epochs_scale": args.epochs_scale,
            "train_minutes": round(train_minutes, 2), "size": size, "threads": torch.get_num_threads(),
            "stages": [{k: h[k] for k in ("title", "epochs_done", "seconds")} for h in history],
            "mask_map": scores["segm_map"], "mask_map_50": scores["segm_map_50"],
            "box_map": scores["bbox_map"], "box_map_50": scores["bbox_map_50"], "mean_instance_iou": mean_iou,
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(payload, indent=2))
        print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
