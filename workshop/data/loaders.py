"""From a config to train/validation data sets and DataLoaders.

Taught in: notebooks/04_dataloaders.ipynb
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from workshop.config import Config
from workshop.data.io import LabelMap
from workshop.data.datasets import SourceDataset
from workshop.data.splits import split_indices  # noqa: F401  (re-exported: notebooks and benchmarks import it here)


def resolve_pairs(cfg: Config) -> tuple[list[tuple[Path, Path | None]], LabelMap | None]:
    """The (image, mask file) pairs of ``cfg``'s source, in its order, and its label map.

    A thin view of ``workshop.data.sources.source_from_config(cfg)`` for code that wants file paths
    (annotation sources have no mask files: their mask is None). The embedded data set is generated
    (or reused from the cache) on the way.

    Taught in: notebooks/09_multiclass.ipynb
    """
    from workshop.data.sources import source_from_config

    source = source_from_config(cfg)
    return [(i.image, i.mask) for i in source.items("all")], source.label_map()


def make_datasets(cfg: Config, seed: int | None = None) -> tuple[SourceDataset, SourceDataset]:
    """Training and validation data sets with their transforms (train: augmented).

    The data comes from ``cfg``'s source (``workshop.data.sources.source_from_config``); the split
    is ``workshop.data.sources.config_splits``'s: ``data.val`` when given, else the publisher's
    (CamVid, Pets), else a seeded ``data.val_fraction``.

    Shape:
        item["image"] (3, S, S) float32, item["mask"] (S, S) int64, S = ``cfg.data.image_size``.

    Taught in: notebooks/04_dataloaders.ipynb
    """
    from workshop.augment import get_transforms
    from workshop.data.sources import config_splits

    splits = config_splits(cfg)
    seed = cfg.train.seed if seed is None else seed
    (train_src, train_items), (val_src, val_items) = splits.train, splits.val
    train = SourceDataset(train_src, train_items, transform=get_transforms(cfg, train=True, seed=seed))
    val = SourceDataset(val_src, val_items, transform=get_transforms(cfg, train=False))
    return train, val


def make_loader(dataset, batch_size: int, shuffle: bool, num_workers: int = 0, device: torch.device | None = None, seed: int = 0, drop_last: bool = False) -> DataLoader:
    """A DataLoader with a seeded shuffle and pinned memory on CUDA.

    Shape:
        batch["image"] (N, 3, H, W) float32, batch["mask"] (N, H, W) int64.
    """
    from workshop.env import data_loader_kwargs

    generator = torch.Generator().manual_seed(seed)
    kwargs = data_loader_kwargs(device or torch.device("cpu"), num_workers)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last, **kwargs)


def make_train_val_loaders(
    train_ds: Dataset,
    val_ds: Dataset,
    batch_size: int,
    num_workers: int = 0,
    device: torch.device | None = None,
    seed: int = 0,
    drop_last: bool | None = None,
    passes: int = 1,
) -> tuple[DataLoader, DataLoader]:
    """The training loader (shuffled, last incomplete batch dropped) and the validation loader (in order, every item).

    The training loader drops its last incomplete batch only when the training set holds more
    than one batch (otherwise an epoch would have no batch at all). The recipe (``workshop train``,
    notebook 07) builds its loaders here too, with its own ``drop_last`` and ``passes``.

    Args:
        train_ds: training data set.
        val_ds: validation data set.
        batch_size: items per batch.
        num_workers: worker processes that load batches (0: in the main process).
        device: where the batches go; pinned memory on CUDA.
        seed: seed of the training shuffle (the same seed gives the same order of epochs).
        drop_last: drop the training loader's last incomplete batch; None: when the set holds more than a batch.
        passes: passes over the training set in one epoch (a small set under a time budget, see
            ``workshop.recipe.choose_passes_per_epoch``).

    Returns:
        (train_loader, val_loader).

    Shape:
        batch["image"] (N, 3, H, W) float32, batch["mask"] (N, H, W) int64, N <= ``batch_size``.

    Taught in: notebooks/04_dataloaders.ipynb
    """
    from workshop.env import data_loader_kwargs

    device = device or torch.device("cpu")
    generator = torch.Generator().manual_seed(seed)
    several = RandomSampler(train_ds, num_samples=passes * len(train_ds), generator=generator) if passes > 1 else None
    train_loader = DataLoader(
        train_ds,
        batch_size=batch_size,
        shuffle=several is None,  # a new order every epoch
        sampler=several,  # or several passes, each in a new order
        drop_last=len(train_ds) > batch_size if drop_last is None else drop_last,  # no tiny last batch (BatchNorm)
        generator=generator,
        **data_loader_kwargs(device, num_workers),
    )
    val_loader = DataLoader(val_ds, batch_size=batch_size, shuffle=False, drop_last=False,
                            **data_loader_kwargs(device, num_workers))
    return train_loader, val_loader


def make_loaders(cfg: Config, device: torch.device | None = None) -> tuple[DataLoader, DataLoader]:
    """Training (shuffled) and validation loaders for ``cfg``."""
    train, val = make_datasets(cfg)
    d = cfg.data
    return make_train_val_loaders(train, val, d.batch_size, d.num_workers, device, cfg.train.seed)


def class_names(cfg: Config, label_map: LabelMap | None = None) -> Sequence[str]:
    """Class names of the task, from the label map or the source (binary: background and the source's
    foreground: ``building`` for the embedded set, the label of a one-class annotation file, else ``foreground``)."""
    if cfg.data.task != "binary" and label_map is not None:
        return label_map.names
    from workshop.data.sources import source_from_config

    return source_from_config(cfg).class_names()
