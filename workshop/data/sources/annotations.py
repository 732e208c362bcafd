"""Annotation files the tools export: COCO, VIA (1.x and 2.x), LabelMe, CVAT for images 1.1.

The parsing is ``workshop.data.formats`` (``read_annotations`` detects the format); this source turns
an ``AnnotationSet`` into samples: the image, a semantic mask drawn from the shapes (crowd regions
-> ``ignore_index``) and, for the instance track, one mask per object.

Images the tool listed with no regions are reported and left out, unless ``keep_unannotated`` says
they are truly empty (then their mask is all background).

Taught in: notebooks/03_dataset.ipynb
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from workshop.data.io import LabelMap, default_palette, read_image, LabelClass
from workshop.data.sources.base import CheckSpec, Instances, Item, Problem, Sample, Source, display_path
from workshop.errors import DataError

FORMAT_NAMES = {"coco": "COCO instances JSON", "via": "VIA (VGG Image Annotator) JSON",
                "labelme": "LabelMe JSON", "cvat": "CVAT for images 1.1 XML"}


class AnnotationSource(Source):
    """Samples of an annotation file (or a LabelMe folder).

    Args:
        path: the annotation file (``.json`` / ``.xml``) or a folder the formats reader accepts.
        task: ``binary`` (any object vs background), ``multiclass`` (one id per label, background 0)
            or ``instance``.
        label_attribute: VIA: the region attribute that holds the class (default: the reader's choice).
        keep_unannotated: keep images listed without regions, as all background.
        label_map: class names/ids (a ``LabelMap`` or its JSON); default: background + the file's labels.

    Raises:
        DataError: the file is not a format the readers know (the message says what was found).
    """

    has_instances = True

    def __init__(self, path: str | os.PathLike, task: str = "binary", ignore_index: int = 255,
                 label_attribute: str | None = None, keep_unannotated: bool = False,
                 label_map: LabelMap | str | os.PathLike | None = None) -> None:
        from workshop.data.formats import read_annotations

        super().__init__(task, ignore_index)
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise DataError(f"annotation file not found: {self.path}")
        self.annotations = read_annotations(self.path, label_attribute=label_attribute, keep_unannotated=keep_unannotated)
        self.keep_unannotated = keep_unannotated
        self.label_attribute = label_attribute
        self.label_map_file = None if label_map is None or isinstance(label_map, LabelMap) else Path(label_map)
        if label_map is not None and not isinstance(label_map, LabelMap):
            label_map = LabelMap.from_json(label_map, ignore_index)
        names = ["background", *self.annotations.labels]
        self._label_map = label_map or LabelMap(
            [LabelClass(n, i, tuple(c)) for i, (n, c) in enumerate(zip(names, default_palette(len(names))))], ignore_index)
        self.labels_to_ids = {c.name: c.id for c in self._label_map.classes if c.id != 0}
        unknown = sorted(set(self.annotations.labels) - set(self.labels_to_ids))
        if unknown:
            raise DataError(f"{self.path}: labels {unknown} are not in the label map "
                            f"({', '.join(self._label_map.names)})")

    @property
    def format(self) -> str:  # type: ignore[override]
        return f"{FORMAT_NAMES.get(self.annotations.format, self.annotations.format)} ({self.path.name})"

    def train_settings(self) -> dict[str, str] | None:
        """``data.source: annotations`` with the file (or LabelMe folder) as ``data.root``."""
        settings = {"data.source": "annotations", "data.root": display_path(self.path)}
        settings.update(self._task_settings())
        if self.label_attribute:
            settings["data.label_attribute"] = self.label_attribute
        if self.keep_unannotated:
            settings["data.keep_unannotated"] = "true"
        if self.label_map_file is not None:
            settings["data.label_map"] = display_path(self.label_map_file)
        return settings

    def items(self, split: str = "all") -> list[Item]:
        self.require_split(split)
        return [Item(Path(im.file), None, k) for k, im in enumerate(self.annotations.images)
                if im.annotated or self.keep_unannotated]

    def skipped(self) -> list[Path]:
        """Images listed without annotations and left out (``keep_unannotated=False``)."""
        return [] if self.keep_unannotated else [Path(im.file) for im in self.annotations.images if not im.annotated]

    def label_map(self) -> LabelMap | None:
        if self.task == "binary":
            return None
        return self._label_map

    def class_names(self) -> list[str]:
        if self.task == "binary":
            return ["background", self.annotations.labels[0] if len(self.annotations.labels) == 1 else "foreground"]
        return self._label_map.names

    def read(self, item: Item) -> Sample:
        from workshop.data.formats.rasterize import instance_masks, semantic_mask

        entry = self.annotations.images[item.key]
        image = read_image(entry.file)
        h, w = image.shape[:2]
        if entry.width is not None and entry.height is not None and (entry.width, entry.height) not in ((w, h), (h, w)):
            raise DataError(f"{entry.file}: the annotation says {entry.width}x{entry.height}, the image is {w}x{h}")
        mask = semantic_mask(entry.objects, self.labels_to_ids, h, w, self.ignore_index).astype(np.int64)
        if self.task == "binary":
            mask = np.where(mask == self.ignore_index, self.ignore_index, (mask > 0).astype(np.int64))
        masks, labels, crowd = instance_masks(entry.objects, self.labels_to_ids, h, w)
        instances = Instances(np.asarray(masks, bool), np.asarray(labels, np.int64), np.asarray(crowd, bool))
        return Sample(image, mask, instances, name=item.name)

    def check_spec(self, split: str = "all") -> CheckSpec:
        items = self.items(split)
        problems = [Problem(display_path(self.path), "warning", p) for p in self.annotations.problems]
        skipped = self.skipped()
        if skipped:
            names = ", ".join(p.name for p in skipped[:5])
            problems.append(Problem(display_path(self.path), "warning",
                             f"{len(skipped)} image(s) listed without annotations are left out ({names}"
                             f"{', ...' if len(skipped) > 5 else ''}); if they are truly empty, keep them with "
                             "data.keep_unannotated=true (--keep-unannotated)"))
        return CheckSpec(images=[i.image for i in items], task="binary" if self.task == "binary" else "multiclass",
                         label_map=self.label_map(), ignore_index=self.ignore_index, problems=problems)
