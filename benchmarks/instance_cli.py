"""Instance benchmarks through the commands a user types: ``workshop train`` then ``workshop evaluate``.

Each case runs, as subprocesses::

    workshop train --config configs/maskrcnn_progressive.yaml --set data.source=... --max-minutes M --run-dir RUN
    workshop evaluate RUN DATA --out RUN/evaluate

and reports mask and box mAP (@[.5:.95], @.5), the steps the budget gave, seconds per step, the
wall time of each command and the peak memory (max RSS of the train command).

Cases:

* ``pennfudan``: Penn-Fudan (136 train / 34 val, the fixed seeded split), 15 minutes; target mask
  mAP >= 0.50 (the benchmark script's own path measured 0.516).
* ``kudzu``: ``../shared/datasets/kudzu`` (VIA; 24 train, 16 val), 5 and 10 minutes each.

Usage (2 cores, a quiet machine)::

    python benchmarks/instance_cli.py pennfudan                   # ~17 min
    python benchmarks/instance_cli.py kudzu                       # ~5.5 + 10.5 min
    python benchmarks/instance_cli.py kudzu --minutes 5           # one budget
    python benchmarks/instance_cli.py kudzu --quick               # ~2 min: proves the script works
    python benchmarks/instance_cli.py all --out benchmarks/results/instance_cli.json

Taught in: notebooks/10_instance.ipynb (the recipe)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "maskrcnn_progressive.yaml"
SHARED = ROOT.parent / "shared" / "datasets"


def cases(shared: Path) -> dict[str, dict]:
    kudzu = shared / "kudzu"
    return {
        "pennfudan": {
            "minutes": [15.0],
            "set": ["data.source=pennfudan", "instance.eval_every_stage=false"],  # upright: the recipe turns vflip/rotate90 off
            "data": "pennfudan", "split": "val", "needs": shared / "pennfudan",
        },
        "kudzu": {
            "minutes": [5.0, 10.0],
            "set": ["data.source=annotations", "instance.eval_every_stage=false", f"data.root={kudzu / 'train' / 'via_region_data.json'}",
                    f"data.val={kudzu / 'val' / 'via_region_data.json'}"],
            "data": str(kudzu / "val" / "via_region_data.json"), "split": None, "needs": kudzu,
        },
    }


def run(cmd: list[str], log) -> tuple[int, float, str]:
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.monotonic() - t0
    log.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n")
    log.flush()
    return proc.returncode, seconds, proc.stdout + proc.stderr


def one(name: str, case: dict, minutes: float, out_dir: Path, extra: list[str], log) -> dict:
    workshop = [sys.executable, "-m", "workshop.cli"]
    run_dir = out_dir / f"{name}-{minutes:g}min"
    sets = [x for s in case["set"] + extra for x in ("--set", s)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    code, train_s, text = run([*workshop, "train", "--config", str(CONFIG), *sets, "--max-minutes", str(minutes),
                               "--run-dir", str(run_dir)], log)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if code != 0:
        return {"case": name, "minutes": minutes, "error": text.strip().splitlines()[-1] if text.strip() else f"exit {code}"}
    summary = json.loads((run_dir / "summary.json").read_text())
    evaluate = [*workshop, "evaluate", str(run_dir), case["data"], "--out", str(run_dir / "evaluate")]
    if case["split"]:
        evaluate += ["--split", case["split"]]
    code, eval_s, text = run(evaluate, log)
    if code != 0:
        return {"case": name, "minutes": minutes, "error": text.strip().splitlines()[-1]}
    metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    return {
        "case": name, "minutes": minutes, "run": str(run_dir),
        "mask_map": metrics["mask"]["map"], "mask_map_50": metrics["mask"]["map_50"],
        "box_map": metrics["box"]["map"], "box_map_50": metrics["box"]["map_50"],
        "mean_instance_iou": metrics["mean_instance_iou"],
        "steps": summary["steps"], "plan": [(p["title"], p["steps"]) for p in summary["plan"]],
        "seconds_per_step": summary["seconds_per_step"], "image_size": summary["image_size"],
        "anchors": summary["model_args"]["anchor_sizes"], "detections_per_image": summary["model_args"]["box_detections_per_img"],
        "train_wall_s": round(train_s, 1), "evaluate_wall_s": round(eval_s, 1),
        "peak_rss_mib": round(max(peak, before) / 1024, 1),  # Linux: KiB; the largest child so far
        "images": metrics["images"], "objects": metrics["objects"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("case", choices=("pennfudan", "kudzu", "all"))
    parser.add_argument("--minutes", type=float, action="append", help="budget(s) instead of the case's own")
    parser.add_argument("--quick", action="store_true", help="2-minute budget, 2 stage steps minimum: only checks the script")
    parser.add_argument("--shared", default=str(SHARED), help="the shared datasets folder")
    parser.add_argument("--work", default=None, help="where run folders go (default: benchmarks/runs)")
    parser.add_argument("--set", dest="extra", action="append", default=[], help="extra config overrides")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    table = cases(Path(args.shared))
    names = list(table) if args.case == "all" else [args.case]
    work = Path(args.work) if args.work else ROOT / "benchmarks" / "runs"
    work.mkdir(parents=True, exist_ok=True)
    extra = list(args.extra) + (["instance.min_stage_steps=2", "instance.max_image_size=320"] if args.quick else [])
    results = []
    with (work / "instance_cli.log").open("a") as log:
        for name in names:
            case = table[name]
            if not Path(case["needs"]).exists():
                print(f"{name}: {case['needs']} is not here; skipped")
                continue
            for minutes in ([2.0] if args.quick else args.minutes or case["minutes"]):
                r = one(name, case, minutes, work, extra, log)
                results.append(r)
                if "error" in r:
                    print(f"{name} {minutes:g} min: FAILED: {r['error']}")
                else:
                    print(f"{name} {minutes:g} min: mask mAP {r['mask_map']:.3f} (@.5 {r['mask_map_50']:.3f}), box mAP "
                          f"{r['box_map']:.3f} (@.5 {r['box_map_50']:.3f}), IoU/object {r['mean_instance_iou']:.3f} | "
                          f"{r['steps']} steps, {r['seconds_per_step']:.2f} s/step, input {r['image_size']} px | "
                          f"train {r['train_wall_s']:.0f} s, evaluate {r['evaluate_wall_s']:.0f} s, peak {r['peak_rss_mib']:.0f} MiB")
    if args.out:
        Path(args.out).write_text(json.dumps({"benchmark": "instance_cli", "quick": args.quick, "results": results}, indent=2))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
