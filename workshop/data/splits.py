"""A fixed, seeded train/validation split, for data that has no split of its own.

Taught in: notebooks/04_dataloaders.ipynb
"""

from __future__ import annotations

import numpy as np

from workshop.errors import WorkshopError


def split_indices(n: int, val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """A fixed, seeded train/validation split of ``range(n)``.

    Returns:
        (train indices, validation indices), each sorted; at least one item in each when n >= 2.

    Raises:
        ValueError: ``val_fraction`` is not between 0 and 1.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, round(n * val_fraction)), n - 1) if n >= 2 else 0
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def require_own_split(split: str | None) -> None:
    """Without DATA a run is scored on its own validation split: refuse any other ``--split``."""
    if split not in (None, "val"):
        raise WorkshopError(f"--split {split}: without DATA the run is scored on its own validation split; "
                            "name the data to score another split (workshop evaluate RUN DATA --split ...)")


def choose_split(source, split: str | None) -> str:
    """``split`` checked against the source; None: ``test`` where the source has it, else ``val``, else ``all``."""
    if split is not None:
        source.require_split(split)
        return split
    for name in ("test", "val"):
        if name in source.splits:
            try:
                if source.items(name):
                    return name
            except Exception:  # e.g. CamVid without test/ + testannot/
                continue
    return "all"
