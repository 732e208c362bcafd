"""The GPU path, checked on the CPU: device placement, host-device synchronisations, calibration,
worker seeding, resume, schedules, mixed-precision choices and the gpu profile (issue 21).

No test here needs a GPU. Where a row depends on the device, the device path is taken on the CPU by
declaring that reading a value is not free (``workshop.metrics.reads_are_free``), which is exactly
the switch the library uses on a GPU.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.data import DataLoader, Dataset

import workshop.budget
import workshop.engine
import workshop.hooks
import workshop.metrics
from workshop.config import GpuCard, describe_gpu_profile, load_config, size_gpu_profile
from workshop.engine import evaluate, fit, make_optimizer, make_scheduler, mixed_precision, train_one_epoch
from workshop.hooks import MixedPrecision, NonFiniteCheck, Schedule, TrainingMetrics
from workshop.env import data_loader_kwargs, worker_seed
from workshop.errors import TrainingError
from workshop.losses import create_loss
from workshop.metrics import SegmentationMetrics, confusion_matrix

from tiny_training import Squares


def tiny_model(bn: bool = False) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 8, 3, padding=1)]
    if bn:
        layers.append(nn.BatchNorm2d(8))
    return nn.Sequential(*layers, nn.ReLU(), nn.Conv2d(8, 1, 1))


# ----------------------------------------------------------------------------- counting synchronisations

# Ops that make the host wait for a GPU: reading a value, or an output whose size depends on values.
SYNCING_OPS = {"_local_scalar_dense", "nonzero", "masked_select", "bincount", "_unique2", "unique_dim",
               "unique_consecutive", "repeat_interleave", "histc"}


class SyncCounter(TorchDispatchMode):
    """Counts the ops that would synchronise with a GPU, and host reads (``tolist``, ``numpy``)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in SYNCING_OPS:
            self.ops[name] += 1
        if name == "index" and any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] or [])):
            self.ops["boolean-mask index"] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.ops.values())


@pytest.fixture()
def device_path(monkeypatch):
    """Take the device path on the CPU: reading a value is declared not free, as on a GPU."""
    monkeypatch.setattr(workshop.metrics, "reads_are_free", lambda where: False)
    reads: Counter[str] = Counter()
    for method in ("tolist", "numpy"):
        original = getattr(torch.Tensor, method)

        def counted(self, *a, _original=original, _name=method, **k):
            reads[_name] += 1
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, method, counted)
    return reads


def batches(n: int, size: int = 16) -> list[dict[str, torch.Tensor]]:
    data = Squares(max(n, 1) * 4, 3)
    loader = DataLoader(data, batch_size=4)
    return list(loader)[:n]


def run_hooks(optimizer, scheduler=None, scaler=None, metrics: SegmentationMetrics | None = None) -> list:
    """What fit puts around the loop: mixed precision, the schedule, the non-finite check, training metrics."""
    hooks = [MixedPrecision("cpu", dtype=None, scaler=scaler), NonFiniteCheck(optimizer, "cpu")]
    if scheduler is not None:
        hooks.insert(1, Schedule(scheduler))
    return hooks + ([TrainingMetrics(metrics=metrics)] if metrics is not None else [])


def count_epoch(steps: int, scaler: bool, reads: Counter | None = None) -> tuple[int, dict]:
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scheduler = make_scheduler(optimizer, "cosine", 0.01, total_steps=steps)
    grad_scaler = torch.amp.GradScaler("cpu") if scaler else None
    loss_fn = create_loss("dice_bce", "binary")
    data = batches(steps)
    metrics = SegmentationMetrics(2)
    if reads is not None:
        reads.clear()
    hooks = workshop.hooks.Hooks(run_hooks(optimizer, scheduler, grad_scaler, metrics))
    with SyncCounter() as counter:
        loss = train_one_epoch(model, data, loss_fn, optimizer, "cpu", hooks)
        out = hooks.epoch_summary()
    if reads is not None:
        counter.ops.update(reads)
    assert out["steps"] == steps and math.isfinite(loss) and 0 <= out["iou"] <= 1
    return counter.total, dict(counter.ops)


