"""Training on several processes (GPUs, machines): ``torchrun`` + DistributedDataParallel.

The launcher is PyTorch's own ``torchrun`` (torch.distributed.elastic); nothing here starts
processes. ``torchrun`` starts one process per GPU (or per CPU worker) and gives each the
environment variables ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT``; this module reads them::

    torchrun --nproc_per_node 2 -m workshop train --config my.yaml               # one machine
    torchrun --nnodes 2 --nproc_per_node 4 --rdzv-backend c10d \\
             --rdzv-endpoint HOST:29500 --rdzv-id myrun -m workshop train --config my.yaml

What changes, and what does not, under torchrun:

* **Device and backend.** Each rank trains on its own device, ``cuda:LOCAL_RANK`` with the NCCL
  backend on GPUs, the CPU with gloo otherwise (``train.device: cpu``, or no GPU).
* **The global batch.** ``data.batch_size`` is the global batch: each of the ``W`` ranks loads
  ``batch_size / W`` images per step and DDP averages the gradients, so one optimiser step sees
  the same ``batch_size`` images whatever ``W`` is. The learning rate and the schedule (sized in
  optimiser steps) therefore stay as they are; see docs/distributed.md for the rule when you change the
  batch itself.
* **Data.** Training uses ``DistributedSampler``, re-seeded every epoch from ``seed * 1000 + epoch``
  (like the single-process shuffle), so the ranks see disjoint shards of one permutation and step
  ``k`` of every world size covers the same images. Validation is split without padding
  (:class:`ShardSampler`), so every image is counted exactly once.
* **Metrics.** Confusion matrices, loss sums and sample counts are summed over the ranks before
  anything is divided (:func:`reduce_confusion`, :func:`sum_over_ranks`): the validation IoU is
  the single-process one, never a mean of per-rank IoUs.
* **Only rank 0 writes** checkpoints, ``metrics.json``, figures, logs and progress bars.
* **Stopping together.** The time budget is decided by rank 0 and broadcast
  (:func:`decided_by_main`), and so is the recipe's plan under a budget (rank 0 calibrates
  inside :func:`alone`, then :func:`same_on_all_ranks`); a non-finite loss on any rank stops every rank
  (:func:`ranks_where`); ``SIGTERM`` from the launcher (sent when another rank died, or the job
  was cancelled) becomes a :class:`PeerFailure` with a readable message, and a lost connection
  to another rank too. Checkpoints are written atomically, so the last good one stays.

Outside torchrun every function here is a no-op (one process, nothing to reduce), so the same
config and the same code run unchanged in a notebook or a plain ``workshop train``.
"""

from __future__ import annotations

import contextlib
import os
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Sampler

from workshop.errors import ConfigError, DeviceError, WorkshopError
from workshop.hooks import Hook

TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE")
DEFAULT_TIMEOUT_MINUTES = 10.0  # how long a collective waits for a silent rank (WORKSHOP_DIST_TIMEOUT_MIN)

_device: torch.device | None = None  # the device of this rank's collectives (set by setup)
_alone = False  # inside alone(): this rank works on its own, collectives are no-ops


class PeerFailure(WorkshopError):
    """Another process of the run failed or the launcher stopped this one; the run cannot go on."""


class Terminated(PeerFailure):
    """The launcher sent SIGTERM (another rank died, or the job was cancelled)."""


