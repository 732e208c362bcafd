"""The embedded data set: procedurally generated aerial scenes, made offline and deterministically.

Every scene is a top-down view of textured ground with roads, vegetation, water and buildings. The
labels are polygons (one JSON file per image) and every mask is rendered from those polygons with
:mod:`workshop.data.polygons`, so labels and masks always agree. Roof colours overlap road and ground
colours, buildings cast shadows (labelled as whatever they fall on), and each image gets its own
lighting and noise, so a model has to learn shape and context, not just colour.

On disk (the same layout the real-data loaders read)::

    <root>/manifest.json              name, format_version, seed, num_images, image_size, classes, generator
    <root>/labelmap.json              {"classes": [{"name", "id", "color"}, ...]}
    <root>/images/00000.png           RGB uint8
    <root>/labels/00000.json          polygons, drawn in list order (buildings last)
    <root>/masks/binary/00000.png     "L": 255 = building, 0 = everything else
    <root>/masks/multiclass/00000.png "L": class ids 0..4
    <root>/masks/instance/00000.png   "L": 0 = background, 1..K = one id per building

Taught in: notebooks/03_dataset.ipynb
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from workshop.data.polygons import polygon_area, polygon_to_mask, render_instance_id_mask, render_semantic_mask

__all__ = [
    "CLASSES",
    "CLASS_COLORS",
    "DATASET_NAME",
    "FORMAT_VERSION",
    "default_data_dir",
    "embedded_dir",
    "ensure_dataset",
    "generate_dataset",
    "generate_scene",
]

CLASSES: tuple[str, ...] = ("background", "building", "road", "vegetation", "water")
"""Class names; a class's id is its position in this tuple."""

CLASS_COLORS: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),  # background
    (230, 57, 70),  # building
    (160, 160, 160),  # road
    (56, 176, 0),  # vegetation
    (0, 119, 182),  # water
)
"""RGB colour per class (same order as :data:`CLASSES`) for colour-coded masks."""

DATASET_NAME = "embedded-aerial"
FORMAT_VERSION = 1
GENERATOR = "workshop.data.synthetic"
MIN_IMAGE_SIZE = 32

_CLASS_TO_ID = {name: index for index, name in enumerate(CLASSES)}

# Colour palettes (RGB, 0..255). Ground tones deliberately include colours close to roofs.
_GROUND_TONES = np.array(
    [
        [96, 116, 66],  # grass
        [118, 126, 78],  # dry grass
        [140, 138, 96],  # olive
        [168, 152, 116],  # sand
        [186, 172, 140],  # pale dust (close to light roofs)
        [134, 108, 82],  # soil (close to brown roofs)
        [152, 128, 100],  # tilled soil
        [124, 122, 112],  # grey gravel (close to grey roofs and roads)
    ],
    dtype=np.float32,
)
_ROOF_COLOURS = np.array(
    [
        [118, 118, 124],  # grey
        [148, 148, 152],  # light grey
        [96, 99, 106],  # dark grey
        [70, 75, 86],  # slate
        [166, 78, 58],  # terracotta
        [186, 98, 72],  # light terracotta
        [142, 62, 52],  # dark red
        [116, 86, 66],  # brown
        [138, 104, 78],  # light brown
        [206, 200, 190],  # light / concrete
        [222, 218, 208],  # white
        [86, 118, 112],  # weathered copper (rare)
    ],
    dtype=np.float32,
)
_ROOF_WEIGHTS = np.array([3, 2, 2, 1, 3, 2, 2, 2, 2, 2, 1, 0.5])
_VEGETATION_COLOURS = np.array(
    [[48, 82, 40], [62, 96, 46], [38, 66, 36], [78, 104, 56], [56, 88, 52]], dtype=np.float32
)
_WATER_COLOURS = np.array(
    [[38, 70, 96], [30, 86, 100], [46, 96, 122], [58, 88, 82], [34, 58, 74]], dtype=np.float32
)


# --------------------------------------------------------------------------------------------
# Small numeric helpers
# --------------------------------------------------------------------------------------------


def _noise(rng: np.random.Generator, size: int, cells: float) -> np.ndarray:
    """Smooth value noise in about [0, 1]: a random grid of ``cells`` x ``cells`` upsampled bicubically."""
    cells = max(2, int(round(cells)))
    grid = rng.random((cells, cells), dtype=np.float32)
    return np.asarray(Image.fromarray(grid).resize((size, size), Image.BICUBIC))


def _fractal(rng: np.random.Generator, size: int, cells: float, octaves: int, gain: float = 0.5) -> np.ndarray:
    """Sum of ``octaves`` value-noise layers, each twice as fine and ``gain`` times as strong; in about [0, 1]."""
    total = np.zeros((size, size), dtype=np.float32)
    weight = 0.0
    amplitude = 1.0
    for octave in range(octaves):
        total += amplitude * _noise(rng, size, cells * 2**octave)
        weight += amplitude
        amplitude *= gain
    return total / weight


