"""Prediction: image -> probabilities -> mask -> overlay PNG, for one image or a folder.

Taught in: notebooks/08_inference.ipynb
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from workshop.augment import get_inference_transform
from workshop.data.io import list_images, read_image
from workshop.errors import DataError, WorkshopError

if TYPE_CHECKING:
    from workshop.data.io import LabelMap


def load_trained_model(checkpoint: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved by ``fit`` (through ``train_from_config``) and load its weights.

    Returns:
        (model in eval mode, checkpoint dict: ``config``, ``class_names``, ``history`` ...).
    """
    from workshop.config import load_config
    from workshop.engine import load_checkpoint
    from workshop.models import build_model

    path = Path(checkpoint)
    if path.is_dir():
        path = path / "checkpoints" / "best.pt"
    state = load_checkpoint(path, map_location=device)
    if "config" not in state:
        raise WorkshopError(f"{path} has no config; it was not written by `workshop train`")
    saved = copy.deepcopy(state["config"])
    saved.setdefault("model", {}).setdefault("decoder", "standard")  # runs saved before model.decoder existed
    cfg = load_config(overrides=saved, profile=saved.get("profile"))
    model = build_model(cfg, len(state["class_names"]), pretrained=False)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), state


@torch.no_grad()
def predict_logits(model: nn.Module, image: np.ndarray, image_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The model's logits for one image, resized back to the image's own size (float32, on ``device``).

    Args:
        image: (H, W, 3) uint8.
        image_size: the side the model was trained at (the image is resized to it and back).

    Returns:
        (1, C, H, W) float32 logits (C == 1 for binary models).
    """
    tensor = get_inference_transform(image_size)(image=image)["image"].unsqueeze(0).to(device)
    model.eval()
    logits = model(tensor).float()
    return F.interpolate(logits, size=image.shape[:2], mode="bilinear", align_corners=False)


def predict_probabilities(model: nn.Module, image: np.ndarray, image_size: int, device: torch.device | str = "cpu") -> np.ndarray:
    """Class probabilities for one image, at the image's own size (from :func:`predict_logits`).

    Returns:
        (C, H, W) float32: C == 1 (foreground probability) for binary models, else softmax.
    """
    logits = predict_logits(model, image, image_size, device)
    probs = torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)
    return probs[0].cpu().numpy()


def probabilities_to_mask(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(C, H, W) probabilities -> (H, W) int64 class ids (binary: ``p > threshold``)."""
    if probs.shape[0] == 1:
        return (probs[0] > threshold).astype(np.int64)
    return probs.argmax(axis=0).astype(np.int64)


def predict_mask(model: nn.Module, image: np.ndarray, image_size: int, threshold: float = 0.5) -> np.ndarray:
    """Predict the mask of one image, at the image's own size (the function of notebook 08).

    The steps: resize and normalise the image as in validation (``get_inference_transform``),
    add a batch axis, run the model in eval mode without gradients (batch-norm uses its stored
    statistics and learns nothing from this image), resize the logits back to the image's size,
    then logits -> probabilities -> class ids, on the model's own device. ``workshop predict``
    (``predict_paths``) and ``workshop evaluate`` (its worst-images page) predict with it.

    Args:
        model: a trained model (binary: 1 output channel; multiclass: one per class).
        image: the image, any size.
        image_size: the side the model was trained at.
        threshold: probability above which a pixel is foreground (binary models only).

    Returns:
        Class ids (binary: 0/1), int64, at the image's own height and width.

    Shape:
        (H, W, 3) uint8 -> (H, W) int64

    Taught in: notebooks/08_inference.ipynb
    """
    device = next(model.parameters()).device
    x = get_inference_transform(image_size)(image=image)["image"].unsqueeze(0).to(device)  # (1, 3, S, S)
    model.eval()  # batch-norm: stored statistics; dropout: off
    with torch.no_grad():  # no graph: less memory, and nothing can be trained by accident
        logits = model(x).float()  # (1, C, S, S)
    logits = F.interpolate(logits, size=image.shape[:2], mode="bilinear", align_corners=False)  # (1, C, H, W)
    if logits.shape[1] == 1:
        mask = torch.sigmoid(logits[0, 0]) > threshold  # the threshold is a probability
    else:
        mask = logits[0].argmax(dim=0)
    return mask.long().cpu().numpy()


def save_mask_png(mask: np.ndarray, path: str | os.PathLike, binary_as_255: bool = True) -> Path:
    """Write a mask PNG: binary masks as 0/255 (visible in any viewer), class ids as they are."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = mask.astype(np.uint8)
    if binary_as_255 and out.max(initial=0) <= 1:
        out = out * 255
    Image.fromarray(out, mode="L").save(path)
    return path


def save_color_mask_png(mask: np.ndarray, path: str | os.PathLike, label_map: "LabelMap") -> Path:
    """Write class ids as a palette PNG: the pixel values are the class ids, the palette the label map's colours.

    Any viewer shows the colours; ``PIL.Image.open(path)`` (mode ``P``) and ``workshop.data.io``'s
    palette reading give back the ids.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    palette = np.zeros((256, 3), dtype=np.uint8)
    for c in label_map.classes:
        if 0 <= c.id < 256:
            palette[c.id] = c.color
    img = Image.fromarray(mask.astype(np.uint8), mode="P")
    img.putpalette(palette.reshape(-1).tolist())
    img.save(path)
    return path


def class_shares(mask: np.ndarray, names: list[str] | tuple[str, ...]) -> dict[str, float]:
    """The share of the image's pixels predicted as each class (classes with no pixels left out)."""
    counts = np.bincount(np.asarray(mask).ravel().astype(np.int64), minlength=len(names))
    total = max(int(counts.sum()), 1)
    return {(names[i] if i < len(names) else f"class_{i}"): counts[i] / total for i in range(len(counts)) if counts[i]}


def predict_paths(
    model: nn.Module,
    inputs: str | os.PathLike,
    out_dir: str | os.PathLike,
    image_size: int,
    device: torch.device | str | None = None,
    threshold: float = 0.5,
    alpha: float = 0.5,
    label_map: "LabelMap | None" = None,
    class_names: tuple[str, ...] | list[str] = ("background", "foreground"),
) -> list[dict[str, Any]]:
    """Predict every image of a file or folder; write ``NAME_mask.png`` and ``NAME_overlay.png``.

    Each mask comes from ``predict_mask`` (notebook 08's exercise); ``device``: where the model runs
    (None: where it is; else it is moved there first).

    Binary models: ``NAME_mask.png`` is 0/255. Multiclass models (``label_map`` given):
    ``class_names`` names a binary model's two classes in the shares. ``NAME_mask.png`` is colour-coded with the label map's colours (a palette PNG whose values are
    the class ids) and ``NAME_ids.png`` holds the class ids as plain grey values alongside.

    Returns:
        One dict per image: ``image``, ``mask``, ``overlay`` paths (``ids`` for multiclass), the
        foreground fraction and ``shares`` (class name -> share of the pixels).

    Raises:
        DataError: the input does not exist or holds no images; an unreadable image names itself.
    """
    from workshop.viz import overlay

    src = Path(inputs)
    if src.is_dir():
        files = list_images(src)
        if not files:
            raise DataError(f"no images in {src}")
    elif src.is_file():
        files = [src]
    else:
        raise DataError(f"input not found: {src}")
    if device is not None:
        model = model.to(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for f in files:
        image = read_image(f)
        mask = predict_mask(model, image, image_size, threshold)
        record: dict[str, Any] = {"image": str(f)}
        if label_map is not None:
            mask_path = save_color_mask_png(mask, out / f"{f.stem}_mask.png", label_map)
            record["ids"] = str(save_mask_png(mask, out / f"{f.stem}_ids.png", binary_as_255=False))
            palette = [(0, 0, 0)] * (max(label_map.ids) + 1)
            for c in label_map.classes:
                palette[c.id] = c.color
            shares = class_shares(mask, label_map.names)
        else:
            mask_path = save_mask_png(mask, out / f"{f.stem}_mask.png")
            palette = None
            shares = class_shares(mask, class_names)
        overlay_path = out / f"{f.stem}_overlay.png"
        Image.fromarray(overlay(image, mask, alpha, palette=palette)).save(overlay_path)
        record.update({"mask": str(mask_path), "overlay": str(overlay_path), "foreground": float((mask > 0).mean()),
                       "shares": shares})
        written.append(record)
    return written