def test_a_training_step_reads_nothing_back_on_a_device(device_path, monkeypatch) -> None:
    every = 5
    monkeypatch.setattr(workshop.hooks, "SYNC_EVERY", every)  # fewer steps show the same rule
    # bf16 / fp32 (no GradScaler): per step nothing; every SYNC_EVERY steps one non-finite check
    short, _ = count_epoch(6, scaler=False, reads=device_path)
    long, ops = count_epoch(6 + 2 * every, scaler=False, reads=device_path)
    assert long - short <= 2, ops  # 2 * SYNC_EVERY more steps: two periodic checks, nothing per step
    # per epoch: the last checks, the loss sum, the matrix (and, counted here though free after its one
    # copy to the host, the metric values computed from it)
    assert short <= 12, ops
    # float16 with GradScaler: its own check, one read per step, and on average <= 2 per step
    steps = 2 * every
    total, ops = count_epoch(steps, scaler=True, reads=device_path)
    assert ops["_local_scalar_dense"] >= steps  # GradScaler's found-inf read is counted too
    assert total / steps <= 2 and total - steps <= short + 2, ops


def test_sync_counter_sees_the_old_per_step_reads() -> None:
    # the counter is not blind: the CPU path (reads are free) checks the loss every step
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with SyncCounter() as counter:
        train_one_epoch(model, batches(12), create_loss("dice_bce", "binary"), optimizer, "cpu",
                        run_hooks(optimizer, metrics=SegmentationMetrics(2)))
    assert counter.total >= 12 * 3  # non-finite check, mask check, confusion checks: several per step
    x = torch.tensor([0, 1, 1])
    with SyncCounter() as counter:
        x[x > 0], torch.bincount(x), x.sum().item()
    assert counter.ops["boolean-mask index"] == 1 and counter.ops["bincount"] == 1 and counter.ops["_local_scalar_dense"] >= 1


def test_validation_reads_the_device_once_per_pass(device_path) -> None:
    model = tiny_model().eval()
    loss_fn = create_loss("dice_bce", "binary")
    counts = []
    for n in (2, 12):
        with SyncCounter() as counter:
            result = evaluate(model, batches(n), loss_fn, "cpu")
        counts.append(counter.total)
        assert 0 <= result["iou"] <= 1
    assert counts[0] == counts[1]  # 10 more batches, not one more read


def test_device_confusion_counts_equal_bincount_and_flag_bad_ids(device_path) -> None:
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (3, 9, 9), generator=g)
    target[0, 0, :4] = 255
    pred = torch.randint(0, 4, (3, 9, 9), generator=g)
    expected = torch.zeros(4, 4, dtype=torch.int64)
    keep = target != 255
    for t, p in zip(target[keep].tolist(), pred[keep].tolist()):
        expected[t, p] += 1
    metrics = SegmentationMetrics(4)
    with SyncCounter() as counter:
        metrics.update(pred, target)
    assert counter.total == 0
    assert torch.equal(metrics.confusion, expected)
    assert torch.equal(confusion_matrix(pred, target, 4), expected)
    bad = target.clone()
    bad[1, 1, 1] = 7
    metrics.update(pred, bad)  # no read here ...
    with pytest.raises(ValueError, match="1 pixel"):  # ... the bad id is reported by compute()
        metrics.compute()
    with pytest.raises(ValueError, match=r"\[7\]"):  # the taught function still names the values
        confusion_matrix(pred, bad, 4)


