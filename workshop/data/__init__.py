"""Data: reading files, Dataset classes, the embedded data set, loaders.

Taught in: notebooks/03_dataset.ipynb and notebooks/04_dataloaders.ipynb
"""

from workshop.data.datasets import CSVDataset, FolderDataset, InstanceDataset, PairDataset, PolygonDataset, SegmentationDataset
from workshop.data.io import LabelMap, read_image, read_mask

__all__ = [
    "CSVDataset",
    "FolderDataset",
    "InstanceDataset",
    "LabelMap",
    "PairDataset",
    "PolygonDataset",
    "SegmentationDataset",
    "read_image",
    "read_mask",
]
