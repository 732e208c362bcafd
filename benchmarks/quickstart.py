"""Measure the README's main job: wall time of `workshop quickstart` and the validation IoU it reaches.

Runs the installed console script in a fresh process (imports, data generation and the
figures included), with a fresh data dir so the embedded data set is generated too (pass
``--reuse-data`` to time a warm cache), then reads the run folder's metrics.json.

    python benchmarks/quickstart.py                  # cpu profile, 1 run
    python benchmarks/quickstart.py --repeat 3       # several runs, shows the spread
    python benchmarks/quickstart.py --profile smoke
    python benchmarks/quickstart.py --max-minutes 1.1 --set train.lr=0.003   # a candidate recipe, same command

``--max-minutes`` and ``--set`` are passed to ``workshop quickstart`` as they are (a benchmark may
choose settings; the training is the command's).

Target (issue: foundation): at most 3 minutes wall on 2 CPU cores, validation IoU >= 0.80.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(profile: str, reuse_data: bool, workdir: Path, extra: list[str] | None = None) -> dict:
    run_dir = workdir / f"run-{time.time_ns()}"
    env = dict(os.environ, WORKSHOP_OFFLINE="1")
    if not reuse_data:
        env["WORKSHOP_DATA_DIR"] = str(workdir / f"data-{time.time_ns()}")
    exe = shutil.which("workshop") or str(Path(sys.executable).with_name("workshop"))
    t0 = time.perf_counter()
    proc = subprocess.run([exe, "quickstart", "--profile", profile, "--run-dir", str(run_dir), *(extra or [])],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"quickstart failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    history = metrics["history"]
    return {
        "wall_s": round(wall, 1),
        "best_val_iou": round(metrics["best"]["val_iou"], 4),
        "best_val_dice": round(metrics["best"]["val_dice"], 4),
        "best_epoch": metrics["best"]["epoch"],
        "epochs": len(history),
        "steps": sum(int(h.get("steps", 0)) for h in history),
        "margin_over_baseline": metrics.get("margin"),
        "train_s": round(sum(h["train_time_s"] for h in history), 1),
        "epoch_s": round(statistics.mean(h["epoch_time_s"] for h in history), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", choices=("smoke", "cpu", "gpu"))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--reuse-data", action="store_true", help="keep the cached embedded data set")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--max-minutes", type=float, help="passed to workshop quickstart")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="passed to workshop quickstart")
    args = parser.parse_args()
    extra = [f"--max-minutes={args.max_minutes}"] if args.max_minutes else []
    for item in args.overrides:
        extra += ["--set", item]
    import torch

    print(f"workshop quickstart benchmark: profile {args.profile}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            r = run_once(args.profile, args.reuse_data, Path(tmp), extra)
            results.append(r)
            print(f"run {i + 1}: wall {r['wall_s']} s, best val IoU {r['best_val_iou']} (Dice {r['best_val_dice']}) "
                  f"at epoch {r['best_epoch']}/{r['epochs']} ({r['steps']} steps), training {r['train_s']} s, "
                  f"{r['epoch_s']} s/epoch, margin over the trivial baseline {r['margin_over_baseline']}")
    walls = [r["wall_s"] for r in results]
    ious = [r["best_val_iou"] for r in results]
    print(f"summary: wall median {statistics.median(walls)} s (min {min(walls)}, max {max(walls)}); "
          f"val IoU median {statistics.median(ious)} (min {min(ious)}, max {max(ious)})")
    if args.json:
        args.json.write_text(json.dumps({"profile": args.profile, "options": extra, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
