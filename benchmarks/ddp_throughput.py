"""Measure training on torchrun: one process, then N, through `torchrun -m workshop train`.

For each process count the script runs the real command a user types,
``python -m torch.distributed.run --nproc_per_node N -m workshop train --profile P ...``, in a
fresh process, then reads the run folder's ``metrics.json``. It reports:

* wall time of the whole command, and wall time until validation IoU first reaches ``--target-iou``
  (the ``elapsed_s`` of that epoch: training + validation + checkpoints, without start-up);
* images/s of the training loop (images of the finished steps / ``train_time_s``, all processes),
  counted with the batch the recipe ran (``recipe.batch_size`` in the run's ``config.yaml``), which
  can be smaller than the configured one (the recipe caps it to the data);
* the loop's throughput against a bare model step: the same model, batch (per GPU) and AMP setting,
  forward + backward + optimiser step on one tensor already on the GPU, timed here in this process;
  ``loop / (bare x N)`` says how much the data loading, metrics and DDP communication cost;
* whether AMP was on (``train.amp`` and a CUDA device).

    python benchmarks/ddp_throughput.py --profile gpu --nproc 1 --nproc 8        # on an 8-GPU machine
    python benchmarks/ddp_throughput.py --profile gpu --nproc 1 --nproc 2 --json benchmarks/results/ddp_gpu.json
    python benchmarks/ddp_throughput.py --quick                                  # CPU, smoke, 1 and 2 gloo processes

No test depends on this script; it writes numbers, never a verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_training(nproc: int, profile: str, overrides: list[str], workdir: Path, env: dict[str, str]) -> dict:
    run_dir = workdir / f"run-n{nproc}-{time.time_ns()}"
    config = workdir / f"{profile}.yaml"
    config.write_text(f"profile: {profile}\n")  # the profile's recipe as it is; --set changes it
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
           "-m", "workshop", "train", "--config", str(config), "--run-dir", str(run_dir),
           "--set", "train.progress=false", *[a for o in overrides for a in ("--set", o)]]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=workdir)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"torchrun with {nproc} process(es) failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"wall_s": wall, "history": metrics["history"], "best": metrics["best"], "run_dir": str(run_dir),
            "recipe": recipe_of(run_dir), "log": proc.stdout}


def recipe_of(run_dir: Path) -> dict:
    """The ``recipe:`` section of a run's ``config.yaml``: what ran (batch size, steps), not what was configured."""
    import yaml

    data = yaml.safe_load((Path(run_dir) / "config.yaml").read_text()) or {}
    recipe = data.get("recipe")
    if not recipe or "batch_size" not in recipe:
        raise SystemExit(f"{run_dir}/config.yaml has no recipe: section with the batch size that ran")
    return recipe


def loop_numbers(history: list[dict], global_batch: int, target_iou: float) -> dict:
    """Images/s, time to the target IoU and the best IoU from a run's history.

    ``global_batch`` is the batch the recipe ran (:func:`recipe_of`), never the configured one.
    """
    train_s = sum(h["train_time_s"] for h in history)
    images = sum(int(h["steps"]) * global_batch for h in history)
    reached = next((h for h in history if h["val_iou"] is not None and h["val_iou"] >= target_iou), None)
    return {
        "epochs": len(history),
        "images_per_s": round(images / train_s, 1) if train_s else None,
        "time_to_target_s": round(reached["elapsed_s"], 1) if reached else None,
        "epoch_of_target": reached["epoch"] if reached else None,
        "best_val_iou": round(max(h["val_iou"] for h in history), 4),
    }


