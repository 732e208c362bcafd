"""What ``torchrun`` runs in tests/test_distributed.py: the real ``workshop`` command line, small and scriptable.

    torchrun ... tests/ddp_worker.py train --config FILE ...     ``workshop train`` with a tiny model

The U-Net is replaced by a 2-layer convolutional net without batch norm (as tests/test_faults.py
does in-process), figures are skipped, and each rank writes what it saw to
``$DDP_TEST_OUT/rank{R}.json``. ``$DDP_TEST_FAULT`` injects one fault into the training loss on
one rank: ``kill@R:N`` (SIGKILL at its N-th training loss call, 0-based), ``nan@R:N`` (a NaN loss
there), ``interrupt@R:N`` (Ctrl-C: SIGINT to torchrun itself, which passes it on to every rank),
``clock@R`` (rank R's clock stands still, so only rank 0's time budget can stop it).
``$DDP_TEST_EVALUATE`` (a checkpoint, or ``best`` for the run's own best.pt) is evaluated with
``engine.evaluate`` on the same processes after training; rank 0 adds it to its JSON.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workshop import cli, distributed, runs  # noqa: E402

RANK = int(os.environ.get("RANK", 0))
OUT = Path(os.environ.get("DDP_TEST_OUT", "."))


def tiny_model(cfg=None, num_classes=2, pretrained=True) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 1))


def faulty(loss_fn, spec: str):
    kind, _, where = spec.partition("@")
    rank_text, _, call_text = where.partition(":")
    if int(rank_text) != RANK or kind == "clock":
        return loss_fn
    calls = {"n": 0}

    def loss(logits, target):
        value = loss_fn(logits, target)
        if torch.is_grad_enabled():  # training calls only
            n = calls["n"]
            calls["n"] += 1
            if n == int(call_text):
                if kind == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                if kind == "interrupt":
                    os.kill(os.getppid(), signal.SIGINT)  # the parent is torchrun's agent
                if kind == "nan":
                    return value * float("nan")
        return value

    return loss


def install() -> None:
    import workshop.losses

    runs.build_model = tiny_model
    runs.write_run_figures = lambda *args, **kwargs: None
    spec = os.environ.get("DDP_TEST_FAULT", "")
    if spec.startswith("clock@") and int(spec.split("@")[1]) == RANK:
        frozen = time.monotonic()
        time.monotonic = lambda: frozen
    if spec:
        real = workshop.losses.create_loss
        workshop.losses.create_loss = lambda *a, **k: faulty(real(*a, **k), spec)
    real_train = runs.train_from_config

    def train_and_record(*args, **kwargs):
        result = real_train(*args, **kwargs)
        record = {"rank": RANK, "world": distributed.world_size(), "history": result.history,
                  "stopped_reason": result.stopped_reason, "run_dir": str(result.run_dir)}
        checkpoint = os.environ.get("DDP_TEST_EVALUATE")
        if checkpoint:
            best = Path(result.run_dir) / "checkpoints" / "best.pt"
            record["evaluation"] = evaluate(best if checkpoint == "best" else Path(checkpoint))
        (OUT / f"rank{RANK}.json").write_text(json.dumps(record))
        return result

    runs.train_from_config = train_and_record


def evaluate(checkpoint: Path) -> dict:
    from workshop.config import load_config
    from workshop.data.loaders import make_loaders
    from workshop.engine import evaluate as run_evaluation, load_checkpoint
    from workshop.losses import create_loss

    state = load_checkpoint(checkpoint)
    cfg = load_config(profile=state["config"]["profile"], overrides=state["config"])
    device = torch.device("cpu")
    train_loader, val_loader = make_loaders(cfg, device)
    val_loader = distributed.shard_loaders(train_loader, val_loader)[1]
    model = tiny_model()
    model.load_state_dict(state["model"])
    loss = create_loss(cfg.train.loss, cfg.data.task, ignore_index=cfg.data.ignore_index)
    result = run_evaluation(model, val_loader, loss, device, 2, cfg.train.threshold, cfg.data.ignore_index,
                            hooks=[distributed.DistributedHooks(device)])  # the confusion matrices summed over the ranks
    result["shard_sizes"] = _gather_sizes(len(val_loader.sampler))
    return result


def _gather_sizes(size: int) -> list[int]:
    if not distributed.active():
        return [size]
    sizes = [None] * distributed.world_size()
    torch.distributed.all_gather_object(sizes, size)
    return sizes


if __name__ == "__main__":
    install()
    sys.exit(cli.main(sys.argv[1:]))
