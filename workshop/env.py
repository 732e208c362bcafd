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

    Taught in: notebooks/04_dataloaders.ipynb
    """
    kwargs: dict[str, Any] = {"num_workers": num_workers, "pin_memory": device.type == "cuda"}
    if num_workers > 0:
        kwargs["persistent_workers"] = True
    return kwargs


def is_ci() -> bool:
    """True under a CI runner (``CI`` set), where progress bars are switched off."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
