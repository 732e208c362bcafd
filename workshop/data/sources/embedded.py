"""The embedded data set: synthetic aerial tiles generated on this machine (no download).

Taught in: notebooks/03_dataset.ipynb
"""

from __future__ import annotations

from pathlib import Path

from workshop.data.io import LabelMap
from workshop.data.sources.folder import FolderSource


class EmbeddedSource(FolderSource):
    """The embedded set of ``num_images`` tiles of ``image_size`` px (generated once, then reused).

    Binary: building vs the rest; multiclass: the 5 classes of ``labelmap.json``.
    """

    format = "embedded data set"

    def __init__(self, num_images: int = 320, image_size: int = 128, seed: int = 0, task: str = "binary",
                 ignore_index: int = 255) -> None:
        from workshop.data.synthetic import embedded_dir, ensure_dataset

        self.root = Path(ensure_dataset(embedded_dir(num_images, image_size, seed), num_images, image_size, seed))
        label_map = LabelMap.from_json(self.root / "labelmap.json", ignore_index) if task == "multiclass" else None
        sub = "binary" if task == "binary" else "multiclass"
        super().__init__(self.root / "images", self.root / "masks" / sub, task=task, label_map=label_map,
                         ignore_index=ignore_index)

    def class_names(self) -> list[str]:
        return ["background", "building"] if self.task == "binary" else super().class_names()