def bare_step_images_per_s(cfg, per_gpu_batch: int, steps: int = 30, warmup: int = 5) -> tuple[float, bool, str]:
    """Images/s of forward + backward + step on one resident batch (no data loading, no metrics, no DDP).

    The same precision (``engine.mixed_precision``: bfloat16, or float16 with a GradScaler), memory
    format and cuDNN setting as the run.
    """
    import torch

    from workshop.engine import make_optimizer, mixed_precision
    from workshop.env import get_device
    from workshop.losses import create_loss
    from workshop.runs import build_model

    device = get_device(cfg.train.device)
    dtype, scaler = mixed_precision(device, cfg.train.amp, cfg.train.amp_dtype)
    amp = dtype is not None
    channels_last = bool(cfg.train.channels_last and device.type == "cuda")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = bool(cfg.train.cudnn_benchmark)
    model = build_model(cfg, 2, pretrained=False).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = create_loss(cfg.train.loss, cfg.data.task, ignore_index=cfg.data.ignore_index).to(device)
    optimizer = make_optimizer(model, cfg.train.optimizer, cfg.train.lr, cfg.train.weight_decay)
    size = cfg.data.image_size
    images = torch.randn(per_gpu_batch, 3, size, size, device=device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    masks = torch.randint(0, 2, (per_gpu_batch, size, size), device=device)

    def step() -> None:
        with torch.autocast("cuda", dtype=dtype or torch.float16, enabled=amp):
            loss = loss_fn(model(images), masks)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return per_gpu_batch * steps / (time.perf_counter() - t0), amp, str(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="gpu", choices=("smoke", "cpu", "gpu"))
    parser.add_argument("--nproc", type=int, action="append", help="process counts to run (repeatable; default 1 and all GPUs)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--target-iou", type=float, default=0.80)
    parser.add_argument("--quick", action="store_true", help="smoke profile on the CPU, 1 and 2 gloo processes")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    import torch

    if args.quick:
        args.profile, args.nproc = "smoke", args.nproc or [1, 2]
        args.overrides = [*args.overrides, "train.device=cpu", "train.epochs=2"]
    counts = args.nproc or sorted({1, max(1, torch.cuda.device_count())})

    sys.path.insert(0, str(REPO))
    from workshop.config import load_config
    from workshop.distributed import per_rank_batch

    cfg = load_config(profile=args.profile, overrides=args.overrides)
    workdir = Path(tempfile.mkdtemp(prefix="ddp-bench-"))
    env = dict(os.environ, WORKSHOP_OFFLINE="1", PYTHONPATH=str(REPO), MPLBACKEND="Agg")
    env.setdefault("WORKSHOP_DATA_DIR", str(workdir / "data"))
    # generate the embedded data once, outside the timings
    subprocess.run([sys.executable, "-m", "workshop", "data", "generate", "--profile", args.profile],
                   env=env, check=True, capture_output=True)
    results = {"profile": args.profile, "overrides": args.overrides, "configured_batch": cfg.data.batch_size,
               "gpus_visible": torch.cuda.device_count(), "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
               "target_iou": args.target_iou, "runs": []}
    for n in counts:
        run = run_training(n, args.profile, args.overrides, workdir, env)
        batch = int(run["recipe"]["batch_size"])  # what ran: the recipe may cap the configured batch
        per_gpu = per_rank_batch(batch, n)
        bare, amp, device = bare_step_images_per_s(cfg, per_gpu)  # after the run: torchrun's processes had the GPUs
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        loop = loop_numbers(run["history"], batch, args.target_iou)
        row = {"nproc": n, "global_batch": batch, "per_process_batch": per_gpu, "device": device, "amp": amp,
               "wall_s": round(run["wall_s"], 1), **loop,
               "bare_step_images_per_s_per_process": round(bare, 1),
               "loop_vs_bare": round(loop["images_per_s"] / (bare * n), 3) if loop["images_per_s"] else None}
        results["runs"].append(row)
        print(json.dumps(row))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    print(f"{'nproc':>5} {'amp':>5} {'wall s':>7} {'to IoU s':>8} {'img/s':>8} {'bare img/s x N':>14} {'loop/bare':>9} {'best IoU':>8}")
    for r in results["runs"]:
        print(f"{r['nproc']:>5} {str(r['amp']):>5} {r['wall_s']:>7} {str(r['time_to_target_s']):>8} {r['images_per_s']:>8} "
              f"{round(r['bare_step_images_per_s_per_process'] * r['nproc'], 1):>14} {r['loop_vs_bare']:>9} {r['best_val_iou']:>8}")


if __name__ == "__main__":
    main()