def _erode(mask: np.ndarray) -> np.ndarray:
    """4-neighbour erosion; pixels beyond the image border count as inside (no fake edge there)."""
    out = mask.copy()
    out[1:] &= mask[:-1]
    out[:-1] &= mask[1:]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    return out


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    """8-neighbour (3x3 square) dilation repeated ``steps`` times."""
    out = mask.copy()
    for _ in range(steps):
        rows = out.copy()
        rows[1:] |= out[:-1]
        rows[:-1] |= out[1:]
        out = rows.copy()
        out[:, 1:] |= rows[:, :-1]
        out[:, :-1] |= rows[:, 1:]
    return out


def _rotate(xy: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return xy @ np.array([[c, s], [-s, c]], dtype=np.float64)


def _clip_polygon(xy: np.ndarray, low: float, high: float) -> np.ndarray:
    """Clip a polygon to the square [low, high]^2 (Sutherland-Hodgman); may return fewer than 3 points."""
    points = [tuple(p) for p in xy]
    for axis in (0, 1):
        for bound, keep_above in ((low, True), (high, False)):
            if not points:
                break
            clipped: list[tuple[float, float]] = []
            for index, current in enumerate(points):
                previous = points[index - 1]
                cur_in = current[axis] >= bound if keep_above else current[axis] <= bound
                prev_in = previous[axis] >= bound if keep_above else previous[axis] <= bound
                if cur_in != prev_in:
                    t = (bound - previous[axis]) / (current[axis] - previous[axis])
                    crossing = [previous[k] + t * (current[k] - previous[k]) for k in (0, 1)]
                    crossing[axis] = bound
                    clipped.append((crossing[0], crossing[1]))
                if cur_in:
                    clipped.append(current)
            points = clipped
    return np.array(points, dtype=np.float64).reshape(-1, 2)


def _to_points(xy: np.ndarray, size: int) -> list[list[float]] | None:
    """Clip to the image, round to 0.1 px and drop repeated vertices; None if nothing usable is left."""
    if xy.min() < 0 or xy.max() > size - 1:
        xy = _clip_polygon(xy, 0.0, size - 1.0)
    xy = np.round(xy, 1)
    if len(xy) == 0:
        return None
    keep = np.any(xy != np.roll(xy, 1, axis=0), axis=1)
    xy = xy[keep]
    if len(xy) < 3:
        return None
    x, y = xy[:, 0], xy[:, 1]
    if abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0 < 4.0:
        return None
    return [[float(px), float(py)] for px, py in xy]


def _jitter(rng: np.random.Generator, colour: np.ndarray, amount: float) -> np.ndarray:
    return colour + rng.normal(0.0, amount, 3).astype(np.float32)


class _Canvas:
    """The image being painted (float RGB) plus per-image texture fields shared by all objects.

    Objects are painted on the crop around their polygon (``box``) to keep generation fast.
    """

    def __init__(self, rng: np.random.Generator, size: int) -> None:
        self.size = size
        self.rgb = np.zeros((size, size, 3), dtype=np.float32)
        self.grain = rng.standard_normal((size, size), dtype=np.float32)  # per-pixel texture
        self.mid = _fractal(rng, size, size / 10, 2) - 0.5  # texture at a few pixels' scale
        self.fine = _noise(rng, size, size / 3) - 0.5  # texture at 2-4 px scale (tree crowns)
        ys, xs = np.mgrid[0:size, 0:size]
        self.xs = xs.astype(np.float32)
        self.ys = ys.astype(np.float32)

    def box(self, points: Any, pad: int = 1) -> tuple[slice, slice]:
        """Row and column slices of the pixels a polygon can touch (its bounding box plus ``pad`` pixels)."""
        xy = np.asarray(points, dtype=np.float64)
        (x_low, y_low), (x_high, y_high) = xy.min(axis=0).tolist(), xy.max(axis=0).tolist()
        size = self.size
        x0, y0 = min(max(math.floor(x_low) - pad, 0), size), min(max(math.floor(y_low) - pad, 0), size)
        x1, y1 = min(max(math.ceil(x_high) + pad + 1, 0), size), min(max(math.ceil(y_high) + pad + 1, 0), size)
        return slice(y0, y1), slice(x0, x1)

    def mask(self, points: Any, box: tuple[slice, slice]) -> np.ndarray:
        """The polygon's mask on the crop ``box``: rendered full size exactly as the labels are, then cropped."""
        return polygon_to_mask(points, self.size, self.size)[box]

    def paint(self, box: tuple[slice, slice], mask: np.ndarray, colour: np.ndarray, shade: np.ndarray) -> None:
        """Set the pixels under ``mask`` (a crop) to ``colour`` times the per-pixel factor ``shade`` (same crop)."""
        self.rgb[box][mask] = colour[None, :] * shade[mask][:, None]


# --------------------------------------------------------------------------------------------
# Scene parts
# --------------------------------------------------------------------------------------------


def _paint_ground(rng: np.random.Generator, canvas: _Canvas) -> None:
    """Ground: two or three tones blended by smooth noise, plus fields and paved patches (all background)."""
    size = canvas.size
    tones = _GROUND_TONES[rng.choice(len(_GROUND_TONES), size=3, replace=False)]
    tones = tones * rng.uniform(0.9, 1.1, (3, 1)).astype(np.float32)
    blend = np.clip((_fractal(rng, size, 3, 3) - 0.5) * 2.5 + 0.5, 0, 1)[..., None]
    patches = np.clip((_noise(rng, size, 4) - 0.62) * 6, 0, 1)[..., None] * rng.uniform(0.5, 1.0)
    rgb = (tones[0] * (1 - blend) + tones[1] * blend) * (1 - patches) + tones[2] * patches
    texture = 1 + 0.10 * canvas.mid + 0.06 * canvas.fine + 0.03 * canvas.grain
    canvas.rgb[:] = rgb * texture[..., None]

    # Fields: big rotated rectangles with crop rows.
    for _ in range(rng.integers(0, 4)):
        w, h = rng.uniform(0.25, 0.6, 2) * size
        corners = _rotate(_rectangle(w, h), rng.uniform(0, math.pi)) + rng.uniform(0, size, 2)
        box = canvas.box(corners)
        mask = canvas.mask(corners, box)
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(2.5, 5.0) * size / 128
        phase = (canvas.xs[box] * math.cos(angle) + canvas.ys[box] * math.sin(angle)) * (2 * math.pi / period)
        shade = 1 + rng.uniform(0.02, 0.08) * np.sin(phase) + 0.08 * canvas.mid[box] + 0.03 * canvas.grain[box]
        canvas.paint(box, mask, _jitter(rng, _GROUND_TONES[rng.integers(len(_GROUND_TONES))], 8), shade)

    # Paved patches (car parks, yards): grey like roads and roofs, but flat and without shadows.
    for _ in range(rng.binomial(2, 0.3)):
        w, h = rng.uniform(0.08, 0.2, 2) * size
        corners = _rotate(_rectangle(w, h), rng.uniform(0, math.pi)) + rng.uniform(0, size, 2)
        box = canvas.box(corners)
        grey = np.full(3, rng.uniform(95, 170), dtype=np.float32)
        shade = 1 + 0.05 * canvas.mid[box] + 0.04 * canvas.grain[box]
        canvas.paint(box, canvas.mask(corners, box), _jitter(rng, grey, 4), shade)


def _blob(
    rng: np.random.Generator, centre: np.ndarray, radius: float, n_points: int, roughness: float, harmonics: int
) -> np.ndarray:
    """An irregular star-shaped polygon: a circle whose radius wobbles with a few random harmonics."""
    theta = np.linspace(0, 2 * math.pi, n_points, endpoint=False)
    theta = theta + rng.uniform(-0.3, 0.3, n_points) * (2 * math.pi / n_points)
    wobble = np.zeros(n_points)
    for k in range(1, harmonics + 1):
        wobble += rng.uniform(0.4, 1.0) * roughness / k * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    r = radius * np.clip(1 + wobble, 0.35, None)
    xy = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    xy[:, 0] *= rng.uniform(0.7, 1.3)
    return _rotate(xy, rng.uniform(0, math.pi)) + centre


def _add_water(rng: np.random.Generator, canvas: _Canvas, objects: list[dict[str, Any]]) -> None:
    """A lake or pond: smooth blob, blue to teal, with a brightness gradient and a lighter shore."""
    size = canvas.size
    centre = rng.uniform(-0.1, 1.1, 2) * size
    points = _to_points(_blob(rng, centre, rng.uniform(0.15, 0.35) * size, 28, 0.25, 3), size)
    if points is None:
        return
    box = canvas.box(points)
    mask = canvas.mask(points, box)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = ((canvas.xs[box] - centre[0]) * math.cos(angle) + (canvas.ys[box] - centre[1]) * math.sin(angle)) / size
    shore = ~_erode(_erode(mask))
    shade = 1 + 0.25 * ramp + 0.06 * canvas.mid[box] + 0.015 * canvas.grain[box] + 0.12 * shore
    canvas.paint(box, mask, _jitter(rng, _WATER_COLOURS[rng.integers(len(_WATER_COLOURS))], 5), shade)
    objects.append({"class": "water", "points": points})


def _add_vegetation(
    rng: np.random.Generator,
    canvas: _Canvas,
    objects: list[dict[str, Any]],
    radius: float,
    toward_sun: np.ndarray,
    shadow_offset: np.ndarray | None = None,
) -> None:
    """A patch of trees: irregular blob with clumpy crown texture, lit from the sun's side.

    With ``shadow_offset`` (single trees) the blob first darkens the ground where its shadow falls.
    """
    size = canvas.size
    centre = rng.uniform(-0.05, 1.05, 2) * size
    n_points = 14 if radius < 0.08 * size else 24
    outline = _blob(rng, centre, radius, n_points, 0.45, 5)
    points = _to_points(outline, size)
    if points is None:
        return
    if shadow_offset is not None:
        moved = outline + shadow_offset
        shadow_box = canvas.box(moved)
        canvas.rgb[shadow_box][canvas.mask(moved, shadow_box)] *= 0.6
    box = canvas.box(points)
    mask = canvas.mask(points, box)
    sunny = ((canvas.xs[box] - centre[0]) * toward_sun[0] + (canvas.ys[box] - centre[1]) * toward_sun[1]) / radius
    shade = 1 + 0.7 * canvas.fine[box] + 0.12 * canvas.mid[box] + 0.05 * canvas.grain[box]
    shade += 0.1 * np.clip(sunny, -1, 1)
    canvas.paint(box, mask, _jitter(rng, _VEGETATION_COLOURS[rng.integers(len(_VEGETATION_COLOURS))], 6), shade)
    objects.append({"class": "vegetation", "points": points})


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, n: int) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _thick_polyline(centre: np.ndarray, width: float) -> np.ndarray:
    """Outline of a thick polyline: both sides offset by width/2 with mitred joints, as one polygon."""
    direction = np.diff(centre, axis=0)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    normals = np.stack([-direction[:, 1], direction[:, 0]], axis=1)
    vertex_normals = np.concatenate([normals[:1], normals[:-1] + normals[1:], normals[-1:]])
    vertex_normals /= np.linalg.norm(vertex_normals, axis=1, keepdims=True)
    segment_normals = np.concatenate([normals[:1], normals])
    miter = (width / 2) / np.clip(np.sum(vertex_normals * segment_normals, axis=1, keepdims=True), 0.5, None)
    return np.concatenate([centre + vertex_normals * miter, (centre - vertex_normals * miter)[::-1]])


