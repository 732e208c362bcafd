"""The machine: device choice (CUDA / Apple MPS / CPU), Colab detection, seeding, ``doctor``.

Taught in: notebooks/00_setup.ipynb
"""

from __future__ import annotations

import importlib
import os
import platform
import random
import sys
from typing import Any

import numpy as np
import torch

from workshop.errors import DeviceError


def is_colab() -> bool:
    """True when running inside Google Colab (the ``google.colab`` module is importable)."""
    if "google.colab" in sys.modules:
        return True
    try:
        importlib.import_module("google.colab")
    except ImportError:
        return False
    return True


def mps_available() -> bool:
    """True on an Apple-silicon Mac whose torch build has the MPS backend."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def get_device(requested: str = "auto") -> torch.device:
    """Return the device to train on.

    Args:
        requested: ``"auto"`` (CUDA, else MPS, else CPU), ``"cuda"``, ``"cuda:1"``, ``"mps"`` or ``"cpu"``.

    Returns:
        A ``torch.device``.

    Raises:
        DeviceError: the requested device is not on this machine; the message says what is.
        ValueError: ``requested`` is not a device name.
    """
    name = (requested or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    kind = name.split(":")[0]
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                "CUDA was requested but this machine has no CUDA GPU "
                f"({describe_available_devices()}); use device 'auto' or 'cpu'"
                + (", or in Colab: Runtime > Change runtime type > GPU" if is_colab() else "")
            )
        return torch.device(name)
    if kind == "mps":
        if not mps_available():
            raise DeviceError(f"MPS was requested but is not available ({describe_available_devices()})")
        return torch.device("mps")
    raise ValueError(f"unknown device {requested!r}; choose one of: auto, cpu, cuda, cuda:N, mps")


def describe_available_devices() -> str:
    """One phrase naming the devices torch can use here."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append(f"cuda x{torch.cuda.device_count()}")
    if mps_available():
        found.append("mps")
    return "available: " + ", ".join(found)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so runs repeat.

    Args:
        seed: the seed.
        deterministic: also ask cuDNN for deterministic kernels (slower on GPU).
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def _version(module: str) -> str:
    try:
        return getattr(importlib.import_module(module), "__version__", "installed")
    except Exception as exc:  # a broken install should show up in the report, not crash it
        return f"not importable ({type(exc).__name__})"


def doctor() -> dict[str, Any]:
    """Collect what a learner (or an instructor helping one) needs to know about this machine.

    Returns:
        A dict with python, package versions, device, GPU name and memory, Colab, profile,
        data dir, and whether ImageNet weights are available offline.
    """
    from workshop.config import resolve_profile
    from workshop.data.synthetic import default_data_dir

    report: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "segmentation_models_pytorch": _version("segmentation_models_pytorch"),
        "albumentations": _version("albumentations"),
        "colab": is_colab(),
        "device": str(get_device("auto")),
        "gpu": None,
        "gpu_memory_gb": None,
        "cpu_threads": torch.get_num_threads(),
        "profile": resolve_profile(None),
        "data_dir": str(default_data_dir()),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        report["gpu"] = props.name
        report["gpu_memory_gb"] = round(props.total_memory / 2**30, 1)
    try:
        from workshop.weights import offline_weights_status

        report["offline_weights"] = offline_weights_status()
    except Exception as exc:
        report["offline_weights"] = f"unknown ({exc})"
    return report


def format_doctor(report: dict[str, Any]) -> str:
    """Render ``doctor()`` as aligned ``key : value`` lines."""
    width = max(len(k) for k in report)
    return "\n".join(f"{k.ljust(width)} : {v}" for k, v in report.items())


def data_loader_kwargs(device: torch.device, num_workers: int) -> dict[str, Any]:
    """DataLoader keyword arguments that suit the device (pinned memory on CUDA).

    With workers, they persist from epoch to epoch and each gets its own augmentations
    (:class:`WorkerSeeding`).

    Taught in: notebooks/04_dataloaders.ipynb
    """
    kwargs: dict[str, Any] = {"num_workers": num_workers, "pin_memory": device.type == "cuda"}
    if num_workers > 0:
        kwargs["persistent_workers"] = True
        kwargs["worker_init_fn"] = WorkerSeeding()
    return kwargs


class WorkerSeeding:
    """A DataLoader ``worker_init_fn``: every worker, in every epoch, draws its own augmentations.

    A worker process starts as a copy of the main process, random generators included, so without
    this every worker repeats the same flips and crops. Persistent workers also never see the
    re-seeding the main process does at the start of an epoch (``engine.fit``). So the main process
    writes each epoch's seed into a small shared-memory tensor (:meth:`set_epoch_seed`, called by
    ``engine.fit`` before the epoch's first batch is asked for), and each worker, at its first item
    of an epoch, re-seeds Python, NumPy, torch and the data set's transform from that seed and its
    worker id. The augmentations of epoch ``e`` are then a function of the seed, ``e`` and the
    worker: a resumed run draws what an uninterrupted one draws (with the same ``num_workers``).

    The object is importable by name and holds only a tensor, so it works with ``spawn`` (macOS,
    Windows) as well as ``fork``.
    """

    def __init__(self, seed: int = 0) -> None:
        self.epoch_seed = torch.full((1,), int(seed), dtype=torch.int64).share_memory_()

    def __repr__(self) -> str:  # printed in notebook 04: no memory address, the same on every run
        return f"WorkerSeeding(epoch_seed={int(self.epoch_seed.item())})"

    def set_epoch_seed(self, seed: int) -> None:
        """Main process: the seed of the epoch about to start (the workers read it at their next item)."""
        self.epoch_seed.fill_(int(seed))

    def __call__(self, worker_id: int) -> None:
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        if info is None:
            return
        _ReseedOnNewEpoch.install(info.dataset, self.epoch_seed, worker_id)


def worker_seed(epoch_seed: int, worker_id: int) -> int:
    """The seed of worker ``worker_id`` in the epoch seeded ``epoch_seed`` (different for every pair)."""
    return (int(epoch_seed) * 1_000_003 + 7_919 * (worker_id + 1)) % (2**31 - 1)


class _ReseedOnNewEpoch:
    """Inside a worker: before each item, re-seed everything when the shared epoch seed has changed."""

    def __init__(self, dataset: Any, shared: torch.Tensor, worker_id: int) -> None:
        self.dataset, self.shared, self.worker_id, self.seen = dataset, shared, worker_id, None

    @classmethod
    def install(cls, dataset: Any, shared: torch.Tensor, worker_id: int) -> None:
        hook = cls(dataset, shared, worker_id)
        original = getattr(dataset, "__getitems__", None)

        def getitems(indices: list[int]) -> list[Any]:  # the fetcher calls dataset.__getitems__ when present
            hook.before_item()
            return original(indices) if original is not None else [dataset[i] for i in indices]

        try:
            dataset.__getitems__ = getitems  # this worker's copy of the data set only
        except AttributeError:  # a data set that takes no new attributes (__slots__): torch's worker seed only
            pass

    def before_item(self) -> None:
        epoch_seed = int(self.shared[0])
        if epoch_seed == self.seen:
            return
        self.seen = epoch_seed
        seed = worker_seed(epoch_seed, self.worker_id)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        for owner in (self.dataset, getattr(self.dataset, "transform", None)):
            if hasattr(owner, "set_random_seed"):
                owner.set_random_seed(seed)


def is_ci() -> bool:
    """True under a CI runner (``CI`` set), where progress bars are switched off."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
