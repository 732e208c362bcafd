"""The strictest known wrong answers, per exercise: each once PASSED its check or got a wrong reason.

Each entry is ``(exercise, label, source, words)``: ``source`` is what a learner could type in the
exercise cell (it defines the exercise's name), ``words`` must all appear in the FAIL verdict.
The sources are plain text so that the same answers can be pasted into the notebooks themselves
(tests/test_notebooks.py runs every later cell of a notebook with them).
"""

from __future__ import annotations

WRONG_ANSWERS: list[tuple[str, str, str, list[str]]] = [
    # ------------------------------------------------------------------ 02 train_transform
    ("train_transform", "an extra A.Affine rotation", '''import albumentations as A
import cv2
from albumentations.pytorch import ToTensorV2


def train_transform(image_size):
    return A.Compose([
        A.Resize(image_size, image_size, mask_interpolation=cv2.INTER_NEAREST),
        A.HorizontalFlip(), A.RandomRotate90(), A.Affine(rotate=(-30, 30), p=1.0),
        A.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)), ToTensorV2(),
    ])''', ["only the listed steps", "not white", "A.Affine", "exactly Resize"]),
    # ------------------------------------------------------------------ 05 replace_head
    ("replace_head", "appends a layer instead of replacing the last", '''from torch import nn


def replace_head(model, num_classes):
    model.classifier.append(nn.Conv2d(model.classifier[-1].out_channels, num_classes, kernel_size=1))
    return model''', ["ASPP head kept", "a layer was added", "appended instead of replacing"]),
    # ------------------------------------------------------------------ 06 iou_score
    ("iou_score", "returns a tensor", '''import torch


def iou_score(logits, target, threshold=0.5):
    pred = torch.sigmoid(logits) > threshold
    truth = target.unsqueeze(1) == 1
    union = (pred | truth).sum()
    return torch.tensor(1.0) if union == 0 else (pred & truth).sum() / union''', ["a Python float", "a tensor", "never turned into Python numbers"]),
    ("iou_score", "no unsqueeze: (N,1,H,W) against (N,H,W)", '''import torch


def iou_score(logits, target, threshold=0.5):
    pred = torch.sigmoid(logits) > threshold
    truth = target == 1
    union = (pred | truth).sum().item()
    return 1.0 if union == 0 else (pred & truth).sum().item() / union''',
     ["target (N, H, W) against logits (N, 1, H, W)", "(N, N, H, W)", "broadcasts against the prediction"]),
    ("iou_score", "integer division //", '''import torch


def iou_score(logits, target, threshold=0.5):
    pred = torch.sigmoid(logits) > threshold
    truth = target.unsqueeze(1) == 1
    union = (pred | truth).sum().float()
    return 1.0 if union == 0 else ((pred & truth).sum().float() // union).item()''',
     ["value on a 4-pixel example", "integer division (`//`)", "rounded down to 0"]),
    # ------------------------------------------------------------------ 06 train_one_epoch
    ("train_one_epoch", "never calls .to(device)", '''def train_one_epoch(model, loader, loss_fn, optimizer, device):
    model.train()
    total = 0.0
    for batch in loader:
        loss = loss_fn(model(batch["image"]), batch["mask"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(loader)''', ["batches moved to the device", "not moved to the device", "stayed where the loader made it"]),
    ("train_one_epoch", "zero_grad between backward and step", '''def train_one_epoch(model, loader, loss_fn, optimizer, device):
    model.train()
    total = 0.0
    for batch in loader:
        loss = loss_fn(model(batch["image"].to(device)), batch["mask"].to(device))
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
        total += loss.item()
    return total / len(loader)''', ["cleared between the backward pass and the optimiser step", "already cleared"]),
    # ------------------------------------------------------------------ 08 predict_mask
    ("predict_mask", "returns a torch tensor", '''import torch
import torch.nn.functional as F
from workshop.augment import get_inference_transform


def predict_mask(model, image, image_size, threshold=0.5):
    x = get_inference_transform(image_size)(image=image)["image"].unsqueeze(0)
    model.eval()
    with torch.no_grad():
        logits = F.interpolate(model(x), size=image.shape[:2], mode="bilinear")
    return (torch.sigmoid(logits[0, 0]) > threshold).long()''', ["a NumPy array", "stayed a torch tensor"]),
    ("predict_mask", "thresholds first, then resizes the 0/1 mask (nearest)", '''import torch
import torch.nn.functional as F
from workshop.augment import get_inference_transform


def predict_mask(model, image, image_size, threshold=0.5):
    x = get_inference_transform(image_size)(image=image)["image"].unsqueeze(0)
    model.eval()
    with torch.no_grad():
        small = (torch.sigmoid(model(x)) > threshold).float()
    return F.interpolate(small, size=image.shape[:2], mode="nearest")[0, 0].long().numpy()''',
     ["resize the logits, then threshold", "thresholded before resizing"]),
    ("predict_mask", "thresholds first, then resizes the 0/1 mask (bilinear)", '''import torch
import torch.nn.functional as F
from workshop.augment import get_inference_transform


def predict_mask(model, image, image_size, threshold=0.5):
    x = get_inference_transform(image_size)(image=image)["image"].unsqueeze(0)
    model.eval()
    with torch.no_grad():
        small = (torch.sigmoid(model(x)) > threshold).float()
    return (F.interpolate(small, size=image.shape[:2], mode="bilinear")[0, 0] > 0.5).long().numpy()''',
     ["resize the logits, then threshold", "thresholded before resizing"]),
    ("predict_mask", "its own /255 preprocessing, no ImageNet normalisation", '''import cv2
import torch
import torch.nn.functional as F


def predict_mask(model, image, image_size, threshold=0.5):
    small = cv2.resize(image, (image_size, image_size))
    x = torch.from_numpy(small).permute(2, 0, 1).float().div(255).unsqueeze(0)
    model.eval()
    with torch.no_grad():
        logits = F.interpolate(model(x), size=image.shape[:2], mode="bilinear")
    return (torch.sigmoid(logits[0, 0]) > threshold).long().numpy()''',
     ["input prepared like validation", "0..1", "ImageNet", "not prepared as for validation"]),
    # ------------------------------------------------------------------ 09 merge_binary_masks / per_class_iou
    ("merge_binary_masks", "np.maximum: the highest id wins", '''import numpy as np


def merge_binary_masks(masks, class_ids, height, width):
    out = np.zeros((height, width), dtype=np.int64)
    for name, mask in masks.items():
        out = np.maximum(out, np.where(np.asarray(mask) > 0, class_ids[name], 0))
    return out''', ["overlap: the later mask wins", "the higher id won", "np.maximum"]),
    ("per_class_iou", "returns a numpy array", '''def per_class_iou(confusion):
    cm = confusion.double().numpy()
    tp = cm.diagonal()
    return tp / (cm.sum(0) + cm.sum(1) - tp)''', ["shape and dtype", "a torch tensor", "a numpy array"]),
    # ------------------------------------------------------------------ 10 mask_to_box
    ("mask_to_box", "returns a list", '''import numpy as np


def mask_to_box(mask):
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        raise ValueError("empty mask")
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]''',
     ["a numpy float32 array", "a list", "never put in a NumPy array"]),
    ("mask_to_box", "returns float64", '''import numpy as np


def mask_to_box(mask):
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        raise ValueError("empty mask")
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)''',
     ["a numpy float32 array", "float64", "hold float32 boxes"]),
]


def define(source: str, name: str):
    """Run ``source`` as a notebook cell would and return the object it defines under ``name``."""
    namespace: dict = {}
    exec(compile(source, f"<wrong answer for {name}>", "exec"), namespace)
    return namespace[name]

WRONG_ANSWERS.append(("train_transform", "an extra colour step", '''import albumentations as A
import cv2
from albumentations.pytorch import ToTensorV2


def train_transform(image_size):
    return A.Compose([
        A.Resize(image_size, image_size, mask_interpolation=cv2.INTER_NEAREST),
        A.HorizontalFlip(), A.RandomRotate90(), A.ColorJitter(brightness=0.4, contrast=0.4, p=1.0),
        A.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)), ToTensorV2(),
    ])''', ["ImageNet normalisation", "a random colour step", "exactly Resize"]))