def _add_road(rng: np.random.Generator, canvas: _Canvas, objects: list[dict[str, Any]], grid_angle: float) -> None:
    """A grey road crossing the image, straight or gently curved, sometimes with a faint dashed centre line."""
    size = canvas.size
    angle = grid_angle + rng.choice([0.0, math.pi / 2]) + rng.normal(0, 0.08)
    if rng.random() < 0.3:
        angle = rng.uniform(0, math.pi)
    along = np.array([math.cos(angle), math.sin(angle)])
    across = np.array([-along[1], along[0]])
    middle = size / 2 + across * rng.uniform(-0.4, 0.4) * size + along * rng.uniform(-0.2, 0.2) * size
    reach = 0.9 * size
    bend = across * rng.normal(0, 0.15) * size if rng.random() < 0.5 else np.zeros(2)
    centre = _bezier(middle - along * reach, middle + bend, middle + along * reach, 12)
    width = rng.uniform(0.055, 0.1) * size
    points = _to_points(_thick_polyline(centre, width), size)
    if points is None:
        return
    box = canvas.box(points)
    mask = canvas.mask(points, box)
    grey = np.full(3, rng.uniform(72, 138), dtype=np.float32) + rng.normal(0, 3, 3).astype(np.float32)
    kerb = mask & ~_erode(mask)
    shade = 1 + 0.05 * canvas.mid[box] + 0.035 * canvas.grain[box] + rng.uniform(0.0, 0.2) * kerb
    canvas.paint(box, mask, grey, shade)
    if rng.random() < 0.55:
        line = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(line)
        line_width = max(1, int(round(width * 0.1)))
        for start in range(0, len(centre) - 1, 2):
            draw.line([tuple(centre[start]), tuple(centre[start + 1])], fill=1, width=line_width)
        dashes = np.asarray(line, dtype=bool)[box] & mask
        if rng.random() < 0.5:  # short dashes instead of long ones
            dash = max(2, int(rng.uniform(0.03, 0.06) * size))
            dashes &= (canvas.xs[box] + canvas.ys[box]) // dash % 2 == 0
        strength = rng.uniform(0.25, 0.6)
        colour = np.array([225, 222, 205] if rng.random() < 0.7 else [220, 190, 90], dtype=np.float32)
        crop = canvas.rgb[box]
        crop[dashes] = crop[dashes] * (1 - strength) + colour * strength
    objects.append({"class": "road", "points": points})


