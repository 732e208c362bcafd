"""Pictures: mask overlays, image / ground truth / prediction grids, training curves.

All functions take numpy arrays (``(H, W, 3)`` uint8 images, ``(H, W)`` int masks) and return a
matplotlib ``Figure`` (or an array), so they work the same in notebooks and in scripts. Nothing here
chooses matplotlib's backend: a script without a screen gets Agg from matplotlib itself, and a
notebook keeps its inline plots.

Taught in: notebooks/03_dataset.ipynb (overlays), notebooks/07_training.ipynb (curves),
notebooks/08_inference.ipynb (prediction grids)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import matplotlib.pyplot as plt  # never matplotlib.use(): the notebook's backend (inline plots) stays as it is
import numpy as np

from workshop.data.io import default_palette


def colorize_mask(mask: np.ndarray, palette: Sequence[tuple[int, int, int]] | None = None, ignore_index: int = 255) -> np.ndarray:
    """Class ids -> colours (class 0 black; the ignore index white).

    Shape:
        (H, W) int -> (H, W, 3) uint8.
    """
    n = int(max(mask.max(initial=0), 1)) + 1 if mask.size else 2
    colors = np.array(palette or default_palette(max(n, 2)), dtype=np.uint8)
    ids = np.asarray(mask).astype(np.int64)
    out = colors[np.clip(ids, 0, len(colors) - 1)]
    out[ids == ignore_index] = 255
    return out


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5, color: tuple[int, int, int] | None = None, palette=None) -> np.ndarray:
    """Blend a mask over an image; background (0) pixels stay as they are.

    Args:
        image: (H, W, 3) uint8.
        mask: (H, W) class ids (binary: 0/1).
        alpha: opacity of the mask colour, 0..1.
        color: one colour for all foreground classes (default: a colour per class).

    Returns:
        (H, W, 3) uint8.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    mask = np.asarray(mask)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {image.shape[:2]}")
    colors = np.zeros_like(image) + np.array(color, dtype=np.uint8) if color is not None else colorize_mask(mask, palette)
    fg = (mask > 0) & (mask != 255)
    out = image.astype(np.float32)
    out[fg] = (1 - alpha) * out[fg] + alpha * colors[fg].astype(np.float32)
    return out.round().astype(np.uint8)


def show_samples(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    predictions: Sequence[np.ndarray] | None = None,
    titles: Sequence[str] | None = None,
    alpha: float = 0.5,
) -> plt.Figure:
    """A grid with one row per sample: image | ground truth overlay | prediction overlay.

    Shape:
        images: each (H, W, 3) uint8; masks / predictions: each (H, W) class ids.
    """
    cols = 3 if predictions is not None else 2
    rows = len(images)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows), squeeze=False)
    heads = ["image", "ground truth", "prediction"]
    for r in range(rows):
        panels = [images[r], overlay(images[r], masks[r], alpha)]
        if predictions is not None:
            panels.append(overlay(images[r], predictions[r], alpha))
        for c, panel in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(heads[c], fontsize=10)
        if titles is not None:
            axes[r][0].set_ylabel(titles[r], fontsize=8)
    fig.tight_layout()
    return fig


def plot_history(history: list[dict[str, Any]], metrics: Sequence[str] = ("iou", "dice")) -> plt.Figure:
    """Loss curves (train and validation) beside the validation metrics, per epoch.

    Taught in: notebooks/07_training.ipynb
    """
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(9, 3.3))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    for name in metrics:
        ax_metric.plot(epochs, [h.get(f"val_{name}") for h in history], "o-", label=f"val {name}")
        if all(h.get(f"train_{name}") is not None for h in history):
            ax_metric.plot(epochs, [h[f"train_{name}"] for h in history], "--", alpha=0.6, label=f"train {name}")
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylim(0, 1)
    ax_metric.legend(loc="lower right")
    ax_metric.grid(alpha=0.3)
    ax_loss.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, path: str | os.PathLike, dpi: int = 90) -> Path:
    """Save and close a figure (closing keeps memory flat in long loops)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


class LivePlot:
    """Redraws the training curves in a notebook after every epoch (pass as ``fit(on_epoch_end=...)``).

    Taught in: notebooks/07_training.ipynb
    """

    def __init__(self, metrics: Sequence[str] = ("iou", "dice")) -> None:
        self.metrics = metrics
        self.handle = None

    def __call__(self, history: list[dict[str, Any]]) -> None:
        fig = plot_history(history, self.metrics)
        try:
            from IPython.display import display

            if self.handle is None:
                self.handle = display(fig, display_id=True)
            else:
                self.handle.update(fig)
        except ImportError:
            pass
        plt.close(fig)
