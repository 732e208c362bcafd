"""Training on torchrun: two gloo processes on the CPU against one, faults, launcher errors.

The runs launch the real ``torchrun`` (``python -m torch.distributed.run``, or ``workshop torchrun``
where its one-line errors are checked) on ``tests/ddp_worker.py``: the real ``workshop train``
command line with a tiny convolutional model and 32x32 embedded images, so a run takes seconds
of compute and most of its time is spent importing torch. The launches share module fixtures, so
each configuration runs once.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from workshop import distributed
from workshop.engine import load_checkpoint
from workshop.errors import ConfigError, WorkshopError
from workshop.launch import split_arguments

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "ddp_worker.py"
LAUNCH_TIMEOUT = 240

CONFIG = """\
profile: smoke
data: {num_images: 23, image_size: 32, val_fraction: 0.3, batch_size: 4}
augment: {hflip: 0, vflip: 0, rotate90: 0, shift_scale_rotate: 0, color_jitter: 0, noise: 0}
model: {encoder_weights: null}
train: {epochs: 2, loss: bce, lr: 0.01, scheduler: cosine, progress: false}
"""
# 23 images: 16 train (4 global steps of 4 per epoch: the recipe keeps batch 4, a quarter of 16 images),
# 7 validation (4 + 3 over two ranks, no padding). test_the_recipe_keeps_the_tiny_config checks that plan,
# on which the faults' step numbers below depend.
STEPS_PER_EPOCH = 4
METRIC_KEYS = ("train_loss", "train_iou", "val_loss", "val_iou", "val_dice", "lr", "partial")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(out: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", DDP_TEST_OUT=str(out))
    env.update(extra)
    return env


def torchrun(nproc: int, *argv: str, out: Path, launcher: str = "torch", **extra: str) -> subprocess.CompletedProcess:
    """Launch ``torchrun --nproc_per_node nproc tests/ddp_worker.py argv`` and wait for it."""
    out.mkdir(parents=True, exist_ok=True)
    options = ["--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1", "--master_port", str(free_port())]
    if launcher == "torch":
        cmd = [sys.executable, "-m", "torch.distributed.run", *options, str(WORKER), *argv]
    else:  # workshop torchrun: the same agent, failures in one line
        code = ("import sys; from workshop.launch import torchrun; "
                f"sys.exit(torchrun(sys.argv[1:], program=({str(WORKER)!r},)))")
        cmd = [sys.executable, "-c", code, *options, *argv]
    return subprocess.run(cmd, env=environment(out, **extra), capture_output=True, text=True,
                          timeout=LAUNCH_TIMEOUT, cwd=out)


def ranks(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"


def same_history(a: list[dict], b: list[dict]) -> None:
    assert [h["epoch"] for h in a] == [h["epoch"] for h in b]
    for x, y in zip(a, b):
        for key in METRIC_KEYS:
            assert x[key] == pytest.approx(y[key], rel=1e-5, abs=1e-6), (x["epoch"], key, x[key], y[key])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    (root / "tiny.yaml").write_text(CONFIG)
    return root


@pytest.fixture(scope="module")
def two_processes(workdir):
    """Two ranks, two epochs, then best.pt evaluated on the same two ranks."""
    out = workdir / "two"
    proc = torchrun(2, "train", "--config", str(workdir / "tiny.yaml"), "--set", f"run_dir={out / 'runs'}",
                    out=out, DDP_TEST_EVALUATE="best")
    assert_ok(proc)
    return out, proc


@pytest.fixture(scope="module")
def one_process(workdir, two_processes):
    """One rank, the same config, then the two-process run's best.pt evaluated on one rank."""
    best = Path(ranks(two_processes[0])[0]["run_dir"]) / "checkpoints" / "best.pt"
    out = workdir / "one"
    proc = torchrun(1, "train", "--config", str(workdir / "tiny.yaml"), "--run-dir", str(out / "run"),
                    out=out, DDP_TEST_EVALUATE=str(best))
    assert_ok(proc)
    return out, proc


