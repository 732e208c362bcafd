"""Pictures of instances: one colour per object, with its box (and score).

Taught in: notebooks/10_instance.ipynb
"""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from workshop.data.io import default_palette

__all__ = ["instance_colors", "instance_overlay", "save_predictions", "show_image_with_masks", "show_instances",
           "show_predictions", "to_numpy_image"]


def instance_colors(n: int) -> list[tuple[int, int, int]]:
    """``n`` distinct RGB colours, one per instance (the background black of the palette is skipped)."""
    return default_palette(n + 1)[1:]


def to_numpy_image(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """A (3, H, W) float 0..1 tensor or an (H, W, 3) uint8 array as (H, W, 3) uint8."""
    if isinstance(image, torch.Tensor):
        return (image.detach().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return np.asarray(image)


def instance_overlay(image: torch.Tensor | np.ndarray, masks: torch.Tensor | np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend every instance mask over the image in its own colour (later masks on top).

    Args:
        image: (H, W, 3) uint8 or (3, H, W) float 0..1.
        masks: (K, H, W) bool / 0-1, or Mask R-CNN's (K, 1, H, W) probabilities (thresholded at 0.5).
        alpha: opacity of the colours.

    Returns:
        (H, W, 3) uint8.

    Taught in: notebooks/10_instance.ipynb
    """
    picture = to_numpy_image(image).astype(np.float32)
    m = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    if m.ndim == 4:
        m = m[:, 0]
    m = m > 0.5 if m.dtype.kind == "f" else m.astype(bool)
    if m.shape[1:] != picture.shape[:2]:
        raise ValueError(f"masks {m.shape[1:]} do not match the image {picture.shape[:2]}")
    for mask, colour in zip(m, instance_colors(len(m))):
        picture[mask] = (1 - alpha) * picture[mask] + alpha * np.array(colour, dtype=np.float32)
    return picture.round().clip(0, 255).astype(np.uint8)


def show_instances(
    image: torch.Tensor | np.ndarray,
    target: dict[str, Any],
    ax: plt.Axes | None = None,
    score_threshold: float = 0.5,
    title: str | None = None,
) -> plt.Axes:
    """Draw an image with its instances: coloured masks, boxes, and scores when there are some.

    Args:
        image: (H, W, 3) uint8 or (3, H, W) float 0..1.
        target: a target or a prediction: ``masks``, ``boxes`` and optionally ``scores``
            (predictions below ``score_threshold`` are not drawn).
        ax: where to draw (a new figure when None).
        score_threshold: minimum score of a drawn prediction.
        title: axes title (default: the number of instances shown).

    Returns:
        The axes.

    Taught in: notebooks/10_instance.ipynb
    """
    masks, boxes = target["masks"], target["boxes"]
    scores = target.get("scores")
    if scores is not None:
        keep = torch.as_tensor(scores) >= score_threshold
        masks, boxes, scores = masks[keep], boxes[keep], torch.as_tensor(scores)[keep]
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(instance_overlay(image, masks))
    colours = instance_colors(len(boxes))
    for k, box in enumerate(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)):
        x0, y0, x1, y1 = box.tolist()
        colour = np.array(colours[k]) / 255
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=1.2))
        if scores is not None:
            ax.text(x0, y0, f"{float(scores[k]):.2f}", color="white", fontsize=7, va="bottom",
                    bbox=dict(facecolor=colour, alpha=0.7, pad=1, edgecolor="none"))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title if title is not None else f"{len(boxes)} instance(s)", fontsize=9)
    return ax


def show_predictions(
    images: Sequence[torch.Tensor],
    targets: Sequence[dict[str, Any]],
    predictions: Sequence[dict[str, Any]],
    score_threshold: float = 0.5,
    fig: Figure | None = None,
) -> Figure:
    """A grid with one row per image: ground-truth instances | predicted instances.

    Args:
        images, targets, predictions: one of each per row.
        score_threshold: predictions below this score are not drawn.
        fig: draw into this figure (e.g. a ``matplotlib.figure.Figure`` to save, without pyplot),
            or None for a new pyplot figure.

    Taught in: notebooks/10_instance.ipynb
    """
    rows = max(len(images), 1)
    if fig is None:
        fig = plt.figure(figsize=(6, 3 * rows))
    else:
        fig.set_size_inches(6, 3 * rows)
    axes = fig.subplots(rows, 2, squeeze=False)
    for r, (image, target, pred) in enumerate(zip(images, targets, predictions)):
        show_instances(image, target, axes[r][0], title=f"ground truth: {len(target['boxes'])}")
        shown = int((torch.as_tensor(pred["scores"]) >= score_threshold).sum())
        show_instances(image, pred, axes[r][1], score_threshold, title=f"predicted (score >= {score_threshold}): {shown}")
    fig.tight_layout()
    return fig


def show_image_with_masks(image: torch.Tensor | np.ndarray, masks: torch.Tensor | np.ndarray, title: str = "") -> plt.Figure:
    """The rooftop project's check picture: the image, and the image with every object mask over it.

    Args:
        image: (H, W, 3) uint8 or (3, H, W) float 0..1.
        masks: (K, H, W) bool, one per object (or (K, 1, H, W) probabilities).
        title: shown above the first panel.

    Returns:
        The figure (two panels side by side).

    Taught in: notebooks/10_instance.ipynb
    """
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    axes[0].imshow(to_numpy_image(image))
    axes[0].set_title(title or "image", fontsize=9)
    axes[1].imshow(instance_overlay(image, masks))
    axes[1].set_title(f"{len(masks)} object mask(s)", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def save_predictions(model: torch.nn.Module, dataset: Any, device: torch.device | str, path: str | Any,
                     rows: int = 4, score_threshold: float = 0.5) -> None:
    """Predict the first ``rows`` images of ``dataset`` and save the grid of :func:`show_predictions` as a PNG.

    Drawn on a ``matplotlib.figure.Figure`` (no pyplot, no backend switch), so it works the same in
    a notebook, a terminal or a DataLoader-free test. The model is left in eval mode.
    """
    model.eval()
    images, targets, preds = [], [], []
    with torch.no_grad():
        for i in range(min(rows, len(dataset))):
            image, target = dataset[i]
            images.append(image)
            targets.append(target)
            preds.append({k: v.cpu() for k, v in model([image.to(device)])[0].items()})
    fig = show_predictions(images, targets, preds, score_threshold=score_threshold, fig=Figure())
    fig.savefig(path, dpi=80)
