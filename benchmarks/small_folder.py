"""A 30-image folder set through `workshop train`: how many optimiser steps, and the margin over the trivial baseline.

The issue's case: a user brings 30 grayscale images (24 train / 6 val after the 80/20 split) and
runs the CLI with a budget. Before the recipe, batch 16 with ``drop_last`` gave one step per epoch
(8 in all) and an IoU below "all foreground". This script makes such a set, runs the command a
user types, and reads the run folder:

    workshop train --config configs/small_folder.yaml --set data.root=SET --max-minutes N --run-dir RUN

The set: the first 30 photos of ``../shared/datasets/human_seg`` (sorted by name) in grayscale at
most 320 px, with their person masks; or, with ``--synthetic`` (or without human_seg), 30 synthetic
grayscale "cells" (bright blobs on a textured background, covering most of the image).

Usage (from the repository root)::

    python benchmarks/small_folder.py --minutes 2                 # the reported numbers (about 2.5 min)
    python benchmarks/small_folder.py --quick                     # 0.5 min: checks the script
    python benchmarks/small_folder.py --make data/cells30         # only write the set

Reported: training images, batch size, steps per epoch, total optimiser steps, the best val IoU,
the trivial baselines and the margin over the best of them (``metrics.json``), wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
HUMAN_SEG = REPO.parent / "shared" / "datasets" / "human_seg"


def make_from_human_seg(root: Path, out: Path, n: int = 30, max_side: int = 320) -> str:
    photos = sorted((root / "Training_Images").glob("*.jpg"), key=lambda p: int(p.stem) if p.stem.isdigit() else p.stem)[:n]
    for photo in photos:
        mask_file = root / "Ground_Truth" / f"{photo.stem}.png"
        with Image.open(photo) as im:
            grey = im.convert("L")
            scale = max_side / max(grey.size)
            size = (max(1, round(grey.width * min(1, scale))), max(1, round(grey.height * min(1, scale))))
            grey = grey.resize(size, Image.BILINEAR)
        with Image.open(mask_file) as m:
            mask = (np.asarray(m.convert("L").resize(size, Image.NEAREST)) > 127).astype(np.uint8) * 255
        grey.save(out / "images" / f"{photo.stem}.png")
        Image.fromarray(mask).save(out / "masks" / f"{photo.stem}.png")
    return f"{len(photos)} grayscale photos of human_seg ({root})"


def make_synthetic(out: Path, n: int = 30, size: int = 192, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        mask = np.zeros((size, size), bool)
        for _ in range(rng.integers(6, 12)):  # overlapping blobs: the foreground covers most of the image
            cy, cx = rng.integers(0, size, 2)
            ry, rx = rng.integers(size // 8, size // 3, 2)
            mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        texture = rng.normal(0, 1, (size // 8, size // 8))
        texture = np.asarray(Image.fromarray(texture.astype(np.float32)).resize((size, size), Image.BICUBIC))
        grey = 90 + 50 * mask + 18 * texture + rng.normal(0, 14, (size, size))
        Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).save(out / "images" / f"cell{i:02d}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(out / "masks" / f"cell{i:02d}.png")
    return f"{n} synthetic grayscale cell images ({size} px)"


def make_set(out: Path, synthetic: bool) -> str:
    if out.exists():
        shutil.rmtree(out)
    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir(parents=True)
    if not synthetic and (HUMAN_SEG / "Training_Images").is_dir():
        return make_from_human_seg(HUMAN_SEG, out)
    return make_synthetic(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0, help="the --max-minutes of the run (default 2)")
    parser.add_argument("--quick", action="store_true", help="0.5 minutes: checks the script")
    parser.add_argument("--synthetic", action="store_true", help="synthetic cells instead of human_seg photos")
    parser.add_argument("--make", type=Path, help="only write the 30-image set into this folder")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.make:
        print(f"wrote {make_set(args.make, args.synthetic)} into {args.make}")
        return 0
    minutes = 0.5 if args.quick else args.minutes
    with tempfile.TemporaryDirectory(prefix="small-folder-") as tmp:
        data, run = Path(tmp) / "cells30", Path(tmp) / "run"
        what = make_set(data, args.synthetic)
        cmd = [sys.executable, "-m", "workshop.cli", "train", "--config", str(REPO / "configs" / "small_folder.yaml"),
               "--set", f"data.root={data}", "--set", "train.progress=false",
               "--max-minutes", str(minutes), "--run-dir", str(run)]
        print(f"data: {what}\n$ workshop {' '.join(cmd[3:])}", flush=True)
        env = dict(os.environ, WORKSHOP_OFFLINE="1", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        print(proc.stdout[-6000:])
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        import yaml

        metrics = json.loads((run / "metrics.json").read_text())
        plan = yaml.safe_load((run / "config.yaml").read_text())["recipe"]
    result = {
        "benchmark": "small_folder", "data": what, "minutes": minutes, "wall_s": round(wall, 1),
        "num_train": plan["num_train"], "batch_size": plan["batch_size"], "drop_last": plan["drop_last"],
        "passes_per_epoch": plan["passes_per_epoch"], "steps_per_epoch": plan["steps_per_epoch"],
        "planned_steps": plan["total_steps"], "steps": metrics["steps"], "epochs": len(metrics["history"]),
        "best_val_iou": round(metrics["best"]["val_iou"], 4), "baselines": metrics["baselines"],
        "margin": metrics["margin"], "beats_baselines": metrics["beats_baselines"],
    }
    print(f"small folder ({result['num_train']} training images): batch {result['batch_size']}, "
          f"{result['steps']} optimiser steps ({result['epochs']} epochs of {result['steps_per_epoch']} steps), "
          f"best val IoU {result['best_val_iou']}, margin over the best trivial baseline {result['margin']:+.4f} "
          f"({'beats' if result['beats_baselines'] else 'does NOT beat'} it), wall {result['wall_s']} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
