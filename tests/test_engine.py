"""fit: checkpoints, resume, time budget, non-finite loss, interruption, reproducibility."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from workshop.engine import evaluate, fit, load_checkpoint, make_optimizer, make_scheduler, save_checkpoint, train_one_epoch
from workshop.errors import TrainingError, WorkshopError
from workshop.losses import create_loss

from tiny_training import Squares


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Dropout2d(0.1), nn.Conv2d(8, 1, 1))


def setup(epochs: int = 3, lr: float = 0.05):
    model = tiny_model()
    train = DataLoader(Squares(24, 0), batch_size=8, shuffle=True, generator=torch.Generator())
    val = DataLoader(Squares(8, 1), batch_size=8)
    opt = make_optimizer(model, "adam", lr)
    sched = make_scheduler(opt, "cosine", lr, epochs, len(train))
    return model, train, val, create_loss("dice_bce", "binary"), opt, sched


def run(tmp_path, epochs=3, resume=None, **kwargs):
    model, train, val, loss, opt, sched = setup(epochs)
    return fit(model, train, val, loss, opt, epochs, "cpu", sched, run_dir=tmp_path, resume=resume, seed=1, **kwargs), model


def test_fit_learns_and_writes_checkpoints_and_metrics(tmp_path) -> None:
    result, _ = run(tmp_path, epochs=4)
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    assert result.history[-1]["val_iou"] > 0.7
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["history"] == json.loads(json.dumps(result.history))
    for key in ("train_loss", "val_loss", "val_iou", "val_dice", "train_iou", "epoch_time_s", "lr"):
        assert key in saved["history"][0]
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert best["epoch"] == result.best["epoch"]
    assert best["best_value"] == max(h["val_iou"] for h in result.history)


def test_same_seed_gives_identical_history(tmp_path) -> None:
    a, _ = run(tmp_path / "a")
    b, _ = run(tmp_path / "b")
    strip = lambda hs: [{k: v for k, v in h.items() if not k.endswith("_s")} for h in hs]
    assert strip(a.history) == strip(b.history)


def test_resume_continues_exactly(tmp_path) -> None:
    straight, model_a = run(tmp_path / "straight", epochs=3)
    # Two epochs, then resume the same run up to three.
    model, train, val, loss, opt, sched = setup(3)
    fit(model, train, val, loss, opt, 2, "cpu", sched, run_dir=tmp_path / "split", seed=1)
    resumed, model_b = run(tmp_path / "split", epochs=3, resume=tmp_path / "split")
    strip = lambda hs: [{k: v for k, v in h.items() if not k.endswith("_s")} for h in hs]
    assert strip(resumed.history) == strip(straight.history)
    for pa, pb in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(pa, pb)


def test_time_budget_stops_cleanly_and_saves(tmp_path) -> None:
    from workshop.budget import Budget

    result, _ = run(tmp_path, epochs=50, hooks=[Budget(max_minutes=1e-6)])
    assert len(result.history) == 1 and result.history[0]["partial"] is True
    assert "time budget" in result.stopped_reason
    assert (tmp_path / "checkpoints" / "last.pt").is_file()


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path) -> None:
    model, train, val, loss, opt, sched = setup(3)
    fit(model, train, val, loss, opt, 1, "cpu", sched, run_dir=tmp_path, seed=1)
    before = (tmp_path / "checkpoints" / "best.pt").read_bytes()

    def exploding(logits, target):
        return loss(logits, target) * float("nan")

    with pytest.raises(TrainingError) as info:
        fit(model, train, val, exploding, opt, 3, "cpu", sched, run_dir=tmp_path, seed=1, resume=tmp_path)
    message = str(info.value)
    assert "loss became nan" in message and "learning rate" in message and "{0, 1}" in message
    assert (tmp_path / "checkpoints" / "best.pt").read_bytes() == before


def test_interrupt_saves_and_resume_picks_up(tmp_path, capsys) -> None:
    model, train, val, loss, opt, sched = setup(3)
    calls = {"n": 0}

    def interrupt_in_epoch_two(logits, target):
        calls["n"] += 1
        if calls["n"] == len(train) + 2 + 1:  # epoch 1: 3 train steps + 1 val batch; then 1 step of epoch 2
            raise KeyboardInterrupt
        return loss(logits, target)

    result = fit(model, train, val, interrupt_in_epoch_two, opt, 3, "cpu", sched, run_dir=tmp_path, seed=1)
    assert result.stopped_reason == "interrupted"
    assert [h["epoch"] for h in result.history] == [1]
    assert (tmp_path / "checkpoints" / "interrupted.pt").is_file()
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] == 1
    assert "--resume" in capsys.readouterr().out
    resumed, _ = run(tmp_path, epochs=3, resume=tmp_path)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]


def test_checkpoint_writes_are_atomic_and_failures_keep_old_files(tmp_path, monkeypatch) -> None:
    path = save_checkpoint({"x": torch.arange(3)}, tmp_path / "best.pt")
    good = path.read_bytes()

    def broken_save(obj, fh, *a, **k):
        fh.write(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(WorkshopError, match=r"cannot write checkpoint .*best\.pt: No space left"):
        save_checkpoint({"x": torch.arange(5)}, path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # no temporary left behind


def test_unreadable_checkpoint_is_named(tmp_path) -> None:
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(WorkshopError, match=r"last\.pt cannot be read"):
        load_checkpoint(bad)
    with pytest.raises(WorkshopError, match="nothing to resume"):
        run(tmp_path / "empty", resume=tmp_path / "empty")


def test_train_one_epoch_and_evaluate_report_means() -> None:
    from workshop.hooks import TrainingMetrics

    model, train, val, loss, opt, _ = setup()
    counted = TrainingMetrics(2)
    out = train_one_epoch(model, train, loss, opt, "cpu", [counted])
    assert counted.epoch_summary()["steps"] == 3 and isinstance(out, float) and out > 0
    ev = evaluate(model, val, loss, "cpu", num_classes=2)
    assert 0.0 <= ev["iou"] <= 1.0 and ev["loss"] > 0


@pytest.mark.parametrize(("name", "valid"), [("adagrad", "adam, adamw, sgd"), ("warmup", "onecycle, cosine, step, none")])
def test_builders_name_valid_choices(name: str, valid: str) -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match=valid):
        if "adam" in valid:
            make_optimizer(model, name, 0.1)
        else:
            make_scheduler(make_optimizer(model, "sgd", 0.1), name, 0.1, 1, 1)
