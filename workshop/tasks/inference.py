"""Exercise of notebooks/08_inference.ipynb: predict the mask of one image at its own size.

The checks use a probe model whose logits are known by hand: a 1x1 convolution reading the
normalised red channel (``logit = red - 0.2``), then a batch-norm layer, with a record of the mode
and of whether gradients were on during each forward pass. The test image is 40 x 60 pixels (not
the model's 32 x 32) with three vertical bands of red 255, 150 and 0: logits 2.05, 0.25, -2.32,
probabilities 0.89, 0.56, 0.09.

Taught in: notebooks/08_inference.ipynb
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from workshop.augment import IMAGENET_MEAN, IMAGENET_STD
from workshop.inference import predict_mask
from workshop.tasks.core import Check, CheckFailure, Exercise, expect

PREDICT_MASK_STUB = '''import numpy as np
import torch
import torch.nn.functional as F
from workshop.augment import get_inference_transform


def predict_mask(model, image, image_size, threshold=0.5):
    """Predict the 0/1 mask of one image, at the image's own size.

    Steps: transform the image as for validation, get_inference_transform(image_size)(image=image),
    add a batch axis, run the model in eval mode without gradients, resize the logits to the
    image's height and width (F.interpolate, mode="bilinear"), probabilities = sigmoid(logits),
    mask = probabilities > threshold.

    Shape: image (H, W, 3) uint8 -> mask (H, W) int64 NumPy array.
    """
    # your code here (about 8 lines)
    raise NotImplementedError("your code here")'''

HEIGHT, WIDTH, MODEL_SIZE = 40, 60, 32
BANDS = (255, 150, 0)  # red value of the left, middle and right thirds


class ProbeModel(nn.Module):
    """``logit = batchnorm(red_normalised - 0.2)``; records training mode and grad mode per call."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, kernel_size=1)
        self.bn = nn.BatchNorm2d(1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, 0.0, 0.0]).reshape(1, 3, 1, 1))
            self.conv.bias.fill_(-0.2)
        self.calls: list[tuple[bool, bool]] = []  # (training, grad enabled)
        self.inputs: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        self.calls.append((self.training, torch.is_grad_enabled()))
        self.inputs.append(x.detach().clone())
        return self.bn(self.conv(x))


def probe_image() -> np.ndarray:
    """40 x 60 RGB image: three vertical bands, red 255 / 150 / 0, green and blue 0."""
    image = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    third = WIDTH // 3
    for i, red in enumerate(BANDS):
        image[:, i * third:(i + 1) * third, 0] = red
    return image


def expected_mask(threshold: float) -> np.ndarray:
    """The mask by hand: a band is foreground when sigmoid(its logit) > threshold."""
    mean, std = IMAGENET_MEAN[0], IMAGENET_STD[0]
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.int64)
    third = WIDTH // 3
    for i, red in enumerate(BANDS):
        logit = (red / 255 - mean) / std - 0.2
        mask[:, i * third:(i + 1) * third] = int(1 / (1 + np.exp(-logit)) > threshold)
    return mask


def _predict(candidate, threshold: float | None = None) -> tuple[np.ndarray, ProbeModel]:
    model = ProbeModel().train()  # as a model comes out of training
    args: dict[str, Any] = {} if threshold is None else {"threshold": threshold}
    try:
        out = candidate(model, probe_image(), MODEL_SIZE, **args)
    except RuntimeError as error:
        if "requires grad" in str(error):
            raise CheckFailure("a mask computed without gradients", "a tensor that requires grad -> the model ran "
                               "with gradients on, so autograd still records", 2) from None
        raise
    if isinstance(out, Tensor):
        raise CheckFailure("a NumPy array (the next cells save it with save_mask_png and draw it with NumPy)",
                           f"a torch tensor of shape {tuple(out.shape)} -> the mask stayed a torch tensor", 3)
    if not isinstance(out, np.ndarray):
        raise CheckFailure("a NumPy array", type(out).__name__, 3)
    return out, model


