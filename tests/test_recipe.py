"""The recipe: schedules sized in steps, batches that fit the data, views, baselines, the record in config.yaml."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

import workshop.budget
from workshop import recipe
from workshop.baselines import compare_with_baselines, trivial_baselines
from workshop.config import load_config
from workshop.engine import fit, make_optimizer, make_scheduler
from workshop.fingerprint import describe, fingerprint_dataset, fingerprint_masks
from workshop.losses import create_loss

from tiny_training import Squares


# ----------------------------------------------------------------------------- schedules in steps


def lrs_used(name: str, total: int, lr: float = 0.1) -> list[float]:
    """The learning rate each of ``total`` optimiser steps runs at."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make_scheduler(opt, name, lr, total_steps=total)
    used = []
    for _ in range(total):
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()  # after the last step too, as train_one_epoch does: must not raise
    return used


def test_onecycle_sized_in_steps_runs_its_last_step_at_the_final_lr() -> None:
    used = lrs_used("onecycle", 37, lr=0.1)
    assert len(used) == 37
    assert used[0] == pytest.approx(0.1 / 25)  # OneCycleLR starts at max_lr / div_factor (25)
    assert max(used) == pytest.approx(0.1, rel=1e-3)
    assert used[-1] == pytest.approx(0.1 / 25 / 1e4)  # ... and ends at initial_lr / final_div_factor (1e4)
    assert 3 <= used.index(max(used)) <= 6  # the peak after about 15 % of the steps


def test_cosine_sized_in_steps_reaches_zero_after_the_last_step() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.2)
    sched = make_scheduler(opt, "cosine", 0.2, total_steps=10)
    for _ in range(10):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_epochs_times_steps_is_still_accepted() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    assert make_scheduler(opt, "onecycle", 0.1, 3, 7).total_steps == 21
    assert make_scheduler(opt, "onecycle", 0.1, 3, 7, total_steps=5).total_steps == 5


@pytest.mark.parametrize(
    "available, step_s, per_epoch_s, spe, expected",
    [
        (100.0, 1.0, 5.0, 10, (65, 7)),  # 6 x 15 s = 90 s; the 10 s left hold 5 steps + their 5 s validation
        (100.0, 1.0, 5.0, 20, (80, 4)),  # 4 x 25 s exactly
        (40.0, 1.0, 5.0, 20, (30, 2)),  # 1 epoch (25 s) + 10 steps and their validation (15 s)
        (3.0, 1.0, 5.0, 20, (1, 1)),  # nothing fits: one step
        (1000.0, 0.5, 0.0, 6, (2000, 334)),  # 333 epochs of 6 steps = 1998 steps (999 s) + 2 steps in the last second
    ],
)
def test_steps_in_budget_hand_computed(available, step_s, per_epoch_s, spe, expected) -> None:
    assert recipe.steps_in_budget(available, step_s, per_epoch_s, spe) == expected


def test_fit_stops_at_max_steps_inside_an_epoch_with_the_schedule_done(tmp_path) -> None:
    from workshop.budget import Budget

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 1))
    train = DataLoader(Squares(20, 0), batch_size=4, shuffle=True, generator=torch.Generator())  # 5 steps/epoch
    val = DataLoader(Squares(4, 1), batch_size=4)
    opt = make_optimizer(model, "adam", 0.02)
    sched = make_scheduler(opt, "onecycle", 0.02, total_steps=12)
    result = fit(model, train, val, create_loss("dice_bce", "binary"), opt, 5, "cpu", sched,
                 run_dir=tmp_path, seed=1, hooks=[Budget(max_steps=12)])
    assert [h["steps"] for h in result.history] == [5, 5, 2]
    assert result.stopped_reason == "schedule complete: 12 optimiser steps"
    assert sched.last_epoch == 12  # every step of the schedule taken, none beyond


# ----------------------------------------------------------------------------- batches and drop_last