def test_bad_mask_ids_on_a_device_stop_training_with_the_values(device_path) -> None:
    loss_fn = create_loss("dice_ce", "multiclass")
    logits = torch.zeros(1, 3, 4, 4, requires_grad=True)
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, 0, 0] = 5
    loss = loss_fn(logits, target)  # no exception (that would need a read): a NaN loss
    assert torch.isnan(loss)
    data = batches(3)
    data[1] = {"image": data[1]["image"], "mask": data[1]["mask"].clone()}
    data[1]["mask"][0, 0, 0] = 3
    model = tiny_model()
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 0, by step 2.*\{0, 1, 3\}|loss became nan.*mask values"):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        train_one_epoch(model, data, create_loss("dice_bce", "binary"), optimizer, "cpu", run_hooks(optimizer))


# ----------------------------------------------------------------------------- the loss on the device


@pytest.mark.parametrize(("name", "mode", "weights", "attribute"), [
    ("bce", "binary", [1.0, 3.0], "pos_weight"), ("ce", "multiclass", [1.0, 2.0, 3.0], "weight"),
    ("focal", "binary", [1.0, 3.0], "alpha"), ("focal", "multiclass", [1.0, 2.0, 3.0], "alpha"),
])
def test_loss_weights_are_buffers_that_follow_to(name, mode, weights, attribute) -> None:
    loss = create_loss(name, mode, class_weights=weights).to("meta")
    assert getattr(loss, attribute).device.type == "meta"


def test_fit_moves_the_loss_to_the_device(tmp_path) -> None:
    # on a GPU, class weights (pos_weight) left on the CPU crash the first step: fit moves the loss
    loss = create_loss("dice_bce", "binary", class_weights=[1.0, 3.0])
    moved = []
    original = loss.to
    loss.to = lambda *args, **kwargs: moved.append(torch.device(args[0])) or original(*args, **kwargs)
    model = tiny_model()
    train = DataLoader(Squares(8, 0), batch_size=4)
    val = DataLoader(Squares(4, 1), batch_size=4)
    result = fit(model, train, val, loss, make_optimizer(model, "adam", 0.01), 1, "cpu", seed=1)
    assert moved == [torch.device("cpu")] and math.isfinite(result.history[0]["val_loss"])


# ----------------------------------------------------------------------------- resume and schedules


def test_resume_loads_the_checkpoint_to_the_cpu(tmp_path, monkeypatch) -> None:
    model = tiny_model()
    train, val = DataLoader(Squares(8, 0), batch_size=4), DataLoader(Squares(4, 1), batch_size=4)
    fit(model, train, val, create_loss("dice_bce", "binary"), make_optimizer(model, "adamw", 0.01), 1, "cpu",
        run_dir=tmp_path, seed=1)
    seen = []
    original = workshop.engine.load_checkpoint
    monkeypatch.setattr(workshop.engine, "load_checkpoint",
                        lambda path, map_location="cpu": seen.append(str(map_location)) or original(path, map_location))
    model = tiny_model()
    optimizer = make_optimizer(model, "adamw", 0.01)
    fit(model, train, val, create_loss("dice_bce", "binary"), optimizer, 2, "cpu", run_dir=tmp_path, seed=1,
        resume=tmp_path)
    assert seen == ["cpu"]
    assert all(s["step"].device.type == "cpu" for s in optimizer.state.values())


@pytest.mark.parametrize("total", [3, 4, 5, 7, 10, 11, 12, 31, 100])
def test_step_schedule_drops_exactly_twice(total) -> None:
    runs = {}
    for build in ("torch", "recipe"):
        optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
        if build == "torch":
            scheduler = make_scheduler(optimizer, "step", 1.0, total_steps=total)
        else:
            scheduler = workshop.budget.StepSchedule(optimizer, "step", 1.0, total_steps=total)
        used = []
        for _ in range(total):  # the learning rate of each optimiser step
            used.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        drops = sum(1 for a, b in zip(used, used[1:]) if b < a)
        assert drops == 2, (build, used)
        assert used[-1] == pytest.approx(0.01)
        runs[build] = used
    assert runs["torch"] == pytest.approx(runs["recipe"])  # the same rule with and without a budget