def launched_by_torchrun() -> bool:
    """True when the environment has torchrun's ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def active() -> bool:
    """True once :func:`setup` has joined the process group of a torchrun job (False inside :func:`alone`)."""
    return not _alone and dist.is_available() and dist.is_initialized()


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """Inside the block this rank works as if it were the only process: collectives are no-ops.

    For work that one rank does for the run while the others wait for its result, such as rank 0
    timing the machine before it lays the plan over the time budget (``workshop.runs``): the
    engine's loops then make no collective call that the waiting ranks would never answer.
    ``rank()`` and ``world_size()`` still give the torchrun job's numbers.
    """
    global _alone
    before, _alone = _alone, True
    try:
        yield
    finally:
        _alone = before


def rank() -> int:
    """This process's global rank (torchrun's ``RANK`` before :func:`setup`; 0 outside torchrun)."""
    if active():
        return dist.get_rank()
    return int(os.environ["RANK"]) if launched_by_torchrun() else 0


def world_size() -> int:
    """Number of processes of the run (torchrun's ``WORLD_SIZE`` before :func:`setup`; 1 outside torchrun)."""
    if active():
        return dist.get_world_size()
    return int(os.environ["WORLD_SIZE"]) if launched_by_torchrun() else 1


def is_main() -> bool:
    """True on rank 0, the only rank that writes files, logs and progress bars (and outside torchrun)."""
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join the torchrun job (once) and return this rank's device; outside torchrun, ``device`` itself.

    NCCL on CUDA, each rank on ``cuda:LOCAL_RANK``; gloo on the CPU. SIGTERM (what torchrun sends
    to the other ranks when one fails) is turned into :class:`Terminated`, so checkpoint writes
    in progress clean up their temporary file.

    Args:
        device: the device the config asks for (``workshop.env.get_device``).

    Returns:
        The device this rank trains on.

    Raises:
        DeviceError: more processes on this machine than GPUs, or MPS (no torch backend for it).
        PeerFailure: the process group cannot be formed (the message says what to check).
    """
    global _device
    if not launched_by_torchrun():
        return device
    if active():
        return _device or device
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise DeviceError(
                f"torchrun started process LOCAL_RANK={local_rank} but this machine has {count} GPU(s): "
                f"use --nproc_per_node {count} (or fewer)"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise DeviceError(f"torchrun has no backend for device {device.type!r}; set train.device to cuda or cpu")
    minutes = float(os.environ.get("WORKSHOP_DIST_TIMEOUT_MIN", DEFAULT_TIMEOUT_MINUTES))
    try:
        dist.init_process_group(backend, timeout=timedelta(minutes=minutes))
    except (RuntimeError, ValueError) as exc:
        raise PeerFailure(
            f"rank {os.environ.get('RANK')} could not join the other processes at "
            f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} ({exc}); check that every "
            "machine runs the same torchrun command and can reach that address"
        ) from None
    _device = device
    signal.signal(signal.SIGTERM, _on_sigterm)
    return device


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated(
        f"rank {rank()} was stopped by the launcher (SIGTERM): another process of the run failed "
        "(see its message and torchrun's report) or the job was cancelled"
    )


def teardown() -> None:
    """Leave the process group (after a run that ended normally on every rank).

    Every rank first waits at a barrier for the others: rank 0 still writes the summary and the
    figures after the last collective, and no rank should close its connections (destroy its
    group and exit) while another still works for the run; PyTorch asks every rank to call
    ``destroy_process_group`` once communication is over, which this does.
    """
    global _device
    if active():
        _collective(dist.barrier)
        dist.destroy_process_group()
    _device = None
    release_signals()


def release_signals() -> None:
    """SIGTERM kills again (once this rank has said why it stops: nothing is left to clean up)."""
    if launched_by_torchrun() and signal.getsignal(signal.SIGTERM) in (_on_sigterm, signal.SIG_IGN):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


# ----------------------------------------------------------------------------- model and data


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Run the block on rank 0 first, then on each other machine's first process, then on the rest.

    For work that fills a cache, such as generating the embedded data set or scanning a folder:
    the first process of each machine does it alone, the others then find it done. If rank 0
    fails inside the block, it never reaches the barrier; the others stop with a
    :class:`PeerFailure` (rank 0 reports the real error).
    """
    if not active():
        yield
        return
    phase = 0 if rank() == 0 else 1 if int(os.environ.get("LOCAL_RANK", 0)) == 0 else 2
    for turn in range(3):
        if turn == phase:
            yield
        if turn < 2:
            _collective(dist.barrier)


def convert_sync_batchnorm(model: nn.Module, enabled: bool, device: torch.device) -> nn.Module:
    """``train.sync_bn``: batch-norm statistics over the global batch instead of each rank's slice.

    Off by default. A no-op on one process. torch's ``SyncBatchNorm`` runs on GPUs only, so with
    several CPU processes the option is refused with a message.

    Raises:
        ConfigError: ``enabled`` with several processes on the CPU.
    """
    if not enabled or world_size() == 1:
        return model
    if device.type != "cuda":
        raise ConfigError(
            "train.sync_bn=true needs CUDA GPUs (torch's SyncBatchNorm does not run on the CPU); "
            "set train.sync_bn=false for CPU processes"
        )
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """``DistributedDataParallel(model)`` under torchrun (gradients averaged over the ranks), else ``model``.

    Train through the wrapper; evaluate and save the bare ``model`` (its ``state_dict`` has no
    ``module.`` prefix, so checkpoints load on any number of processes).
    """
    if not active():
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def broadcast_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank, so all evaluate one model.

    DDP keeps the parameters equal on every rank, but each rank's last forward pass updates its
    running statistics from its own slice of the batch.
    """
    if not active():
        return
    for buffer in model.buffers():
        if buffer.is_floating_point() or buffer.dtype == torch.int64:
            data = buffer.data.to(_device)
            _collective(dist.broadcast, data, 0)
            buffer.data.copy_(data)


class ShardSampler(Sampler[int]):
    """Rank ``r`` of ``W`` takes items ``r, r + W, r + 2W, ...``: every item exactly once, no padding.

    For evaluation, where torch's ``DistributedSampler`` would repeat items to even out the shards
    and so count them twice in the confusion matrix.
    """

    def __init__(self, length: int, num_replicas: int, rank: int) -> None:
        self.length, self.num_replicas, self.rank = length, num_replicas, rank

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.num_replicas))


def per_rank_batch(global_batch: int, world: int) -> int:
    """Images per rank and step for a global batch (``data.batch_size``) over ``world`` processes.

    Raises:
        ConfigError: the global batch is not a multiple of the number of processes.

    Example:
        >>> per_rank_batch(16, 4)
        4
    """
    if global_batch % world:
        lower = max(world, global_batch - global_batch % world)
        raise ConfigError(
            f"data.batch_size={global_batch} is the global batch and must be a multiple of the {world} "
            f"processes; use {lower} or {lower + world}"
        )
    return global_batch // world


def shard_loaders(train_loader: DataLoader, val_loader: DataLoader) -> tuple[DataLoader, DataLoader]:
    """This rank's share of the training and validation loaders (the loaders themselves outside torchrun).

    Training: ``DistributedSampler`` (shuffled like the given loader, seeded per epoch by
    :func:`set_epoch`, ``drop_last=True`` so every rank takes the same number of steps) and
    ``batch_size / W`` per rank. Validation: :class:`ShardSampler`, every image once.

    Shape:
        batch["image"] (batch_size / W, 3, H, W) per rank.
    """
    if not active():
        return train_loader, val_loader
    w, r = world_size(), rank()
    shuffle = isinstance(train_loader.sampler, RandomSampler)
    n = len(train_loader.dataset)
    passes = getattr(train_loader.sampler, "num_samples", n) // max(n, 1) if shuffle else 1
    if passes > 1:  # the recipe's epoch of several passes (workshop.recipe.train_loader_for)
        train_sampler = PassesSampler(train_loader.dataset, passes, num_replicas=w, rank=r, shuffle=True, seed=0)
    else:
        train_sampler = DistributedSampler(train_loader.dataset, num_replicas=w, rank=r, shuffle=shuffle, seed=0, drop_last=True)
    val_sampler = ShardSampler(len(val_loader.dataset), w, r)
    val_batch = max(1, (val_loader.batch_size or 1) // w)
    return (
        _rebuild(train_loader, train_sampler, per_rank_batch(train_loader.batch_size, w), train_loader.drop_last),
        _rebuild(val_loader, val_sampler, val_batch, False),
    )


class PassesSampler(DistributedSampler):
    """``DistributedSampler`` over an epoch of ``passes`` shuffled passes through the data set.

    The recipe makes an epoch of a small training set several passes (one validation per
    ``passes * len(dataset)`` images, ``workshop.recipe.choose_passes_per_epoch``); sharded with
    a plain ``DistributedSampler``, an epoch would be one pass, and the plan's steps per epoch
    would not be the steps run. Each pass is its own permutation (seeded by ``set_epoch``), cut
    into ``num_replicas`` disjoint shards of equal length (``drop_last``), as torch's sampler does.
    """

    def __init__(self, dataset: Any, passes: int, num_replicas: int, rank: int, shuffle: bool = True, seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=True)
        self.passes = passes
        self.num_samples = passes * len(dataset) // num_replicas
        self.total_size = self.num_samples * num_replicas

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            order = torch.cat([torch.randperm(n, generator=g) for _ in range(self.passes)]).tolist()
        else:
            order = list(range(n)) * self.passes
        return iter(order[self.rank:self.total_size:self.num_replicas])


def _rebuild(loader: DataLoader, sampler: Sampler, batch_size: int, drop_last: bool) -> DataLoader:
    return DataLoader(
        loader.dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
        num_workers=loader.num_workers, pin_memory=loader.pin_memory, collate_fn=loader.collate_fn,
        persistent_workers=loader.persistent_workers, worker_init_fn=loader.worker_init_fn,
        generator=loader.generator,
    )


class DistributedHooks(Hook):
    """torchrun for ``engine.fit`` and ``engine.evaluate``, as one hook (a no-op on one process).

    DDP around the model, rank 0 alone writing files, sums over the ranks (loss, sample counts,
    confusion matrices), rank 0's decisions (the deadline) on every rank, one NaN stopping every
    rank, rank 0's batch-norm statistics for validation, and a readable message when another rank
    dies. The loaders are sharded by the caller (:func:`shard_loaders`) before ``fit``.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.writes, self.rank, self.world_size = is_main(), rank(), world_size()

    def before_fit(self, model, epochs):
        return wrap_model(model, self.device)  # train through DDP; `model` stays the bare one to save

    def sum_over_processes(self, *values):
        if not active():
            return values
        out = list(values)
        for i, value in enumerate(values):  # tensors (confusion matrices) first, summed in their dtype
            if isinstance(value, torch.Tensor):
                where = value.device
                t = value.to(_device)
                _collective(dist.all_reduce, t)
                out[i] = t.to(where)
        numbers = [i for i, v in enumerate(values) if not isinstance(v, torch.Tensor)]
        if numbers:
            for i, total in zip(numbers, sum_over_ranks(*(values[i] for i in numbers))):
                out[i] = total
        return tuple(out)

    def ranks_where(self, flag):
        return ranks_where(flag)

    def decided_by_main(self, flag):
        return decided_by_main(flag)

    def before_validation(self, model):
        broadcast_buffers(model)  # every rank evaluates rank 0's batch-norm statistics

    def on_error(self, exc, run_dir):
        if is_lost_contact(exc):  # another rank died or the launcher stopped this one
            raise lost_contact(exc, run_dir) from None


def set_epoch(loader: DataLoader, epoch_seed: int) -> None:
    """Seed a ``DistributedSampler``'s shuffle for one epoch (no-op for other samplers)."""
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch_seed)


