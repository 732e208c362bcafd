"""Two training recipes side by side on the real Human Segmentation Dataset, for fixed wall-clock budgets.

    python benchmarks/recipes_human_seg.py --budgets 2 5 10     # the full comparison (about 40-50 min)
    python benchmarks/recipes_human_seg.py --quick              # 30 s per run: proves the script works

Data: ``../shared/datasets/human_seg`` (or ``--data``), 290 photos; a fixed 80/20 split by seed
(``workshop.data.loaders.split_indices``, seed 0): 232 training, 58 validation photos.

Recipes (each run in its own process, so peak memory and thread settings are its own):

* ``ours``: the workshop's cpu recipe adapted to this data: smp Unet + MobileNetV2 encoder with
  ImageNet weights loaded offline (``workshop.models`` / ``workshop.weights``), a light decoder
  (widths 128-64-32-16-8: 8.6 training GFLOP per 160 px image against 13.2 with smp's default
  256-128-64-32-16 decoder, whose forward pass alone costs 7x the encoder's), ImageNet
  normalisation, 160 px (a perfect 160 px mask upsampled to the photo still scores IoU 0.995),
  batch 8, AdamW (peak lr 3e-3, wd 1e-4),
  Dice + BCE (``workshop.losses``), horizontal flips, a one-cycle learning rate laid over the
  *time* budget (warm-up for the first 15 % of the training seconds, cosine down to lr/100 at the
  budget), and every photo decoded and resized once into memory (``workshop.data.cache.CachedPairs``).
* ``public``: the popular public recipe for this data set: smp Unet with the
  ``timm-efficientnet-b0`` encoder, 320x320 inputs, horizontal + vertical flips, pixels / 255 (no
  mean/std), smp DiceLoss + BCEWithLogits, Adam lr 0.003, constant, batch 16, every photo read
  from disk with OpenCV and resized in every ``__getitem__`` (``num_workers=0``). (a)
  ``public_random``: the encoder's own ImageNet weights are not available offline, so it starts
  from random weights; (b) ``public_mnv2``: the same recipe with our offline ImageNet MobileNetV2
  encoder, to separate the recipe from the weights.

Budgets count training seconds only (loading batches + steps); evaluations pause the clock.
By default ``ours`` is run once per budget with its schedule sized to that budget, and each
public recipe is run once for the largest budget and read at every budget mark (its learning rate
is constant, so an earlier mark is what a shorter run would have given). ``--single-run`` runs
``ours`` once too, with its schedule sized to the largest budget. The output says which was done.

Measured per run: validation IoU and Dice (foreground, from one confusion matrix over every pixel
of the 58 validation photos at their original resolution: predictions are upsampled to the photo
and compared with the mask resized nearest to the photo), training images/s, the training seconds
to reach IoU 0.80 (first evaluation at or above it; evaluations every 15 s up to 2 min, every
30 s up to 5 min, then every 60 s), the loader's images/s and the model step's images/s (timed
separately inside the training loop), a standalone pass of the loader, and peak memory
(``resource.getrusage().ru_maxrss``). Results: ``benchmarks/results/human_seg_recipes[_quick].{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
TARGET_IOU = 0.80


@dataclass
class Recipe:
    """Everything that differs between the recipes."""

    name: str
    title: str
    encoder: str
    weights: str | None  # "imagenet" or None (random init)
    size: int
    batch: int
    optimizer: str  # adamw | adam
    lr: float
    weight_decay: float
    schedule: str  # onecycle-time | constant
    hflip: float
    vflip: float
    normalize: str  # imagenet | div255
    pipeline: str  # cached | disk
    loss: str  # workshop dice_bce | smp dice + bce
    decoder_channels: tuple[int, ...] | None = None  # None: smp's default (256, 128, 64, 32, 16)
    notes: list[str] = field(default_factory=list)


def recipes(args: argparse.Namespace) -> dict[str, Recipe]:
    ours = Recipe(
        name="ours", title="workshop cpu recipe (Unet/MobileNetV2, offline ImageNet, cached)",
        encoder="mobilenet_v2", weights="imagenet", size=args.size, batch=args.batch, optimizer="adamw",
        lr=args.lr, weight_decay=1e-4, schedule="onecycle-time", hflip=0.5, vflip=0.0, normalize="imagenet",
        pipeline="cached", loss="workshop dice_bce",
        decoder_channels=None if args.default_decoder else tuple(args.decoder_channels),
    )
    public = dict(
        size=320, batch=16, optimizer="adam", lr=0.003, weight_decay=0.0, schedule="constant", hflip=0.5,
        vflip=0.5, normalize="div255", pipeline="disk", loss="smp DiceLoss(binary) + BCEWithLogitsLoss",
    )
    return {
        "ours": ours,
        "public_random": Recipe(name="public_random", title="public recipe, timm-efficientnet-b0, random init (no offline weights)",
                                encoder="timm-efficientnet-b0", weights=None, **public),
        "public_mnv2": Recipe(name="public_mnv2", title="public recipe with our offline ImageNet MobileNetV2 encoder",
                              encoder="mobilenet_v2", weights="imagenet", **public),
    }


# ----------------------------------------------------------------------------- data


def split_pairs(data: Path, seed: int):
    from workshop.data.loaders import split_indices
    from workshop.data.registry import human_seg_pairs

    pairs = human_seg_pairs(data)
    train_idx, val_idx = split_indices(len(pairs), 0.2, seed)
    return [pairs[i] for i in train_idx], [pairs[i] for i in val_idx]


class DiskPairs:
    """The public recipe's Dataset: OpenCV reads the photo and the mask from disk in every ``__getitem__``."""

    def __init__(self, pairs, size: int, hflip: float, vflip: float, seed: int) -> None:
        import albumentations as A

        self.pairs = pairs
        steps = [A.Resize(size, size)]
        if hflip:
            steps.append(A.HorizontalFlip(p=hflip))
        if vflip:
            steps.append(A.VerticalFlip(p=vflip))
        # albumentations >= 1.3.1 refuses masks of another size than the photo; the public recipe
        # predates that check and resizes both to size x size (same aspect ratio, so they align)
        self.augment = A.Compose(steps, seed=seed, is_check_shapes=False)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int):
        import cv2
        import numpy as np
        import torch

        image_path, mask_path = self.pairs[index]
        image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
        mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
        out = self.augment(image=image, mask=mask)
        image = torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1))).float() / 255.0
        mask = torch.round(torch.from_numpy(np.ascontiguousarray(out["mask"])).float() / 255.0).long()
        return {"image": image, "mask": mask}