@pytest.mark.parametrize(
    "num_train, configured, expected",
    [(24, 16, 4), (24, 8, 4), (30, 16, 4), (64, 16, 16), (60, 16, 8), (232, 8, 8), (256, 16, 16),
     (13, 8, 2), (3, 16, 2), (1, 16, 1), (367, 16, 16)],
)
def test_batch_is_capped_to_the_training_set(num_train, configured, expected) -> None:
    batch, why = recipe.choose_batch_size(num_train, configured)
    assert batch == expected
    assert num_train / batch >= recipe.MIN_BATCHES_PER_EPOCH or batch <= 2
    if batch < configured:
        assert why.startswith(f"{num_train} training images")


@pytest.mark.parametrize(
    "num_train, batch, expected",
    [(24, 4, False), (24, 16, False), (16, 16, False), (257, 16, True), (40, 16, False), (9, 4, True),
     (161, 16, True), (170, 16, True), (10, 16, False)],
)
def test_drop_last_only_when_little_is_dropped(num_train, batch, expected) -> None:
    drop, _ = recipe.choose_drop_last(num_train, batch)
    assert drop is expected
    if drop:
        rest = num_train % batch
        assert rest == 1 or rest / num_train <= recipe.MAX_DROPPED_SHARE


def test_the_30_image_case_of_the_issue_gets_many_more_steps() -> None:
    cfg = load_config(profile="cpu", overrides={"data": {"source": "folder", "root": "x"}, "train": {"epochs": 8}})
    plan = recipe.plan_recipe(cfg, num_train=24)  # before: batch 16 + drop_last -> 1 step per epoch, 8 in all
    assert (plan.batch_size, plan.drop_last, plan.steps_per_epoch, plan.total_steps) == (4, False, 6, 48)
    assert any("only 48 optimiser steps in all" in w and "train.epochs to at least 17" in w for w in plan.warnings)


def test_warning_under_100_steps_and_not_above() -> None:
    cfg = load_config(profile="cpu", overrides={"train": {"epochs": 17}})
    assert recipe.plan_recipe(cfg, num_train=24).total_steps == 102
    assert recipe.plan_recipe(cfg, num_train=24).warnings == []
    cfg = load_config(profile="cpu", overrides={"train": {"epochs": 16}})
    warnings = recipe.plan_recipe(cfg, num_train=24).warnings
    assert len(warnings) == 1 and "only 96 optimiser steps" in warnings[0]


def test_budget_lays_the_schedule_over_the_calibrated_steps() -> None:
    cfg = load_config(profile="cpu", overrides={"data": {"batch_size": 16}, "train": {"max_minutes": 2.0, "epochs": 8}})
    plan = recipe.plan_recipe(cfg, num_train=232)  # batch 16: 14 full batches, the 8 left (3 %) dropped
    assert (plan.batch_size, plan.drop_last, plan.steps_per_epoch) == (16, True, 14)
    timing = {"step_s": 0.5, "val_s": 3.0, "checkpoint_s": 1.0, "seconds": 2.0}
    monkey_reserve = workshop.budget.BUDGET_RESERVE
    recipe.lay_over_budget(plan, cfg, timing, elapsed_s=2.0)
    available = 120 * (1 - monkey_reserve) - 2.0  # 113.2 s with 4 % kept free
    assert available == pytest.approx(113.2)
    # one pass: 14 x 0.5 = 7 s against 4 s of validation + checkpoints (36 %): 6 passes would bring that under
    # 10 % (4 <= 0.1 x 46), but then 113.2 s hold only 2 epochs; 2 passes keep 6 validations (113.2 / 18 >= 6)
    assert plan.passes_per_epoch == 2
    # 2 x 232 = 464 = 29 batches of 16 exactly; an epoch is 29 x 0.5 + 4 = 18.5 s: 6 epochs (111 s), 2.2 s left < 4 s
    assert (plan.drop_last, plan.steps_per_epoch, plan.epochs, plan.total_steps) == (False, 29, 6, 174)
    why = {c.key: c.why for c in plan.choices}["train.epochs"]
    assert f"laid over these {plan.total_steps} steps" in why and "0.500 s per step" in why


