"""One prepared GPU check: the gpu profile, mixed precision, torchrun and Mask R-CNN, in one JSON.

Everything trains through the commands a user types (``workshop quickstart``, ``workshop train``,
``torchrun ... -m workshop train``), each in a fresh process; the numbers are read from the run
folders. It fits in about 8 minutes on one GPU (each part has its own time limit, and parts that
would pass the overall limit are skipped and say so) and writes one JSON:

* ``quickstart``: ``workshop quickstart --profile gpu`` with a fresh data folder, so generating the
  embedded data set is in the wall time; best validation IoU, images/s of the training loop (with
  the batch the recipe ran), the gpu profile's choices from the run log, and the loop against a
  bare forward/backward/optimiser step of the same model, batch and precision
  (``loop_vs_bare``; target >= 0.9). Targets: val IoU >= 0.92 in <= 60 s wall.
* ``syncs_per_step``: one training epoch in this process under
  ``torch.cuda.set_sync_debug_mode("warn")``, which warns at every host-device synchronisation;
  target <= 2 per step (GradScaler's own check included).
* ``amp``: a short run with ``train.amp_dtype=float16`` and one with ``bfloat16`` (where the card
  has it): images/s and val IoU, and the bare step of each.
* ``torchrun``: ``--nproc_per_node`` = the number of GPUs, a short run: images/s, val IoU.
* ``maskrcnn``: ``workshop train --config configs/maskrcnn_progressive.yaml --max-minutes M`` on the
  embedded set: steps, seconds per step, validation mask mAP.
* ``peak_gpu_memory_mib``: per part, the most memory in use on the GPUs (``nvidia-smi``, sampled),
  and the bare steps' ``torch.cuda.max_memory_allocated``.

    python benchmarks/gpu_check.py --out gpu_check.json            # on a GPU machine
    python benchmarks/gpu_check.py --dry-run --out /tmp/check.json # on the CPU: tiny sizes, proves the script

``--dry-run`` runs every part on the CPU with the smoke profile and tiny sizes (a smoke test, not a
measurement: the numbers mean nothing; the mixed-precision part runs only its bare step, since
the CPU does not autocast here, and the sync count needs CUDA's debug mode). No test needs a GPU;
``tests/test_gpu_check.py`` runs the dry run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

TOTAL_LIMIT_S = 8 * 60  # the whole check
TINY_INSTANCE = """\
data: {source: embedded, task: instance, num_images: 12, image_size: 64}
train: {device: cpu}
instance: {image_size: 64, batch_size: 2, min_stage_steps: 2, checkpoint_every: 2, eval_every_stage: false}
stages:
  - {title: heads, epochs: 1, lr: 0.01, step_size: 1, trainable: heads, warmup_steps: 2}
  - {title: all, epochs: 1, lr: 0.005, step_size: 1, trainable: all}