def validation_truth(val_pairs):
    """Every validation mask at its photo's resolution (0/1), read once."""
    from workshop.data.io import load_pair
    import warnings

    truths = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 'mask resized with nearest-neighbour': that is the point here
        for image_path, mask_path in val_pairs:
            truths.append(load_pair(image_path, mask_path, task="binary")[1])
    return truths


def validation_inputs(recipe: Recipe, val_pairs, workers: int):
    """The validation photos as the recipe's model sees them, prepared once (evaluation is off the clock)."""
    import torch

    if recipe.pipeline == "cached":
        from workshop.data.cache import CachedPairs
        from workshop.data.datasets import PairDataset
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cached = CachedPairs(PairDataset(val_pairs), recipe.size, workers=workers)
        return [cached[i]["image"] for i in range(len(cached))]
    disk = DiskPairs(val_pairs, recipe.size, 0.0, 0.0, 0)
    return [disk[i]["image"] for i in range(len(disk))]


# ----------------------------------------------------------------------------- model, loss, schedule


def build_model(recipe: Recipe):
    from workshop.models import create_model

    return create_model("unet", recipe.encoder, recipe.weights, num_classes=1, decoder_channels=recipe.decoder_channels)


def build_loss(recipe: Recipe):
    import segmentation_models_pytorch as smp
    import torch

    if recipe.loss.startswith("workshop"):
        from workshop.losses import create_loss

        return create_loss("dice_bce", "binary")
    dice, bce = smp.losses.DiceLoss(mode="binary"), torch.nn.BCEWithLogitsLoss()

    def public_loss(logits, masks):
        target = masks.unsqueeze(1).float()
        return dice(logits, target) + bce(logits, target)

    return public_loss


