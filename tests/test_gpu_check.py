"""benchmarks/gpu_check.py: its --dry-run runs every part on the CPU and writes the one JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_writes_every_part(tmp_path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import gpu_check

    out = tmp_path / "check.json"
    assert gpu_check.main(["--dry-run", "--out", str(out), "--work", str(tmp_path / "work"), "--limit-s", "1200"]) == 0
    result = json.loads(out.read_text())
    assert result["dry_run"] is True and result["gpus"] == 0
    quick = result["quickstart"]
    assert "error" not in quick and 0 <= quick["best_val_iou"] <= 1 and quick["steps"] >= 1
    assert quick["batch"] == 2  # the recipe's batch (13 smoke training images), not the configured 8
    assert quick["images_per_s"] > 0 and quick["bare_step"]["images_per_s"] > 0 and quick["loop_vs_bare"] > 0
    assert "skipped" in result["syncs_per_step"]  # needs CUDA's sync debug mode
    assert result["amp"]["float16"]["bare_step"]["amp"] is False  # the CPU: no autocast
    assert result["torchrun"]["nproc_per_node"] == 1 and "error" not in result["torchrun"]
    assert result["torchrun"]["steps"] >= 1
    maskrcnn = result["maskrcnn"]
    assert "error" not in maskrcnn and maskrcnn["steps"] >= 2 and 0 <= maskrcnn["val_mask_map"] <= 1
    assert set(result["targets"]) == {"quickstart_val_iou", "quickstart_wall_s", "loop_vs_bare", "syncs_per_step"}


def test_ddp_throughput_counts_images_with_the_batch_that_ran(tmp_path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import ddp_throughput

    history = [{"epoch": 1, "steps": 4, "train_time_s": 2.0, "elapsed_s": 3.0, "val_iou": 0.5},
               {"epoch": 2, "steps": 4, "train_time_s": 2.0, "elapsed_s": 6.0, "val_iou": 0.9}]
    numbers = ddp_throughput.loop_numbers(history, global_batch=4, target_iou=0.8)
    assert numbers["images_per_s"] == 8.0  # 2 x 4 steps x 4 images in 4 s (not the configured batch)
    assert (numbers["time_to_target_s"], numbers["epoch_of_target"], numbers["best_val_iou"]) == (6.0, 2, 0.9)
    (tmp_path / "config.yaml").write_text("data: {batch_size: 16}\nrecipe: {batch_size: 4, total_steps: 8}\n")
    assert ddp_throughput.recipe_of(tmp_path)["batch_size"] == 4
    (tmp_path / "config.yaml").write_text("data: {batch_size: 16}\n")
    with pytest.raises(SystemExit, match="no recipe"):
        ddp_throughput.recipe_of(tmp_path)