def test_a_small_set_validates_every_few_passes_under_a_budget() -> None:
    cfg = load_config(profile="cpu", overrides={"train": {"max_minutes": 1.0}})
    plan = recipe.plan_recipe(cfg, num_train=24)  # batch 4, 6 steps per pass
    timing = {"step_s": 0.125, "val_s": 0.25, "checkpoint_s": 0.25, "seconds": 1.5}
    recipe.lay_over_budget(plan, cfg, timing, elapsed_s=1.5)
    # a pass is 0.75 s; 0.5 s of validation + checkpoints is at most 10 % of 6 passes (0.1 x 5 s)
    assert (plan.passes_per_epoch, plan.steps_per_epoch) == (6, 36)
    # 60 x 0.96 - 1.5 = 56.1 s: 11 epochs of 5 s, then 1.1 s: 4 steps (0.5 s) + a validation (0.5 s)
    assert (plan.epochs, plan.total_steps) == (12, 400)
    loader = recipe.train_loader_for(plan, list(range(24)), cfg)
    assert len(loader) == 36 and sum(len(b) for b in loader) == 144


# ----------------------------------------------------------------------------- views and augmentations


@pytest.mark.parametrize(
    "source, view, vflip, rotate90",
    [("camvid", "upright", 0.0, 0.0), ("human_seg", "upright", 0.0, 0.0), ("embedded", "top_down", 0.5, 0.5),
     ("folder", "upright", 0.0, 0.0)],
)
def test_augmentations_suit_the_view_of_the_source(source, view, vflip, rotate90) -> None:
    from workshop.augment import get_transforms

    cfg = load_config(profile="cpu", overrides={"data": {"source": source}})
    out = recipe.apply_view(cfg)
    assert (out.augment.view, out.augment.vflip, out.augment.rotate90) == (view, vflip, rotate90)
    assert cfg.augment.vflip == 0.5  # the input is not changed
    names = {type(t).__name__ for t in get_transforms(out, train=True).transforms}
    assert ("VerticalFlip" in names, "RandomRotate90" in names) == (vflip > 0, rotate90 > 0)
    assert "HorizontalFlip" in names


def test_view_from_the_config_wins() -> None:
    cfg = load_config(profile="cpu", overrides={"data": {"source": "folder"}, "augment": {"view": "top_down"}})
    assert recipe.apply_view(cfg).augment.vflip == 0.5  # microscopy in a folder: any orientation
    cfg = load_config(profile="cpu", overrides={"augment": {"view": "upright"}})  # embedded, said upright
    assert recipe.apply_view(cfg).augment.rotate90 == 0.0


# ----------------------------------------------------------------------------- baselines and fingerprint


def test_all_foreground_iou_is_the_foreground_share() -> None:
    masks = [torch.tensor([[0, 1, 1, 1], [0, 0, 1, 255]]), torch.tensor([[1, 1], [0, 0]])]
    scores = trivial_baselines(masks, num_classes=2)
    # labelled pixels: 7 + 4 = 11, foreground 4 + 2 = 6 (the 255 is left out)
    assert scores["all foreground"] == pytest.approx(6 / 11)
    assert scores["all background"] == 0.0


def test_majority_class_baseline_uses_the_mean_over_present_classes() -> None:
    masks = [torch.tensor([[0, 0, 0, 1], [2, 2, 0, 0]])]  # 5 x class 0, 1 x class 1, 2 x class 2
    scores = trivial_baselines(masks, num_classes=4)  # class 3 absent everywhere: left out of the mean
    assert scores["majority class id"] == 0
    assert scores["majority class"] == pytest.approx((5 / 8) / 3)


def test_summary_says_plainly_when_the_model_loses() -> None:
    margin, text = compare_with_baselines(0.741, {"all background": 0.0, "all foreground": 0.775})
    assert margin == pytest.approx(-0.034)
    assert "does NOT beat the trivial baseline 'all foreground'" in text
    margin, text = compare_with_baselines(0.80, {"all background": 0.0, "all foreground": 0.775})
    assert margin > 0 and "beats the best (all foreground) by +0.0250" in text