def onecycle_lr(fraction: float, peak: float, warmup: float = 0.15, start_div: float = 10.0, end_div: float = 100.0) -> float:
    """One-cycle learning rate at ``fraction`` of the budget: cosine up to ``peak``, cosine down to ``peak/end_div``."""
    f = min(max(fraction, 0.0), 1.0)
    low, end = peak / start_div, peak / end_div
    if f < warmup:
        return low + (peak - low) * (1 - math.cos(math.pi * f / warmup)) / 2
    g = (f - warmup) / (1 - warmup)
    return end + (peak - end) * (1 + math.cos(math.pi * g)) / 2


def eval_marks(max_s: float, budgets_s: list[float], quick: bool) -> list[float]:
    if quick:
        marks = set(range(10, int(max_s) + 1, 10))
    else:
        marks = set(range(15, 121, 15)) | set(range(150, 301, 30)) | set(range(360, int(max_s) + 1, 60))
    return sorted({m for m in marks if m < max_s} | set(budgets_s))


# ----------------------------------------------------------------------------- one run (child process)


def evaluate(model, inputs, truths, batch: int = 8) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    from workshop.metrics import SegmentationMetrics

    metrics = SegmentationMetrics(2)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(inputs), batch):
            logits = model(torch.stack(inputs[start:start + batch])).float()
            for k in range(logits.shape[0]):
                truth = torch.from_numpy(truths[start + k])
                up = F.interpolate(logits[k:k + 1], size=truth.shape, mode="bilinear", align_corners=False)
                metrics.update(up, truth.unsqueeze(0))
    model.train()
    out = metrics.compute()
    return {"iou": float(out["iou"]), "dice": float(out["dice"])}


