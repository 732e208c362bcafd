"""From a config to train/validation data sets and DataLoaders.

Taught in: notebooks/04_dataloaders.ipynb
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from workshop.config import Config
from workshop.data.datasets import PairDataset, match_by_stem, read_pairs_csv
from workshop.data.io import LabelMap
from workshop.errors import ConfigError, DataError


LOCAL_SOURCES = ("embedded", "folder", "csv")
"""``data.source`` values read from local files; every other source is a registry data set."""


def split_indices(n: int, val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """A fixed, seeded train/validation split of ``range(n)``.

    Returns:
        (train indices, validation indices), each sorted; at least one item in each when n >= 2.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, round(n * val_fraction)), n - 1) if n >= 2 else 0
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def resolve_pairs(cfg: Config) -> tuple[list[tuple[Path, Path]], LabelMap | None]:
    """The (image, mask) file pairs and the label map that the config points at.

    The embedded data set is generated (or reused from the cache) on the way.
    """
    d = cfg.data
    if d.source == "embedded":
        from workshop.data.synthetic import embedded_dir, ensure_dataset

        root = ensure_dataset(embedded_dir(d.num_images, d.image_size, d.seed), d.num_images, d.image_size, d.seed)
        sub = "binary" if d.task == "binary" else "multiclass"
        label_map = LabelMap.from_json(root / "labelmap.json", d.ignore_index) if d.task == "multiclass" else None
        return match_by_stem(root / "images", root / "masks" / sub), label_map
    if d.source not in LOCAL_SOURCES:
        from workshop.data import registry  # real data sets; without data.root: the download or ../shared

        return registry.pairs_for(d.source, d.root, cfg)
    if d.root is None:
        raise ConfigError(f"data.root must name the data folder when data.source is {d.source!r}")
    root = Path(d.root).expanduser()
    label_map = LabelMap.from_json(d.label_map, d.ignore_index) if d.label_map else None
    if d.source == "folder":
        return match_by_stem(root / d.images_dir, root / d.masks_dir), label_map
    return read_pairs_csv(root / (d.csv_file or "train.csv"), root), label_map


def train_val_indices(cfg: Config, num_pairs: int) -> tuple[list[int], list[int]]:
    """Which of :func:`resolve_pairs`'s pairs train and which validate.

    Data sets whose publisher fixes a split keep it, so numbers compare with published ones:
    CamVid validates on its ``val`` list, Oxford-IIIT Pet on its ``test`` list (``data.val_fraction``
    is not used for them). Every other source gets a seeded random split of ``data.val_fraction``.

    Returns:
        (train indices, validation indices) into the list of pairs.

    Taught in: notebooks/04_dataloaders.ipynb
    """
    d = cfg.data
    if d.source not in LOCAL_SOURCES:
        from workshop.data import registry

        n_train = registry.official_train_count(d.source, d.root)
        if n_train is not None:
            if not 0 < n_train < num_pairs:
                where = d.root or registry.find_local(d.source)
                raise DataError(f"{d.source}: the official split lists {n_train} training pairs of {num_pairs}; "
                                f"the data set at {where} looks incomplete (`workshop data verify {d.source}`)")
            return list(range(n_train)), list(range(n_train, num_pairs))
    return split_indices(num_pairs, d.val_fraction, d.seed)


def make_datasets(cfg: Config, seed: int | None = None) -> tuple[PairDataset, PairDataset]:
    """Training and validation data sets with their transforms (train: augmented).

    The split is :func:`train_val_indices`'s: official for CamVid and Pets, seeded otherwise.

    Shape:
        item["image"] (3, S, S) float32, item["mask"] (S, S) int64, S = ``cfg.data.image_size``.
    """
    from workshop.augment import get_transforms

    pairs, label_map = resolve_pairs(cfg)
    train_idx, val_idx = train_val_indices(cfg, len(pairs))
    common = dict(task=cfg.data.task, label_map=label_map, ignore_index=cfg.data.ignore_index)
    seed = cfg.train.seed if seed is None else seed
    train = PairDataset([pairs[i] for i in train_idx], transform=get_transforms(cfg, train=True, seed=seed), **common)
    val = PairDataset([pairs[i] for i in val_idx], transform=get_transforms(cfg, train=False), **common)
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
) -> tuple[DataLoader, DataLoader]:
    """The training loader (shuffled, last incomplete batch dropped) and the validation loader (in order, every item).

    The training loader drops its last incomplete batch only when the training set holds more
    than one batch (otherwise an epoch would have no batch at all).

    Args:
        train_ds: training data set.
        val_ds: validation data set.
        batch_size: items per batch.
        num_workers: worker processes that load batches (0: in the main process).
        device: where the batches go; pinned memory on CUDA.
        seed: seed of the training shuffle (the same seed gives the same order of epochs).

    Returns:
        (train_loader, val_loader).

    Shape:
        batch["image"] (N, 3, H, W) float32, batch["mask"] (N, H, W) int64, N <= ``batch_size``.

    Taught in: notebooks/04_dataloaders.ipynb
    """
    from workshop.env import data_loader_kwargs

    kwargs = data_loader_kwargs(device or torch.device("cpu"), num_workers)
    train_loader = DataLoader(
        train_ds,
        batch_size=batch_size,
        shuffle=True,  # a new order every epoch
        drop_last=len(train_ds) > batch_size,  # no tiny last batch (BatchNorm cannot train on 1 item)
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    )
    val_loader = DataLoader(val_ds, batch_size=batch_size, shuffle=False, drop_last=False, **kwargs)
    return train_loader, val_loader


def make_loaders(cfg: Config, device: torch.device | None = None) -> tuple[DataLoader, DataLoader]:
    """Training (shuffled) and validation loaders for ``cfg``."""
    train, val = make_datasets(cfg)
    d = cfg.data
    return make_train_val_loaders(train, val, d.batch_size, d.num_workers, device, cfg.train.seed)


def class_names(cfg: Config, label_map: LabelMap | None = None) -> Sequence[str]:
    """Class names of the task (binary: background, foreground)."""
    if cfg.data.task == "binary":
        return ("background", "building" if cfg.data.source == "embedded" else "foreground")
    if label_map is None:
        label_map = resolve_pairs(cfg)[1]
    return label_map.names if label_map else ()
