"""Exercise of notebooks/05_model.ipynb: give a torchvision DeepLabV3 a new head (transfer learning).

The checks run the learner's ``replace_head`` on a small DeepLabV3: torchvision's own ``DeepLabV3``
and ``DeepLabHead`` classes (the head of ``deeplabv3_resnet50``: ASPP, 3x3 conv, batch-norm, ReLU,
1x1 conv) on a one-layer backbone, so each check takes milliseconds instead of building ResNet-50.

Taught in: notebooks/05_model.ipynb
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn
from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabHead, DeepLabV3

from workshop.models import replace_deeplab_head
from workshop.tasks.core import Check, Exercise, expect

REPLACE_HEAD_STUB = '''from torch import nn


def replace_head(model, num_classes):
    """Give a torchvision DeepLabV3 a new last layer with `num_classes` output channels.

    `model.classifier` is an nn.Sequential: ASPP, 3x3 conv, batch-norm, ReLU, and last a
    1x1 nn.Conv2d that turns 256 features into one channel per class. Replace ONLY that
    last layer with a new 1x1 Conv2d (same input channels, `num_classes` outputs); every
    other layer keeps its (pretrained) weights.

    Args:
        model: a torchvision DeepLabV3, e.g. deeplabv3_resnet50(...).
        num_classes: number of output channels wanted (1 for a binary task).

    Returns:
        The same model, changed in place.
    """
    # your code here (about 3 lines)
    raise NotImplementedError("your code here")'''

_FEATURES = 16  # channels of the small backbone's feature map
_SIZE = 32  # side of the check images


class _OneLayerBackbone(nn.Module):
    """Stands in for ResNet-50: one strided convolution, returning torchvision's ``{"out": features}``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, _FEATURES, kernel_size=3, stride=4, padding=1)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return OrderedDict(out=self.conv(x))


def small_deeplab(num_classes: int = 21) -> DeepLabV3:
    """A DeepLabV3 with the real DeepLabHead on a one-layer backbone, in eval mode, seeded."""
    torch.manual_seed(0)
    return DeepLabV3(_OneLayerBackbone(), DeepLabHead(_FEATURES, num_classes)).eval()


def _describe(module: object) -> str:
    text = repr(module).splitlines()[0]
    return text if len(text) < 70 else text[:67] + "..."


def _replaced(candidate, num_classes: int) -> DeepLabV3:
    """Run the candidate on a fresh small model and return the model (checked to be returned)."""
    model = small_deeplab()
    out = candidate(model, num_classes)
    expect(
        out is model,
        "replace_head to return the model it was given (changed in place)",
        f"{'None' if out is None else _describe(out)} -> the model was changed but not returned",
        hint=3,
    )
    return model


def _check_returns_model(candidate) -> None:
    _replaced(candidate, 3)


def _check_head_kept(candidate) -> None:
    model = _replaced(candidate, 3)
    head = model.classifier
    expect(
        isinstance(head, nn.Sequential) and len(head) == 5 and isinstance(head[0], ASPP),
        "model.classifier to still be the DeepLab head (5 layers, starting with ASPP)",
        lambda: _head_diagnosis(head),
        hint=1,
    )


def _head_diagnosis(head: object) -> str:
    """Why ``model.classifier`` is not the 5-layer DeepLab head any more."""
    if isinstance(head, nn.Sequential) and len(head) > 5 and isinstance(head[0], ASPP):
        return (f"{len(head)} layers -> a layer was added after the old last one (appended instead of replacing "
                "it): the old layer still runs and still outputs 21 channels")
    if isinstance(head, nn.Sequential) and 0 < len(head) < 5 and isinstance(head[0], ASPP):
        return f"{len(head)} layers -> a layer was removed from the head"
    return f"{_describe(head)} -> the whole head was replaced: ASPP and its pretrained layers are gone"


def _check_last_layer(candidate) -> None:
    model = _replaced(candidate, 3)
    last = model.classifier[-1]
    if isinstance(last, nn.Linear):
        found = (f"{_describe(last)} -> nn.Linear works on the LAST axis of a tensor (the image width "
                 "here), not on the channels of each pixel")
    else:
        found = _describe(last)
    expect(isinstance(last, nn.Conv2d), "model.classifier[-1] to be an nn.Conv2d", found, hint=2)
    expect(
        tuple(last.kernel_size) == (1, 1),
        "a 1x1 convolution (kernel_size=1): one prediction per pixel from that pixel's features",
        f"kernel_size={tuple(last.kernel_size)}",
        hint=2,
    )
    expect(
        last.in_channels == 256,
        "in_channels=256, the same as the old last layer (it reads the 256 features before it)",
        f"in_channels={last.in_channels} -> not the number of features the layer before it produces",
        hint=3,
    )
    expect(last.out_channels == 3, "out_channels=3 for num_classes=3", f"out_channels={last.out_channels}", hint=3)


def _check_other_weights(candidate) -> None:
    before = {k: v.clone() for k, v in small_deeplab().state_dict().items()}
    after = _replaced(candidate, 3).state_dict()
    last = "classifier.4."
    missing = sorted(k for k in before if not k.startswith(last) and k not in after)
    expect(not missing, "every other layer to keep its weights",
           lambda: f"these are gone: {missing[:3]}{' ...' if len(missing) > 3 else ''}", hint=1)
    changed = sorted(k for k in before if not k.startswith(last) and not torch.equal(before[k], after[k]))
    expect(not changed, "every other layer to keep its weights (only the last layer is new)",
           lambda: f"these changed: {changed[:3]}", hint=1)


def _check_output_shape(candidate) -> None:
    x = torch.zeros(1, 3, _SIZE, _SIZE)
    for n in (1, 5):
        model = _replaced(candidate, n)
        with torch.no_grad():
            shape = tuple(model(x)["out"].shape)
        expect(shape == (1, n, _SIZE, _SIZE), f"model(x)['out'] of shape (1, {n}, {_SIZE}, {_SIZE}) with num_classes={n}",
               f"{shape}", hint=3)


REPLACE_HEAD = Exercise(
    name="replace_head",
    notebook="05_model.ipynb",
    stub=REPLACE_HEAD_STUB,
    reference=replace_deeplab_head,
    checks=[
        Check("returns the model", _check_returns_model),
        Check("ASPP head kept", _check_head_kept),
        Check("new last layer", _check_last_layer),
        Check("other weights untouched", _check_other_weights),
        Check("output channels for N=1 and N=5", _check_output_shape),
    ],
    hints=[
        "The head ends in one layer that turns each pixel's features into one score per class. Only that layer "
        "depends on the number of classes: swap it for a new one and keep every layer before it, with its "
        "pretrained weights. The new layer reads as many features as the old one did.",
        "print(model.classifier) shows an nn.Sequential: model.classifier[-1] is its last layer, and an "
        "nn.Sequential is assigned like a list. The per-pixel linear layer is nn.Conv2d(in_channels, "
        "out_channels, kernel_size=1), not nn.Linear; the old layer's .in_channels is its number of features.",
        "old = model.classifier[-1]; model.classifier[-1] = nn.Conv2d(old.in_channels, num_classes, "
        "kernel_size=1); return model",
    ],
)

EXERCISES = [REPLACE_HEAD]
