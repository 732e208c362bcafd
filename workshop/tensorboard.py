"""Optional TensorBoard logging of a training run (``torch.utils.tensorboard.SummaryWriter``).

``fit`` calls ``on_epoch_end(history)`` after every epoch; a :class:`TensorBoardLogger` is such a
callback: it writes the last epoch's numbers (losses, IoU, Dice, learning rate) as scalars. Open
the logs with::

    tensorboard --logdir RUN/tb            # in a terminal, then http://localhost:6006
    %load_ext tensorboard                  # or inside a notebook (Colab too)
    %tensorboard --logdir RUN/tb

TensorBoard is an optional dependency (``pip install tensorboard``, or the ``tensorboard`` extra:
``pip install -e ".[tensorboard]"``). Without it,
:func:`tensorboard_logger` prints one line saying so and returns None, and the run goes on.

Taught in: notebooks/09_multiclass.ipynb
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

__all__ = ["TensorBoardLogger", "chain_callbacks", "tensorboard_available", "tensorboard_logger"]

SCALARS = ("train_loss", "val_loss", "train_iou", "val_iou", "train_dice", "val_dice", "lr")


def tensorboard_available() -> bool:
    """True when ``torch.utils.tensorboard`` can be imported (the ``tensorboard`` package is installed)."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        return False
    return True


class TensorBoardLogger:
    """Write training numbers for TensorBoard; pass it as ``fit(..., on_epoch_end=logger)``.

    Args:
        log_dir: folder of the event files (conventionally ``RUN/tb``).

    Example:
        >>> logger = TensorBoardLogger("runs/demo/tb")  # doctest: +SKIP
        >>> fit(..., on_epoch_end=logger)  # doctest: +SKIP
        >>> logger.close()  # doctest: +SKIP

    Taught in: notebooks/09_multiclass.ipynb
    """

    def __init__(self, log_dir: str | os.PathLike) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def __call__(self, history: list[dict[str, Any]]) -> None:
        """Log the last record of ``fit``'s history (the epoch that just ended)."""
        if not history:
            return
        record = history[-1]
        step = int(record.get("epoch", len(history)))
        for key in SCALARS:
            value = record.get(key)
            if isinstance(value, (int, float)) and np.isfinite(value):
                group, _, name = key.partition("_")
                tag = f"{name}/{group}" if name else key
                self.writer.add_scalar(tag, float(value), step)
        self.writer.flush()

    def log_scalars(self, values: dict[str, float], step: int, prefix: str = "") -> None:
        """Write several scalars at ``step`` (tags ``prefix + key``)."""
        for key, value in values.items():
            if isinstance(value, (int, float)) and np.isfinite(value):
                self.writer.add_scalar(f"{prefix}{key}", float(value), step)
        self.writer.flush()

    def log_histogram(self, tag: str, values: torch.Tensor | np.ndarray, step: int = 0) -> None:
        """Write a histogram (e.g. the logits of one class)."""
        values = values.detach().cpu().float() if isinstance(values, torch.Tensor) else np.asarray(values)
        self.writer.add_histogram(tag, values, step)
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()


def tensorboard_logger(run_dir: str | os.PathLike, subdir: str = "tb", quiet: bool = False) -> TensorBoardLogger | None:
    """A :class:`TensorBoardLogger` writing to ``run_dir/subdir``, or None when TensorBoard is missing.

    Args:
        run_dir: the run folder.
        subdir: sub-folder for the event files.
        quiet: print nothing.

    Returns:
        The logger, or None (after printing how to install TensorBoard) when it is not installed.

    Taught in: notebooks/09_multiclass.ipynb
    """
    if not tensorboard_available():
        if not quiet:
            print("TensorBoard is not installed: logging to TensorBoard is skipped (to get it: pip install tensorboard, "
                  "or pip install -e \".[tensorboard]\" in a clone of the repository, then restart the kernel).")
        return None
    logger = TensorBoardLogger(Path(run_dir) / subdir)
    if not quiet:
        print(f"TensorBoard logs: tensorboard --logdir {logger.log_dir}")
    return logger


def chain_callbacks(*callbacks: Callable[[list[dict[str, Any]]], None] | None) -> Callable[[list[dict[str, Any]]], None]:
    """One ``on_epoch_end`` callback that calls each of ``callbacks`` in turn (None entries are skipped).

    Example:
        >>> seen = []
        >>> chain_callbacks(seen.append, None, lambda h: seen.append(len(h)))([{"epoch": 1}])
        >>> seen
        [[{'epoch': 1}], 1]
    """
    active: Sequence[Callable[[list[dict[str, Any]]], None]] = [c for c in callbacks if c is not None]

    def call(history: list[dict[str, Any]]) -> None:
        for callback in active:
            callback(history)

    return call