def test_two_processes_and_one_give_the_same_validation_metrics(two_processes, one_process) -> None:
    rank0, rank1 = ranks(two_processes[0])
    (single,) = ranks(one_process[0])
    assert (rank0["world"], rank1["world"], single["world"]) == (2, 2, 1)
    assert rank0["history"][0]["val_iou"] > 0  # the model learnt something to compare
    same_history(rank0["history"], single["history"])
    same_history(rank1["history"], rank0["history"])  # every rank logs the reduced numbers


def test_only_rank_0_writes_and_every_rank_uses_one_run_folder(two_processes) -> None:
    out, proc = two_processes
    folders = sorted((out / "runs").iterdir())
    assert len(folders) == 1, folders  # the time-stamped name is rank 0's, broadcast
    run = folders[0]
    assert {r["run_dir"] for r in ranks(out)} == {str(run)}
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    assert json.loads((run / "metrics.json").read_text())["history"] == ranks(out)[0]["history"]
    assert proc.stdout.count("finished (finished)") == 1 and proc.stdout.count("epoch   1/2") == 1
    assert "terminate called" not in proc.stderr  # every rank left the process group cleanly
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert not any(key.startswith("module.") for key in state["model"])  # loads on any number of processes


def test_the_recipe_keeps_the_tiny_config_on_one_and_two_processes(two_processes, one_process) -> None:
    """The plan the fault positions (``STEPS_PER_EPOCH``) and the expected learning rates rely on."""
    import yaml

    plans = [yaml.safe_load((Path(ranks(out)[0]["run_dir"]) / "config.yaml").read_text())["recipe"]
             for out, _ in (two_processes, one_process)]
    for plan in plans:
        assert (plan["batch_size"], plan["steps_per_epoch"], plan["total_steps"], plan["passes_per_epoch"]) == (
            4, STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH, 1)
        assert plan["choices"]["data.batch_size"]["configured"] == 4
    assert [h["steps"] for h in ranks(two_processes[0])[0]["history"]] == [STEPS_PER_EPOCH] * 2


def test_one_checkpoint_gives_the_same_confusion_matrix_on_one_and_two_processes(two_processes, one_process) -> None:
    on_two = ranks(two_processes[0])[0]["evaluation"]
    on_one = ranks(one_process[0])[0]["evaluation"]
    assert on_two["shard_sizes"] == [4, 3] and on_one["shard_sizes"] == [7]  # each image once, no padding
    assert on_two["confusion"] == on_one["confusion"]
    assert sum(map(sum, on_two["confusion"])) == 7 * 32 * 32  # every validation pixel counted once
    assert on_two["iou"] == on_one["iou"]
    assert on_two["loss"] == pytest.approx(on_one["loss"], rel=1e-6)


@pytest.fixture(scope="module")
def killed_run(workdir):
    """Two ranks; rank 1 is SIGKILLed at step 1 of epoch 2 (its 6th training step)."""
    out = workdir / "killed"
    run = out / "run"
    proc = torchrun(2, "train", "--config", str(workdir / "tiny.yaml"), "--run-dir", str(run),
                    out=out, launcher="workshop", DDP_TEST_FAULT=f"kill@1:{STEPS_PER_EPOCH + 1}")
    return run, proc


def test_killing_one_rank_ends_the_run_with_a_message_and_intact_checkpoints(killed_run, two_processes) -> None:
    run, proc = killed_run
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors[-1].startswith("error: the run stopped: ") and "rank 1 (local rank 1) killed by SIGKILL" in errors[-1]
    rank0 = [line for line in errors if line.startswith("error: rank 0 ")]
    assert len(rank0) == 1, proc.stderr[-3000:]  # rank 0 says why it stopped and how to go on
    assert (f"the checkpoints of the finished epochs in {run / 'checkpoints'} are intact" in rank0[0]
            and rank0[0].endswith(f"continue with: workshop train --resume {run}"))
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["epoch"] == 1
    same_history(best["history"], ranks(two_processes[0])[0]["history"][:1])


