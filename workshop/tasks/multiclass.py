"""Exercises of notebooks/09_multiclass.ipynb: a class map from Open Images masks, IoU per class.

* ``merge_binary_masks``: several per-class 0/255 masks -> one map of class ids (reference:
  :func:`workshop.multiclass.merge_binary_masks`).
* ``per_class_iou``: IoU of every class from one confusion matrix (reference:
  :func:`workshop.metrics.iou_from_confusion`).

Taught in: notebooks/09_multiclass.ipynb
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from workshop.metrics import iou_from_confusion
from workshop.multiclass import merge_binary_masks
from workshop.tasks.core import CheckFailure, Check, Exercise, expect

# ----------------------------------------------------------------------------- merge_binary_masks

MERGE_STUB = '''def merge_binary_masks(masks, class_ids, height, width):
    """Merge per-class binary masks (as Open Images ships them) into ONE map of class ids.

    masks: dict class name -> (height, width) numpy mask: 255 (or True, or 1) on the object, 0 elsewhere.
           The dict is in drawing order: where masks overlap, the LATER mask wins (like paint).
    class_ids: dict class name -> class id (the background, id 0, has no mask).

    Returns: (height, width) int64 numpy array: 0 where no mask is on, else the class id.
    """
    # your code here (about 5 lines)
    raise NotImplementedError("your code here")'''


def _as_map(found: Any) -> np.ndarray:
    if isinstance(found, torch.Tensor):
        raise CheckFailure("a numpy array (the next cells compare it with NumPy masks and save it as a PNG)",
                           "a torch tensor -> the map was built with torch, not NumPy", 1)
    if not isinstance(found, np.ndarray):
        raise CheckFailure("a numpy array", f"{type(found).__name__}", 1)
    return found


def _values(array: np.ndarray) -> str:
    return "{" + ", ".join(str(v) for v in np.unique(array).tolist()[:8]) + "}"


def _road_mask() -> np.ndarray:
    mask = np.zeros((3, 5), dtype=np.uint8)
    mask[1, :] = 255
    return mask


def _check_shape(candidate) -> None:
    found = _as_map(candidate({"road": _road_mask()}, {"road": 2}, 3, 5))
    expect(found.shape == (3, 5), "a (height, width) = (3, 5) map", f"shape {found.shape}"
           + (" -> height and width swapped: NumPy shapes are (height, width)" if found.shape == (5, 3) else ""), hint=1)
    expect(found.dtype == np.int64, "dtype int64 (class ids for CrossEntropyLoss)",
           f"{found.dtype} -> the map was started with another dtype than int64", hint=1)


def _check_0_255(candidate) -> None:
    found = _as_map(candidate({"road": _road_mask()}, {"road": 2}, 3, 5))
    expected = np.array([[0] * 5, [2] * 5, [0] * 5])
    if np.array_equal(found, expected):
        return
    if (found == 0).all():
        why = " -> the object pixels are 255, not 1: the mask was read as if it held 0/1"
    elif found.max() > 2:
        why = " -> the 0/255 mask was multiplied by the id: 255 * id is no class id"
    elif np.array_equal(found > 0, expected > 0):
        why = " -> the right pixels with the wrong id: the id of a mask is class_ids[name]"
    else:
        why = ""
    raise CheckFailure("road pixels (value 255 in the mask) to get id 2 and all others 0",
                       f"values {_values(found)} in the map{why}", 1)


def _check_bool(candidate) -> None:
    found = _as_map(candidate({"road": _road_mask() > 0}, {"road": 2}, 3, 5))
    expect(np.array_equal(found[1], np.full(5, 2)) and (found[[0, 2]] == 0).all(),
           "boolean masks to work too (True on the object)",
           f"row 1 = {found[1].tolist()} -> True/False masks are not read as object pixels (the test fits 0/255 only)", hint=1)


def _check_overlap(candidate) -> None:
    road = np.zeros((3, 5), dtype=np.uint8)
    road[1, :] = 255
    car = np.zeros((3, 5), dtype=np.uint8)
    car[:, 2] = 255
    found = _as_map(candidate({"road": road, "car": car}, {"road": 1, "car": 3}, 3, 5))
    value = int(found[1, 2])
    if value == 4:
        why = " -> 1 + 3 = 4 is not a class id: the ids were added where the masks overlap, which invents classes"
    elif value == 1:
        why = " -> the car mask comes later in the dict, so it is drawn over the road"
    else:
        why = ""
    expect(value == 3, "the overlap pixel [1, 2] (road, then car) to be the car's id 3 (the later mask wins)",
           f"{value}{why}", hint=2)
    expect(int(found[1, 0]) == 1 and int(found[0, 2]) == 3 and int(found[0, 0]) == 0,
           "road 1 at [1, 0], car 3 at [0, 2], background 0 at [0, 0]",
           f"{int(found[1, 0])}, {int(found[0, 2])}, {int(found[0, 0])}", hint=2)
    # the same two masks drawn in the other order: now the road (id 1, the LOWER id) is later and wins
    found = _as_map(candidate({"car": car, "road": road}, {"road": 1, "car": 3}, 3, 5))
    value = int(found[1, 2])
    if value == 3:
        why = " -> the higher id won, not the later mask (np.maximum or a max over the masks?)"
    elif value == 4:
        why = " -> 1 + 3 = 4 is not a class id: the ids were added where the masks overlap"
    else:
        why = ""
    expect(value == 1, "the overlap pixel [1, 2] (car, then road) to be the road's id 1: the later mask wins, "
           "even when its id is lower", f"{value}{why}", hint=2)


def _check_ids(candidate) -> None:
    sky = np.zeros((3, 5), dtype=np.uint8)
    sky[0] = 255
    found = _as_map(candidate({"sky": sky}, {"road": 1, "sky": 7}, 3, 5))
    expect(int(found[0, 0]) == 7, "the id from class_ids (sky -> 7), whatever the position of the class in the dict",
           f"{int(found[0, 0])} -> the id came from the mask's position in the dict, not from class_ids", hint=2)


MERGE_BINARY_MASKS = Exercise(
    name="merge_binary_masks",
    notebook="09_multiclass.ipynb",
    stub=MERGE_STUB,
    reference=merge_binary_masks,
    checks=[
        Check("shape and dtype", _check_shape),
        Check("0/255 masks", _check_0_255),
        Check("boolean masks", _check_bool),
        Check("overlap: the later mask wins", _check_overlap),
        Check("ids from class_ids", _check_ids),
    ],
    hints=[
        "Start from a map that is all background (id 0) and paint each class's pixels with its id, one mask "
        "after another in the dict's order, like paint: a later mask covers an earlier one. An Open Images "
        "mask is 255 on the object, so turn each mask into True/False first.",
        "np.zeros((height, width), dtype=np.int64) is the background map; mask > 0 is True on the object for "
        "0/255, 0/1 and True/False masks alike; out[m] = value assigns where m is True (assign, never add: "
        "1 + 3 = 4 is no class); class_ids[name] is a mask's id; masks.items() keeps the dict's order.",
        "out = np.zeros((height, width), dtype=np.int64)\nfor name, mask in masks.items():\n"
        "    out[np.asarray(mask) > 0] = class_ids[name]\nreturn out",
    ],
)

# ----------------------------------------------------------------------------- per_class_iou

IOU_STUB = '''def per_class_iou(confusion):
    """IoU of every class, read off one confusion matrix.

    confusion: (C, C) int64 tensor; rows = TRUE class, columns = PREDICTED class,
               so confusion[t, p] counts the pixels of class t predicted as class p.

    Returns: (C,) float tensor with IoU_c = TP / (TP + FP + FN), where
             TP = the diagonal, FP = column sum - TP, FN = row sum - TP.
             NaN for a class that is neither in the target nor in the prediction (0 / 0).
    """
    # your code here (about 5 lines)
    raise NotImplementedError("your code here")'''

_CM = torch.tensor([[6, 2, 0], [1, 3, 0], [1, 1, 2]])
_IOU = [0.6, 3 / 7, 0.5]
_RECALL = [0.75, 0.75, 0.5]
_PRECISION = [0.75, 0.5, 1.0]
_DICE = [0.75, 0.6, 2 / 3]


def _as_values(found: Any) -> torch.Tensor:
    if isinstance(found, np.ndarray):
        raise CheckFailure("a torch tensor (the notebook's next cells call .double() and torch.nanmean on it)",
                           "a numpy array -> the confusion tensor was turned into NumPy and the result stayed NumPy", 1)
    if not isinstance(found, torch.Tensor):
        raise CheckFailure("a tensor", type(found).__name__, 1)
    return found


def _close(found: torch.Tensor, expected: list[float]) -> bool:
    return found.shape == (len(expected),) and torch.allclose(found.double(), torch.tensor(expected, dtype=torch.float64), atol=1e-4)


def _check_iou_shape(candidate) -> None:
    found = _as_values(candidate(_CM.clone()))
    expect(tuple(found.shape) == (3,), "one IoU per class: shape (3,)", f"shape {tuple(found.shape)}", hint=1)
    expect(found.is_floating_point(), "a float tensor (IoU is a ratio)", f"dtype {found.dtype} -> integer counts divided without turning them into floats (or with //)", hint=1)


def _check_known(candidate) -> None:
    found = _as_values(candidate(_CM.clone()))
    shown = [round(v, 3) for v in found.double().tolist()]
    if _close(found, _IOU):
        return
    if _close(found, _RECALL):
        why = " -> that is the recall TP / (TP + FN), divided by the row sum only: the false positives are missing"
    elif _close(found, _PRECISION):
        why = " -> that is the precision TP / (TP + FP), divided by the column sum only: the false negatives are missing"
    elif _close(found, _DICE):
        why = " -> that is Dice / F1 (2 TP / (2 TP + FP + FN)); IoU counts TP once"
    else:
        why = " -> not TP / (TP + FP + FN) of each class"
    raise CheckFailure(f"IoU {[round(v, 3) for v in _IOU]} for the matrix {_CM.tolist()}", f"{shown}{why}", 2)


def _check_absent(candidate) -> None:
    cm = torch.tensor([[5, 1, 0], [2, 4, 0], [0, 0, 0]])
    found = _as_values(candidate(cm.clone())).double()
    expect(math.isnan(found[2].item()),
           "NaN for class 2, which is neither in the target nor predicted (0 / 0: its IoU is undefined)",
           f"{found[2].item()} -> the 0 / 0 of a class that is not there became a number, which pulls the mean IoU "
           "down (or up) for a class that was never in the data", hint=3)
    expect(abs(found[0].item() - 5 / 8) < 1e-6 and abs(found[1].item() - 4 / 7) < 1e-6,
           "IoU 0.625 and 0.571 for the classes that are present", f"{[round(v, 3) for v in found[:2].tolist()]}", hint=2)


def _check_missed(candidate) -> None:
    cm = torch.tensor([[4, 0], [3, 0]])
    found = _as_values(candidate(cm.clone())).double()
    expect(found[1].item() == 0.0, "IoU 0 for a class that is present but never predicted (TP = 0, FN = 3)",
           f"{found[1].item()}", hint=3)


PER_CLASS_IOU = Exercise(
    name="per_class_iou",
    notebook="09_multiclass.ipynb",
    stub=IOU_STUB,
    reference=iou_from_confusion,
    checks=[
        Check("shape and dtype", _check_iou_shape),
        Check("known values", _check_known),
        Check("absent class is NaN", _check_absent),
        Check("missed class is 0", _check_missed),
    ],
    hints=[
        "Everything is in the matrix. For class c: the true positives are on the diagonal; the false positives "
        "are the rest of column c (predicted c, truly something else); the false negatives the rest of row c "
        "(truly c, predicted something else). IoU = TP / (TP + FP + FN) in floats; a class never seen nor "
        "predicted is 0 / 0 and stays NaN.",
        "confusion.double() works in floats; .diagonal() gives the TP of every class at once; .sum(dim=0) the "
        "column sums, .sum(dim=1) the row sums. 0.0 / 0.0 is NaN in torch by itself: no special case needed.",
        "cm = confusion.double()\ntp = cm.diagonal()\nfp = cm.sum(dim=0) - tp\nfn = cm.sum(dim=1) - tp\n"
        "return tp / (tp + fp + fn)   # 0 / 0 gives NaN for an absent class, as wanted",
    ],
)

EXERCISES = [MERGE_BINARY_MASKS, PER_CLASS_IOU]
