"""workshop.instance.engine: the one training loop, its checkpoint layout, resuming, and the GPU path (CPU-tested)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workshop.engine import load_checkpoint
from workshop.errors import TrainingError, WorkshopError
from workshop.instance import engine
from workshop.instance.budget import seconds_per_prediction
from workshop.instance.data import DetectionDataset
from workshop.instance.engine import (Hook, StepBatches, amp_dtype, loader_settings, rng_state, set_rng_state, train_loader,
                                      train_stages, training_step)
from workshop.instance.model import create_maskrcnn
from workshop.instance.plan import plan_steps
from workshop.instance.stages import Stage


class SquareLoader:
    """Item i: a noisy 48 x 48 image with one square object (a class, so DataLoader workers can pickle it)."""

    def __call__(self, index: int):
        image = np.random.default_rng(index).integers(0, 255, (48, 48, 3), dtype=np.uint8)
        masks = np.zeros((1, 48, 48), bool)
        masks[0, 8 + index:30, 10:34] = True
        return image, masks, np.ones(1, np.int64)


class HalfBright:
    """Item i: left half black, right half white (a horizontal flip shows at pixel [0, 0])."""

    def __call__(self, index: int):
        image = np.zeros((8, 8, 3), np.uint8)
        image[:, 4:] = 255
        masks = np.zeros((1, 8, 8), bool)
        masks[0, 1:3, 1:3] = True
        return image, masks, np.ones(1, np.int64)


def tiny_set(n: int = 4) -> DetectionDataset:
    return DetectionDataset(list(range(n)), SquareLoader(), train=True, seed=3)


def small_model(seed: int = 0):
    torch.manual_seed(seed)
    return create_maskrcnn(num_classes=2, weights=None, min_size=48, max_size=48)


PLAN = [Stage("heads", 1, 0.005, 1, trainable="heads", warmup_steps=1),
        Stage("last stage", 1, 0.002, 1, trainable=["heads", "backbone.stage5"])]


class StopAt(Hook):
    """Ctrl-C at (stage, steps done), or at the start of a stage (steps=None)."""

    def __init__(self, stage: int, steps: int | None) -> None:
        self.stage, self.steps = stage, steps

    def stage_start(self, stage: int, step: int) -> None:
        if self.steps is None and stage == self.stage:
            raise KeyboardInterrupt

    def step_end(self, stage: int, done: int) -> None:
        if (stage, done) == (self.stage, self.steps):
            raise KeyboardInterrupt


def plans_for(stages, n: int = 4, batch: int = 2):
    return plan_steps(stages, steps_per_epoch=-(-n // batch))


def quiet(line: str) -> None:
    pass


@pytest.fixture(scope="module")
def stopped_after_stage_one(tmp_path_factory):
    """A run folder where stage 1 of PLAN is done (stopped at the start of stage 2), and the model then."""
    run = tmp_path_factory.mktemp("instance-run")
    trained = small_model()
    with pytest.raises(KeyboardInterrupt):
        train_stages(trained, PLAN, plans_for(PLAN), tiny_set(), 2, run_dir=run, log=quiet, hooks=[StopAt(1, None)])
    return run, trained


def test_one_checkpoint_layout(stopped_after_stage_one) -> None:
    run, _ = stopped_after_stage_one
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.pt", "stage1.pt"]
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert {"task", "model", "stage", "step", "stages_done", "optimizer", "scaler", "rng", "history", "plan", "stages",
            "titles"} <= set(state)
    assert (state["task"], state["stage"], state["step"], state["stages_done"]) == ("instance", 1, 0, 1)
    assert state["titles"] == ["heads", "last stage"] and [p["steps"] for p in state["plan"]] == [2, 2]
    assert state["history"][0]["trainable"] == ["neck", "rpn", "roi_heads"] and state["scaler"] is None
    assert set(state["rng"]) == {"cpu", "cuda"}
    assert (run / "stages.json").is_file()


def test_resume_after_a_finished_stage_loads_its_weights(stopped_after_stage_one) -> None:
    run, trained = stopped_after_stage_one
    frozen = trained.backbone.body["0"][0].weight.clone()
    fresh = small_model(seed=1)
    lines: list[str] = []
    evaluated: list[int] = []
    history = train_stages(fresh, PLAN, plans_for(PLAN), tiny_set(), 2, run_dir=run, resume=run, log=lines.append,
                           evaluate=lambda m: evaluated.append(1) or {"score": 0.5})
    assert lines[0] == "resuming: stage 2/2 (last stage) at step 0/2"
    assert not any(line.startswith("[heads]") for line in lines)  # stage 1 did not run again
    assert [h["title"] for h in history] == ["heads", "last stage"] and evaluated == [1]
    assert torch.equal(fresh.backbone.body["0"][0].weight, frozen)  # stage-1 weights loaded; backbone stage 1 stays frozen
    assert load_checkpoint(run / "checkpoints" / "last.pt")["stage"] == 2

    lines.clear()
    assert len(train_stages(fresh, PLAN, plans_for(PLAN), tiny_set(), 2, run_dir=run, resume=run, log=lines.append)) == 2
    assert lines == ["resuming: the plan is already complete"]


def test_resume_with_another_plan_is_refused(stopped_after_stage_one) -> None:
    other = [Stage("something else", 1, 0.01, 1), PLAN[1]]
    with pytest.raises(WorkshopError, match="not this plan's"):
        train_stages(small_model(), other, plans_for(other), tiny_set(), 2, resume=stopped_after_stage_one[0], log=quiet)


def test_a_folder_without_checkpoints_starts_at_stage_one(tmp_path) -> None:
    history = train_stages(small_model(), PLAN[:1], plans_for(PLAN[:1]), tiny_set(), 2, resume=tmp_path / "new", log=quiet)
    assert [h["steps"] for h in history] == [2]


def test_unknown_part_fails_before_any_training() -> None:
    plan = [PLAN[0], Stage("typo", 1, 0.01, 1, trainable=["heads", "backbone.stage9"])]
    lines: list[str] = []
    with pytest.raises(ValueError, match="stage 'typo': unknown trainable part 'backbone.stage9'"):
        train_stages(small_model(), plan, plans_for(plan), tiny_set(), 2, log=lines.append)
    assert lines == []


def test_resume_with_workers_ends_with_the_same_weights(tmp_path) -> None:
    """Two DataLoader workers, stopped mid-stage and resumed: the weights of a run never stopped."""
    stages = [Stage("heads", 2, 0.005, 1, trainable="heads"), Stage("last", 1, 0.002, 1, trainable=["heads", "backbone.stage5"])]
    data = DetectionDataset(list(range(2)), SquareLoader(), train=True, seed=3, vflip=0.5)  # one step per epoch
    whole = small_model()
    train_stages(whole, stages, plans_for(stages, 2), data, 2, run_dir=tmp_path / "whole", log=quiet, num_workers=2)
    cut = small_model()
    with pytest.raises(KeyboardInterrupt):
        train_stages(cut, stages, plans_for(stages, 2), data, 2, run_dir=tmp_path / "cut", log=quiet, num_workers=2,
                     hooks=[StopAt(0, 1)], checkpoint_every=0)  # after the first epoch of stage 1
    resumed = small_model(seed=5)
    torch.manual_seed(123)  # the resumed process's own random state must not matter
    lines: list[str] = []
    train_stages(resumed, stages, plans_for(stages, 2), data, 2, run_dir=tmp_path / "cut", resume=tmp_path / "cut",
                 log=lines.append, num_workers=2)
    assert lines[0] == "resuming: stage 1/2 (heads) at step 1/2"
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def _flips(batches) -> list[bool]:
    return [bool(image[0, 0, 0] > 0.5) for images, _ in batches for image in images]


def test_workers_draw_different_flips_per_image_and_epoch_and_the_same_as_one_process() -> None:
    data = DetectionDataset(list(range(8)), HalfBright(), train=True, seed=0)
    steps = 8  # two epochs of 4 batches; batches alternate between the two workers
    cpu = torch.device("cpu")
    with_workers = iter(train_loader(data, 2, seed=0, stage=0, first=0, device=cpu, num_workers=2))
    flips = _flips(next(with_workers) for _ in range(steps))
    del with_workers
    alone = iter(train_loader(data, 2, seed=0, stage=0, first=0, device=cpu, num_workers=0))
    assert flips == _flips(next(alone) for _ in range(steps))
    worker0 = flips[0:2] + flips[4:6] + flips[8:10] + flips[12:14]
    worker1 = flips[2:4] + flips[6:8] + flips[10:12] + flips[14:16]
    assert worker0 != worker1, flips
    keys = [key for b, batch in zip(range(steps), StepBatches(8, 2, 0, 0)) for key in batch]
    epoch0 = {i: f for (i, e), f in zip(keys, flips) if e == 0}
    epoch1 = {i: f for (i, e), f in zip(keys, flips) if e == 1}
    assert sorted(epoch0) == sorted(epoch1) == list(range(8)) and epoch0 != epoch1
    assert 0 < sum(flips) < len(flips)


def test_loading_draws_nothing_from_the_global_random_state() -> None:
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    batches = iter(train_loader(tiny_set(), 2, seed=0, stage=0, first=0, device=torch.device("cpu"), num_workers=0))
    next(batches)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("device, cpus, asked, expected", [
    ("cuda", 16, "auto", {"num_workers": 8, "pin_memory": True, "prefetch_factor": 4}),
    ("cuda", 2, "auto", {"num_workers": 1, "pin_memory": True, "prefetch_factor": 4}),
    ("cuda", None, "auto", {"num_workers": 1, "pin_memory": True, "prefetch_factor": 4}),
    ("cuda", 16, 0, {"num_workers": 0, "pin_memory": True}),
    ("cpu", 16, "auto", {"num_workers": 0, "pin_memory": False}),
    ("mps", 8, "auto", {"num_workers": 0, "pin_memory": False}),
    ("cpu", 2, 3, {"num_workers": 3, "pin_memory": False, "prefetch_factor": 4}),
])
def test_loader_settings(device, cpus, asked, expected) -> None:
    assert loader_settings(device, cpus, asked) == expected


def test_loader_settings_refuse_a_bad_worker_count() -> None:
    for bad in (-1, "many", True, 1.5):
        with pytest.raises(ValueError, match="num_workers must be 'auto' or a whole number"):
            loader_settings("cuda", 4, bad)


def test_the_training_loader_on_cuda_has_workers_and_pinned_memory(monkeypatch) -> None:
    monkeypatch.setattr(engine.os, "cpu_count", lambda: 3)
    loader = train_loader(tiny_set(), 2, seed=0, stage=0, first=0, device=torch.device("cuda"))
    assert (loader.num_workers, loader.pin_memory, loader.prefetch_factor) == (2, True, 4)
    loader = train_loader(tiny_set(), 2, seed=0, stage=0, first=0, device=torch.device("cpu"))
    assert (loader.num_workers, loader.pin_memory) == (0, False)


@pytest.mark.parametrize("device, amp, bf16, expected", [
    ("cuda", True, True, torch.bfloat16),
    ("cuda", True, False, torch.float16),
    ("cuda", False, True, None),
    ("cpu", True, True, None),
    ("mps", True, False, None),
])
def test_amp_dtype(device, amp, bf16, expected) -> None:
    assert amp_dtype(device, amp, bf16) is expected


class _Probe(torch.nn.Module):
    """Records whether autocast was on, and in which dtype, when it was called."""

    def __init__(self, loss: float = 1.0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))
        self.loss, self.seen = loss, []

    def forward(self, images, targets):
        self.seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return {"loss_mask": self.w * self.loss, "loss_classifier": self.w * 2}


class _Scaler:
    """Records the calls the training step makes on a GradScaler."""

    def __init__(self, calls):
        self.calls = calls

    def scale(self, loss):
        self.calls.append("scale")
        return loss * 4

    def unscale_(self, optimizer):
        self.calls.append(f"unscale (grad {optimizer.param_groups[0]['params'][0].grad.item():g})")

    def step(self, optimizer):
        self.calls.append("step")

    def update(self):
        self.calls.append("update")


def test_training_step_runs_under_autocast_and_with_the_scaler(monkeypatch) -> None:
    model = _Probe()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    calls: list[str] = []
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda params, norm: calls.append(f"clip {norm}"))
    out = training_step(model, optimizer, [torch.zeros(3, 4, 4)], [{}], amp=torch.bfloat16, scaler=_Scaler(calls))
    assert model.seen == [(True, torch.bfloat16)]
    assert calls == ["scale", "unscale (grad 12)", "clip 10.0", "step", "update"]  # d(4 * 3w)/dw
    assert out == {"loss_mask": 1.0, "loss_classifier": 2.0, "loss": 3.0}
    assert model.w.item() == 1.0  # the (fake) scaler's step did not step
    training_step(model, optimizer, [torch.zeros(3, 4, 4)], [{}], max_grad_norm=None)
    assert model.seen[-1][0] is False and model.w.item() == pytest.approx(1 - 0.1 * 3)


def test_non_finite_loss_stops_with_a_message() -> None:
    model = _Probe(loss=float("nan"))
    with pytest.raises(TrainingError, match="loss_mask=nan.*learning rate"):
        training_step(model, torch.optim.SGD(model.parameters(), lr=0.1), [torch.zeros(3, 4, 4)], [{}])


@pytest.fixture()
def fake_cuda(monkeypatch):
    """CUDA 'available' with one device whose random state is a known tensor; restores are recorded."""
    restored: list = []
    state = [torch.arange(16, dtype=torch.uint8)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [s.clone() for s in state])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: restored.append([s.clone() for s in states]))
    return state, restored


def test_the_cuda_random_state_is_saved_and_restored_when_available(fake_cuda, tmp_path) -> None:
    state, restored = fake_cuda
    saved = rng_state()
    assert torch.equal(saved["cuda"][0], state[0]) and torch.equal(saved["cpu"], torch.get_rng_state())
    set_rng_state(saved)
    assert len(restored) == 1 and torch.equal(restored[0][0], state[0])

    stages = PLAN[:1]
    with pytest.raises(KeyboardInterrupt):
        train_stages(small_model(), stages, plans_for(stages), tiny_set(), 2, run_dir=tmp_path, log=quiet,
                     hooks=[StopAt(0, 1)])
    checkpoint = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert torch.equal(checkpoint["rng"]["cuda"][0], state[0])
    restored.clear()
    train_stages(small_model(), stages, plans_for(stages), tiny_set(), 2, run_dir=tmp_path, resume=tmp_path, log=quiet)
    assert len(restored) == 1 and torch.equal(restored[0][0], state[0])


def test_without_cuda_only_the_cpu_state_is_saved(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert rng_state()["cuda"] is None
    torch.manual_seed(1)
    old_layout = torch.get_rng_state()  # checkpoints before the CUDA state held the CPU tensor alone
    expected = torch.rand(2)
    set_rng_state(old_layout)
    assert torch.equal(torch.rand(2), expected)


class _Image:
    """Stands in for an image tensor: ``.to(device)`` keeps it (no CUDA here)."""

    def to(self, device):
        return self


def test_time_per_prediction_synchronizes_on_cuda(monkeypatch) -> None:
    synced: list = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synced.append(device))
    model = torch.nn.Identity()
    seconds = seconds_per_prediction(model, [(_Image(), {})] * 3, torch.device("cuda"), images=2)
    assert len(synced) == 6 and seconds >= 0  # before and after each of 3 calls (1 untimed)
    assert model.training
    synced.clear()
    seconds_per_prediction(model, [(_Image(), {})], torch.device("cpu"))
    assert synced == []
