"""Exercises of notebooks/10_instance.ipynb: polygons to masks, masks to boxes, new Mask R-CNN predictors.

* ``polygon_to_mask``: rasterise one polygon (reference: :func:`workshop.data.polygons.polygon_to_mask`,
  which draws every instance of a polygon-labelled set: ``render_instance_id_mask``).
* ``mask_to_box``: the tight box of one mask (reference: :func:`workshop.instance.data.mask_to_box`,
  which makes every training and evaluation target: ``detection_target``).
* ``replace_predictors``: box and mask predictors for N classes (reference:
  :func:`workshop.instance.model.replace_predictors`, which ``create_maskrcnn`` calls).

Each reference is the function ``workshop train / evaluate / predict`` run (tests/test_tasks_instance.py
spies on them).

Taught in: notebooks/10_instance.ipynb
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from workshop.data.polygons import polygon_to_mask
from workshop.instance.data import mask_to_box
from workshop.instance.model import replace_predictors
from workshop.tasks.core import CheckFailure, Check, Exercise, expect

# ----------------------------------------------------------------------------- polygon_to_mask

POLYGON_STUB = '''def polygon_to_mask(points, height, width):
    """Rasterise one polygon into a boolean mask.

    points: [[x, y], ...] vertices in pixel coordinates (a list, or an (N, 2) numpy array);
            x is the column, y is the row.
    Returns: (height, width) numpy bool array, True inside the polygon (its outline included).

    Tip: PIL draws polygons: Image.new("L", (width, height)) and ImageDraw.Draw(canvas).polygon(...).
    """
    # your code here (about 4 lines)
    raise NotImplementedError("your code here")'''

_BAR = [[2, 3], [25, 3], [25, 6], [2, 6]]  # a wide, flat rectangle: columns 2..25, rows 3..6
_TRIANGLE = [[2.0, 2.0], [27.0, 5.0], [9.0, 17.0]]


def _as_mask(found: Any) -> np.ndarray:
    if isinstance(found, torch.Tensor):
        found = found.numpy()
    if not isinstance(found, np.ndarray):
        raise CheckFailure("a numpy array", type(found).__name__, 1)
    return found


def _check_polygon_shape(candidate) -> None:
    found = _as_mask(candidate(_BAR, 20, 30))
    why = " -> PIL sizes are (width, height) but numpy shapes are (height, width)" if found.shape == (30, 20) else ""
    expect(found.shape == (20, 30), "a mask of shape (height, width) = (20, 30)", f"shape {found.shape}{why}", hint=1)
    expect(found.dtype == bool, "a boolean mask (dtype bool)",
           f"dtype {found.dtype} with values {sorted(np.unique(found).tolist())[:4]} -> the drawing's numbers were "
           "returned, not True/False", hint=1)


def _check_orientation(candidate) -> None:
    found = _as_mask(candidate(_BAR, 20, 30)).astype(bool)
    inside, swapped = bool(found[4, 20]), bool(found[15, 4])
    why = " -> x and y swapped: x is the column and y the row, so point (x, y) is the pixel mask[y, x]" if swapped else ""
    expect(inside and not swapped,
           "the flat bar with x from 2 to 25 and y from 3 to 6 to cover mask[4, 20] and not mask[15, 4]",
           f"mask[4, 20] = {inside}, mask[15, 4] = {swapped}{why}", hint=2)
    expect(int(found.sum()) == 24 * 4, "96 pixels: columns 2..25 and rows 3..6, outline included",
           f"{int(found.sum())} pixels", hint=2)


def _check_triangle(candidate) -> None:
    found = _as_mask(candidate(_TRIANGLE, 20, 30)).astype(bool)
    expected = polygon_to_mask(_TRIANGLE, 20, 30)
    union = int((found | expected).sum())
    iou = (found & expected).sum() / union if union else 0.0
    expect(iou >= 0.85, "the triangle [[2, 2], [27, 5], [9, 17]] to fill its inside (IoU >= 0.85 with the reference)",
           f"{int(found.sum())} pixels against {int(expected.sum())}, IoU {iou:.2f}"
           " -> the bounding box was filled, or the inside of the polygon was not", hint=2)


def _check_numpy_points(candidate) -> None:
    found = _as_mask(candidate(np.array(_BAR, dtype=np.float64), 20, 30)).astype(bool)
    expect(int(found.sum()) == 96 and bool(found[4, 20]), "points given as an (N, 2) numpy array to work too",
           f"{int(found.sum())} pixels -> an (N, 2) array of points is not what PIL's polygon reads "
           "(it reads a list of (x, y) pairs)", hint=3)


POLYGON_TO_MASK = Exercise(
    name="polygon_to_mask",
    notebook="10_instance.ipynb",
    stub=POLYGON_STUB,
    reference=polygon_to_mask,
    checks=[
        Check("shape and dtype", _check_polygon_shape),
        Check("x is the column, y the row", _check_orientation),
        Check("inside of a triangle", _check_triangle),
        Check("numpy points", _check_numpy_points),
    ],
    hints=[
        "Draw the polygon, filled, on a blank 8-bit image, then read the image back as an array: True where it "
        "was drawn. A point is (x, y): x the column, y the row. An image's size is (width, height), an array's "
        "shape (height, width).",
        "Image.new('L', (width, height), 0) is a blank canvas; ImageDraw.Draw(canvas).polygon(xy, fill=1) fills "
        "a polygon, with xy a list of (x, y) tuples (numpy points must become one); np.asarray(canvas) reads it "
        "back, .astype(bool) makes True/False. PIL takes x first: no swapping needed.",
        "from PIL import Image, ImageDraw\ncanvas = Image.new('L', (width, height), 0)\n"
        "ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in points], fill=1)\n"
        "return np.asarray(canvas).astype(bool)",
    ],
)

# ----------------------------------------------------------------------------- mask_to_box

BOX_STUB = '''def mask_to_box(mask):
    """The tight box around one object's mask.

    mask: (H, W) numpy bool array (True on the object).
    Returns: numpy float32 array [x0, y0, x1, y1]: x0, y0 = first column and row of the object,
             x1, y1 = ONE PAST its last column and row (like a Python slice: mask[y0:y1, x0:x1]).
    Raises: ValueError for an empty mask (it has no box).
    """
    # your code here (about 5 lines)
    raise NotImplementedError("your code here")'''


def _box(candidate, mask: np.ndarray) -> np.ndarray:
    found = candidate(mask)
    if isinstance(found, torch.Tensor):
        found = found.numpy()
    try:
        found = np.asarray(found, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise CheckFailure("4 numbers [x0, y0, x1, y1]", repr(found), 1) from None
    if found.shape != (4,):
        raise CheckFailure("4 numbers [x0, y0, x1, y1]", f"{found.size} numbers", 1)
    return found


def _diagnose(found: np.ndarray, expected: list[float]) -> str:
    x0, y0, x1, y1 = expected
    if np.array_equal(found, [x0, y0, x1 - 1, y1 - 1]):
        return " -> the box stops AT the last pixel; x1, y1 are one PAST it, so that x1 - x0 is the width in pixels"
    if np.array_equal(found, [y0, x0, y1, x1]) or np.array_equal(found, [y0, x0, y1 - 1, x1 - 1]):
        return " -> x and y are swapped: x is the column (axis 1 of the mask), y the row (axis 0)"
    return ""


def _check_box_type(candidate) -> None:
    mask = np.zeros((5, 6), dtype=bool)
    mask[1:3, 2:5] = True
    found = candidate(mask)
    if isinstance(found, torch.Tensor):
        why = "a torch tensor -> the box was built with torch, not NumPy"
    elif not isinstance(found, np.ndarray):
        why = f"a {type(found).__name__} -> the four numbers were never put in a NumPy array"
    elif found.dtype != np.float32:
        why = (f"a numpy array of dtype {found.dtype} -> the array kept NumPy's default dtype, but torchvision's "
               "detection targets hold float32 boxes")
    else:
        return
    raise CheckFailure("a numpy float32 array [x0, y0, x1, y1] (the later cells stack the boxes into the "
                       "model's float32 targets)", why, 1)


def _check_known_box(candidate) -> None:
    mask = np.zeros((5, 6), dtype=bool)
    mask[1:3, 2:5] = True
    expected = [2.0, 1.0, 5.0, 3.0]
    found = _box(candidate, mask)
    expect(np.array_equal(found, expected), f"the box {expected} for mask[1:3, 2:5] = True",
           f"{found.tolist()}{_diagnose(found, expected)}", hint=2)


def _check_single_pixel(candidate) -> None:
    mask = np.zeros((6, 4), dtype=bool)
    mask[4, 0] = True
    expected = [0.0, 4.0, 1.0, 5.0]
    found = _box(candidate, mask)
    expect(np.array_equal(found, expected), f"{expected} for a single pixel at row 4, column 0 (a box 1 pixel wide)",
           f"{found.tolist()}{_diagnose(found, expected)}", hint=2)


def _check_two_parts(candidate) -> None:
    mask = np.zeros((5, 7), dtype=bool)
    mask[0, 5] = True
    mask[3, 1:3] = True
    expected = [1.0, 0.0, 6.0, 4.0]
    found = _box(candidate, mask)
    expect(np.array_equal(found, expected), f"{expected}: the box holds every pixel of a mask in two parts",
           f"{found.tolist()}{_diagnose(found, expected)} -> the box does not cover every part of the mask "
           "(only its first row or part was used)", hint=3)


def _check_empty(candidate) -> None:
    try:
        found = candidate(np.zeros((4, 4), dtype=bool))
    except ValueError:
        return
    raise CheckFailure("a ValueError for an empty mask (it has no box)",
                       f"it returned {np.asarray(found).tolist()!r} -> an empty mask went through as if it had a box", 3)


MASK_TO_BOX = Exercise(
    name="mask_to_box",
    notebook="10_instance.ipynb",
    stub=BOX_STUB,
    reference=mask_to_box,
    checks=[
        Check("a numpy float32 array", _check_box_type),
        Check("a known box", _check_known_box),
        Check("a single pixel", _check_single_pixel),
        Check("a mask in two parts", _check_two_parts),
        Check("an empty mask", _check_empty),
    ],
    hints=[
        "Find the rows and the columns that hold at least one True pixel, in every part of the mask: the box "
        "runs from the first to the last of them. x counts columns (axis 1), y rows (axis 0); the end is one "
        "past the last pixel, like a slice. An empty mask has no box: that is an error.",
        "ys, xs = np.nonzero(mask) gives the row and column of every True pixel; xs.min() and xs.max() + 1 are "
        "x0 and x1 (a single pixel is a 1x1 box); np.array([...], dtype=np.float32) is the box type of "
        "torchvision's targets; xs.size == 0 means an empty mask, and raise ValueError(...) refuses it.",
        "ys, xs = np.nonzero(mask)\nif xs.size == 0:\n    raise ValueError('empty mask')\n"
        "return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)",
    ],
)

# ----------------------------------------------------------------------------- replace_predictors

PREDICTORS_STUB = '''from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor


def replace_predictors(model, num_classes):
    """Give a Mask R-CNN new box AND mask predictors for num_classes classes (background included).

    Read the sizes the new layers need from the old ones:
      model.roi_heads.box_predictor.cls_score.in_features      (features of the box head)
      model.roi_heads.mask_predictor.conv5_mask.in_channels    (channels of the mask head)
      model.roi_heads.mask_predictor.conv5_mask.out_channels   (hidden channels of the predictor)
    Returns: the model.
    """
    # your code here (about 5 lines)
    raise NotImplementedError("your code here")'''


def tiny_maskrcnn(num_classes: int = 5) -> nn.Module:
    """A very small Mask R-CNN (one 8-channel feature map, box head of 32 features) for fast checks."""
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign

    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU())
    backbone.out_channels = 8
    return MaskRCNN(
        backbone, num_classes=None, min_size=32, max_size=32,
        rpn_anchor_generator=AnchorGenerator(((8, 16),), ((1.0,),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2),
        box_head=TwoMLPHead(8 * 7 * 7, 32), box_predictor=FastRCNNPredictor(32, num_classes),
        mask_roi_pool=MultiScaleRoIAlign(["0"], 14, 2),
        mask_head=MaskRCNNHeads(8, (8,), 1), mask_predictor=MaskRCNNPredictor(8, 6, num_classes),
    )


def _replaced(candidate, num_classes: int = 3) -> nn.Module:
    model = tiny_maskrcnn(5)
    out = candidate(model, num_classes)
    if out is None:
        raise CheckFailure("the model to be returned", "None -> the model was changed but not returned", 1)
    if not hasattr(out, "roi_heads"):
        raise CheckFailure("the Mask R-CNN model to be returned", f"a {type(out).__name__}", 1)
    return out


def _check_box_predictor(candidate) -> None:
    box = _replaced(candidate).roi_heads.box_predictor
    scores, deltas = box.cls_score, box.bbox_pred
    expect(scores.out_features == 3, "a class score for each of the 3 classes (background included)",
           f"{scores.out_features} scores"
           + (" -> the box predictor was not replaced" if scores.out_features == 5 else ""), hint=1)
    expect(deltas.out_features == 12, "4 box numbers per class: bbox_pred with 12 outputs",
           f"{deltas.out_features} -> the box regression still has the old number of classes", hint=2)
    expect(scores.in_features == 32, "the new predictor to take the box head's 32 features",
           f"{scores.in_features} -> a number from elsewhere (a tutorial?), not the features this model's box "
           "head produces", hint=2)


def _check_mask_predictor(candidate) -> None:
    predictor = _replaced(candidate).roi_heads.mask_predictor
    logits = predictor.mask_fcn_logits
    expect(logits.out_channels == 3, "one mask per class: the mask predictor with 3 outputs",
           f"{logits.out_channels}"
           + (" -> the mask predictor still predicts the old 5 classes: it was not replaced"
              if logits.out_channels == 5 else ""), hint=2)
    expect(predictor.conv5_mask.in_channels == 8, "the mask predictor to take the mask head's 8 channels",
           f"{predictor.conv5_mask.in_channels} -> a number from elsewhere, not this model's mask head channels "
           "(256 is only right for torchvision's ResNet-50 model)", hint=2)


def _check_forward(candidate) -> None:
    model = _replaced(candidate).eval()
    with torch.no_grad():
        out = model([torch.rand(3, 32, 32)])
    expect(isinstance(out, list) and {"boxes", "labels", "scores", "masks"} <= set(out[0]),
           "the model to still run and return boxes, labels, scores and masks", f"{type(out).__name__}", hint=3)


REPLACE_PREDICTORS = Exercise(
    name="replace_predictors",
    notebook="10_instance.ipynb",
    stub=PREDICTORS_STUB,
    reference=replace_predictors,
    checks=[
        Check("box predictor", _check_box_predictor),
        Check("mask predictor", _check_mask_predictor),
        Check("the model still runs", _check_forward),
    ],
    hints=[
        "Two layers depend on the number of classes: roi_heads.box_predictor (class scores and boxes) and "
        "roi_heads.mask_predictor (one mask per class). Replace both; keep everything before them.",
        "in_features = model.roi_heads.box_predictor.cls_score.in_features; then "
        "model.roi_heads.box_predictor = FastRCNNPredictor(in_features, num_classes). For masks, "
        "MaskRCNNPredictor(in_channels, hidden, num_classes) with both sizes read from the old conv5_mask.",
        "heads = model.roi_heads\nheads.box_predictor = FastRCNNPredictor(heads.box_predictor.cls_score.in_features, num_classes)\n"
        "old = heads.mask_predictor.conv5_mask\n"
        "heads.mask_predictor = MaskRCNNPredictor(old.in_channels, old.out_channels, num_classes)\nreturn model",
    ],
)

EXERCISES = [POLYGON_TO_MASK, MASK_TO_BOX, REPLACE_PREDICTORS]
