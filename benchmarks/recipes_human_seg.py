"""Training recipes side by side on the real Human Segmentation Dataset, for wall-clock budgets, through `workshop train`.

    python benchmarks/recipes_human_seg.py --budgets 2 5 10 --threads 2   # the comparison (about 40-50 min)
    python benchmarks/recipes_human_seg.py --recipes ours --budgets 5      # the README's target (about 5.5 min)
    python benchmarks/recipes_human_seg.py --quick                         # 0.5 min per run: checks the script

Every run is the command a user types (``workshop train --config configs/human_seg.yaml
--max-minutes B``, plus ``--set`` settings for the other recipes), in its own process; nothing is
trained by this script. Data: ``../shared/datasets/human_seg`` (or ``--data``), 290 photos, the
seeded 80/20 split of ``data.val_fraction`` / ``data.seed`` (232 training, 58 validation photos).

Recipes:

* ``ours``: ``configs/human_seg.yaml``: U-Net + MobileNetV2 with ImageNet weights (offline), the
  light decoder, 160 px, batch 8, AdamW peak lr 3e-3, Dice + BCE, horizontal flips, one-cycle
  laid over the budget by the recipe (``workshop.recipe``), photos decoded once into memory.
* ``public_random``: the popular public recipe expressed as settings: ``timm-efficientnet-b0``
  from random weights (its ImageNet weights are not available offline), smp's default decoder,
  320 px, batch 16, Adam lr 3e-3 constant (``train.scheduler=none``), horizontal + vertical flips.
  Differences from the original: ImageNet normalisation instead of pixels / 255, and the photos
  decoded once (the original decodes them in every ``__getitem__``).
* ``public_mnv2``: the same with our offline ImageNet MobileNetV2 encoder.

Budgets include the recipe's calibration, validation after every epoch and checkpoints (as a
user's run does); data preparation before and figures after are outside. ``ours`` runs once per
budget; each public recipe runs once for the largest budget (its learning rate is constant) and
is read at every budget mark from its history.

Reported per recipe and budget: the run's val IoU (at the training size) at the mark, the best
checkpoint's IoU at the photos' own resolution (end of each run), optimiser steps, the training
seconds to reach IoU 0.80, and the trivial baselines' margin. Results:
``benchmarks/results/human_seg_recipes[_quick].{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._cli import REPO, evaluate_own_split, first_time_at, read_run, run_workshop  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
TARGET_IOU = 0.80

PUBLIC = [
    "data.image_size=320", "data.batch_size=16", "model.decoder=standard", "train.optimizer=adam", "train.lr=0.003",
    "train.weight_decay=0", "train.scheduler=none", "augment.view=top_down", "augment.rotate90=0",
    "augment.shift_scale_rotate=0", "augment.color_jitter=0", "augment.noise=0", "augment.vflip=0.5",
]
RECIPES: dict[str, tuple[str, list[str]]] = {
    "ours": ("workshop recipe: configs/human_seg.yaml", []),
    "public_random": ("public recipe, timm-efficientnet-b0, random init (no offline weights)",
                      ["model.encoder=timm-efficientnet-b0", "model.encoder_weights=null", *PUBLIC]),
    "public_mnv2": ("public recipe with our offline ImageNet MobileNetV2 encoder", PUBLIC),
}


def one_run(name: str, minutes: float, args, tmp: Path) -> dict:
    title, settings = RECIPES[name]
    run_dir = tmp / f"{name}-{minutes:g}"
    cli = ["train", "--config", REPO / "configs" / "human_seg.yaml", "--max-minutes", minutes, "--run-dir", run_dir,
           "--set", "train.progress=false"]
    if args.data:
        cli += ["--set", f"data.root={args.data}"]
    for item in settings + list(args.overrides):
        cli += ["--set", item]
    proc = run_workshop(cli, threads=args.threads)
    run = read_run(run_dir)
    full = evaluate_own_split(run_dir, threads=args.threads)  # workshop evaluate RUN: the photos' own resolution
    history = run["metrics"]["history"]
    return {
        "recipe": name, "title": title, "settings": settings, "schedule_minutes": minutes,
        "command": "workshop " + " ".join(map(str, cli)), "wall_s": round(proc["wall_s"], 1),
        "history": [{k: h[k] for k in ("epoch", "elapsed_s", "val_iou", "val_dice", "lr", "steps")} for h in history],
        "steps": run["steps"], "epochs": run["epochs"], "best_val_iou": run["best"].get("val_iou"),
        "best_iou_full_resolution": full["iou"], "best_dice_full_resolution": full["dice"],
        "time_to_iou_0.80_s": first_time_at(history, "val_iou", TARGET_IOU),
        "baselines": run["metrics"].get("baselines"), "margin": run["metrics"].get("margin"),
        "recipe_record": {k: v for k, v in run["recipe"].items() if k != "fingerprint"},
        "peak_rss_mb_children": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
    }


def at_mark(run: dict, minutes: float) -> dict | None:
    """The last validation at or before ``minutes`` of the run's clock."""
    seen = [h for h in run["history"] if h["elapsed_s"] <= minutes * 60 + 1e-6]
    return seen[-1] if seen else None


