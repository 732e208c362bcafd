"""Mask R-CNN on a MobileNetV2 backbone whose ImageNet weights work offline, sized for a CPU.

torchvision's ready-made Mask R-CNN (``maskrcnn_resnet50_fpn``) needs a 170 MB COCO download and is
slow on a laptop. Following torchvision's recipe for custom backbones, this module builds the same
detector on MobileNetV2's ``features`` (ImageNet weights from the local file of
:mod:`workshop.weights`):

* ``backbone="mobilenet_v2_fpn"`` (default): a Feature Pyramid Network over the outputs of
  MobileNetV2 stages 3, 4 and 5 (strides 8, 16, 32; 32, 96 and 1280 channels), plus the extra
  max-pooled level, so small objects are found on the fine maps and large ones on the coarse maps.
* ``backbone="mobilenet_v2"``: the single stride-32 feature map (1280 channels, reduced to
  ``out_channels`` by a 1x1 convolution), one ``AnchorGenerator`` level and ``MultiScaleRoIAlign``
  on map ``"0"``, exactly as torchvision documents for a custom backbone. Simpler, but coarse:
  objects smaller than about 32 pixels are hard to find.

Batch-norm layers of the backbone are ``FrozenBatchNorm2d`` (fixed ImageNet statistics), as in
torchvision's detection models: detection batches of 2-4 images are too small to estimate them.

The parts of a model, as named by :func:`part_names` (and used in training stages):
``backbone.stage1`` .. ``backbone.stage5`` (MobileNetV2 feature blocks 0-1, 2-3, 4-6, 7-13, 14-18),
``neck`` (the FPN, or the 1x1 reducing convolution), ``rpn``, ``roi_heads``; ``heads`` means
neck + rpn + roi_heads (everything that starts from random weights) and ``all`` everything.

Shape:
    Training: ``model(images, targets)`` with a list of (3, H, W) float 0..1 images and a list of
    targets ``{"boxes": (N, 4) float, "labels": (N,) int64, "masks": (N, H, W) uint8}`` returns a
    dict of losses. Evaluation: ``model(images)`` returns one dict per image with
    ``boxes`` (K, 4), ``labels`` (K,), ``scores`` (K,), ``masks`` (K, 1, H, W) probabilities.

Taught in: notebooks/10_instance.ipynb
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Sequence

import torchvision
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign

from workshop.weights import load_imagenet_state_dict

__all__ = [
    "BACKBONES",
    "STAGE_BLOCKS",
    "backbone_parts",
    "create_maskrcnn",
    "format_parameter_counts",
    "mobilenet_v2_backbone",
    "parameter_counts",
    "part_names",
    "replace_predictors",
    "resolve_parts",
    "set_trainable_parts",
]

BACKBONES = ("mobilenet_v2_fpn", "mobilenet_v2")
"""Backbones :func:`create_maskrcnn` can build."""

STAGE_BLOCKS: tuple[tuple[int, int], ...] = ((0, 2), (2, 4), (4, 7), (7, 14), (14, 19))
"""MobileNetV2 ``features`` blocks ``[start, end)`` of stages 1-5 (strides 2, 4, 8, 16, 32)."""

_FPN_RETURN = {"6": "0", "13": "1", "18": "2"}  # ends of stages 3, 4, 5
_FPN_IN_CHANNELS = [32, 96, 1280]
HEAD_PARTS = ("neck", "rpn", "roi_heads")


def mobilenet_v2_backbone(weights: str | None = "imagenet", fpn: bool = True, out_channels: int = 128) -> nn.Module:
    """MobileNetV2 ``features`` as a detection backbone, with ``out_channels`` set.

    Args:
        weights: ``"imagenet"`` (torchvision's checkpoint, from the offline file when present) or
            None (random initialisation).
        fpn: True: a ``BackboneWithFPN`` over stages 3-5 (feature maps ``"0"``, ``"1"``, ``"2"``,
            ``"pool"``). False: ``features`` followed by a 1x1 convolution (one map, stride 32).
        out_channels: channels of every map the backbone returns.

    Returns:
        A module with attribute ``out_channels``, returning a dict of feature maps (FPN) or one map.

    Raises:
        ValueError: ``weights`` is not "imagenet" or None.
        WeightsUnavailableError: ImageNet weights asked for but neither a file nor a network.

    Shape:
        (N, 3, H, W) -> FPN: {"0": (N, C, H/8, W/8), "1": H/16, "2": H/32, "pool": H/64};
        single map: (N, C, H/32, W/32), C = ``out_channels``.

    Taught in: notebooks/10_instance.ipynb
    """
    if weights not in ("imagenet", None):
        raise ValueError(f"weights must be 'imagenet' or None, got {weights!r}")
    net = torchvision.models.mobilenet_v2(weights=None, norm_layer=FrozenBatchNorm2d)
    if weights == "imagenet":
        state_dict, _ = load_imagenet_state_dict("torchvision_mobilenet_v2")
        net.load_state_dict(state_dict)
    features = net.features
    if fpn:
        backbone = BackboneWithFPN(features, _FPN_RETURN, _FPN_IN_CHANNELS, out_channels)
    else:
        backbone = nn.Sequential(
            OrderedDict([("features", features), ("reduce", nn.Conv2d(features[-1].out_channels, out_channels, 1))])
        )
        backbone.out_channels = out_channels
    backbone.weights_source = "ImageNet (torchvision MobileNetV2)" if weights else "random init"
    return backbone


def create_maskrcnn(
    num_classes: int = 2,
    backbone: str = "mobilenet_v2_fpn",
    weights: str | None = "imagenet",
    min_size: int = 320,
    max_size: int = 320,
    out_channels: int = 128,
    anchor_sizes: Sequence[Sequence[int]] | None = None,
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    mask_head_layers: int = 2,
    **kwargs: Any,
) -> MaskRCNN:
    """Build a CPU-sized Mask R-CNN for ``num_classes`` classes (background included).

    The detector is assembled with predictors for one object class, then
    :func:`replace_predictors` (the exercise of notebook 10) gives it the box and mask predictors
    for ``num_classes``: the same call that turns torchvision's COCO model into a pedestrian detector.

    Args:
        num_classes: number of classes INCLUDING the background (one object class: 2).
        backbone: one of :data:`BACKBONES`.
        weights: ``"imagenet"`` for the backbone (offline file) or None.
        min_size: images are resized so that their short side is ``min_size`` ...
        max_size: ... unless the long side would exceed ``max_size``. Small sizes (128-320) keep a
            CPU step under a second or two.
        out_channels: channels of the FPN / reduced feature maps (and of the mask head).
        anchor_sizes: anchor sizes in pixels, one tuple per feature map; default suits objects of
            about 12 to 250 pixels.
        aspect_ratios: anchor height/width ratios, the same for every map.
        mask_head_layers: 3x3 convolutions in the mask head (torchvision uses 4 of 256 channels;
            2 of ``out_channels`` are much cheaper on a CPU).
        **kwargs: any other ``torchvision.models.detection.MaskRCNN`` argument (the defaults here
            sample fewer proposals than torchvision's, for speed).

    Returns:
        A ``MaskRCNN`` with attributes ``backbone_name`` and ``weights_source``.

    Raises:
        ValueError: unknown backbone (lists the valid ones) or ``num_classes < 2``.

    Example:
        >>> model = create_maskrcnn(num_classes=2, weights=None, min_size=128, max_size=128)
        >>> model.roi_heads.box_predictor.cls_score.out_features
        2

    Taught in: notebooks/10_instance.ipynb
    """
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; valid choices: {', '.join(BACKBONES)}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes counts the background too and must be >= 2, got {num_classes!r}")
    fpn = backbone == "mobilenet_v2_fpn"
    body = mobilenet_v2_backbone(weights, fpn=fpn, out_channels=out_channels)
    if fpn:
        names = ["0", "1", "2"]
        sizes = anchor_sizes or ((12, 20), (32, 48), (64, 96), (128, 224))
    else:
        names = ["0"]
        sizes = anchor_sizes or ((16, 32, 64, 128, 224),)
    anchors = AnchorGenerator(sizes=tuple(tuple(s) for s in sizes), aspect_ratios=(tuple(aspect_ratios),) * len(sizes))
    light = dict(
        rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=150,
        box_batch_size_per_image=64, box_detections_per_img=50,
    )
    light.update(kwargs)
    representation = 512
    model = MaskRCNN(  # first with one object class: the layers that know the classes come next
        body,
        num_classes=None,
        min_size=min_size,
        max_size=max_size,
        rpn_anchor_generator=anchors,
        box_roi_pool=MultiScaleRoIAlign(featmap_names=names, output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(out_channels * 7 * 7, representation),
        box_predictor=FastRCNNPredictor(representation, 2),
        mask_roi_pool=MultiScaleRoIAlign(featmap_names=names, output_size=14, sampling_ratio=2),
        mask_head=MaskRCNNHeads(out_channels, (out_channels,) * mask_head_layers, 1),
        mask_predictor=MaskRCNNPredictor(out_channels, out_channels, 2),
        **light,
    )
    replace_predictors(model, num_classes)  # the exercise of notebook 10, as a COCO model is fine-tuned
    _init_predictors(model)
    model.backbone_name = backbone
    model.weights_source = body.weights_source
    return model


def _init_predictors(model: MaskRCNN) -> None:
    """Start the class-specific last layers with small weights (std 0.001, as Detectron2 does).

    torchvision's ``MaskRCNNPredictor`` initialises its 1x1 logits layer with Kaiming's rule for a
    fan-out of ``num_classes``, i.e. weights of std ~1: on features that have not been trained for
    it, the first mask logits are then in the tens and the first mask losses huge. Small weights
    start every mask probability near 0.5 (a loss of about 0.69).
    """
    predictor = model.roi_heads.mask_predictor.mask_fcn_logits
    nn.init.normal_(predictor.weight, std=0.001)
    nn.init.zeros_(predictor.bias)


def replace_predictors(model: nn.Module, num_classes: int) -> nn.Module:
    """Give a Mask R-CNN new box and mask predictors for ``num_classes`` classes (background included).

    The last layers are the only class-specific ones: ``roi_heads.box_predictor`` (a class score and
    a box refinement per class) and ``roi_heads.mask_predictor`` (one mask per class). Both are
    replaced by new, randomly initialised layers whose input sizes are read from the old ones, so
    everything before them keeps its (pretrained) weights. This is how torchvision's COCO model
    (91 classes) is fine-tuned for, say, pedestrians (2 classes).

    Args:
        model: a torchvision ``MaskRCNN``.
        num_classes: number of classes including the background.

    Returns:
        The same model, changed in place.

    Raises:
        ValueError: ``num_classes < 2`` or the model has no box / mask predictor.

    Example:
        >>> model = replace_predictors(create_maskrcnn(num_classes=91, weights=None), 2)
        >>> model.roi_heads.mask_predictor.mask_fcn_logits.out_channels
        2

    Taught in: notebooks/10_instance.ipynb
    """
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes counts the background too and must be >= 2, got {num_classes!r}")
    heads = getattr(model, "roi_heads", None)
    if heads is None or heads.box_predictor is None or getattr(heads, "mask_predictor", None) is None:
        raise ValueError(f"{type(model).__name__} has no roi_heads.box_predictor and roi_heads.mask_predictor")
    in_features = heads.box_predictor.cls_score.in_features
    heads.box_predictor = FastRCNNPredictor(in_features, num_classes)
    in_channels = heads.mask_predictor.conv5_mask.in_channels
    hidden = heads.mask_predictor.conv5_mask.out_channels
    heads.mask_predictor = MaskRCNNPredictor(in_channels, hidden, num_classes)
    return model


# --------------------------------------------------------------------------- parts and freezing


def _feature_blocks(model: nn.Module) -> list[nn.Module]:
    backbone = model.backbone
    if isinstance(backbone, BackboneWithFPN):
        return list(backbone.body.children())
    features = getattr(backbone, "features", None)
    if isinstance(features, nn.Sequential):
        return list(features.children())
    raise ValueError(f"unknown backbone {type(backbone).__name__}; build the model with create_maskrcnn")


def _neck(model: nn.Module) -> nn.Module:
    backbone = model.backbone
    return backbone.fpn if isinstance(backbone, BackboneWithFPN) else backbone.reduce


def backbone_parts(model: nn.Module) -> dict[str, nn.Module]:
    """Every named part of a model from :func:`create_maskrcnn`, from input to output.

    Returns:
        ``{"backbone.stage1": ..., ..., "backbone.stage5": ..., "neck": ..., "rpn": ..., "roi_heads": ...}``;
        a stage is an ``nn.Sequential`` view of its MobileNetV2 blocks (the same modules, not copies).

    Taught in: notebooks/10_instance.ipynb
    """
    blocks = _feature_blocks(model)
    parts: dict[str, nn.Module] = {}
    for index, (start, end) in enumerate(STAGE_BLOCKS, start=1):
        parts[f"backbone.stage{index}"] = nn.Sequential(*blocks[start:end])
    parts["neck"] = _neck(model)
    parts["rpn"] = model.rpn
    parts["roi_heads"] = model.roi_heads
    return parts


def part_names(model: nn.Module) -> list[str]:
    """Names accepted by :func:`set_trainable_parts`: the parts plus ``heads``, ``backbone`` and ``all``."""
    return [*backbone_parts(model), "heads", "backbone", "all"]


def resolve_parts(model: nn.Module, trainable: str | Sequence[str]) -> list[str]:
    """Expand ``"heads"``, ``"backbone"`` and ``"all"`` into part names, checking every name.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
    """
    parts = backbone_parts(model)
    wanted = [trainable] if isinstance(trainable, str) else list(trainable)
    names: list[str] = []
    for name in wanted:
        if name == "all":
            expanded = list(parts)
        elif name == "heads":
            expanded = list(HEAD_PARTS)
        elif name == "backbone":
            expanded = [p for p in parts if p.startswith("backbone.")]
        elif name in parts:
            expanded = [name]
        else:
            raise ValueError(f"unknown trainable part {name!r}; valid names: {', '.join(part_names(model))}")
        names.extend(n for n in expanded if n not in names)
    return names


def set_trainable_parts(model: nn.Module, trainable: str | Sequence[str]) -> list[str]:
    """Make exactly the named parts trainable and freeze everything else.

    Args:
        model: a model from :func:`create_maskrcnn`.
        trainable: ``"heads"``, ``"all"``, or a list such as ``["heads", "backbone.stage5"]``.

    Returns:
        The expanded list of trainable part names.

    Raises:
        ValueError: an unknown part name (the message lists the valid ones).

    Example:
        >>> model = create_maskrcnn(weights=None)
        >>> set_trainable_parts(model, ["heads", "backbone.stage5"])
        ['neck', 'rpn', 'roi_heads', 'backbone.stage5']

    Taught in: notebooks/10_instance.ipynb
    """
    names = resolve_parts(model, trainable)
    parts = backbone_parts(model)
    for param in model.parameters():
        param.requires_grad = False
    for name in names:
        for param in parts[name].parameters():
            param.requires_grad = True
    return names


def parameter_counts(model: nn.Module) -> list[dict[str, Any]]:
    """Parameters per part (backbone stages, neck, rpn, roi_heads), total and trainable.

    Returns:
        One row per part, ``{"part": str, "total": int, "trainable": int}``, then a ``"total"`` row.

    Example:
        >>> model = create_maskrcnn(weights=None)
        >>> rows = parameter_counts(model)
        >>> rows[-1]["part"], rows[-1]["total"] == sum(p.numel() for p in model.parameters())
        ('total', True)

    Taught in: notebooks/10_instance.ipynb
    """
    rows = []
    for name, part in backbone_parts(model).items():
        params = list(part.parameters())
        rows.append({
            "part": name,
            "total": sum(p.numel() for p in params),
            "trainable": sum(p.numel() for p in params if p.requires_grad),
        })
    rows.append({
        "part": "total",
        "total": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    })
    return rows


def format_parameter_counts(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`parameter_counts` as an aligned text table."""
    width = max(len(r["part"]) for r in rows)
    lines = [f"{'part'.ljust(width)}  {'total':>11}  {'trainable':>11}"]
    for r in rows:
        lines.append(f"{r['part'].ljust(width)}  {r['total']:>11,}  {r['trainable']:>11,}")
    return "\n".join(lines)