def test_fingerprint_counts_shares_objects_and_sizes() -> None:
    a = np.zeros((10, 20), int)
    a[0:2, 0:2] = 1  # an object of 4 pixels
    a[5:7, 10:15] = 1  # one of 10 pixels
    a[9, 19] = 255
    b = np.zeros((10, 10), int)
    fp = fingerprint_masks([a, b], [(100, 200), (50, 50)], task="binary")
    assert fp.num_images == 2 and fp.empty_images == 1
    assert fp.class_shares == [pytest.approx(285 / 299, abs=1e-6), pytest.approx(14 / 299, abs=1e-6)]
    assert fp.ignored_share == pytest.approx(1 / 300, abs=1e-6)
    assert fp.objects_per_image == 1.0  # median of [2, 0]
    assert fp.object_area == (0.02, 0.035, 0.05)
    assert fp.height == (50, 75, 100) and fp.width == (50, 125, 200)
    text = describe(fp)
    assert "2 image(s), binary" in text and "1 image(s) without foreground" in text


def test_fingerprint_of_a_dataset_reads_raw_items_not_augmented_ones() -> None:
    class Raw:
        transform = "would augment"

        def __len__(self):
            return 3

        def load(self, i):
            return np.zeros((8, 6, 3), np.uint8), np.full((8, 6), i % 2)

        def __getitem__(self, i):
            raise AssertionError("the fingerprint must use load()")

    fp = fingerprint_dataset(Raw(), task="binary")
    assert fp.height == (8, 8, 8) and fp.empty_images == 2
    assert fp.class_shares == [pytest.approx(2 / 3), pytest.approx(1 / 3)]


# ----------------------------------------------------------------------------- a real run through train_from_config


def tiny_create_model(arch, encoder="mobilenet_v2", encoder_weights=None, num_classes=1, *args, **kwargs):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, num_classes, 1))


