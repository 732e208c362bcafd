"""Multiclass benchmark: train on CamVid for a fixed time on the CPU, report IoU per class on the val split.

What it measures: the mean IoU (over CamVid's 11 classes, void ignored) on the WHOLE validation split
(101 images) of the notebook-09 recipe after ``--minutes`` of training with the ``cpu`` profile
(model, optimiser, learning rate, batch size from ``load_config(profile="cpu")``), the loss
``dice_ce`` with square-root inverse-frequency class weights, and the checkpoint with the lowest
validation loss (``fit(monitor="loss")``).

How:
    * images are resized once to ``--size`` x (4/3 ``--size``, a multiple of 32) and kept in memory, so
      the time budget goes to training, not to PNG decoding;
    * a short calibration times a few training steps and sizes the one-cycle schedule so that it ends
      inside the budget (``fit(max_minutes=...)`` stops the run in any case);
    * the final evaluation upsamples the logits (bilinear) to the full 480x360 labels: the numbers are
      at the labels' own resolution, not at the training size.

Usage (from the repository root)::

    python benchmarks/multiclass_camvid.py --minutes 10          # the reported number (2 CPU cores)
    python benchmarks/multiclass_camvid.py --quick               # a ~1-minute smoke run of the script
    python benchmarks/multiclass_camvid.py --minutes 10 --out results.json

Data: ``../shared/datasets/camvid`` (or a downloaded copy, see ``workshop data download camvid``).

Taught in: notebooks/09_multiclass.ipynb (the recipe)
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workshop.augment import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from workshop.config import DECODERS, load_config  # noqa: E402
from workshop.engine import fit, make_optimizer, make_scheduler  # noqa: E402
from workshop.env import seed_everything  # noqa: E402
from workshop.losses import create_loss  # noqa: E402
from workshop.metrics import SegmentationMetrics  # noqa: E402
from workshop.runs import build_model  # noqa: E402
from workshop.multiclass import class_frequency, format_class_table, inverse_frequency_weights, load_camvid  # noqa: E402

IGNORE = 255


class InMemorySegmentation(Dataset):
    """Images resized once (bilinear) with their masks (nearest), kept as uint8 arrays.

    ``train=True`` adds horizontal flips and a little brightness/contrast jitter, drawn from a
    generator seeded per item and epoch. ``full_masks=True`` keeps the masks at full resolution
    (for the final evaluation).
    """

    def __init__(self, source, height: int, width: int, train: bool = False, full_masks: bool = False, limit: int | None = None):
        n = len(source) if limit is None else min(limit, len(source))
        self.images, self.masks = [], []
        for i in range(n):
            image, mask = source.load(i)
            self.images.append(np.array(Image.fromarray(image).resize((width, height), Image.BILINEAR)))
            if not full_masks:
                mask = np.array(Image.fromarray(mask.astype(np.uint8)).resize((width, height), Image.NEAREST))
            self.masks.append(mask.astype(np.int64))
        self.train = train
        self.epoch = 0
        self.mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def set_random_seed(self, seed: int) -> None:  # called by fit() every epoch
        self.epoch = seed

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = torch.from_numpy(self.images[index]).permute(2, 0, 1).float() / 255
        mask = torch.from_numpy(self.masks[index])
        if self.train:
            rng = np.random.default_rng([self.epoch, index])
            if rng.random() < 0.5:
                image, mask = image.flip(-1), mask.flip(-1)
            image = ((image - 0.5) * rng.uniform(0.8, 1.2) + 0.5 + rng.uniform(-0.1, 0.1)).clamp(0, 1)
        return {"image": (image - self.mean) / self.std, "mask": mask}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget in minutes (default 10)")
    parser.add_argument("--quick", action="store_true", help="a tiny run that only proves the script works")
    parser.add_argument("--root", default=None, help="the camvid folder (default: found by workshop.data.registry)")
    parser.add_argument("--size", type=int, default=None, help="training image height (default: the cpu profile's image_size)")
    parser.add_argument("--decoder", choices=DECODERS, default=None,
                        help="U-Net decoder widths (default: the cpu profile's, light)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--run-dir", default=None, help="where checkpoints go (default: a temporary folder)")
    parser.add_argument("--out", default=None, help="write the results as JSON here (e.g. benchmarks/results/NAME.json)")
    return parser.parse_args(argv)


def calibrate(model, loader, loss_fn, cfg, steps: int = 3) -> float:
    """Seconds per training step, measured on a throwaway copy of the model (the first step is a warm-up)."""
    probe = copy.deepcopy(model)
    optimizer = make_optimizer(probe, cfg.train.optimizer, cfg.train.lr, cfg.train.weight_decay)
    probe.train()
    times = []
    for i, batch in enumerate(loader):
        t0 = time.monotonic()
        loss = loss_fn(probe(batch["image"]), batch["mask"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.monotonic() - t0)
        if i >= steps:
            break
    return float(np.median(times[1:] if len(times) > 1 else times))


@torch.no_grad()
def evaluate_full_resolution(model, dataset: InMemorySegmentation, num_classes: int, names) -> SegmentationMetrics:
    """Confusion matrix over the whole split, logits upsampled to each label's own size."""
    model.eval()
    metrics = SegmentationMetrics(num_classes, ignore_index=IGNORE, class_names=list(names))
    for index in range(len(dataset)):
        item = dataset[index]
        logits = model(item["image"][None])
        logits = F.interpolate(logits, size=item["mask"].shape, mode="bilinear", align_corners=False)
        metrics.update(logits.argmax(1), item["mask"][None])
    return metrics


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("WORKSHOP_OFFLINE", "1")
    t_start = time.monotonic()
    overrides = {"data": {"task": "multiclass"}, "model": {"decoder": args.decoder} if args.decoder else {}}
    cfg = load_config(profile="cpu", overrides=overrides)
    minutes = 1.0 if args.quick else args.minutes
    height = args.size or (64 if args.quick else cfg.data.image_size)
    width = max(32, int(round(height * 4 / 3 / 32)) * 32)
    limit_train, limit_val = (8, 4) if args.quick else (None, None)
    batch_size = 4 if args.quick else cfg.data.batch_size
    seed_everything(cfg.train.seed)

    try:
        train_src, val_src = load_camvid("train", args.root), load_camvid("val", args.root)
    except Exception as err:  # DataError with the download hint
        print(f"CamVid is not available: {err}")
        return 2
    names = train_src.label_map.names
    num_classes = len(names)
    t0 = time.monotonic()
    train_set = InMemorySegmentation(train_src, height, width, train=True, limit=limit_train)
    val_set = InMemorySegmentation(val_src, height, width, limit=limit_val)
    val_full = InMemorySegmentation(val_src, height, width, full_masks=True, limit=limit_val)
    print(f"data: {len(train_set)} train / {len(val_full)} val images, trained at {height}x{width} "
          f"(loaded in {time.monotonic() - t0:.1f} s)")

    counts = class_frequency(train_set.masks, num_classes, IGNORE)
    weights = inverse_frequency_weights(counts, power=0.5)
    loss_fn = create_loss("dice_ce", mode="multiclass", ignore_index=IGNORE, class_weights=weights)
    model = build_model(cfg, num_classes)  # the profile's arch, encoder, weights and decoder
    generator = torch.Generator().manual_seed(cfg.train.seed)
    drop_last = len(train_set) > batch_size
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=generator, drop_last=drop_last)
    val_loader = DataLoader(val_set, batch_size=batch_size)
    print(f"model: {cfg.model.arch} + {cfg.model.encoder} ({model.weights_source.split(' (')[0]}), {cfg.model.decoder} decoder, "
          f"{cfg.train.optimizer} lr {cfg.train.lr:g}, {cfg.train.scheduler}, batch {batch_size}, loss dice_ce, "
          f"class weights {[round(w, 2) for w in weights]}, threads {torch.get_num_threads()}")

    step_s = calibrate(model, train_loader, loss_fn, cfg)
    epoch_s = step_s * (len(train_loader) + len(val_loader) / 3)
    remaining = minutes * 60 - (time.monotonic() - t_start)
    epochs = 1 if args.quick else max(1, math.floor(remaining / epoch_s))
    print(f"calibration: {step_s:.2f} s/step, about {epoch_s:.0f} s/epoch -> {epochs} epoch(s) in the remaining "
          f"{remaining / 60:.1f} min")

    optimizer = make_optimizer(model, cfg.train.optimizer, cfg.train.lr, cfg.train.weight_decay)
    scheduler = make_scheduler(optimizer, cfg.train.scheduler, cfg.train.lr, epochs, len(train_loader))
    run_dir = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="camvid-bench-"))

    def report(history):
        h = history[-1]
        print(f"epoch {h['epoch']}/{epochs}: train loss {h['train_loss']:.3f} | val loss {h['val_loss']:.3f} "
              f"| val mIoU (training size) {h['val_iou']:.3f} | {h['elapsed_s']:.0f} s")

    remaining = minutes * 60 - (time.monotonic() - t_start)
    result = fit(model, train_loader, val_loader, loss_fn, optimizer, epochs, "cpu", scheduler=scheduler,
                 run_dir=run_dir, num_classes=num_classes, monitor="loss", amp=False, seed=cfg.train.seed,
                 max_minutes=round(max(remaining, 1.0) / 60, 3), on_epoch_end=report)
    train_minutes = (time.monotonic() - t_start) / 60
    best = torch.load(run_dir / "checkpoints" / "best.pt", map_location="cpu", weights_only=False)
    model.load_state_dict(best["model"])
    t_eval = time.monotonic()
    metrics = evaluate_full_resolution(model, val_full, num_classes, names)
    scores = metrics.compute()
    print(f"\n{result.stopped_reason}; best epoch by val loss: {best['epoch']} of {len(result.history)}; "
          f"{train_minutes:.1f} min from start to the end of training; evaluation {time.monotonic() - t_eval:.0f} s")
    print(f"CamVid val ({len(val_full)} images, full 480x360 labels, void ignored):")
    print(format_class_table(metrics.report(), columns=("iou", "precision", "recall", "support")))
    print(f"mIoU {scores['iou']:.4f} | pixel accuracy {scores['pixel_accuracy']:.4f}")
    if args.out:
        payload = {
            "benchmark": "multiclass_camvid", "quick": args.quick, "minutes": minutes,
            "train_minutes": round(train_minutes, 2), "epochs_run": len(result.history), "best_epoch": best["epoch"],
            "size": [height, width], "threads": torch.get_num_threads(), "model": f"{cfg.model.arch}+{cfg.model.encoder}", "decoder": cfg.model.decoder,
            "miou": scores["iou"], "pixel_accuracy": scores["pixel_accuracy"],
            "per_class_iou": dict(zip(names, scores["per_class_iou"])),
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(payload, indent=2))
        print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