def test_resuming_a_two_process_run_on_one_process_gives_the_uninterrupted_history(killed_run, two_processes, workdir) -> None:
    run, _ = killed_run
    out = workdir / "resumed"
    assert_ok(torchrun(1, "train", "--resume", str(run), out=out))
    (resumed,) = ranks(out)
    same_history(resumed["history"], ranks(two_processes[0])[0]["history"])
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 2


def test_ctrl_c_stops_every_rank_and_keeps_the_checkpoints(workdir) -> None:
    out = workdir / "interrupted"
    run = out / "run"
    proc = torchrun(2, "train", "--config", str(workdir / "tiny.yaml"), "--run-dir", str(run),
                    out=out, launcher="workshop", DDP_TEST_FAULT=f"interrupt@1:{STEPS_PER_EPOCH + 1}")  # Ctrl-C at epoch 2, step 1
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert proc.stderr.splitlines()[-1] == (
        "error: interrupted: torchrun stopped every process of the run; the checkpoints written so far are intact")
    assert "Traceback" not in proc.stderr
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 1
    assert load_checkpoint(run / "checkpoints" / "best.pt")["epoch"] == 1
    interrupted = run / "checkpoints" / "interrupted.pt"  # written when rank 0 caught the Ctrl-C itself
    assert not interrupted.exists() or load_checkpoint(interrupted)["interrupted"] is True


def test_the_time_budget_is_rank_0s_and_every_rank_stops_at_the_same_step(workdir) -> None:
    out = workdir / "budget"
    proc = torchrun(2, "train", "--config", str(workdir / "tiny.yaml"), "--run-dir", str(out / "run"),
                    "--max-minutes", "1e-7", out=out, DDP_TEST_FAULT="clock@1")  # rank 1's clock stands still
    assert_ok(proc)
    for rank in ranks(out):
        assert rank["stopped_reason"] == "time budget of 1e-07 min reached"
        assert [(h["epoch"], h["partial"]) for h in rank["history"]] == [(1, True)]


def test_a_nan_loss_on_one_rank_stops_every_rank(workdir) -> None:
    out = workdir / "nan"
    run = out / "run"
    proc = torchrun(2, "train", "--config", str(workdir / "tiny.yaml"), "--run-dir", str(run),
                    out=out, DDP_TEST_FAULT=f"nan@1:{STEPS_PER_EPOCH}")  # rank 1, epoch 2, step 0
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    # the cosine schedule of 2 x 4 steps from lr 0.01, after 4 steps: 0.01 * (1 + cos(pi * 4 / 8)) / 2 = 0.005
    assert sorted(errors) == [
        "error: [rank 1] loss became nan at epoch 2, step 0 on rank 1 of 2. Likely causes: a learning rate too high "
        "(lr=0.005; try 10x lower), mask values that are not class ids (this batch has {0, 1}), or images that "
        "were not normalised. The last good checkpoint is kept.",
        "error: loss became non-finite at epoch 2, step 0 on rank 1 of 2. Likely causes: a learning rate too high "
        "(lr=0.005; try 10x lower), mask values that are not class ids (this batch has {0, 1}), or images that "
        "were not normalised. The last good checkpoint is kept.",
    ]
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 1


