"""workshop.instance.engine: the metric logger, staged training, checkpoints between stages, resuming."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from workshop.engine import load_checkpoint
from workshop.errors import TrainingError, WorkshopError
from workshop.instance.data import DetectionDataset, collate_detection
from workshop.instance.engine import MetricLogger, SmoothedValue, run_stages, train_one_epoch
from workshop.instance.model import create_maskrcnn
from workshop.instance.stages import Stage


def test_smoothed_value_by_hand() -> None:
    v = SmoothedValue(window=3)
    for x in (4.0, 1.0, 2.0, 9.0):
        v.update(x)
    assert (v.median, v.avg, v.global_avg, v.value) == (2.0, 4.0, 4.0, 9.0)
    assert str(v) == "2.0000 (4.0000)"
    with pytest.raises(ValueError):
        SmoothedValue(window=0)


def test_metric_logger_prints_eta_and_summary() -> None:
    lines: list[str] = []
    logger = MetricLogger(window=2, print_freq=2, log=lines.append)
    for step in logger.log_every(range(5), header="demo"):
        logger.update(loss=torch.tensor(float(step)))
    assert [line.split("]")[0] for line in lines[:3]] == ["demo [1/5", "demo [3/5", "demo [5/5"]
    assert "eta 0:00:00" in lines[2] and "loss: 3.5000 (2.0000)" in lines[2]
    assert lines[-1].startswith("demo done: 5 steps")
    lines.clear()
    for step in logger.log_every(range(5), header="cut"):
        if step == 2:
            break
    assert lines[-1].startswith("cut stopped after 2/5: 2 steps")
    assert logger.summary() == {"loss": 2.0}


def _tiny_loader(n: int = 2) -> DataLoader:
    def load(index):
        image = np.random.default_rng(index).integers(0, 255, (48, 48, 3), dtype=np.uint8)
        masks = np.zeros((1, 48, 48), bool)
        masks[0, 8 + index:30, 10:34] = True
        return image, masks, np.ones(1, np.int64)

    return DataLoader(DetectionDataset(list(range(n)), load, train=True), batch_size=2, collate_fn=collate_detection)


def small_model(seed: int = 0):
    torch.manual_seed(seed)
    return create_maskrcnn(num_classes=2, weights=None, min_size=48, max_size=48)


@pytest.fixture()
def model():
    return small_model()


@pytest.fixture(scope="module")
def finished_stage_one(tmp_path_factory):
    """A run folder where stage 1 of PLAN is done, and the model after it."""
    run = tmp_path_factory.mktemp("instance-run")
    trained = small_model()
    lines: list[str] = []
    history = run_stages(trained, PLAN[:1], _tiny_loader(), run_dir=run, print_freq=0, log=lines.append)
    return run, trained, history, lines


PLAN = [Stage("heads", 1, 0.005, 1, trainable="heads", warmup_steps=1),
        Stage("last stage", 1, 0.002, 1, trainable=["heads", "backbone.stage5"])]


def test_run_stages_checkpoints_and_resumes(finished_stage_one) -> None:
    run, model, history, lines = finished_stage_one
    assert [h["title"] for h in history] == ["heads"] and history[0]["trainable"] == ["neck", "rpn", "roi_heads"]
    assert lines[0].startswith("== stage 1/1: heads | 1 epoch(s), lr 0.005, StepLR step 1 gamma 0.1 | trainable: neck, rpn, roi_heads")
    assert (run / "checkpoints" / "stage1.pt").is_file() and (run / "stages.json").is_file()
    frozen = model.backbone.body["0"][0].weight.clone()

    fresh = small_model(seed=1)
    lines = []
    evaluated = []
    history = run_stages(fresh, PLAN, _tiny_loader(), run_dir=run, resume=run, print_freq=0, log=lines.append,
                         val_loader=_tiny_loader(), evaluate=lambda m, l: evaluated.append(1) or {"score": 0.5})
    assert lines[0].startswith("resuming: stages 1-1 already done (heads)")
    assert not any(line.startswith("[heads]") for line in lines)  # stage 1 did not run again
    assert [h["title"] for h in history] == ["heads", "last stage"] and evaluated == [1]
    assert torch.equal(fresh.backbone.body["0"][0].weight, frozen)  # stage-1 weights loaded; stage1 of the backbone stays frozen
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["stages_done"] == 2 and state["titles"] == ["heads", "last stage"]

    lines.clear()
    assert len(run_stages(fresh, PLAN, _tiny_loader(), run_dir=run, resume=run, print_freq=0, log=lines.append)) == 2
    assert lines == ["resuming: stages 1-2 already done (heads, last stage)"]


def test_resume_with_another_plan_is_refused(finished_stage_one, model) -> None:
    other = [Stage("something else", 1, 0.01, 1), PLAN[1]]
    with pytest.raises(WorkshopError, match="not the first stages of this plan"):
        run_stages(model, other, _tiny_loader(), resume=finished_stage_one[0], print_freq=0, log=lambda s: None)


def test_unknown_part_fails_before_any_training(model) -> None:
    plan = [PLAN[0], Stage("typo", 1, 0.01, 1, trainable=["heads", "backbone.stage9"])]
    lines: list[str] = []
    with pytest.raises(ValueError, match="stage 'typo': unknown trainable part 'backbone.stage9'"):
        run_stages(model, plan, _tiny_loader(), log=lines.append)
    assert lines == []


def test_time_budget_ends_each_stage_early_but_runs_every_stage(tmp_path, model) -> None:
    """Also: resuming from a folder without checkpoints starts at stage 1."""
    plan = [Stage("a", 50, 0.001, 10), Stage("b", 50, 0.001, 10)]
    lines: list[str] = []
    history = run_stages(model, plan, _tiny_loader(), resume=tmp_path / "new", max_minutes=1e-4, print_freq=0, log=lines.append)
    assert [h["epochs_done"] for h in history] == [1, 1]
    assert sum("time share used up" in line for line in lines) == 2


class _NaNModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, images, targets):
        return {"loss_mask": self.w * float("nan"), "loss_classifier": self.w}


def test_non_finite_loss_stops_with_a_message() -> None:
    nan_model = _NaNModel()
    optimizer = torch.optim.SGD(nan_model.parameters(), lr=0.1)
    with pytest.raises(TrainingError, match="loss_mask=nan.*learning rate"):
        train_one_epoch(nan_model, optimizer, _tiny_loader(), print_freq=0)