def _rectangle(w: float, h: float) -> np.ndarray:
    return np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])


def _footprint(rng: np.random.Generator, side: float, min_side: float) -> tuple[np.ndarray, str]:
    """A building outline centred on (0, 0), unrotated, and its kind: rectangle, L-shape or convex polygon.

    ``side`` is the longer side; no side (or arm of an L) is shorter than ``min_side``.
    """
    kind = rng.choice(["rectangle", "l_shape", "polygon"], p=[0.6, 0.3, 0.1])
    long_side = max(side, min_side)
    short_side = max(long_side * rng.uniform(0.5, 1.0), min_side)
    if kind == "l_shape" and long_side >= 2.2 * min_side:
        w, h = long_side, max(short_side, 0.75 * long_side)
        cut_w = rng.uniform(0.35, 0.6) * w
        cut_h = rng.uniform(0.35, 0.6) * h
        cut_w, cut_h = min(cut_w, w - min_side), min(cut_h, h - min_side)  # arms stay wide enough
        outline = np.array(
            [[0, 0], [w, 0], [w, h - cut_h], [w - cut_w, h - cut_h], [w - cut_w, h], [0, h]], dtype=np.float64
        )
        outline -= outline.mean(axis=0)
        if rng.random() < 0.5:  # mirror image (keeping the vertex order counter-clockwise)
            outline = outline[::-1] * np.array([-1.0, 1.0])
        return outline, "l_shape"
    if kind == "polygon":
        n = int(rng.integers(5, 9))
        theta = np.sort(rng.uniform(0, 2 * math.pi, n))
        theta = np.sort(np.linspace(0, 2 * math.pi, n, endpoint=False) * 0.6 + theta * 0.4)
        scale = 1 / math.cos(math.pi / n)  # a polygon inscribed in the ellipse is narrower than it
        outline = np.stack([np.cos(theta) * long_side, np.sin(theta) * short_side], axis=1) * (scale / 2)
        return outline, "polygon"
    return _rectangle(long_side, short_side), "rectangle"