def test_a_skipped_first_float16_step_does_not_warn_about_the_scheduler() -> None:
    def run(quiet: bool) -> list[str]:
        model = tiny_model()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        scheduler = make_scheduler(optimizer, "cosine", 0.01, total_steps=4)
        scaler = torch.amp.GradScaler("cpu", init_scale=float("inf"))  # the scaled loss overflows: step skipped
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if quiet:
                train_one_epoch(model, batches(2), create_loss("dice_bce", "binary"), optimizer, "cpu",
                                run_hooks(optimizer, scheduler, scaler))
            else:  # the same step without the engine: PyTorch's warning appears
                loss = create_loss("dice_bce", "binary")(model(batches(1)[0]["image"]), batches(1)[0]["mask"])
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
        return [str(w.message) for w in caught if "optimizer.step()" in str(w.message)]

    assert run(quiet=False), "the scenario must reproduce PyTorch's warning"
    assert run(quiet=True) == []


def test_predictions_figure_uses_the_run_threshold(tmp_path, monkeypatch) -> None:
    import workshop.viz
    from workshop.engine import FitResult
    from workshop.runs import write_run_figures

    shown = {}
    monkeypatch.setattr(workshop.viz, "plot_history", lambda history: None)
    monkeypatch.setattr(workshop.viz, "save_figure", lambda fig, path: None)
    monkeypatch.setattr(workshop.viz, "show_samples", lambda images, masks, preds: shown.setdefault("preds", preds))

    class Constant(nn.Module):  # probability sigmoid(0.4) = 0.60 everywhere
        def forward(self, x):
            return torch.full((x.shape[0], 1, *x.shape[2:]), 0.4)

    val = DataLoader(Squares(4, 1), batch_size=2)
    for threshold, expected in ((0.5, 1), (0.7, 0)):
        shown.clear()
        write_run_figures(FitResult(history=[], run_dir=tmp_path), Constant(), val, "cpu", rows=2, threshold=threshold)
        assert all((p == expected).all() for p in shown["preds"])


# ----------------------------------------------------------------------------- calibration


class SlowStart(nn.Module):
    """A loss that is slow on its first ``slow`` calls (warm-up: allocations, autotuning)."""

    def __init__(self, slow: int, seconds: float) -> None:
        super().__init__()
        self.inner, self.slow, self.seconds, self.calls = create_loss("dice_bce", "binary"), slow, seconds, 0

    def forward(self, logits, target):
        self.calls += 1
        if self.calls <= self.slow:
            time.sleep(self.seconds)
        return self.inner(logits, target)


class SlowFirstIteration:
    """A loader whose first ``iter()`` takes ``seconds`` (workers starting), later ones not."""

    def __init__(self, loader, seconds: float) -> None:
        self.loader, self.seconds, self.started = loader, seconds, False

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        if not self.started:
            self.started = True
            time.sleep(self.seconds)
        return iter(self.loader)


def test_calibration_skips_warm_up_steps_and_worker_start_up() -> None:
    train = DataLoader(Squares(32, 0), batch_size=4)
    val = SlowFirstIteration(DataLoader(Squares(16, 1), batch_size=4), seconds=1.0)
    loss = SlowStart(slow=workshop.budget.WARMUP_STEPS, seconds=0.6)
    timing = workshop.budget.calibrate(tiny_model(), loss, lambda m: make_optimizer(m, "adam", 0.01), train, val, "cpu")
    assert timing["warmup_steps"] == workshop.budget.WARMUP_STEPS and timing["timed_steps"] == workshop.budget.CALIBRATION_STEPS
    assert timing["step_s"] < 0.3  # the 0.6-s warm-up steps are not in it
    assert timing["val_s"] < 0.8  # 4 batches at the timed rate; not the 1-s start-up scaled by 4


