"""What the benchmark scripts share: run `workshop ...` as a user types it, read the run folder, `workshop evaluate` it.

No training here: the benchmarks train only through the ``workshop`` command (``workshop.runs`` /
``workshop.recipe``), so their numbers are the numbers a user gets. They may choose settings
(``--config``, ``--set``, ``--max-minutes``) and score the saved checkpoint afterwards with ``workshop evaluate``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run_workshop(args: list[str], threads: int | None = None, echo: bool = True) -> dict[str, Any]:
    """Run ``python -m workshop.cli ARGS`` in a fresh process (this checkout first on the path).

    Returns:
        ``{"wall_s", "stdout", "stderr", "returncode"}``.
    """
    env = dict(os.environ, WORKSHOP_OFFLINE="1")
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "workshop.cli", *map(str, args)]
    if echo:
        print("$ workshop " + " ".join(map(str, args)), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    out = {"wall_s": time.perf_counter() - t0, "stdout": proc.stdout, "stderr": proc.stderr, "returncode": proc.returncode}
    if proc.returncode != 0:
        raise SystemExit(f"workshop {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return out


def read_run(run_dir: Path) -> dict[str, Any]:
    """metrics.json and the ``recipe:`` section of config.yaml of a finished run."""
    import yaml

    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    history = metrics["history"]
    return {
        "metrics": metrics,
        "config": config,
        "recipe": config.get("recipe", {}),
        "steps": sum(int(h.get("steps", 0)) for h in history),
        "epochs": len(history),
        "train_s": round(history[-1]["elapsed_s"], 1) if history else 0.0,
        "best": metrics.get("best") or {},
    }


def first_time_at(history: list[dict[str, Any]], key: str, value: float) -> float | None:
    """Seconds (``elapsed_s``) of the first epoch whose ``key`` reaches ``value``, or None."""
    for h in history:
        if h.get(key) is not None and h[key] >= value:
            return h["elapsed_s"]
    return None


def evaluate_own_split(run_dir: Path, threads: int | None = None) -> dict[str, Any]:
    """``workshop evaluate RUN``: the best checkpoint on the run's own validation split, at the labels' resolution.

    Returns:
        The command's ``metrics.json`` (``iou`` / ``dice`` for binary runs, ``miou``, ``pixel_accuracy``,
        ``per_class``), plus its ``stdout`` and ``wall_s``.
    """
    out = Path(run_dir) / "evaluate-own-val"
    proc = run_workshop(["evaluate", run_dir, "--out", out], threads=threads)
    metrics = json.loads((out / "metrics.json").read_text())
    return {**metrics, "stdout": proc["stdout"], "wall_s": round(proc["wall_s"], 1)}