def _check_shape(candidate) -> None:
    mask, _ = _predict(candidate)
    found = tuple(mask.shape)
    if found == (MODEL_SIZE, MODEL_SIZE):
        why = " (the model's size) -> the logits were never resized back to the image's size"
    elif found == (WIDTH, HEIGHT):
        why = " -> height and width swapped: torch sizes are (H, W)"
    elif len(found) != 2:
        why = " -> the batch and channel axes are still there"
    else:
        why = ""
    expect(found == (HEIGHT, WIDTH), f"a mask of shape ({HEIGHT}, {WIDTH}), the image's own height and width",
           f"{found}{why}", hint=1)
    expect(mask.dtype == np.int64, "dtype int64 (class ids)", f"{mask.dtype} -> the True/False (or float) mask was never turned into int64 ids",
           hint=3)


def _check_input(candidate) -> None:
    _, model = _predict(candidate)
    expect(bool(model.inputs), "the model to be called", "no call", hint=1)
    x = model.inputs[0]
    expect(x.dim() == 4 and tuple(x.shape[:2]) == (1, 3), "the model to get a batch of one image, (1, 3, H, W)",
           f"an input of shape {tuple(x.shape)} -> one (3, H, W) image without the batch axis", hint=2)
    expect(tuple(x.shape[2:]) == (MODEL_SIZE, MODEL_SIZE),
           f"the image resized to the model's {MODEL_SIZE} x {MODEL_SIZE} (image_size) before the model",
           f"an input of {tuple(x.shape[2:])} -> the image was not resized to image_size first", hint=2)
    red = x[0, 0]
    mean, std = IMAGENET_MEAN[0], IMAGENET_STD[0]
    low, high = (0 - mean) / std, (1 - mean) / std  # red 0 and red 255 after ImageNet normalisation
    found_low, found_high = float(red.min()), float(red.max())
    if abs(found_low - low) < 0.05 and abs(found_high - high) < 0.05:
        return
    if found_low >= -1e-6 and found_high <= 1 + 1e-6:
        why = (" -> pixels in 0..1: /255 alone is not what the model was trained on; the ImageNet mean and std "
               "were not applied (the image was not prepared as for validation)")
    elif found_high > 2.5:
        why = " -> raw 0..255 pixels: the model was trained on normalised ones (not prepared as for validation)"
    else:
        why = " -> the image was not prepared the way the validation images were"
    raise CheckFailure(f"the red channel normalised like the training images (red 0 -> {low:.2f}, red 255 -> {high:.2f})",
                       f"values from {found_low:.2f} to {found_high:.2f}{why}", 2)


RAMP_BLOCKS = (0, 130, 255, 255)  # red of four 15-pixel-wide blocks: logits -2.32, -0.09, 2.05, 2.05
RAMP_SIZE = 4  # the model sees the 8 x 60 image as 4 x 4: the edge of the mask falls inside a model pixel


def ramp_image() -> np.ndarray:
    """8 x 60 RGB image of four vertical blocks, red 0 / 130 / 255 / 255."""
    image = np.zeros((8, 60, 3), dtype=np.uint8)
    for i, red in enumerate(RAMP_BLOCKS):
        image[:, i * 15:(i + 1) * 15, 0] = red
    return image


def _check_resize_then_threshold(candidate) -> None:
    model = ProbeModel()
    out = candidate(model, ramp_image(), RAMP_SIZE)
    if isinstance(out, Tensor):
        out = out.detach().cpu().numpy()
    expected = predict_mask(ProbeModel(), ramp_image(), RAMP_SIZE)
    found = np.asarray(out)
    expect(found.shape == expected.shape, f"a mask of shape {expected.shape}", f"{found.shape}", hint=1)
    edge = int(np.argmax(found[0] > 0)) if (found[0] > 0).any() else None
    true_edge = int(np.argmax(expected[0] > 0))
    expect(float((found == expected).mean()) >= 0.95,
           f"the edge of the mask at column {true_edge}, where the resized logits cross the threshold "
           "(seen 4 x 4 by the model, shown 8 x 60)",
           f"the edge at column {edge} -> that is where a 0/1 mask made at the model's size lands when it is "
           "resized: the mask was thresholded before resizing, and a 0/1 mask has lost where the logits cross", hint=1)