def write_folder(root, n: int = 30, size: int = 32):
    """``n`` grayscale-looking pairs: a bright disc (the foreground) on noise."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        cy, cx, r = rng.integers(8, size - 8), rng.integers(8, size - 8), rng.integers(4, 8)
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.uint8)
        grey = np.clip(60 + 120 * mask + rng.normal(0, 20, mask.shape), 0, 255).astype(np.uint8)
        Image.fromarray(np.stack([grey] * 3, -1)).save(root / "images" / f"c{i:02d}.png")
        Image.fromarray(mask * 255).save(root / "masks" / f"c{i:02d}.png")
    return root


@pytest.fixture()
def folder_cfg(tmp_path, monkeypatch):
    import workshop.models

    monkeypatch.setattr(workshop.models, "create_model", tiny_create_model)
    root = write_folder(tmp_path / "cells")
    return load_config(profile="cpu", overrides={
        "data": {"source": "folder", "root": str(root), "masks_dir": "masks", "image_size": 32},
        "model": {"encoder_weights": None}, "train": {"epochs": 2, "progress": False, "lr": 0.02},
    })


def test_run_records_every_choice_and_why_in_config_yaml(folder_cfg, tmp_path) -> None:
    from workshop.runs import summarize, train_from_config

    logged: list[str] = []
    result = train_from_config(folder_cfg, run_dir=tmp_path / "run", log=logged.append)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    choices = saved["recipe"]["choices"]
    assert choices["data.batch_size"]["value"] == 4 and choices["data.batch_size"]["configured"] == 8
    assert choices["data.batch_size"]["why"].startswith("24 training images")
    assert saved["data"]["batch_size"] == 4  # the file says what ran
    assert choices["augment.vflip"] == {"value": 0.0, "configured": 0.5,
                                        "why": "upright view: an upside-down or sideways scene never occurs"}
    assert saved["recipe"]["total_steps"] == 12 and saved["recipe"]["fingerprint"]["num_images"] == 24
    assert any("only 12 optimiser steps in all" in w for w in saved["recipe"]["warnings"])
    log = "\n".join(logged)
    assert "data.batch_size = 4 (configured 8): 24 training images" in log and "fingerprint: 24 image(s)" in log
    # the file is a valid config again (the recipe section is a record, not a setting)
    assert load_config(tmp_path / "run" / "config.yaml").data.batch_size == 4
    # the summary compares with the trivial baselines, on the same metric
    assert result.summary["steps"] == 12 and set(result.summary["baselines"]) == {"all background", "all foreground"}
    assert "baselines: all background 0.0000, all foreground" in summarize(result)


def test_budgeted_run_completes_its_schedule_inside_the_budget(folder_cfg, tmp_path, monkeypatch) -> None:
    from workshop.runs import train_from_config

    # a wide reserve for a busy test machine; the recipe re-plans after every (short) epoch anyway
    monkeypatch.setattr(workshop.budget, "BUDGET_RESERVE", 0.3)
    folder_cfg.train.max_minutes = 0.15
    logged: list[str] = []
    result = train_from_config(folder_cfg, run_dir=tmp_path / "run", log=logged.append)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["recipe"]
    # the log counts epochs against the plan as it stands (never "epoch 15/14" after a stretch)
    shown = [tuple(map(int, m.groups())) for m in map(re.compile(r"^epoch +(\d+)/(\d+) ").match, logged) if m]
    assert len(shown) == len(result.history) and all(k <= n for k, n in shown), shown
    steps = sum(h["steps"] for h in result.history)
    # not "time budget ... reached": the schedule ran to its end (the plan, or its re-plan against the clock)
    assert result.stopped_reason in ("finished", f"schedule complete: {steps} optimiser steps")
    replanned = result.summary["replans"]
    assert steps == (replanned[-1]["after_step"] + replanned[-1]["steps_left_now"] if replanned else saved["total_steps"])
    assert steps > 12  # more than the 2 configured epochs
    assert saved["budget_s"] == 9.0 and saved["calibration"]["step_s"] > 0
    assert result.history[-1]["lr"] < 0.02 * 1e-2  # annealed: not cut off at a high learning rate
    if not replanned:
        assert len(result.history) == saved["epochs"]


def test_class_weights_follow_the_fingerprint() -> None:
    from types import SimpleNamespace as NS

    cfg = load_config(profile="cpu", overrides={"data": {"task": "multiclass"}})
    plan = recipe.plan_recipe(cfg, num_train=40)
    # shares 0.64 / 0.32 / 0.04: the rarest has 16x fewer pixels -> w ~ share ** -0.5, scaled so sum(w * share) = 1
    weights = recipe.choose_class_weights(cfg, NS(class_shares=[0.64, 0.32, 0.04]), plan)
    raw = [0.64 ** -0.5, 0.32 ** -0.5, 0.04 ** -0.5]
    scale = sum(r * s for r, s in zip(raw, [0.64, 0.32, 0.04]))
    assert weights == pytest.approx([r / scale for r in raw])
    assert plan.class_weights == pytest.approx(weights) and "16x the pixels" in {c.key: c.why for c in plan.choices}["train.class_weights"]
    assert recipe.choose_class_weights(cfg, NS(class_shares=[0.5, 0.3, 0.2])) is None  # 2.5x: balanced enough
    binary = load_config(profile="cpu")
    assert recipe.choose_class_weights(binary, NS(class_shares=[0.99, 0.01])) is None


def test_step_schedule_matches_onecycle_and_replans_without_a_jump() -> None:
    def used(schedule_factory, total, replan_at=None, new_total=None):
        opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
        sched = schedule_factory(opt)
        out = []
        for k in range(total if new_total is None else new_total):
            if k == replan_at:
                sched.replan(new_total)
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    ours = used(lambda o: recipe.StepSchedule(o, "onecycle", 0.1, 40), 40)
    assert ours[0] == pytest.approx(0.1 / 25) and ours[-1] == pytest.approx(0.1 / 25 / 1e4)
    torch_one = lrs_used("onecycle", 40)
    # the shape of OneCycleLR: the same start, peak (within a step) and end
    assert abs(ours.index(max(ours)) - torch_one.index(max(torch_one))) <= 1 and max(ours) == pytest.approx(0.1, rel=1e-2)
    assert all(b >= a for a, b in zip(ours[ours.index(max(ours)) + 1:], ours[ours.index(max(ours)):]))  # then only down
    # squeezed from 40 to 30 steps after 20: continuous at the re-plan, and still ends at the final lr
    squeezed = used(lambda o: recipe.StepSchedule(o, "onecycle", 0.1, 40), 40, replan_at=20, new_total=30)
    assert squeezed[:20] == ours[:20] and len(squeezed) == 30
    assert squeezed[-1] == pytest.approx(0.1 / 25 / 1e4)
    assert abs(squeezed[20] - ours[20]) < abs(ours[20] - ours[19]) * 2.5  # no jump
    cos = used(lambda o: recipe.StepSchedule(o, "cosine", 0.1, 5), 5)
    assert cos == pytest.approx([0.1, 0.1 * (1 + math.cos(math.pi / 4)) / 2, 0.05, 0.1 * (1 + math.cos(3 * math.pi / 4)) / 2, 0.0])


def test_budget_keeper_squeezes_the_schedule_when_the_machine_slows_down() -> None:
    import time as _time

    cfg = load_config(profile="cpu", overrides={"data": {"batch_size": 16}, "train": {"max_minutes": 1.0}})
    plan = recipe.plan_recipe(cfg, num_train=64)  # batch 16: 4 steps per epoch
    plan.total_steps, plan.step_s, plan.checkpoint_s = 100, 0.1, 0.0
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = recipe.StepSchedule(opt, "onecycle", 0.1, plan.total_steps)
    keeper = recipe.BudgetKeeper(plan, sched, deadline=_time.monotonic() + 20.0, budget_s=60.0, log=lambda s: None)
    # the first epoch took 1 s per step (10x the calibration) and 1 s of validation
    keeper([{"epoch": 1, "steps": 4, "train_time_s": 4.0, "epoch_time_s": 5.0}])
    # about 20 - 1.2 s left: epochs of 4 x 1 s + 1 s = 5 s -> 3 epochs (15 s), then 3.8 s: 2 steps + validation
    assert keeper.max_steps() == 4 + 14 and sched.total == 18
    assert keeper.replans[0]["steps_left_planned"] == 96 and keeper.replans[0]["steps_left_now"] == 14


def test_data_check_reports_the_fingerprint(tmp_path, capsys) -> None:
    from workshop import cli

    root = write_folder(tmp_path / "cells", n=6, size=32)
    assert cli.main(["data", "check", str(root)]) == 0
    out = capsys.readouterr().out
    assert "fingerprint: 6 image(s), binary" in out and "image size: height 32 (32..32)" in out
    assert "objects: 1 per image (median)" in out


def test_budget_keeper_stretches_only_when_allowed() -> None:
    import time as _time

    cfg = load_config(profile="cpu", overrides={"train": {"max_minutes": 1.0}})
    history = [{"epoch": 1, "steps": 4, "train_time_s": 0.4, "epoch_time_s": 0.5}]  # 0.1 s per step
    for grow, expected in ((False, 20), (True, None)):
        plan = recipe.plan_recipe(cfg, num_train=64)
        plan.total_steps, plan.step_s, plan.checkpoint_s = 20, 1.0, 0.0  # the calibration said 1 s per step
        opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
        keeper = recipe.BudgetKeeper(plan, recipe.StepSchedule(opt, "onecycle", 0.1, 20),
                                     deadline=_time.monotonic() + 30.0, budget_s=60.0, log=lambda s: None, grow=grow)
        keeper(history)
        if expected is not None:
            assert keeper.max_steps() == expected  # a resumed run keeps its recorded plan
        else:
            assert keeper.max_steps() > 100  # ~28 s left at 0.5 s per 4-step epoch: about 220 steps


def test_in_memory_dataset_gives_the_same_items_as_decoding_every_time(tmp_path) -> None:
    from workshop.data.loaders import make_datasets

    root = write_folder(tmp_path / "cells", n=10, size=48)
    cfg = load_config(profile="cpu", overrides={"data": {"source": "folder", "root": str(root), "masks_dir": "masks",
                                                          "image_size": 32}})
    _, val = make_datasets(cfg)  # deterministic transform: resize, normalise
    cached = recipe.InMemoryDataset(val, 32)
    assert len(cached) == len(val) and cached.original_sizes[0] == (48, 48)
    for i in range(len(val)):
        a, b = val[i], cached[i]
        assert torch.allclose(a["image"], b["image"], atol=1e-6)
        assert torch.equal(a["mask"], b["mask"]) and b["mask"].dtype == torch.int64


# ----------------------------------------------------------------------------- the loaders are notebook 04's


def _old_recipe_loaders(train_ds, val_ds, batch_size, drop_last, passes, num_workers, device, seed):
    """How the recipe built its loaders before it used make_train_val_loaders (kept here as the yardstick)."""
    from workshop.env import data_loader_kwargs

    generator = torch.Generator().manual_seed(seed)
    sampler = torch.utils.data.RandomSampler(train_ds, num_samples=passes * len(train_ds), generator=generator)
    train = DataLoader(train_ds, batch_size=batch_size, sampler=sampler, drop_last=drop_last, generator=generator,
                       **data_loader_kwargs(device, num_workers))
    val = DataLoader(val_ds, batch_size=batch_size, shuffle=False, drop_last=False, **data_loader_kwargs(device, num_workers))
    return train, val


def _settings(loader) -> dict:
    sampler = loader.sampler
    return {"batch_size": loader.batch_size, "drop_last": loader.drop_last, "num_workers": loader.num_workers,
            "pin_memory": loader.pin_memory, "persistent_workers": loader.persistent_workers,
            "worker_init_fn": type(loader.worker_init_fn).__name__, "sampler": type(sampler).__name__,
            "num_samples": getattr(sampler, "num_samples", len(sampler)), "len": len(loader),
            "seed": loader.generator.initial_seed() if loader.generator is not None else None}


def _orders(loader, epochs: int = 2) -> list[list[int]]:
    orders = []
    for epoch in range(epochs):  # as engine.fit re-seeds every epoch
        if loader.generator is not None:
            loader.generator.manual_seed(1000 + epoch)
        orders.append(list(loader.sampler))
    return orders


@pytest.mark.parametrize(("n", "batch", "drop_last", "passes", "workers", "device"), [
    (10, 4, True, 1, 0, "cpu"), (10, 4, False, 1, 2, "cpu"), (7, 4, True, 3, 0, "cuda"), (12, 16, False, 2, 2, "cuda"),
])
def test_make_train_val_loaders_builds_the_recipes_loaders(n, batch, drop_last, passes, workers, device) -> None:
    from workshop.data.loaders import make_train_val_loaders

    train_ds, val_ds = list(range(n)), list(range(100, 105))
    new = make_train_val_loaders(train_ds, val_ds, batch, workers, torch.device(device), seed=7, drop_last=drop_last,
                                 passes=passes)
    old = _old_recipe_loaders(train_ds, val_ds, batch, drop_last, passes, workers, torch.device(device), seed=7)
    for a, b in zip(new, old):
        assert _settings(a) == _settings(b)
        assert _orders(a) == _orders(b)  # the same draws, epoch after epoch
    assert [list(x) for x in new[1]] == [list(x) for x in old[1]]


def test_prepare_data_builds_its_loaders_with_make_train_val_loaders(monkeypatch) -> None:
    import workshop.data.loaders

    calls = []
    real = workshop.data.loaders.make_train_val_loaders
    monkeypatch.setattr(workshop.data.loaders, "make_train_val_loaders", lambda *a, **k: calls.append(k) or real(*a, **k))
    cfg = load_config(profile="smoke", overrides={"data": {"num_workers": 0}})
    data = recipe.prepare_data(cfg)
    plan = data.plan
    old = _old_recipe_loaders(data.train_ds, data.val_ds, plan.batch_size, plan.drop_last, plan.passes_per_epoch,
                              0, torch.device("cpu"), cfg.train.seed)
    assert calls and calls[0] == {"drop_last": plan.drop_last, "passes": plan.passes_per_epoch}
    assert _settings(data.train_loader) == _settings(old[0]) and _settings(data.val_loader) == _settings(old[1])
    assert _settings(data.rebuild_train_loader()) == _settings(old[0])
    assert _orders(data.train_loader) == _orders(old[0])
