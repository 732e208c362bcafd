"""Data: reading files, Dataset classes, the embedded data set, loaders.

The names below load on first use, so a module that needs only numpy and PIL (the generator's
drawing processes, ``workshop.data.synthetic``) does not import torch.

Taught in: notebooks/03_dataset.ipynb and notebooks/04_dataloaders.ipynb
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "CSVDataset": "workshop.data.datasets",
    "FolderDataset": "workshop.data.datasets",
    "InstanceDataset": "workshop.data.datasets",
    "PairDataset": "workshop.data.datasets",
    "PolygonDataset": "workshop.data.datasets",
    "SegmentationDataset": "workshop.data.datasets",
    "LabelMap": "workshop.data.io",
    "read_image": "workshop.data.io",
    "read_mask": "workshop.data.io",
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'workshop.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