def test_calibration_times_the_runs_precision_without_sync_batchnorm(monkeypatch) -> None:
    sentinel_scaler = object()
    monkeypatch.setattr(workshop.engine, "mixed_precision",
                        lambda device, amp, amp_dtype="auto": (torch.bfloat16, sentinel_scaler) if amp else (None, None))
    seen = {}

    def spy_train(model, loader, loss_fn, optimizer, device, hooks):
        precision = next(h for h in hooks if isinstance(h, MixedPrecision))
        seen["train"] = (precision.scaler, precision.dtype, any(isinstance(m, nn.SyncBatchNorm) for m in model.modules()))
        counted = next(h for h in hooks if isinstance(h, TrainingMetrics))
        cap = next(h for h in hooks if isinstance(h, workshop.budget.Budget)).max_steps
        counted.steps = cap
        return 0.0

    def spy_eval(model, loader, loss_fn, device, **kwargs):
        seen["eval"] = next(h for h in kwargs["hooks"] if isinstance(h, MixedPrecision)).dtype
        return {}

    monkeypatch.setattr(workshop.engine, "train_one_epoch", spy_train)
    monkeypatch.setattr(workshop.engine, "evaluate", spy_eval)
    model = nn.SyncBatchNorm.convert_sync_batchnorm(tiny_model(bn=True))
    train, val = DataLoader(Squares(32, 0), batch_size=4), DataLoader(Squares(8, 1), batch_size=4)
    workshop.budget.calibrate(model, create_loss("dice_bce", "binary"), lambda m: make_optimizer(m, "adam", 0.01),
                              train, val, "cpu", amp=True, amp_dtype="bfloat16")
    assert seen["train"] == (sentinel_scaler, torch.bfloat16, False)
    assert seen["eval"] == torch.bfloat16
    assert any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())  # the run's model is untouched


def test_without_sync_batchnorm_keeps_the_numbers() -> None:
    plain = tiny_model(bn=True)
    with torch.no_grad():
        plain[1].running_mean.uniform_(-1, 1)
        plain[1].weight.uniform_(0.5, 2)
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(plain)
    back = workshop.budget.without_sync_batchnorm(synced).eval()
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in back.modules())
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(back(x), plain.eval()(x))


def test_a_one_epoch_plan_re_plans_within_its_epoch(monkeypatch) -> None:
    from workshop.recipe import RecipePlan

    clock = {"t": 1000.0}
    monkeypatch.setattr(workshop.budget.time, "monotonic", lambda: clock["t"])
    # the calibration said 2 s per step: 10 steps in a 25-s budget; the steps really take 0.5 s
    plan = RecipePlan(num_train=400, batch_size=4, drop_last=False, steps_per_epoch=100, epochs=1, total_steps=10,
                      step_s=2.0, val_s=1.0, checkpoint_s=0.0)
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    schedule = workshop.budget.StepSchedule(optimizer, "cosine", 0.1, 10)
    logged = []
    keeper = workshop.budget.BudgetKeeper(plan, schedule, deadline=1000.0 + 25, budget_s=25.0, log=logged.append)
    done = 0
    while done < keeper.max_steps(done):
        clock["t"] += 0.5 if done else 3.0  # the first step is slow (workers start): not counted
        done += 1
    assert keeper.total > 30 and keeper.replans and "within epoch 1" in logged[0]
    assert 1000.0 + 3.0 + 0.5 * (keeper.total - 1) <= 1000.0 + 25  # still inside the budget
    # a plan of several epochs waits for the end of its first epoch
    plan.epochs = 2
    keeper = workshop.budget.BudgetKeeper(plan, schedule, deadline=clock["t"] + 25, budget_s=25.0, log=logged.append)
    for done in range(10):
        clock["t"] += 0.5
        assert keeper.max_steps(done) == 10


# ----------------------------------------------------------------------------- workers and seeds


