"""The small-data recipe, one change at a time: each variant is trained with ``workshop train`` for the
same time budget, then scored on the run's own validation split (mask mAP, mAP@.5, duplicates).

Variants (``--set`` overrides of configs/maskrcnn_progressive.yaml):

* ``before``: the settings before this recipe: input 320 px whatever the objects, torchvision-like
  anchors ((12, 20) ... (128, 224)), 50 detections per image, horizontal flips only, NMS 0.5;
* ``fitted``: image size, anchors and detections per image fitted to the objects (``auto``);
* ``+vflip``: and vertical flips (the config's default);
* ``+nms0.3``: and an NMS threshold of 0.3 against duplicate detections;
* ``+rot90``: and quarter turns (p 0.5).

Usage::

    python benchmarks/instance_recipe.py --minutes 2 --num-images 80          # ~15 min on 2 cores
    python benchmarks/instance_recipe.py --data kudzu --minutes 5             # the real VIA set
    python benchmarks/instance_recipe.py --only before fitted --minutes 1     # a subset
    python benchmarks/instance_recipe.py --nms-sweep RUN                      # one model at 4 NMS thresholds

Taught in: notebooks/10_instance.ipynb (the recipe)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CONFIG = ROOT / "configs" / "maskrcnn_progressive.yaml"
KUDZU = ROOT.parent / "shared" / "datasets" / "kudzu"

BEFORE = ["instance.image_size=320", "instance.anchor_sizes=[[12,20],[32,48],[64,96],[128,224]]",
          "instance.detections_per_image=50", "instance.vflip=0", "instance.nms_threshold=0.5"]
VARIANTS = {
    "before": BEFORE,
    "fitted": ["instance.vflip=0", "instance.nms_threshold=0.5"],
    "+vflip": ["instance.vflip=0.5", "instance.nms_threshold=0.5"],
    "+nms0.3": ["instance.vflip=0.5", "instance.nms_threshold=0.3"],
    "+rot90": ["instance.vflip=0.5", "instance.nms_threshold=0.3", "instance.rotate90=0.5"],
}


def score_run(run: Path, nms: float | None = None) -> dict:
    """Mask/box mAP and duplicates of a run's best checkpoint on its own validation split (at ``nms``, or the run's)."""
    from workshop.instance.data import detection_splits
    from workshop.instance.engine import load_instance_model
    from workshop.instance.evaluate import score_predictions
    from workshop.instance.runs import load_instance_config

    model, state = load_instance_model(run)
    if nms is not None:
        model.roi_heads.nms_thresh = nms  # NMS acts at inference only: the same weights, another threshold
    cfg, icfg, _ = load_instance_config(run / "config.yaml")
    _, val, names, _ = detection_splits(cfg, max_side=None)
    preds, targets = [], []
    with torch.no_grad():
        for i in range(len(val)):
            image, target = val[i]
            preds.append({k: v.cpu() for k, v in model([image])[0].items()})
            targets.append(target)
    s = score_predictions(preds, targets, names)
    return {"mask_map": s["mask"]["map"], "mask_map_50": s["mask"]["map_50"], "box_map": s["box"]["map"],
            "mean_instance_iou": s["mean_instance_iou"], "duplicates": s["duplicates"], "objects": s["objects"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--data", choices=("embedded", "kudzu"), default="embedded")
    parser.add_argument("--num-images", type=int, default=80, help="embedded set size")
    parser.add_argument("--min-stage-steps", type=int, default=20, help="instance.min_stage_steps (lower on a loaded machine)")
    parser.add_argument("--only", nargs="*", choices=list(VARIANTS), default=None)
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "runs" / "recipe"))
    parser.add_argument("--nms-sweep", metavar="RUN", default=None,
                        help="score one trained run at NMS 0.3, 0.4, 0.5, 0.6 (inference only) and stop")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.nms_sweep:
        for nms in (0.3, 0.4, 0.5, 0.6):
            r = score_run(Path(args.nms_sweep), nms)
            print(f"NMS {nms}: mask mAP {r['mask_map']:.3f} (@.5 {r['mask_map_50']:.3f}), box mAP {r['box_map']:.3f}, "
                  f"IoU/object {r['mean_instance_iou']:.3f}, duplicates {r['duplicates']}/{r['objects']}", flush=True)
        return 0
    data = ([f"data.num_images={args.num_images}", "data.image_size=128"] if args.data == "embedded" else
            ["data.source=annotations", f"data.root={KUDZU / 'train' / 'via_region_data.json'}",
             f"data.val={KUDZU / 'val' / 'via_region_data.json'}"])
    work = Path(args.work)
    rows = []
    for name in args.only or list(VARIANTS):
        run = work / f"{args.data}-{name.replace('+', 'plus-')}-{args.minutes:g}min"
        sets = [x for s in data + ["instance.eval_every_stage=false", f"instance.min_stage_steps={args.min_stage_steps}",
                                            *VARIANTS[name]] for x in ("--set", s)]
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "workshop.cli", "train", "--config", str(CONFIG), *sets,
                               "--max-minutes", str(args.minutes), "--run-dir", str(run)],
                              cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        if proc.returncode != 0:
            print(f"{name}: FAILED: {(proc.stdout + proc.stderr).strip().splitlines()[-1]}")
            continue
        summary = json.loads((run / "summary.json").read_text())
        row = {"variant": name, "steps": summary["steps"], "seconds_per_step": summary["seconds_per_step"],
               "image_size": summary["image_size"], "anchors": summary["model_args"]["anchor_sizes"],
               "train_wall_s": round(time.monotonic() - t0, 1), **score_run(run)}
        rows.append(row)
        print(f"{name:>8}: mask mAP {row['mask_map']:.3f} (@.5 {row['mask_map_50']:.3f}), box mAP {row['box_map']:.3f}, "
              f"IoU/object {row['mean_instance_iou']:.3f}, duplicates {row['duplicates']}/{row['objects']} objects | "
              f"{row['steps']} steps at {row['seconds_per_step']:.2f} s/step, input {row['image_size']} px", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"benchmark": "instance_recipe", "data": args.data, "minutes": args.minutes,
                                              "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
