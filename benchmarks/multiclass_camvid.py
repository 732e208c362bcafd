"""Multiclass benchmark: `workshop train --config configs/camvid.yaml --max-minutes N`, then IoU per class on the val split.

What it measures: the command a user types. The run (``workshop.runs.train_from_config`` with the
recipe of ``workshop.recipe``) times a few steps, lays the one-cycle schedule over the budget,
weighs the loss by the square root of the inverse class frequencies of the training masks and
keeps the checkpoint with the lowest validation loss (``configs/camvid.yaml``). This script only
reads the run folder and then runs ``workshop evaluate RUN``: the best checkpoint on the run's own
validation split (the official 101 images) at the labels' full 480x360 size, "Unlabelled" ignored.
The run's own val mIoU (at the training size) is reported too.

Usage (from the repository root)::

    python benchmarks/multiclass_camvid.py --minutes 10 --threads 2 --out benchmarks/results/multiclass_camvid.json
    python benchmarks/multiclass_camvid.py --quick               # 1 minute at 64 px: checks the script

Data: ``../shared/datasets/camvid`` (or a downloaded copy, see ``workshop data download camvid``).

Taught in: notebooks/09_multiclass.ipynb (the recipe)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._cli import REPO, evaluate_own_split, read_run, run_workshop  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="the run's --max-minutes (default 10)")
    parser.add_argument("--quick", action="store_true", help="1 minute at 64 px: only proves the script works")
    parser.add_argument("--config", default=str(REPO / "configs" / "camvid.yaml"))
    parser.add_argument("--root", default=None, help="the camvid folder (default: found by the registry)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a config setting passed to workshop train (e.g. data.image_size=192)")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the run")
    parser.add_argument("--run-dir", default=None, help="the run folder (default: a temporary folder)")
    parser.add_argument("--out", default=None, help="write the results as JSON here (e.g. benchmarks/results/NAME.json)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    minutes = 1.0 if args.quick else args.minutes
    overrides = list(args.overrides) + (["data.image_size=64"] if args.quick else [])
    if args.root:
        overrides.append(f"data.root={args.root}")
    run_dir = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="camvid-bench-")) / "run"
    cli = ["train", "--config", args.config, "--max-minutes", minutes, "--run-dir", run_dir, "--set", "train.progress=false"]
    for item in overrides:
        cli += ["--set", item]
    proc = run_workshop(cli, threads=args.threads)
    print(proc["stdout"][-5000:])
    run = read_run(run_dir)
    cfg = run["config"]
    scores = evaluate_own_split(run_dir, threads=args.threads)  # workshop evaluate RUN: the labels' full size
    print(f"CamVid val ({cfg['recipe']['num_train']} train images; val at the labels' full size, void ignored):")
    print(scores["stdout"])
    print(f"mIoU {scores['miou']:.4f} (full resolution) | {run['best'].get('val_iou', float('nan')):.4f} (training size, "
          f"the run's own) | pixel accuracy {scores['pixel_accuracy']:.4f} | {run['steps']} optimiser steps, "
          f"{run['epochs']} epochs, wall {proc['wall_s']:.0f} s")
    if args.out:
        payload = {
            "benchmark": "multiclass_camvid", "command": "workshop " + " ".join(map(str, cli)), "quick": args.quick,
            "minutes": minutes, "wall_s": round(proc["wall_s"], 1), "train_minutes": round(run["train_s"] / 60, 2),
            "epochs_run": run["epochs"], "steps": run["steps"], "best_epoch": run["best"].get("epoch"),
            "size": cfg["data"]["image_size"], "model": f"{cfg['model']['arch']}+{cfg['model']['encoder']}",
            "decoder": cfg["model"]["decoder"], "threads": args.threads,
            "miou": scores["miou"], "val_miou_training_size": run["best"].get("val_iou"),
            "pixel_accuracy": scores["pixel_accuracy"],
            "per_class_iou": {name: c["iou"] for name, c in scores["per_class"].items()},
            "evaluate_command": f"workshop evaluate {run_dir}",
            "baselines": run["metrics"].get("baselines"), "margin": run["metrics"].get("margin"),
            "recipe": {k: v for k, v in run["recipe"].items() if k != "fingerprint"},
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(payload, indent=2))
        print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