def test_a_budget_laid_by_rank_0_runs_its_steps_on_every_rank(workdir) -> None:
    """A budget long enough to plan in: rank 0 times the machine alone, every rank runs its plan's epochs."""
    import yaml

    out = workdir / "planned"
    proc = torchrun(2, "train", "--config", str(workdir / "tiny.yaml"), "--run-dir", str(out / "run"),
                    "--max-minutes", "0.1", out=out)
    assert_ok(proc)
    plan = yaml.safe_load((out / "run" / "config.yaml").read_text())["recipe"]
    assert plan["calibration"]["step_s"] > 0 and "a budget of 0.1 min" in plan["choices"]["train.epochs"]["why"]
    rank0, rank1 = ranks(out)
    steps = [h["steps"] for h in rank0["history"]]
    assert steps == [h["steps"] for h in rank1["history"]]  # the same steps and the same stop on both ranks
    assert all(n == plan["steps_per_epoch"] for n in steps[:-1])  # an epoch of the plan's passes, also sharded
    assert sum(steps) <= plan["total_steps"]


def test_launcher_errors_are_one_line(tmp_path) -> None:
    """A port already in use and a rendezvous that times out, through ``workshop torchrun``."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = environment(tmp_path)
        in_use = subprocess.Popen(
            [sys.executable, "-m", "workshop", "torchrun", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
             "--master_port", str(port), "train", "--config", "x.yaml"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        lonely_port = free_port()
        lonely = subprocess.Popen(  # two machines announced, one comes
            [sys.executable, "-m", "workshop", "torchrun", "--nnodes", "2", "--nproc_per_node", "1",
             "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{lonely_port}", "--rdzv-id", "t",
             "--rdzv-conf", "join_timeout=3", "train", "--config", "x.yaml"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        _, err_in_use = in_use.communicate(timeout=LAUNCH_TIMEOUT)
        _, err_lonely = lonely.communicate(timeout=LAUNCH_TIMEOUT)
    assert in_use.returncode == 2 and "Traceback" not in err_in_use
    assert err_in_use.splitlines()[-1] == (
        f"error: torchrun could not listen on 127.0.0.1:{port}: the port is already in use (another run?). "
        "Choose a free one with --master-port PORT (or --rdzv-endpoint HOST:PORT), or use --standalone")
    assert lonely.returncode == 2 and "Traceback" not in err_lonely
    assert err_lonely.splitlines()[-1].startswith(
        f"error: torchrun's rendezvous at 127.0.0.1:{lonely_port} timed out: not every machine joined (--nnodes 2).")


# ----------------------------------------------------------------------------- in one process


def test_python_dash_m_workshop_is_the_command_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "workshop", "--help"], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert proc.returncode == 0 and "torchrun" in proc.stdout and "train" in proc.stdout


def test_outside_torchrun_everything_is_one_process(monkeypatch) -> None:
    for name in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    loader = DataLoader(list(range(10)), batch_size=4)
    assert distributed.setup(torch.device("cpu")) == torch.device("cpu") and not distributed.active()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.shard_loaders(loader, loader) == (loader, loader)
    assert distributed.sum_over_ranks(2.5, 3.0) == (2.5, 3.0)
    assert distributed.ranks_where(True) == [0] and distributed.ranks_where(False) == []
    assert distributed.decided_by_main(True) is True and distributed.same_on_all_ranks("x") == "x"


@pytest.mark.parametrize("length", [0, 1, 6, 7, 23])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_validation_shards_hold_every_item_exactly_once(length: int, world: int) -> None:
    shards = [list(distributed.ShardSampler(length, world, r)) for r in range(world)]
    assert sorted(i for shard in shards for i in shard) == list(range(length))
    assert [len(distributed.ShardSampler(length, world, r)) for r in range(world)] == [len(s) for s in shards]


@pytest.mark.parametrize("n, global_batch, world", [(16, 8, 2), (23, 8, 2), (7, 4, 2), (30, 12, 3), (40, 8, 4)])
def test_step_k_covers_the_same_images_whatever_the_number_of_processes(n: int, global_batch: int, world: int) -> None:
    """The union of the ranks' batches at step k is batch k of the one-process DistributedSampler order."""
    def batches(w: int) -> list[list[set[int]]]:
        per_rank = []
        for r in range(w):
            sampler = DistributedSampler(range(n), num_replicas=w, rank=r, shuffle=True, seed=0, drop_last=True)
            sampler.set_epoch(42_003)
            loader = DataLoader(range(n), batch_size=distributed.per_rank_batch(global_batch, w), sampler=sampler,
                                drop_last=True)
            per_rank.append([set(b.tolist()) for b in loader])
        return per_rank

    single = batches(1)[0]
    many = batches(world)
    assert all(len(steps) == len(single) == n // global_batch for steps in many)
    assert [set().union(*(steps[k] for steps in many)) for k in range(len(single))] == single


def test_the_global_batch_must_split_evenly() -> None:
    assert distributed.per_rank_batch(16, 4) == 4
    with pytest.raises(ConfigError, match=r"^data.batch_size=10 is the global batch and must be a multiple of the 4 "
                                          r"processes; use 8 or 12$"):
        distributed.per_rank_batch(10, 4)


@pytest.mark.parametrize("n, passes, world", [(16, 3, 2), (23, 2, 2), (10, 4, 3)])
def test_an_epoch_of_several_passes_is_sharded_without_overlap(n: int, passes: int, world: int) -> None:
    shards = []
    for r in range(world):
        sampler = distributed.PassesSampler(range(n), passes, num_replicas=world, rank=r)
        sampler.set_epoch(7)
        shards.append(list(sampler))
        assert len(shards[-1]) == len(sampler) == passes * n // world
    drawn = [i for shard in shards for i in shard]
    counts = [drawn.count(i) for i in range(n)]
    assert len(drawn) == world * (passes * n // world) and max(counts) <= passes  # no image more than once a pass
    assert sum(c == passes for c in counts) >= n - (passes * n) % world  # only the remainder is left out


def test_the_recipes_batch_is_a_multiple_of_the_processes() -> None:
    from workshop.config import load_config
    from workshop.recipe import plan_recipe

    cfg = load_config(profile="smoke", overrides={"data": {"batch_size": 16}})
    assert plan_recipe(cfg, num_train=24, world=2).batch_size == 4  # the cap (24 / 4 -> 4) splits evenly
    plan = plan_recipe(cfg, num_train=24, world=3)  # capped to 4, then rounded down for 3 processes
    assert (plan.batch_size, plan.steps_per_epoch) == (3, 8)
    assert "rounded down to 3, a multiple of the 3 processes (each takes 1 image(s) a step)" in plan.explain()
    kept = load_config(profile="smoke", overrides={"data": {"batch_size": 6}})  # as configured: the user's to fix
    with pytest.raises(ConfigError, match=r"^data.batch_size=6 is the global batch and must be a multiple of the 4 "
                                          r"processes; use 4 or 8$"):
        plan_recipe(kept, num_train=200, world=4)


def test_sync_bn_is_off_by_default_and_refused_on_cpu_processes(monkeypatch) -> None:
    from workshop.config import load_config

    assert load_config(profile="smoke").train.sync_bn is False
    with pytest.raises(ConfigError, match="train.sync_bn=1 has the wrong type; expected bool"):
        load_config(profile="smoke", overrides={"train": {"sync_bn": 1}})
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    assert distributed.convert_sync_batchnorm(model, True, torch.device("cpu")) is model  # one process: as it is
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with pytest.raises(ConfigError, match=r"train.sync_bn=true needs CUDA GPUs"):
        distributed.convert_sync_batchnorm(model, True, torch.device("cpu"))
    assert distributed.convert_sync_batchnorm(model, False, torch.device("cpu")) is model


def test_workshop_torchrun_needs_a_command() -> None:
    assert split_arguments(["--nnodes", "2", "quickstart", "--profile", "cpu"]) == (["--nnodes", "2"], ["quickstart", "--profile", "cpu"])
    with pytest.raises(WorkshopError, match=r"^workshop torchrun needs torchrun's options and then a workshop command"):
        split_arguments(["--nproc_per_node", "2"])