def _shadow_mask(outline: np.ndarray, offset: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Area swept by ``outline`` moved along ``offset``: the footprint, its shifted copy and the quads between.

    Used for shadows and spacing only (labels never come from it), so it may be drawn on a crop.
    """
    canvas = Image.new("L", (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(canvas)
    moved = outline + offset
    for polygon in (outline, moved):
        draw.polygon([tuple(p) for p in polygon], fill=1)
    for index in range(len(outline)):
        a, b = outline[index - 1], outline[index]
        draw.polygon([tuple(a), tuple(b), tuple(b + offset), tuple(a + offset)], fill=1)
    return np.asarray(canvas, dtype=bool)


def _roof_shade(
    rng: np.random.Generator,
    canvas: _Canvas,
    outline: np.ndarray,
    kind: str,
    box: tuple[slice, slice],
    mask: np.ndarray,
    toward_sun: np.ndarray,
) -> np.ndarray:
    """Per-pixel brightness of a roof on the crop ``box``: pitched (facets lit by the sun) or flat."""
    shade = np.ones(mask.shape, dtype=np.float32)
    ys, xs = np.nonzero(mask)
    pixels = np.stack([xs + box[1].start, ys + box[0].start], axis=1).astype(np.float64)
    roof = rng.choice(["pitched", "flat"], p=[0.7, 0.3] if kind != "polygon" else [0.5, 0.5])
    values = 1 + 0.04 * canvas.grain[box][ys, xs] + 0.04 * canvas.mid[box][ys, xs]
    if roof == "pitched":
        # Each pixel belongs to the facet of its nearest wall (a hip roof); a gable roof on a
        # rectangle uses only the two long walls. Facets facing the sun are brighter.
        a = outline
        edge = np.roll(outline, -1, axis=0) - a
        lengths = np.linalg.norm(edge, axis=1)
        rel = pixels[:, None, :] - a[None, :, :]
        t = np.clip(np.sum(rel * edge[None], axis=2) / (lengths**2)[None], 0, 1)
        dist = np.linalg.norm(rel - t[..., None] * edge[None], axis=2)
        if kind == "rectangle" and rng.random() < 0.5:
            dist[:, lengths < np.sort(lengths)[-2] - 1e-9] = np.inf
        facet = np.argmin(dist, axis=1)
        normals = np.stack([edge[:, 1], -edge[:, 0]], axis=1) / lengths[:, None]
        if np.sum(a[:, 0] * edge[:, 1] - a[:, 1] * edge[:, 0]) < 0:  # make the normals point outwards
            normals = -normals
        facet_light = 1 + rng.uniform(0.15, 0.35) * (normals @ toward_sun)
        height = np.abs(np.sum((pixels - a[facet]) * normals[facet], axis=1))
        values = values * facet_light[facet] * (1 + 0.03 * np.sin(height * 2.2))  # faint tile rows
    else:
        angle = rng.uniform(0, 2 * math.pi)
        ramp = ((pixels - outline.mean(axis=0)) @ np.array([math.cos(angle), math.sin(angle)])) / canvas.size
        values = values * (1 + rng.uniform(0.5, 1.5) * ramp)
    shade[ys, xs] = values
    if roof == "flat":  # a few small rooftop units (vents, air conditioning)
        for _ in range(rng.integers(0, 3)):
            unit = max(1, int(canvas.size * rng.uniform(0.01, 0.025)))
            pick = rng.integers(len(xs))
            cell = (slice(max(ys[pick] - unit, 0), ys[pick] + unit), slice(max(xs[pick] - unit, 0), xs[pick] + unit))
            shade[cell] *= np.where(mask[cell], rng.uniform(1.1, 1.25), 1.0).astype(np.float32)
    # eaves: the outline is a little darker (or, for a flat roof's parapet, darker or lighter)
    shade[mask & ~_erode(mask)] *= rng.uniform(0.75, 0.9) if roof == "pitched" else rng.uniform(0.8, 1.15)
    return shade


def _place_buildings(
    rng: np.random.Generator,
    canvas: _Canvas,
    objects: list[dict[str, Any]],
    avoid: np.ndarray,
    grid_angle: float,
    shadow_offset: np.ndarray,
) -> None:
    """Place 2..8 buildings that do not overlap each other (checked on masks), paint shadows then roofs."""
    size = canvas.size
    target = int(rng.integers(2, 9))
    max_side = size * (0.32 - 0.02 * target)
    min_side = 0.1 * size
    margin = max(1, size // 64)
    occupied = np.zeros((size, size), dtype=bool)  # footprints and shadows placed so far
    blocked = occupied.copy()  # occupied, grown by the margin kept between buildings
    roofs = occupied.copy()
    placed: list[tuple[np.ndarray, str, tuple[slice, slice], np.ndarray]] = []
    attempts = 0
    candidates: np.ndarray | None = None  # free pixels to centre a building on; None = recompute
    while (len(placed) < target and attempts < 40 * target) or (len(placed) < 2 and attempts < 2000):
        attempts += 1
        picky = attempts < 25 * target  # early on, keep buildings off roads and water
        if attempts == 25 * target:
            candidates = None
        side = max(min_side, rng.uniform(min_side, max_side) * 0.97 ** max(0, attempts - 10))
        outline, kind = _footprint(rng, side, min_side)
        angle = grid_angle + rng.choice([0, math.pi / 2]) + rng.normal(0, 0.05)
        if rng.random() < 0.3:
            angle = rng.uniform(0, math.pi)
        outline = _rotate(outline, angle)
        low, high = outline.min(axis=0), outline.max(axis=0)
        if np.any(high - low > size - 6) or polygon_area(outline) < 0.95 * min_side**2:
            continue
        # Centre on a random free pixel, moved inside the image if needed.
        if candidates is None:
            candidates = np.flatnonzero(~(blocked | avoid) if picky else ~blocked)
        if candidates.size == 0:
            continue
        pick = candidates[rng.integers(candidates.size)]
        centre = np.array([pick % size, pick // size], dtype=np.float64) + rng.uniform(-0.5, 0.5, 2)
        points = np.round(outline + np.clip(centre, 2 - low, size - 3 - high), 1)
        # Test on the crop around the building and its shadow.
        box = canvas.box(np.concatenate([points, points + shadow_offset]), pad=margin + 1)
        origin = np.array([box[1].start, box[0].start])
        swept = _shadow_mask(points - origin, shadow_offset, occupied[box].shape)
        if np.any(_dilate(swept, margin) & occupied[box]):
            continue
        footprint = canvas.mask(points, box)
        area = footprint.sum()
        if picky and np.sum(footprint & avoid[box]) > 0.02 * area:
            continue
        if np.any(footprint & roofs[box]):
            continue
        roofs[box] |= footprint
        occupied[box] |= swept
        blocked = _dilate(occupied, margin + 1)
        candidates = None
        placed.append((points, kind, box, footprint))
    shadows = occupied & ~roofs
    darkness = rng.uniform(0.4, 0.6)
    canvas.rgb[shadows] *= np.array([darkness, darkness * 1.02, darkness * 1.1], dtype=np.float32)
    toward_sun = -shadow_offset / np.linalg.norm(shadow_offset)
    for instance_id, (points, kind, box, footprint) in enumerate(placed, start=1):
        colour = _ROOF_COLOURS[rng.choice(len(_ROOF_COLOURS), p=_ROOF_WEIGHTS / _ROOF_WEIGHTS.sum())]
        shade = _roof_shade(rng, canvas, points, kind, box, footprint, toward_sun)
        canvas.paint(box, footprint, _jitter(rng, colour, 7), shade)
        objects.append(
            {"class": "building", "instance_id": instance_id, "points": [[float(x), float(y)] for x, y in points]}
        )


def _finish(rng: np.random.Generator, canvas: _Canvas) -> np.ndarray:
    """Camera and light: slight blur, haze, colour cast, brightness/contrast, vignette or gradient, noise."""
    size = canvas.size
    rgb = canvas.rgb
    blur = rng.uniform(0.2, 0.8)
    padded = np.pad(rgb, ((1, 1), (1, 1), (0, 0)), mode="edge")
    smooth = (padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]) * 0.125 + rgb * 0.5
    rgb = rgb * (1 - blur) + smooth * blur
    # haze, contrast, brightness and colour cast folded into one affine map per channel
    haze = rng.uniform(0, 0.15)
    cast = rng.normal(1.0, 0.05, 3)
    contrast = rng.uniform(0.8, 1.2)
    brightness = rng.uniform(0.8, 1.2)
    haze_colour = np.array([200.0, 205.0, 215.0])
    mean = float(rgb.mean()) * (1 - haze) + haze_colour.mean() * haze
    scale = (1 - haze) * contrast * cast
    shift = (haze * haze_colour * contrast + mean * (brightness - contrast)) * cast
    u = (canvas.xs / (size - 1)) * 2 - 1
    v = (canvas.ys / (size - 1)) * 2 - 1
    if rng.random() < 0.5:
        light = 1 - rng.uniform(0.0, 0.3) * (u**2 + v**2) / 2
    else:
        angle = rng.uniform(0, 2 * math.pi)
        light = 1 + rng.uniform(0.0, 0.15) * (u * math.cos(angle) + v * math.sin(angle))
    rgb = (rgb * scale.astype(np.float32) + shift.astype(np.float32)) * light[..., None]
    sigma = rng.uniform(2.0, 7.0)
    noise = rng.standard_normal((size, size, 3), dtype=np.float32) * (sigma * 0.5)
    noise += rng.standard_normal((size, size, 1), dtype=np.float32) * (sigma * 0.85)
    return np.clip(rgb + noise + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def generate_scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Generate one aerial scene and its polygon labels.

    The scene is painted in the order of the returned objects (water, vegetation, roads, small
    trees, then buildings), so rendering the polygons in list order reproduces the painted classes
    exactly. Shadows and lighting change pixel colours only, never labels.

    Args:
        rng: random generator; the same generator state always gives the same scene.
        size: image height and width in pixels (at least 32).

    Returns:
        ``(image, objects)``: the RGB image and a list of label objects, each
        ``{"class": name, "points": [[x, y], ...]}`` (buildings also carry ``instance_id`` 1..K).

    Shape:
        image: (size, size, 3) uint8.

    Example:
        >>> image, objects = generate_scene(np.random.default_rng(0), 64)
        >>> image.shape, objects[-1]["class"]
        ((64, 64, 3), 'building')

    Taught in: notebooks/03_dataset.ipynb
    """
    if not isinstance(size, (int, np.integer)) or size < MIN_IMAGE_SIZE:
        raise ValueError(f"size must be an integer >= {MIN_IMAGE_SIZE}, got {size!r}")
    size = int(size)
    canvas = _Canvas(rng, size)
    objects: list[dict[str, Any]] = []
    sun = rng.uniform(0, 2 * math.pi)
    shadow_offset = np.array([math.cos(sun), math.sin(sun)]) * rng.uniform(0.025, 0.055) * size
    toward_sun = -shadow_offset / np.linalg.norm(shadow_offset)
    grid_angle = rng.uniform(0, math.pi / 2)

    _paint_ground(rng, canvas)
    if rng.random() < 0.45:
        _add_water(rng, canvas, objects)
    for _ in range(rng.integers(0, 4)):
        _add_vegetation(rng, canvas, objects, rng.uniform(0.08, 0.2) * size, toward_sun)
    for _ in range(rng.choice(4, p=[0.2, 0.4, 0.3, 0.1])):
        _add_road(rng, canvas, objects, grid_angle)
    for _ in range(rng.integers(0, 9)):  # single trees with their shadows, some overhanging roads
        _add_vegetation(rng, canvas, objects, rng.uniform(0.025, 0.055) * size, toward_sun, shadow_offset * 0.6)
    classes = render_semantic_mask(objects, size, size, _CLASS_TO_ID)
    avoid = (classes == _CLASS_TO_ID["road"]) | (classes == _CLASS_TO_ID["water"])
    _place_buildings(rng, canvas, objects, avoid, grid_angle, shadow_offset)
    return _finish(rng, canvas), objects


def _write_png(array: np.ndarray, path: Path, compress_level: int = 6) -> None:
    Image.fromarray(array).save(path, format="PNG", compress_level=compress_level)


def _expected_manifest(num_images: int, image_size: int, seed: int) -> dict[str, Any]:
    return {
        "name": DATASET_NAME,
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "num_images": num_images,
        "image_size": image_size,
        "classes": list(CLASSES),
        "generator": GENERATOR,
    }


def _check_params(num_images: int, image_size: int, seed: int) -> None:
    limits = (("num_images", num_images, 1), ("image_size", image_size, MIN_IMAGE_SIZE), ("seed", seed, 0))
    for name, value, minimum in limits:
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _is_replaceable(root: Path) -> bool:
    """True when ``root`` is absent, empty, or a data set this module wrote (never someone else's folder)."""
    if not root.exists():
        return True
    if not root.is_dir():
        return False
    if not any(root.iterdir()):
        return True
    manifest = _read_manifest(root)
    return manifest is not None and manifest.get("generator") == GENERATOR


def generate_dataset(root: str | Path, num_images: int, image_size: int = 128, seed: int = 0) -> Path:
    """Generate the embedded data set into ``root`` (replacing an earlier one there).

    Image ``i`` is drawn with a generator seeded from ``(seed, i)``, so it is the same whatever
    ``num_images`` is. Files are written to a temporary folder beside ``root`` that is renamed into
    place at the end, with ``manifest.json`` written last: an interrupted run never leaves a folder
    that looks complete.

    Args:
        root: destination folder; must be absent, empty, or a data set written by this function.
        num_images: number of images (>= 1).
        image_size: height and width of the square images (>= 32).
        seed: base seed (>= 0).

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: bad arguments, or ``root`` holds files that are not a generated data set.

    Example:
        >>> root = generate_dataset("/tmp/aerial", num_images=8, image_size=64)  # doctest: +SKIP
        >>> sorted(p.name for p in root.iterdir())  # doctest: +SKIP
        ['images', 'labelmap.json', 'labels', 'manifest.json', 'masks']

    Taught in: notebooks/03_dataset.ipynb
    """
    _check_params(num_images, image_size, seed)
    num_images, image_size, seed = int(num_images), int(image_size), int(seed)
    root = Path(root).expanduser()
    if not _is_replaceable(root):
        raise ValueError(
            f"{root} exists and is not a complete data set made by {GENERATOR} (no matching manifest.json); "
            "delete it or choose an empty or new folder"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.parent / f".{root.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _write_dataset(staging, num_images, image_size, seed)
        if root.exists():  # move the old one aside first: a folder can only be renamed onto an empty one
            trash = root.parent / f".{root.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            root.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
        try:
            staging.rename(root)
        except OSError:
            # Another process (a second notebook, say) finished the same data set first: use it.
            if _read_manifest(root) != _expected_manifest(num_images, image_size, seed):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return root


def _read_manifest(root: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return manifest if isinstance(manifest, dict) else None


PARALLEL_MIN_IMAGES = 64
"""Data sets this large are drawn by several processes (each image has its own seed: same files)."""

_FOLDERS = {"images": "images", "labels": "labels", "binary": "masks/binary", "multiclass": "masks/multiclass",
            "instance": "masks/instance"}
"""Where each kind of file goes, relative to the data set's root."""


def _write_scenes(folder: Path, indices: range, image_size: int, seed: int) -> None:
    """Draw images ``indices`` and write their image, labels and masks under ``folder``."""
    folders = {kind: folder / sub for kind, sub in _FOLDERS.items()}
    for index in indices:
        rng = np.random.default_rng([seed, index])
        image, objects = generate_scene(rng, image_size)
        stem = f"{index:05d}"
        labels = {"image": f"{stem}.png", "width": image_size, "height": image_size, "objects": objects}
        semantic = render_semantic_mask(objects, image_size, image_size, _CLASS_TO_ID)
        instance = render_instance_id_mask(objects, image_size, image_size, classes=("building",))
        _write_png(image, folders["images"] / f"{stem}.png", compress_level=1)  # noisy: barely compresses
        (folders["labels"] / f"{stem}.json").write_text(json.dumps(labels), encoding="utf-8")
        _write_png(((semantic == _CLASS_TO_ID["building"]) * 255).astype(np.uint8), folders["binary"] / f"{stem}.png")
        _write_png(semantic.astype(np.uint8), folders["multiclass"] / f"{stem}.png")
        _write_png(instance.astype(np.uint8), folders["instance"] / f"{stem}.png")


def _generation_processes(num_images: int) -> int:
    """How many processes draw the set: one per core (at most 8); one for a small set, or off Linux."""
    if num_images < PARALLEL_MIN_IMAGES or sys.platform != "linux":  # fork is safe with threads on Linux only
        return 1
    return min(len(os.sched_getaffinity(0)), 8)


def _write_scenes_in_processes(folder: Path, num_images: int, image_size: int, seed: int, workers: int) -> bool:
    """Draw the set in ``workers`` forked processes, interleaved (0, 2, 4, ... and 1, 3, 5, ...).

    Forked, as DataLoader workers are: a spawned process would re-run a learner's script that has no
    ``__main__`` guard. Returns False when no process could be started (the caller draws them itself).
    """
    import concurrent.futures
    import multiprocessing

    try:
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            jobs = [pool.submit(_write_scenes, folder, range(k, num_images, workers), image_size, seed)
                    for k in range(workers)]
            for job in jobs:
                job.result()
    except (OSError, concurrent.futures.process.BrokenProcessPool):
        return False
    return True


def _write_dataset(folder: Path, num_images: int, image_size: int, seed: int) -> None:
    for sub in _FOLDERS.values():
        (folder / sub).mkdir(parents=True)
    workers = _generation_processes(num_images)
    if workers == 1 or not _write_scenes_in_processes(folder, num_images, image_size, seed, workers):
        _write_scenes(folder, range(num_images), image_size, seed)
    labelmap = {
        "classes": [
            {"name": name, "id": index, "color": list(CLASS_COLORS[index])} for index, name in enumerate(CLASSES)
        ]
    }
    (folder / "labelmap.json").write_text(json.dumps(labelmap, indent=2), encoding="utf-8")
    manifest = _expected_manifest(num_images, image_size, seed)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def ensure_dataset(
    root: str | Path | None, num_images: int, image_size: int = 128, seed: int = 0
) -> Path:
    """Return a ready data set: reuse the one in ``root`` if it was made with these parameters, else generate it.

    Args:
        root: data set folder; None means :func:`embedded_dir` for these parameters.
        num_images: number of images (>= 1).
        image_size: height and width of the square images (>= 32).
        seed: base seed (>= 0).

    Returns:
        The data set folder.

    Example:
        >>> root = ensure_dataset(None, num_images=300, image_size=128)  # doctest: +SKIP

    Taught in: notebooks/03_dataset.ipynb
    """
    _check_params(num_images, image_size, seed)
    num_images, image_size, seed = int(num_images), int(image_size), int(seed)
    root = embedded_dir(num_images, image_size, seed) if root is None else Path(root).expanduser()
    if _read_manifest(root) == _expected_manifest(num_images, image_size, seed):
        return root
    return generate_dataset(root, num_images, image_size, seed)


def default_data_dir() -> Path:
    """Folder for generated and downloaded data.

    ``$WORKSHOP_DATA_DIR`` if set, else ``$XDG_CACHE_HOME/workshop``, else ``~/.cache/workshop``.

    Returns:
        The folder (not created here).

    Taught in: notebooks/03_dataset.ipynb
    """
    explicit = os.environ.get("WORKSHOP_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "workshop"


def embedded_dir(num_images: int, image_size: int, seed: int, data_dir: str | Path | None = None) -> Path:
    """Where the embedded data set with these parameters lives: ``data_dir/embedded-aerial-n{N}-s{size}-seed{seed}``.

    Args:
        num_images: number of images.
        image_size: image height and width.
        seed: base seed.
        data_dir: parent folder; None means :func:`default_data_dir`.

    Returns:
        The folder path (not created here).

    Taught in: notebooks/03_dataset.ipynb
    """
    parent = default_data_dir() if data_dir is None else Path(data_dir).expanduser()
    return parent / f"{DATASET_NAME}-n{num_images}-s{image_size}-seed{seed}"