def run_one(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    torch.set_num_threads(args.threads)
    import cv2

    cv2.setNumThreads(args.threads)
    from workshop.env import seed_everything

    seed_everything(args.seed)
    recipe = recipes(args)[args.child]
    budget_s = args.schedule_minutes * 60.0
    budgets_s = [b * 60.0 for b in args.child_marks]
    wall0 = time.perf_counter()

    train_pairs, val_pairs = split_pairs(Path(args.data), args.seed)
    t0 = time.perf_counter()
    truths = validation_truth(val_pairs)
    val_inputs = validation_inputs(recipe, val_pairs, args.threads)
    val_prep_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    if recipe.pipeline == "cached":
        from workshop.data.cache import CachedPairs
        from workshop.data.datasets import PairDataset
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # smaller masks are resized to their photo (nearest) on purpose
            train_ds = CachedPairs(PairDataset(train_pairs), recipe.size, hflip=recipe.hflip, vflip=recipe.vflip,
                                   workers=args.threads, seed=args.seed)
        cache_note = f"{len(train_ds)} photos decoded once in {train_ds.build_seconds:.1f}s, {train_ds.nbytes / 2**20:.0f} MB"
    else:
        train_ds = DiskPairs(train_pairs, recipe.size, recipe.hflip, recipe.vflip, args.seed)
        cache_note = "none (decoded from disk in every __getitem__)"
    data_setup_s = time.perf_counter() - t0
    loader = DataLoader(train_ds, batch_size=recipe.batch, shuffle=True, num_workers=0,
                        generator=torch.Generator().manual_seed(args.seed), drop_last=False)

    # the loader alone, one short pass (off the clock)
    t0, n = time.perf_counter(), 0
    for batch in loader:
        n += batch["image"].shape[0]
        if n >= args.loader_probe_images:
            break
    standalone_loader = n / (time.perf_counter() - t0)

    model = build_model(recipe)
    loss_fn = build_loss(recipe)
    params = [p for p in model.parameters() if p.requires_grad]
    if recipe.optimizer == "adamw":
        optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    else:
        optimizer = torch.optim.Adam(params, lr=recipe.lr)
    model.train()

    marks = [m for m in eval_marks(budget_s, budgets_s, args.quick) if m <= budget_s]
    evals, mark_rows = [], []
    train_s = data_s = step_s = eval_s = 0.0
    images = steps = epochs = 0
    next_mark = 0
    t80 = None
    done = False
    while not done:
        epochs += 1
        it = iter(loader)
        while True:
            t_a = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                break
            t_b = time.perf_counter()
            if recipe.schedule == "onecycle-time":
                for group in optimizer.param_groups:
                    group["lr"] = onecycle_lr(train_s / budget_s, recipe.lr)
            logits = model(batch["image"])
            loss = loss_fn(logits, batch["mask"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            t_c = time.perf_counter()
            data_s += t_b - t_a
            step_s += t_c - t_b
            train_s += t_c - t_a
            images += batch["image"].shape[0]
            steps += 1
            if not math.isfinite(loss.item()):
                raise RuntimeError(f"{recipe.name}: loss became {loss.item()} at step {steps}")
            passed = []
            while next_mark < len(marks) and train_s >= marks[next_mark]:
                passed.append(marks[next_mark])
                next_mark += 1
            if passed:  # one evaluation, even when a long step went past several marks
                t_e = time.perf_counter()
                result = evaluate(model, val_inputs, truths)
                eval_s += time.perf_counter() - t_e
                row = {"mark_s": passed[-1], "train_s": round(train_s, 1), "images": images,
                       "epochs": round(images / len(train_ds), 2), "iou": round(result["iou"], 4),
                       "dice": round(result["dice"], 4), "lr": optimizer.param_groups[0]["lr"]}
                evals.append(row)
                if t80 is None and result["iou"] >= TARGET_IOU:
                    t80 = train_s
                for mark in passed:
                    if mark in budgets_s:
                        mark_rows.append({"budget_min": mark / 60.0, **row})
            if train_s >= budget_s:
                done = True
                break
    return {
        "recipe": asdict(recipe),
        "schedule_minutes": args.schedule_minutes,
        "marks": mark_rows,
        "evals": evals,
        "time_to_iou_0.80_s": None if t80 is None else round(t80, 1),
        "train_s": round(train_s, 1),
        "images": images,
        "steps": steps,
        "train_images_per_s": round(images / train_s, 2),
        "loader_images_per_s_in_loop": round(images / data_s, 1) if data_s else None,
        "step_images_per_s_in_loop": round(images / step_s, 2),
        "loader_share_of_train_time": round(data_s / train_s, 3),
        "loader_images_per_s_standalone": round(standalone_loader, 1),
        "data_setup_s": round(data_setup_s, 1),
        "data_cache": cache_note,
        "validation_prep_s": round(val_prep_s, 1),
        "eval_s_total": round(eval_s, 1),
        "weights_source": getattr(model, "weights_source", "unknown"),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0),
        "wall_s": round(time.perf_counter() - wall0, 1),
        "num_train": len(train_pairs),
        "num_val": len(val_pairs),
    }


# ----------------------------------------------------------------------------- orchestration


def child_command(args: argparse.Namespace, recipe: str, schedule_minutes: float, marks: list[float], out: Path) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", recipe, "--child-out", str(out),
           "--schedule-minutes", str(schedule_minutes), "--child-marks", *map(str, marks),
           "--data", str(args.data), "--seed", str(args.seed), "--threads", str(args.threads),
           "--size", str(args.size), "--batch", str(args.batch), "--lr", str(args.lr),
           "--loader-probe-images", str(args.loader_probe_images)]
    if args.default_decoder:
        cmd.append("--default-decoder")
    else:
        cmd += ["--decoder-channels", *map(str, args.decoder_channels)]
    if args.quick:
        cmd.append("--quick")
    return cmd


def plan(args: argparse.Namespace) -> list[tuple[str, float, list[float]]]:
    """(recipe, schedule minutes, budget marks) per process."""
    top = max(args.budgets)
    runs = []
    for name in args.recipes:
        if name == "ours" and not args.single_run:
            runs += [(name, b, [b]) for b in args.budgets]
        else:
            runs.append((name, top, list(args.budgets)))
    return runs


def fmt(value, spec: str = ".3f", none: str = "n/a") -> str:
    return none if value is None else format(value, spec)


def markdown(report: dict) -> str:
    lines = [
        f"# Human segmentation: recipes under wall-clock budgets{' (QUICK MODE: not a benchmark)' if report['quick'] else ''}",
        "",
        f"Machine: {report['machine']}; torch threads {report['threads']}; data {report['data']} "
        f"({report['num_train']} train / {report['num_val']} val photos, split seed {report['seed']}).",
        "",
        f"How it was run: {report['how']}",
        "",
        "| recipe | budget (min) | val IoU | val Dice | train img/s | time to IoU 0.80 (s) | loader img/s (in loop / alone) | model step img/s | loader share | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in report["runs"]:
        for mark in run["marks"]:
            lines.append(
                f"| {run['recipe']['name']} | {fmt(mark['budget_min'], 'g')} | {fmt(mark['iou'], '.4f')} | "
                f"{fmt(mark['dice'], '.4f')} | {fmt(run['train_images_per_s'], '.2f')} | "
                f"{fmt(run['time_to_iou_0.80_s'], '.0f', 'not reached')} | "
                f"{fmt(run['loader_images_per_s_in_loop'], '.1f')} / {fmt(run['loader_images_per_s_standalone'], '.1f')} | "
                f"{fmt(run['step_images_per_s_in_loop'], '.2f')} | {fmt(run['loader_share_of_train_time'], '.0%')} | "
                f"{fmt(run['peak_rss_mb'], '.0f')} |"
            )
    lines += ["", "Recipes:", ""]
    seen = set()
    for run in report["runs"]:
        r = run["recipe"]
        if r["name"] in seen:
            continue
        seen.add(r["name"])
        dec = r["decoder_channels"] or "smp default (256, 128, 64, 32, 16)"
        lines.append(
            f"- **{r['name']}**: {r['title']}. Encoder {r['encoder']} ({run['weights_source']}), decoder {dec}, "
            f"{r['size']}px, batch {r['batch']}, {r['optimizer']} lr {r['lr']} ({r['schedule']}), wd {r['weight_decay']}, "
            f"hflip {r['hflip']}, vflip {r['vflip']}, input {r['normalize']}, loss {r['loss']}, data {r['pipeline']}: {run['data_cache']}."
        )
    if report.get("summary"):
        lines += ["", "Summary:", ""] + [f"- {s}" for s in report["summary"]]
    lines += ["", "Validation IoU at every evaluation (training seconds: IoU):", ""]
    for run in report["runs"]:
        trace = ", ".join(f"{e['train_s']:.0f}: {e['iou']:.3f}" for e in run["evals"])
        lines.append(f"- {run['recipe']['name']} (schedule {run['schedule_minutes']:g} min): {trace}")
    return "\n".join(lines) + "\n"


def summarize(runs: list[dict]) -> list[str]:
    out = []
    best_t80: dict[str, float | None] = {}
    for run in runs:
        name, t80 = run["recipe"]["name"], run["time_to_iou_0.80_s"]
        if t80 is not None and (best_t80.get(name) is None or t80 < best_t80[name]):
            best_t80[name] = t80
        else:
            best_t80.setdefault(name, None)
    ours = best_t80.get("ours")
    for name, t80 in best_t80.items():
        if name == "ours" or "ours" not in best_t80:
            continue
        if ours is None:
            out.append(f"IoU 0.80: not reached by ours; {name}: {fmt(t80, '.0f', 'not reached')}{'' if t80 is None else ' s'}")
        elif t80 is None:
            out.append(f"IoU 0.80: ours after {ours:.0f} s; {name} not within its budget (ratio > {max(r['train_s'] for r in runs if r['recipe']['name'] == name) / ours:.1f}x)")
        else:
            out.append(f"IoU 0.80: ours after {ours:.0f} s, {name} after {t80:.0f} s: {t80 / ours:.1f}x sooner")
    for run in runs:
        if run["recipe"]["name"] == "ours":
            for mark in run["marks"]:
                out.append(f"ours, {mark['budget_min']:g} min budget: val IoU {mark['iou']:.4f}")
    return out


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(REPO))
    from workshop.models import LIGHT_DECODER_CHANNELS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[2.0, 5.0, 10.0], help="wall budgets in minutes")
    parser.add_argument("--quick", action="store_true", help="budgets of 0.5 min, evaluations every 10 s (a smoke test)")
    parser.add_argument("--recipes", nargs="+", default=["ours", "public_random", "public_mnv2"],
                        choices=["ours", "public_random", "public_mnv2"])
    parser.add_argument("--single-run", action="store_true",
                        help="run ours once for the largest budget (schedule sized to it) instead of once per budget")
    parser.add_argument("--data", type=Path, default=None, help="human_seg folder (default: registry.find_local)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=160, help="ours: input size")
    parser.add_argument("--batch", type=int, default=8, help="ours: batch size")
    parser.add_argument("--lr", type=float, default=3e-3, help="ours: peak learning rate")
    parser.add_argument("--decoder-channels", type=int, nargs=5, default=list(LIGHT_DECODER_CHANNELS),
                        help="ours: Unet decoder widths (smp's default is 256 128 64 32 16)")
    parser.add_argument("--default-decoder", action="store_true", help="ours: smp's default decoder widths")
    parser.add_argument("--loader-probe-images", type=int, default=48)
    parser.add_argument("--out", type=Path, default=None, help="results file stem (default benchmarks/results/human_seg_recipes[_quick])")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-marks", type=float, nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--schedule-minutes", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick and args.budgets == [2.0, 5.0, 10.0]:
        args.budgets = [0.5]
        args.loader_probe_images = 16
    if args.data is None:
        from workshop.data.registry import find_local

        args.data = find_local("human_seg")
        if args.data is None:
            print("human_seg not found: run `workshop data download human_seg`, or pass --data", file=sys.stderr)
            return 2
    if args.child:
        result = run_one(args)
        args.child_out.write_text(json.dumps(result, indent=2))
        return 0

    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = args.out or RESULTS / ("human_seg_recipes_quick" if args.quick else "human_seg_recipes")
    runs = []
    for name, schedule, marks in plan(args):
        out = RESULTS / f".{name}-{schedule:g}.json.tmp"
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {schedule:g} min of training, marks {marks}", flush=True)
        proc = subprocess.run(child_command(args, name, schedule, marks, out), cwd=REPO)
        if proc.returncode != 0:
            print(f"{name} failed with exit status {proc.returncode}", file=sys.stderr)
            return proc.returncode
        run = json.loads(out.read_text())
        out.unlink()
        runs.append(run)
        for mark in run["marks"]:
            print(f"    {mark['budget_min']:g} min: val IoU {mark['iou']:.4f}, Dice {mark['dice']:.4f}, "
                  f"{run['train_images_per_s']:.2f} img/s, IoU 0.80 after {fmt(run['time_to_iou_0.80_s'], '.0f', 'not reached')} s, "
                  f"loader {run['loader_images_per_s_in_loop']} img/s vs step {run['step_images_per_s_in_loop']} img/s, "
                  f"peak {run['peak_rss_mb']:.0f} MB", flush=True)
    ours_how = ("ours once for the largest budget, its one-cycle schedule sized to it, read at every mark"
                if args.single_run else "ours once per budget, its one-cycle schedule sized to that budget")
    report = {
        "quick": args.quick,
        "budgets_min": args.budgets,
        "how": (f"{ours_how}; each public recipe once for {max(args.budgets):g} min (constant lr) and read at every "
                "budget mark; evaluation time excluded from the budgets; one process per run."),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.platform(terse=True)}, python {platform.python_version()}",
        "threads": args.threads,
        "data": str(args.data),
        "seed": args.seed,
        "num_train": runs[0]["num_train"] if runs else 0,
        "num_val": runs[0]["num_val"] if runs else 0,
        "command": " ".join([Path(sys.executable).name, "benchmarks/recipes_human_seg.py", *(argv if argv is not None else sys.argv[1:])]),
        "runs": runs,
    }
    report["summary"] = summarize(runs)
    Path(f"{stem}.json").write_text(json.dumps(report, indent=2))
    Path(f"{stem}.md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
