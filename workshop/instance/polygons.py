"""Polygon coordinates relative to the image: the rooftop project's normalisation, kept because it teaches.

A polygon in pixels, ``[[x, y], ...]``, is tied to one image size. Divided by the width (x) and the
height (y) it becomes *normalised*: every coordinate in [0, 1], the same numbers for the photo and
for any resized copy of it (YOLO's segmentation labels are written this way). Multiplying back gives
the pixels of whatever size the image is loaded at, so labels survive a resize exactly, where
resizing a rendered mask would blur its outline. The polygon's own detail is unchanged: see
``workshop.data.polygons.mean_points_per_polygon`` for the points per polygon.

Taught in: notebooks/10_instance.ipynb
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["denormalize_polygon", "normalize_polygon"]


def _points(points: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) < 3:
        raise ValueError(f"a polygon is at least 3 [x, y] points, got an array of shape {p.shape}")
    return p


def normalize_polygon(points: Sequence[Sequence[float]] | np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel coordinates -> coordinates relative to the image size (x / width, y / height).

    Args:
        points: ``[[x, y], ...]`` in pixels (x the column, y the row).
        width, height: the image's size in pixels.

    Returns:
        float64 ``(N, 2)`` array; points inside the image lie in [0, 1].

    Raises:
        ValueError: fewer than 3 points, or a size that is not positive.

    Shape:
        (N, 2) -> (N, 2).

    Example:
        >>> normalize_polygon([[0, 0], [50, 0], [50, 25]], width=100, height=50).tolist()
        [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5]]

    Taught in: notebooks/10_instance.ipynb
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"the image size must be positive, got {width} x {height}")
    return _points(points) / np.array([width, height], dtype=np.float64)


def denormalize_polygon(points: Sequence[Sequence[float]] | np.ndarray, width: int, height: int) -> np.ndarray:
    """Relative coordinates -> pixels of an image of ``width`` x ``height`` (the inverse of :func:`normalize_polygon`).

    Example:
        >>> denormalize_polygon([[0.0, 0.0], [0.5, 0.0], [0.5, 0.5]], width=200, height=100).tolist()
        [[0.0, 0.0], [100.0, 0.0], [100.0, 50.0]]

    Taught in: notebooks/10_instance.ipynb
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"the image size must be positive, got {width} x {height}")
    return _points(points) * np.array([width, height], dtype=np.float64)
