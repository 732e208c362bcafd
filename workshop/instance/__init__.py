"""Instance segmentation with torchvision's Mask R-CNN, sized for a CPU.

The data path, one module per stage (each imports only the ones above it)::

    stages.py    progressive training plan read from YAML (heads -> last backbone stages -> all)
    plan.py      the stages in optimiser steps (epochs x steps per epoch; scaled to a time budget)
    data.py      any source with instances -> DetectionDataset: image (3, H, W) float 0..1,
                 target {"boxes" (N, 4), "labels" (N,), "masks" (N, H, W)}; collate keeps lists
    model.py     Mask R-CNN on an offline-pretrained MobileNetV2 (+ FPN); replace_predictors for N classes
    engine.py    the one training loop (notebook 10 and `workshop train`): DataLoader (workers, pinned
                 memory on CUDA) -> training_step (AMP on CUDA) -> checkpoints, resume
    evaluate.py  COCO box and mask mAP (torchmetrics + pycocotools), per-instance IoU

Around it, the machinery of ``workshop train / evaluate / predict`` with ``data.task: instance``::

    sizing.py (object sizes -> image size, anchors, detections) -> budget.py (step timing, refits to
    a deadline, as hooks of the loop) -> runs.py (the config and the run folder) -> predict.py,
    cli.py (the commands); viz.py and polygons.py are pictures and the rooftop helpers.

Rooftop-project helpers: ``workshop.data.polygons.mean_points_per_polygon``,
:func:`normalize_polygon` / :func:`denormalize_polygon`, :func:`show_image_with_masks`.

Taught in: notebooks/10_instance.ipynb
"""

from workshop.instance.data import (
    DetectionDataset,
    collate_detection,
    detection_dataset,
    detection_target,
    load_instance_source,
    mask_to_box,
    normalize_image,
    pennfudan_dataset,
    polygon_dataset,
)
from workshop.instance.engine import load_instance_model, train_stages, training_step
from workshop.instance.evaluate import evaluate_map, greedy_match, mask_iou_matrix, per_instance_iou
from workshop.instance.model import create_maskrcnn, parameter_counts, replace_predictors, set_trainable_parts
from workshop.instance.plan import BudgetTooSmall, plan_steps
from workshop.instance.polygons import denormalize_polygon, normalize_polygon
from workshop.instance.sizing import fit_detector, measure_objects
from workshop.instance.stages import Stage, StagePlan, load_stages
from workshop.instance.viz import show_image_with_masks

__all__ = [
    "BudgetTooSmall",
    "DetectionDataset",
    "Stage",
    "StagePlan",
    "collate_detection",
    "create_maskrcnn",
    "denormalize_polygon",
    "detection_dataset",
    "detection_target",
    "evaluate_map",
    "fit_detector",
    "greedy_match",
    "load_instance_model",
    "load_instance_source",
    "load_stages",
    "mask_iou_matrix",
    "mask_to_box",
    "measure_objects",
    "normalize_image",
    "normalize_polygon",
    "parameter_counts",
    "pennfudan_dataset",
    "per_instance_iou",
    "plan_steps",
    "polygon_dataset",
    "replace_predictors",
    "set_trainable_parts",
    "show_image_with_masks",
    "train_stages",
    "training_step",
]