"""


class GpuMemory:
    """Samples the memory in use on all GPUs (``nvidia-smi``) while a command runs; the peak in MiB."""

    def __init__(self, every_s: float = 0.25) -> None:
        self.every_s, self.peak, self._stop = every_s, None, threading.Event()
        self._exe = shutil.which("nvidia-smi")

    def __enter__(self) -> "GpuMemory":
        if self._exe:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run([self._exe, "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout
                used = sum(float(x) for x in out.split())
                self.peak = used if self.peak is None else max(self.peak, used)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                return
            self._stop.wait(self.every_s)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()


class Check:
    """Runs the parts, keeps the overall time limit, collects one result dict."""

    def __init__(self, dry_run: bool, work: Path, limit_s: float) -> None:
        self.dry_run, self.work, self.t0, self.limit_s = dry_run, work, time.monotonic(), limit_s
        self.env = dict(os.environ, WORKSHOP_OFFLINE="1", MPLBACKEND="Agg",
                        PYTHONPATH=str(REPO) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""))
        self.env["WORKSHOP_DATA_DIR"] = str(work / "data")  # fresh: the quickstart generates its data in its wall time
        if dry_run:
            self.env["CUDA_VISIBLE_DEVICES"] = ""

    def left_s(self) -> float:
        return self.limit_s - (time.monotonic() - self.t0)

    def command(self, args: list[str], limit_s: float) -> dict[str, Any]:
        """Run a command (a fresh process); wall time, output, peak GPU memory, or the error."""
        limit = min(limit_s, self.left_s())
        if limit < 10:
            return {"skipped": f"not enough of the {self.limit_s:.0f}-s limit left"}
        with GpuMemory() as memory:
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(args, cwd=self.work, env=self.env, capture_output=True, text=True, timeout=limit)
            except subprocess.TimeoutExpired:
                return {"error": f"timed out after {limit:.0f} s", "command": " ".join(args)}
            wall = time.perf_counter() - t0
        out = {"wall_s": round(wall, 1), "peak_gpu_memory_mib": memory.peak, "command": " ".join(map(str, args))}
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-12:]
            out["error"] = "\n".join(tail)
        out["stdout"] = proc.stdout
        return out

    def workshop(self, args: list[str], limit_s: float) -> dict[str, Any]:
        return self.command([sys.executable, "-m", "workshop.cli", *map(str, args)], limit_s)


def run_numbers(run_dir: Path) -> dict[str, Any]:
    """Val IoU, steps, images/s of the loop (the recipe's batch) from a semantic run folder."""
    from ddp_throughput import recipe_of

    metrics = json.loads((run_dir / "metrics.json").read_text())
    history = metrics["history"]
    batch = int(recipe_of(run_dir)["batch_size"])
    train_s = sum(h["train_time_s"] for h in history)
    steps = sum(int(h["steps"]) for h in history)
    return {"best_val_iou": round(metrics["best"]["val_iou"], 4), "epochs": len(history), "steps": steps,
            "batch": batch, "train_s": round(train_s, 1),
            "images_per_s": round(steps * batch / train_s, 1) if train_s else None}


def bare_step(profile: str, overrides: list[str], batch: int, steps: int) -> dict[str, Any]:
    """Images/s of the bare model step (ddp_throughput's), and this process's peak GPU memory."""
    import torch

    from ddp_throughput import bare_step_images_per_s
    from workshop.config import load_config

    cfg = load_config(profile=profile, overrides=overrides)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    images_per_s, amp, device = bare_step_images_per_s(cfg, batch, steps=steps, warmup=max(2, steps // 5))
    peak = round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {"images_per_s": round(images_per_s, 1), "amp": amp, "amp_dtype": cfg.train.amp_dtype, "device": device,
            "max_memory_allocated_mib": peak}


def syncs_per_step(profile: str, overrides: list[str], steps: int) -> dict[str, Any]:
    """Host-device synchronisations per training step, counted by CUDA's own sync debug mode."""
    import warnings

    import torch

    from workshop.config import load_config
    from workshop.budget import Budget
    from workshop.engine import fit_hooks, make_optimizer, make_scheduler, train_one_epoch
    from workshop.env import get_device
    from workshop.hooks import ChannelsLast, MixedPrecision, TrainingMetrics
    from workshop.losses import create_loss
    from workshop.models import build_model
    from workshop.recipe import prepare_data

    cfg = load_config(profile=profile, overrides=overrides)
    device = get_device(cfg.train.device)
    if device.type != "cuda":
        return {"skipped": "no CUDA device: the sync debug mode needs one (tests/test_gpu_path.py counts on the CPU)"}
    torch.backends.cudnn.benchmark = bool(cfg.train.cudnn_benchmark)
    data = prepare_data(cfg, device)
    model = build_model(data.cfg, 2, pretrained=False).to(device)
    channels_last = bool(cfg.train.channels_last)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = create_loss(cfg.train.loss, cfg.data.task, ignore_index=cfg.data.ignore_index).to(device)
    optimizer = make_optimizer(model, cfg.train.optimizer, cfg.train.lr, cfg.train.weight_decay)
    scheduler = make_scheduler(optimizer, cfg.train.scheduler, cfg.train.lr, total_steps=10 * steps)
    def hooks(cap: int):  # what fit puts around the loop (engine.fit_hooks), capped at `cap` steps
        more = [TrainingMetrics(2), *([ChannelsLast(device)] if channels_last else []), Budget(max_steps=cap)]
        return fit_hooks(optimizer, device, scheduler, cfg.train.amp and cfg.train.amp_dtype, more=more)

    train_one_epoch(model, data.train_loader, loss_fn, optimizer, device, hooks(3))  # warm-up
    torch.cuda.synchronize()
    timed = hooks(steps)
    precision = timed.find(MixedPrecision)
    dtype, scaler = precision.dtype, precision.scaler
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train_one_epoch(model, data.train_loader, loss_fn, optimizer, device, timed)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message) for w in caught if "synchroniz" in str(w.message).lower()]
    done = int(timed.find(TrainingMetrics).steps)
    return {"steps": done, "syncs": len(syncs), "syncs_per_step": round(len(syncs) / max(done, 1), 3),
            "amp_dtype": str(dtype), "grad_scaler": scaler is not None, "first_messages": sorted(set(syncs))[:5]}


def semantic_run(check: Check, name: str, args: list[str], limit_s: float) -> dict[str, Any]:
    run_dir = check.work / name
    out = check.workshop([*args, "--run-dir", run_dir], limit_s)
    if "error" not in out and "skipped" not in out:
        out.update(run_numbers(run_dir))
        out["gpu_profile_log"] = [line for line in out["stdout"].splitlines() if line.startswith(("gpu profile", "  data.", "  train."))][:12]
    out.pop("stdout", None)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, smoke profile, tiny sizes: proves the script, measures nothing")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "gpu_check.json")
    parser.add_argument("--limit-s", type=float, default=TOTAL_LIMIT_S, help="overall time limit (default 8 minutes)")
    parser.add_argument("--work", type=Path, help="folder for data and run folders (default: a temporary one)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    import torch

    check = Check(args.dry_run, work, args.limit_s)
    gpus = 0 if args.dry_run else torch.cuda.device_count()
    here = ["train.device=cpu"] if args.dry_run else []  # the parts run in this process: the CPU in a dry run
    profile = "smoke" if args.dry_run else "gpu"
    short = ["--set", "train.epochs=1"] if args.dry_run else ["--set", "train.epochs=5"]
    result: dict[str, Any] = {
        "dry_run": args.dry_run, "gpus": gpus, "gpu": torch.cuda.get_device_name(0) if gpus else None,
        "torch": torch.__version__, "cpu_count": os.cpu_count(), "limit_s": args.limit_s,
        "targets": {"quickstart_val_iou": 0.92, "quickstart_wall_s": 60, "loop_vs_bare": 0.9, "syncs_per_step": 2},
    }

    # 1. the gpu profile quickstart, as the README says it, data generation included
    quick = semantic_run(check, "quickstart", ["quickstart", "--profile", profile, *(short if args.dry_run else [])],
                         limit_s=150)
    result["quickstart"] = quick
    from workshop.config import load_config

    base = load_config(profile=profile).train
    if "batch" in quick:
        bare = bare_step(profile, here, quick["batch"], steps=3 if args.dry_run else 30)
        quick["bare_step"] = bare
        quick["loop_vs_bare"] = round(quick["images_per_s"] / bare["images_per_s"], 3) if quick.get("images_per_s") else None
    result["syncs_per_step"] = syncs_per_step(profile, here, steps=3 if args.dry_run else 40) if check.left_s() > 60 else {"skipped": "time"}

    # 2. mixed precision: float16 (GradScaler) and bfloat16 (where the card has it)
    result["amp"] = {}
    dtypes = ["float16"] if args.dry_run else ["float16", "bfloat16"]
    for dtype in dtypes:
        if dtype == "bfloat16" and gpus and torch.cuda.get_device_capability(0) < (8, 0):
            result["amp"][dtype] = {"skipped": "compute capability below 8.0: no native bfloat16"}
            continue
        if args.dry_run:  # the CPU has no autocast here: the quickstart above ran this command already
            part = {"note": "dry run: the bare step only"}
        else:
            sets = [*short, "--set", f"train.amp_dtype={dtype}"]
            part = semantic_run(check, f"amp-{dtype}", ["quickstart", "--profile", profile, *sets], limit_s=90)
        batch = part.get("batch", quick.get("batch", 2))
        part["bare_step"] = bare_step(profile, [*here, f"train.amp_dtype={dtype}"], batch, steps=3 if args.dry_run else 20)
        result["amp"][dtype] = part

    # 3. torchrun, one process per GPU (gloo on the CPU in the dry run)
    nproc = max(1, gpus)
    config = work / f"{profile}.yaml"
    config.write_text(f"profile: {profile}\n" + ("train: {device: cpu}\n" if args.dry_run else ""))
    run_dir = work / "torchrun"
    tr = check.command([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--standalone",
                        "-m", "workshop", "train", "--config", str(config), *short, "--set", "train.progress=false",
                        "--run-dir", str(run_dir)], limit_s=120)
    if "error" not in tr and "skipped" not in tr:
        tr.update(run_numbers(run_dir))
    tr.pop("stdout", None)
    result["torchrun"] = {"nproc_per_node": nproc, **tr}

    # 4. a short Mask R-CNN run through the CLI (the embedded instance set)
    if args.dry_run:
        instance_config = work / "instance.yaml"
        instance_config.write_text(TINY_INSTANCE)
        instance_args = ["train", "--config", instance_config]
    else:
        instance_args = ["train", "--config", REPO / "configs" / "maskrcnn_progressive.yaml", "--max-minutes", "1.5"]
    run_dir = work / "maskrcnn"
    mr = check.workshop([*instance_args, "--run-dir", run_dir], limit_s=180)
    if "error" not in mr and "skipped" not in mr:
        summary = json.loads((run_dir / "summary.json").read_text())
        val = summary.get("val") or {}
        mr.update(steps=summary.get("steps"), seconds_per_step=summary.get("seconds_per_step"),
                  image_size=summary.get("image_size"), val_mask_map=val.get("segm_map"), val_mask_map_50=val.get("segm_map_50"))
    mr.pop("stdout", None)
    result["maskrcnn"] = mr

    peaks = [p.get("peak_gpu_memory_mib") for p in (quick, tr, mr, *result["amp"].values()) if isinstance(p, dict)]
    peaks = [p for p in peaks if p is not None]
    result["peak_gpu_memory_mib"] = max(peaks) if peaks else None
    result["elapsed_s"] = round(time.monotonic() - check.t0, 1)
    result["baseline_precision"] = {"amp": base.amp, "amp_dtype": base.amp_dtype}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    failed = [name for name in ("quickstart", "torchrun", "maskrcnn") if "error" in result[name]]
    failed += [f"amp.{k}" for k, v in result["amp"].items() if "error" in v]
    print(json.dumps({k: result[k] for k in ("gpu", "elapsed_s", "peak_gpu_memory_mib")}), f"-> {args.out}")
    if failed:
        print("FAILED parts: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