# ----------------------------------------------------------------------------- collectives


def _collective(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except RuntimeError as exc:
        raise lost_contact(exc) from None


def sum_over_ranks(*values: float) -> tuple[float, ...]:
    """Each value summed over the ranks (the values themselves on one process)."""
    if not active():
        return tuple(values)
    t = torch.tensor(values, dtype=torch.float64, device=_device)
    _collective(dist.all_reduce, t)
    return tuple(t.tolist())


def reduce_confusion(metrics: Any) -> None:
    """Sum a ``SegmentationMetrics`` confusion matrix over the ranks, in place, before ``compute()``.

    Shape:
        metrics.confusion (C, C) int64, the same on every rank afterwards.
    """
    if not active():
        return
    where = metrics.confusion.device
    cm = metrics.confusion.to(_device)
    _collective(dist.all_reduce, cm)
    metrics.confusion = cm.to(where)


def ranks_where(flag: bool) -> list[int]:
    """The ranks where ``flag`` is true (every rank gets the same list): ``[0]`` or ``[]`` on one process."""
    if not active():
        return [0] if flag else []
    t = torch.zeros(world_size(), dtype=torch.int32, device=_device)
    t[rank()] = int(bool(flag))
    _collective(dist.all_reduce, t)
    return [i for i, v in enumerate(t.tolist()) if v]


def decided_by_main(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (e.g. "the time budget is used up"), so all stop at the same step."""
    if not active():
        return bool(flag)
    t = torch.tensor([int(bool(flag))], dtype=torch.int32, device=_device)
    _collective(dist.broadcast, t, 0)
    return bool(t.item())


def same_on_all_ranks(value: Any) -> Any:
    """Rank 0's ``value`` (any picklable object) on every rank, e.g. a time-stamped run folder."""
    if not active():
        return value
    box = [value]
    _collective(dist.broadcast_object_list, box, 0)
    return box[0]


# ----------------------------------------------------------------------------- failures


def is_lost_contact(exc: BaseException) -> bool:
    """Does ``exc`` say that another rank went away (a collective failed, or SIGTERM arrived)?"""
    if isinstance(exc, PeerFailure):
        return True
    if not active() or not isinstance(exc, RuntimeError) or isinstance(exc, WorkshopError):
        return False
    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc)
    return any(word in text for word in ("gloo", "NCCL", "Connection reset", "Connection closed", "timed out", "Broken pipe"))


def lost_contact(exc: BaseException, run_dir: str | os.PathLike | None = None) -> PeerFailure:
    """A :class:`PeerFailure` that says what happened and where the intact checkpoints are.

    From here on this rank is stopping: a SIGTERM from the launcher would only cut its message short.
    """
    if launched_by_torchrun() and signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if isinstance(exc, PeerFailure):
        message = str(exc).split("; the checkpoints")[0]
    else:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        message = (f"rank {rank()} lost contact with another process of the run, which died or was stopped "
                   f"(see its message and torchrun's report; here: {first[:200]})")
    if run_dir is not None:
        ckpt = Path(run_dir) / "checkpoints"
        message += (f"; the checkpoints of the finished epochs in {ckpt} are intact (written atomically); "
                    f"continue with: workshop train --resume {run_dir}")
    cls = Terminated if isinstance(exc, Terminated) else PeerFailure
    return cls(message)


def record_error(exc: BaseException) -> None:
    """Hand ``exc``'s message to torchrun, whose final report then shows it instead of "<N/A>"."""
    if not launched_by_torchrun() or not os.environ.get("TORCHELASTIC_ERROR_FILE"):
        return
    try:
        from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

        ErrorHandler().record_exception(exc)
    except Exception:  # the report is a courtesy; never hide the real error behind it
        pass


def error_prefix() -> str:
    """``"[rank N] "`` on ranks other than 0 of a multi-process run, else ``""`` (for one-line errors)."""
    return f"[rank {rank()}] " if world_size() > 1 and not is_main() else ""
