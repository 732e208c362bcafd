"""The training-time estimate of notebook 07: scaled from timed steps, and it leaves the model alone."""

from __future__ import annotations

import torch
from torch import nn

from workshop.estimate import describe_estimate, estimate_fit_seconds


def _batches(n: int) -> list[dict[str, torch.Tensor]]:
    return [{"image": torch.rand(2, 3, 8, 8), "mask": torch.zeros(2, 8, 8, dtype=torch.long)} for _ in range(n)]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 1, 1))


def _loss(logits, masks):
    return logits.mean()


def test_the_model_is_untouched() -> None:
    model = _model().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seconds = estimate_fit_seconds(model, _batches(5), _loss, "cpu", epochs=3)
    assert seconds > 0
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # batch-norm statistics too


def test_the_estimate_scales_with_epochs_and_batches(monkeypatch) -> None:
    import workshop.budget

    timed = []

    def one_second_steps(model, loss_fn, optimizer, loader, device, steps, warmup):  # the recipe's step timer
        timed.append((steps, warmup))
        return 1.0, steps, warmup

    monkeypatch.setattr(workshop.budget, "time_steps", one_second_steps)
    assert estimate_fit_seconds(_model(), _batches(6), _loss, "cpu", epochs=4, val_batches=3) == 4 * (6 + 1)
    assert timed == [(2, 1)]


def test_the_estimate_and_the_calibration_share_one_step_timer(monkeypatch) -> None:
    import workshop.budget

    real, calls = workshop.budget.time_steps, []
    monkeypatch.setattr(workshop.budget, "time_steps", lambda *a, **k: calls.append(k) or real(*a, **k))
    estimate_fit_seconds(_model(), _batches(4), _loss, "cpu", epochs=1)
    workshop.budget.calibrate(_model(), _loss, lambda m: torch.optim.SGD(m.parameters(), lr=0.1), _batches(4), _batches(2), "cpu")
    assert len(calls) == 2


def test_no_epochs_or_no_batches_take_no_time() -> None:
    assert estimate_fit_seconds(_model(), _batches(2), _loss, "cpu", epochs=0) == 0.0
    assert estimate_fit_seconds(_model(), [], _loss, "cpu", epochs=3) == 0.0


def test_the_line_names_the_budget() -> None:
    assert describe_estimate(30) == "estimated training time: about 30 s on this machine (set cfg.train.max_minutes to cap it)"
    assert "about 20 min" in describe_estimate(1200, max_minutes=10) and "stop early" in describe_estimate(1200, 10)
    assert "stop early" not in describe_estimate(120, max_minutes=10)
    assert describe_estimate(0.3).startswith("estimated training time: under a second")
