"""Instance segmentation with torchvision's Mask R-CNN, sized for a CPU.

The path of one sample, one module per stage::

    polygon labels / instance-id masks
      -> data.py      (image float 0..1 (3,H,W), target {"boxes", "labels", "masks"}), collate keeps lists
      -> model.py     Mask R-CNN on an offline-pretrained MobileNetV2 (+ FPN), predictors for N classes
      -> stages.py    progressive training plan read from YAML (heads -> last backbone stages -> all)
      -> engine.py    train one epoch with a metric logger, run the stages, checkpoint, resume
      -> evaluate.py  COCO box and mask mAP (torchmetrics + pycocotools), per-instance IoU

From the command line (``workshop train / evaluate / predict`` with ``data.task: instance``)::

    sources.py (any source with instances) -> sizing.py (object sizes -> image size, anchors,
    detections) -> plan.py (stages in optimiser steps, over a time budget) -> trainer.py (steps,
    mid-stage checkpoints, resume) -> runs.py (the run folder) -> evaluate.py / predict.py

Rooftop-project helpers: ``workshop.data.polygons.mean_points_per_polygon``,
:func:`normalize_polygon` / :func:`denormalize_polygon`, :func:`show_image_with_masks`.

Taught in: notebooks/10_instance.ipynb
"""

from workshop.instance.data import (
    DetectionDataset,
    collate_detection,
    detection_target,
    load_instance_source,
    mask_to_box,
    normalize_image,
    pennfudan_dataset,
    polygon_dataset,
)
from workshop.instance.engine import MetricLogger, SmoothedValue, run_stages, train_one_epoch
from workshop.instance.evaluate import evaluate_map, greedy_match, mask_iou_matrix, per_instance_iou
from workshop.instance.model import create_maskrcnn, parameter_counts, replace_predictors, set_trainable_parts
from workshop.instance.plan import BudgetTooSmall, StagePlan, plan_steps
from workshop.instance.polygons import denormalize_polygon, normalize_polygon
from workshop.instance.sizing import fit_detector, measure_objects
from workshop.instance.stages import Stage, load_stages
from workshop.instance.viz import show_image_with_masks

__all__ = [
    "BudgetTooSmall",
    "DetectionDataset",
    "StagePlan",
    "denormalize_polygon",
    "fit_detector",
    "measure_objects",
    "normalize_polygon",
    "plan_steps",
    "show_image_with_masks",
    "MetricLogger",
    "SmoothedValue",
    "Stage",
    "collate_detection",
    "create_maskrcnn",
    "detection_target",
    "evaluate_map",
    "greedy_match",
    "load_instance_source",
    "load_stages",
    "mask_iou_matrix",
    "mask_to_box",
    "normalize_image",
    "parameter_counts",
    "pennfudan_dataset",
    "per_instance_iou",
    "polygon_dataset",
    "replace_predictors",
    "run_stages",
    "set_trainable_parts",
    "train_one_epoch",
]