class RandomDraws(Dataset):
    """Each item is one draw of its transform's own random generator (as albumentations has)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.transform = SeededTransform()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([i, self.transform()], dtype=torch.float64)


class SeededTransform:
    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def set_random_seed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self) -> float:
        return float(self.rng.random())


def epoch_draws(loader, epoch: int) -> list[float]:
    workshop.engine._seed_epoch(7, epoch, loader)
    return [float(b[0, 1]) for b in loader]


def test_workers_and_epochs_draw_different_augmentations_and_a_fresh_loader_repeats_them() -> None:
    kwargs = data_loader_kwargs(torch.device("cpu"), 2)
    assert kwargs["persistent_workers"] and kwargs["worker_init_fn"] is not None
    persistent = DataLoader(RandomDraws(4), batch_size=1, **kwargs)
    first, second = epoch_draws(persistent, 1), epoch_draws(persistent, 2)
    assert len(set(first)) == 4  # batches 0/1 (workers 0/1) and 2/3 differ
    assert not set(first) & set(second)  # persistent workers see the new epoch
    fresh = DataLoader(RandomDraws(4), batch_size=1, **data_loader_kwargs(torch.device("cpu"), 2))
    assert epoch_draws(fresh, 2) == second  # a resumed run (workers started at epoch 2) draws the same
    assert worker_seed(7001, 0) != worker_seed(7001, 1) != worker_seed(7002, 1)


class FlippedSquares(Dataset):
    """Squares with a random horizontal flip drawn by the transform's generator."""

    def __init__(self, n: int, seed: int) -> None:
        self.items = Squares(n, seed).items
        self.transform = SeededTransform()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        item = self.items[i]
        if self.transform() < 0.5:
            return {"image": item["image"].flip(-1), "mask": item["mask"].flip(-1)}
        return item


def test_resume_with_two_workers_equals_an_uninterrupted_run(tmp_path) -> None:
    def setup():
        model = tiny_model()
        kwargs = data_loader_kwargs(torch.device("cpu"), 2)
        train = DataLoader(FlippedSquares(16, 0), batch_size=4, shuffle=True, generator=torch.Generator(), **kwargs)
        val = DataLoader(Squares(8, 1), batch_size=8)
        optimizer = make_optimizer(model, "adam", 0.05)
        return model, train, val, create_loss("dice_bce", "binary"), optimizer, make_scheduler(optimizer, "cosine", 0.05, 3, len(train))

    model_a, *rest = setup()
    straight = fit(model_a, *rest[:4], 3, "cpu", rest[4], run_dir=tmp_path / "a", seed=1)
    model, *rest = setup()
    fit(model, *rest[:4], 2, "cpu", rest[4], run_dir=tmp_path / "b", seed=1)
    model_b, *rest = setup()
    resumed = fit(model_b, *rest[:4], 3, "cpu", rest[4], run_dir=tmp_path / "b", seed=1, resume=tmp_path / "b")
    strip = lambda hs: [{k: v for k, v in h.items() if not k.endswith("_s")} for h in hs]  # noqa: E731
    assert strip(resumed.history) == strip(straight.history)
    for pa, pb in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(pa, pb)


# ----------------------------------------------------------------------------- precision and the gpu profile


def test_mixed_precision_choice(monkeypatch) -> None:
    assert mixed_precision("cpu", True) == (None, None)
    assert mixed_precision("cuda", False) == (None, None)
    with pytest.raises(ValueError, match="auto, float16, bfloat16"):
        mixed_precision("cpu", True, "fp8")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert mixed_precision("cuda", True) == (torch.bfloat16, None)  # no GradScaler with bfloat16
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GradScaler warns that CUDA is absent here
        dtype, scaler = mixed_precision("cuda", True)
    assert dtype == torch.float16 and isinstance(scaler, torch.amp.GradScaler)


T4 = GpuCard("Tesla T4", 14.7, (7, 5), 2)
H100 = GpuCard("NVIDIA H100 80GB HBM3", 79.1, (9, 0), 16)


