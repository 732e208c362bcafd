"""Exercise of notebooks/04_dataloaders.ipynb: the training and validation DataLoaders.

Taught in: notebooks/04_dataloaders.ipynb
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset

from workshop.data.loaders import make_train_val_loaders
from workshop.tasks.core import Check, Exercise, expect

NOTEBOOK = "04_dataloaders.ipynb"

MAKE_TRAIN_VAL_LOADERS_STUB = '''def make_train_val_loaders(train_ds, val_ds, batch_size):
    """Return (train_loader, val_loader).

    Training: batches of batch_size, a new random order every epoch, the last incomplete batch dropped.
    Validation: batches of batch_size, in order, every item exactly once.
    """
    # your code here: two torch.utils.data.DataLoader
    raise NotImplementedError("your code here")'''

SIZE = 8
N_TRAIN, N_VAL, BATCH = 10, 7, 4
VAL_START = 100  # validation items are numbered 100, 101, ...


class NumberedDataset(Dataset):
    """Item ``i`` is an image and a mask filled with the number ``start + i``, so a batch tells its items."""

    def __init__(self, n: int, start: int = 0) -> None:
        self.n = n
        self.start = start

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {
            "image": torch.full((3, SIZE, SIZE), float(self.start + index)),
            "mask": torch.full((SIZE, SIZE), self.start + index, dtype=torch.int64),
        }


def _loaders(candidate: Callable) -> tuple[Any, Any]:
    out = candidate(NumberedDataset(N_TRAIN), NumberedDataset(N_VAL, VAL_START), BATCH)
    expect(
        isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(x, DataLoader) for x in out),
        "a pair (train_loader, val_loader) of DataLoaders",
        lambda: f"a {type(out).__name__}" + (f" of {[type(x).__name__ for x in out]}" if isinstance(out, (tuple, list)) else ""),
        hint=1,
    )
    return out[0], out[1]


def _epoch(loader: DataLoader) -> tuple[list[int], list[int]]:
    """(item numbers in the order seen, batch sizes) of one pass over ``loader``."""
    order, sizes = [], []
    for batch in loader:
        ids = batch["mask"][:, 0, 0].tolist()
        order += ids
        sizes.append(len(ids))
    return order, sizes


def _check_batches(candidate: Callable) -> None:
    torch.manual_seed(0)
    train, val = _loaders(candidate)
    for name, loader in (("training", train), ("validation", val)):
        batch = next(iter(loader))
        expect(isinstance(batch, dict), f"{name} batches as dicts with 'image' and 'mask'", lambda: f"a {type(batch).__name__}", hint=1)
        image, mask = batch["image"], batch["mask"]
        from_val = bool((mask[:, 0, 0] >= VAL_START).all())
        expect(
            from_val == (name == "validation"),
            f"the {name} loader to read {'val_ds' if name == 'validation' else 'train_ds'}",
            f"it reads {'val_ds' if from_val else 'train_ds'} -> the two loaders are swapped, or both read the same data set",
            hint=1,
        )
        n = len(image)
        expect(n == BATCH, f"{name} batches of batch_size={BATCH}", f"a batch of {n} -> the batch_size argument was not used (a DataLoader's default batch is 1 item)", hint=1)
        expect(
            tuple(image.shape) == (BATCH, 3, SIZE, SIZE) and image.dtype == torch.float32,
            f"a {name} image batch (N, 3, H, W) = ({BATCH}, 3, {SIZE}, {SIZE}) float32",
            f"shape {tuple(image.shape)}, dtype {image.dtype}",
            hint=1,
        )
        expect(
            tuple(mask.shape) == (BATCH, SIZE, SIZE) and mask.dtype == torch.int64,
            f"a {name} mask batch (N, H, W) = ({BATCH}, {SIZE}, {SIZE}) int64",
            f"shape {tuple(mask.shape)}, dtype {mask.dtype}",
            hint=1,
        )


def _check_train_shuffled(candidate: Callable) -> None:
    torch.manual_seed(0)
    train, _ = _loaders(candidate)
    first, _ = _epoch(train)
    second, _ = _epoch(train)
    expect(
        first != sorted(first),
        "the training items in a random order",
        f"the order {first} -> the training loader does not shuffle: every epoch would batch the same items together",
        hint=2,
    )
    expect(first != second, "a new order every epoch", f"{first} twice -> the items were shuffled once, not anew every epoch", hint=2)


def _check_train_drop_last(candidate: Callable) -> None:
    torch.manual_seed(0)
    train, _ = _loaders(candidate)
    order, sizes = _epoch(train)
    expect(
        sizes == [BATCH, BATCH],
        f"{N_TRAIN} training items in batches of {BATCH} -> batch sizes [4, 4] (the last 2 items wait for the next epoch)",
        f"batch sizes {sizes} -> the incomplete last batch was kept",
        hint=2,
    )
    expect(len(set(order)) == len(order), "each training item at most once per epoch", f"the items {order}", hint=2)


def _check_val(candidate: Callable) -> None:
    torch.manual_seed(0)
    _, val = _loaders(candidate)
    order, sizes = _epoch(val)
    order = [i - VAL_START for i in order]
    expect(
        sorted(order) == list(range(N_VAL)),
        f"all {N_VAL} validation items, each once",
        f"{order} -> validation items were left out with an incomplete last batch: those images are never scored",
        hint=3,
    )
    expect(
        order == list(range(N_VAL)),
        f"the validation items in order {list(range(N_VAL))} (numbered from 0)",
        f"{order} -> the validation loader shuffles: the score does not need it, and a changing order makes "
        "evaluations, plots and saved predictions hard to compare",
        hint=3,
    )


make_train_val_loaders_exercise = Exercise(
    name="make_train_val_loaders",
    notebook=NOTEBOOK,
    stub=MAKE_TRAIN_VAL_LOADERS_STUB,
    reference=make_train_val_loaders,
    checks=[
        Check("batch shapes", _check_batches),
        Check("training shuffled", _check_train_shuffled),
        Check("training drops the last incomplete batch", _check_train_drop_last),
        Check("validation in order, every item once", _check_val),
    ],
    hints=[
        "Training and validation want different things from a loader. Training: a new random order every "
        "epoch, and only full batches. Validation: every item exactly once, always in the same order, so the "
        "score covers every image and runs can be compared.",
        "torch.utils.data.DataLoader(dataset, batch_size=..., shuffle=..., drop_last=...) stacks batch_size "
        "items into a batch (dict items give a dict of stacked tensors); shuffle=True draws a new order every "
        "epoch; drop_last=True leaves out an incomplete last batch.",
        "return (DataLoader(train_ds, batch_size=batch_size, shuffle=True, drop_last=True), "
        "DataLoader(val_ds, batch_size=batch_size, shuffle=False))",
    ],
)

EXERCISES = [make_train_val_loaders_exercise]