def _agreement(mask: np.ndarray, threshold: float) -> float:
    return float((mask == expected_mask(threshold)).mean())


def _check_values(candidate) -> None:
    mask, _ = _predict(candidate)
    found = float((mask == 1).mean())
    if abs(found - 1 / 3) < 0.05:
        why = " -> only the band with logit 2.05 is foreground: the threshold was compared with the logits, not probabilities"
    elif abs(found - 1.0) < 0.05:
        why = " -> every pixel is foreground: the threshold was not applied to the probabilities"
    else:
        why = ""
    expect(_agreement(mask, 0.5) >= 0.95, "the left two thirds foreground (probabilities 0.89 and 0.56 > 0.5), "
           "the right third background (0.09)", f"{found:.0%} of the pixels foreground{why}", hint=2)


def _check_threshold(candidate) -> None:
    mask, _ = _predict(candidate, threshold=0.7)
    found = float((mask == 1).mean())
    expect(_agreement(mask, 0.7) >= 0.95, "only the left third foreground at threshold=0.7 (0.89 > 0.7 > 0.56)",
           f"{found:.0%} of the pixels foreground -> the `threshold` argument is ignored", hint=2)


def _check_eval_no_grad(candidate) -> None:
    _, model = _predict(candidate)
    expect(bool(model.calls), "the model to be called", "no call", hint=1)
    bn = model.bn
    unchanged = int(bn.num_batches_tracked) == 0 and float(bn.running_mean) == 0.0 and float(bn.running_var) == 1.0
    expect(unchanged and not any(training for training, _ in model.calls),
           "the model in eval mode (batch-norm statistics unchanged by prediction)",
           lambda: f"running_mean {float(bn.running_mean):.4f} after {int(bn.num_batches_tracked)} update(s) -> "
           "the model was left in training mode, where batch-norm learns from the images it predicts", hint=2)
    expect(not any(grad for _, grad in model.calls), "the forward pass without gradients",
           "gradients on -> the forward pass built a graph that prediction never uses (slower, more memory)", hint=2)


PREDICT_MASK = Exercise(
    name="predict_mask",
    notebook="08_inference.ipynb",
    stub=PREDICT_MASK_STUB,
    reference=predict_mask,
    checks=[
        Check("shape and dtype", _check_shape),
        Check("input prepared like validation", _check_input),
        Check("foreground where p > 0.5", _check_values),
        Check("the threshold argument", _check_threshold),
        Check("eval mode, no gradients", _check_eval_no_grad),
        Check("resize the logits, then threshold", _check_resize_then_threshold),
    ],
    hints=[
        "Predict the way you validated: the same preparation of the image (resized to image_size, ImageNet "
        "normalisation, a batch of one) and the model in eval mode, without gradients. Then bring the "
        "prediction back to the image's own size: resize the logits (not a 0/1 mask), turn them into "
        "probabilities, compare with the threshold.",
        "get_inference_transform(image_size)(image=image)['image'] is the prepared (3, s, s) tensor, and "
        ".unsqueeze(0) adds the batch axis; model.eval() and `with torch.no_grad():`; "
        "F.interpolate(logits, size=image.shape[:2], mode='bilinear') resizes to (H, W); torch.sigmoid gives "
        "probabilities; .long().numpy() makes an int64 NumPy mask.",
        "x = get_inference_transform(image_size)(image=image)['image'].unsqueeze(0); model.eval()\n"
        "with torch.no_grad(): logits = model(x)\n"
        "logits = F.interpolate(logits, size=image.shape[:2], mode='bilinear', align_corners=False)\n"
        "return (torch.sigmoid(logits[0, 0]) > threshold).long().numpy()",
    ],
)

EXERCISES = [PREDICT_MASK]