def test_gpu_profile_sizes_itself_to_the_card() -> None:
    t4, h100 = size_gpu_profile(T4), size_gpu_profile(H100)
    value = lambda sized, key: sized[key][0]  # noqa: E731
    assert [value(t4, k) for k in ("data.num_workers", "data.batch_size", "train.lr", "train.amp_dtype")] == \
        [2, 32, 1e-3, "float16"]
    assert [value(h100, k) for k in ("data.num_workers", "data.batch_size", "train.amp_dtype")] == [8, 64, "bfloat16"]
    assert value(h100, "train.lr") == pytest.approx(1e-3 * math.sqrt(2), rel=1e-3)
    assert value(size_gpu_profile(GpuCard("small", 8.0, (6, 1), 4)), "data.batch_size") == 16
    assert value(size_gpu_profile(GpuCard("small", 8.0, (6, 1), 4)), "data.num_workers") == 3
    for sized in (t4, h100):
        assert sized["train.cudnn_benchmark"][0] and sized["train.channels_last"][0]
        assert all(why for _, why in sized.values())
    assert "compute capability 7.5" in t4["train.amp_dtype"][1] and "16 CPU" in h100["data.num_workers"][1]


def test_gpu_profile_applies_the_sizing_and_the_log_says_why(monkeypatch) -> None:
    import workshop.config

    monkeypatch.setattr(workshop.config, "detect_gpu_card", lambda: H100)
    cfg = load_config(profile="gpu")
    assert (cfg.data.batch_size, cfg.data.num_workers, cfg.train.amp_dtype) == (64, 8, "bfloat16")
    assert cfg.train.cudnn_benchmark and cfg.train.channels_last
    lines = describe_gpu_profile(cfg, H100)
    assert "H100" in lines[0] and any("data.batch_size = 64: 79 GiB" in line for line in lines)
    configured = load_config(profile="gpu", overrides=["data.batch_size=16"])  # the user's choice wins
    assert configured.data.batch_size == 16
    assert any("data.batch_size = 16 (configured; the card suggests 64" in line for line in describe_gpu_profile(configured, H100))
    monkeypatch.setattr(workshop.config, "detect_gpu_card", lambda: None)  # no card: the T4 recipe as written
    plain = load_config(profile="gpu")
    assert (plain.data.batch_size, plain.data.num_workers, plain.train.amp_dtype) == (32, 2, "float16")
    assert load_config(profile="cpu").train.cudnn_benchmark is False


def test_a_budgeted_run_calibrates_with_its_own_precision(tmp_path, monkeypatch) -> None:
    import workshop.recipe
    from workshop.runs import train_from_config

    class Stop(Exception):
        pass

    seen = {}

    def spy(model, loss_fn, optimizer_factory, train_loader, val_loader, device, **kwargs):
        seen.update(kwargs, sync_bn=any(isinstance(m, nn.SyncBatchNorm) for m in model.modules()))
        raise Stop

    monkeypatch.setattr(workshop.recipe, "calibrate", spy)
    cfg = load_config(profile="smoke", overrides={"model": {"encoder_weights": None},
                                                  "train": {"max_minutes": 1.0, "amp_dtype": "bfloat16", "channels_last": True}})
    with pytest.raises(Stop):
        train_from_config(cfg, run_dir=tmp_path / "run", log=lambda line: None)
    assert (seen["amp"], seen["amp_dtype"], seen["channels_last"], seen["sync_bn"]) == (True, "bfloat16", True, False)


def test_a_cuda_that_answers_yes_without_a_card_sizes_nothing(monkeypatch) -> None:
    """torch.cuda.is_available() can say True where no card answers (a broken driver, a test's fake)."""
    import workshop.config

    def no_card(index: int = 0):
        raise RuntimeError("Found no NVIDIA driver on your system.")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", no_card)
    assert workshop.config.detect_gpu_card() is None
    assert workshop.config.load_config(profile="gpu").profile == "gpu"
