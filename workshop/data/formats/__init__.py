"""Annotation files from labelling tools (COCO, VIA, LabelMe, CVAT), read into one shape, and their masks.

``read_annotations(path)`` detects the format from the file's content and returns an
:class:`AnnotationSet`; :func:`semantic_mask` and :func:`instance_masks` rasterise an image's objects
with pycocotools. Coordinates and masks are in the image's EXIF-corrected (upright) frame.

Taught in: notebooks/03_dataset.ipynb (your own data)
"""

from workshop.data.formats.annotations import (
    FORMATS,
    AnnotatedImage,
    AnnotatedObject,
    AnnotationSet,
    detect_format,
    read_annotations,
)
from workshop.data.formats.rasterize import instance_masks, object_mask, semantic_mask

__all__ = [
    "FORMATS",
    "AnnotatedImage",
    "AnnotatedObject",
    "AnnotationSet",
    "detect_format",
    "instance_masks",
    "object_mask",
    "read_annotations",
    "semantic_mask",
]
