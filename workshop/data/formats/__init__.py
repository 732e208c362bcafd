"""Annotation files from labelling tools (COCO, VIA, LabelMe, CVAT), read into one shape, and their masks.

``read_annotations(path)`` detects the format from the file's content and returns an
:class:`AnnotationSet`; :func:`semantic_mask` and :func:`instance_masks` rasterise an image's objects
with pycocotools. Coordinates and masks are in the image's EXIF-corrected (upright) frame.

What each reader handles, and what it reports (a line in ``AnnotationSet.problems``) or refuses
(a :class:`workshop.errors.DataError` naming the file):

=========  ==========================================================  ===========================================
format     handles                                                     reports / refuses
=========  ==========================================================  ===========================================
coco       polygons (several rings), uncompressed and compressed RLE,  reports: unknown image / category ids,
           bbox-only annotations (filled boxes), ``iscrowd`` (ignore    rings under 3 points, RLE of another size,
           in semantic masks), category order; images beside the file  missing images, size mismatches.
           or in ``images/``                                           refuses: categories without id/name
via        1.x (regions dict) and 2.x (list) in one file, the VIA 2    reports: point, polyline, unknown shapes,
           project file; polygon, rect, circle, ellipse (theta); the    regions without a class value, web
           class from a named attribute, the only attribute, or one     addresses. refuses: a missing or ambiguous
           class (binary); checkbox and dropdown values                 class attribute (lists those found), VIA 3
labelme    one JSON or a folder of them; polygon, rectangle, circle,   reports: point/line shapes, unlabelled
           mask; ``group_id`` parts merged; ``imagePath`` relative to   shapes, images without a JSON, bad
           the JSON; embedded ``imageData`` written out and read        ``imageData``, non-LabelMe JSON files
cvat       CVAT for images 1.1: labels from task/job/project meta;     reports: polyline, points, tag, cuboid,
           polygon, box (rotation), ellipse, mask (CVAT RLE);           skeleton, undeclared labels (added).
           ``z_order`` (higher on top), ``occluded``, attributes        refuses: CVAT for video, other XML
all        EXIF: a file declaring the stored (sideways) size is turned  reports: unannotated images (kept as empty
           upright; RGBA / grayscale / 16-bit images; images listed    only with ``keep_unannotated``), zero-byte
           twice merged                                                 files, OS junk (.DS_Store, Thumbs.db,
                                                                        ``__MACOSX``, ``._*``), unlisted image files
=========  ==========================================================  ===========================================

Not taught in a notebook yet: the annotation-file data sources and ``workshop data check`` use it.
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