def markdown(report: dict) -> str:
    lines = [
        f"# Human segmentation: recipes under wall-clock budgets, through `workshop train`"
        f"{' (QUICK MODE: not a benchmark)' if report['quick'] else ''}", "",
        f"Machine: {report['machine']}; threads {report['threads']}.", "",
        "| recipe | budget (min) | val IoU at the mark | best IoU, photo resolution (end of run) | steps | IoU 0.80 after (s) | margin over baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in report["runs"]:
        for minutes in run["marks"]:
            h = at_mark(run, minutes)
            t80 = run["time_to_iou_0.80_s"]
            lines.append(
                f"| {run['recipe']} | {minutes:g} | {'n/a' if h is None else format(h['val_iou'], '.4f')} | "
                f"{run['best_iou_full_resolution']:.4f} | {run['steps']} | {'not reached' if t80 is None else f'{t80:.0f}'} | "
                f"{'n/a' if run['margin'] is None else format(run['margin'], '+.4f')} |")
    lines += ["", "Commands:", ""] + [f"- `{run['command']}`" for run in report["runs"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[2.0, 5.0, 10.0], help="budgets in minutes")
    parser.add_argument("--quick", action="store_true", help="0.5-minute runs at 96 px: a smoke test of the script")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--data", type=Path, default=None, help="human_seg folder (default: the registry finds it)")
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of each run")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for every run (e.g. data.image_size=192)")
    parser.add_argument("--out", type=Path, default=None, help="results file stem (default benchmarks/results/human_seg_recipes[_quick])")
    args = parser.parse_args(argv)
    if args.quick:
        args.budgets = [0.5]
        args.overrides = ["data.image_size=96", *args.overrides]
    top = max(args.budgets)
    plan = []
    for name in args.recipes:
        plan += [(name, b, [b]) for b in args.budgets] if name == "ours" else [(name, top, list(args.budgets))]
    runs = []
    with tempfile.TemporaryDirectory(prefix="human-seg-bench-") as tmp:
        for name, minutes, marks in plan:
            print(f"[{time.strftime('%H:%M:%S')}] {name}: --max-minutes {minutes:g}, read at {marks}", flush=True)
            run = one_run(name, minutes, args, Path(tmp))
            run["marks"] = marks
            runs.append(run)
            for m in marks:
                h = at_mark(run, m)
                print(f"    {m:g} min: val IoU {'n/a' if h is None else format(h['val_iou'], '.4f')}; end of run: "
                      f"{run['steps']} steps, best {run['best_val_iou']:.4f} (photo resolution {run['best_iou_full_resolution']:.4f}), "
                      f"margin over the trivial baseline {run['margin']}", flush=True)
    report = {
        "quick": args.quick, "budgets_min": args.budgets, "threads": args.threads,
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.platform(terse=True)}, python {platform.python_version()}",
        "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = args.out or RESULTS / ("human_seg_recipes_quick" if args.quick else "human_seg_recipes")
    Path(f"{stem}.json").write_text(json.dumps(report, indent=2))
    Path(f"{stem}.md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
