"""Penn-Fudan pedestrians: 170 photos, 423 people, one instance id per person (instance or binary).

Masks hold 0 = background and 1..N, one id per person. ``task="instance"`` gives the people as
instances (and person-vs-background as the semantic mask); ``task="binary"`` the person mask only.
No official split: ``train`` / ``val`` are a seeded ``val_fraction`` split (34 of 170 at 0.2).

Taught in: notebooks/10_instance.ipynb
"""

from __future__ import annotations

import numpy as np

from workshop.data.sources.folder import match_by_stem
from workshop.data.entries import Archive, DatasetEntry
from workshop.data.io import read_image, read_mask
from workshop.data.sources.base import CheckSpec, Instances, Item, Sample
from workshop.data.sources.registered import RegisteredSource
from workshop.errors import DataError

ENTRY = DatasetEntry(
    name="pennfudan",
    title="Penn-Fudan Database for Pedestrian Detection and Segmentation",
    task="instance",
    tasks=("instance", "binary"),
    description=(
        "170 street photos with 423 pedestrians: one instance id per person in "
        "PedMasks/*_mask.png, PASCAL-style boxes in Annotation/."
    ),
    licence="research use (University of Pennsylvania; Wang, Shi, Song, Shen, ICIP 2007)",
    homepage="https://www.cis.upenn.edu/~jshi/ped_html/",
    archives=(
        Archive(
            url="https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip",
            filename="PennFudanPed.zip",
            sha256=None,  # no sha256 is published for this file; verify prints the computed one
            # the Internet Archive's raw copy, for machines where the university's TLS chain fails
            mirrors=("https://web.archive.org/web/2023id_/https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip",),
            rules=(
                ("*/PNGImages/", "PNGImages/"),
                ("*/PedMasks/", "PedMasks/"),
                ("*/Annotation/", "Annotation/"),
            ),
        ),
    ),
    layout=("PNGImages", "PedMasks", "Annotation"),
    counts=(("PNGImages", "*.png", 170), ("PedMasks", "*_mask.png", 170), ("Annotation", "*.txt", 170)),
    num_images=170,
    disk_size="53 MB",
    download_size="54 MB",
)


class PennFudanSource(RegisteredSource):
    """Penn-Fudan: ``PNGImages/X.png`` with ``PedMasks/X_mask.png``; instances from the mask's ids.

    Shape:
        read(item).mask (H, W) int64 in {0, 1}; .instances.masks (K, H, W) bool, .labels (K,) all 1.
    """

    entry = ENTRY
    splits = ("train", "val", "all")
    has_instances = True

    def items(self, split: str = "all") -> list[Item]:
        pairs = match_by_stem(self.root / "PNGImages", self.root / "PedMasks", mask_suffix="_mask")
        return self.seeded_split([Item(i, m) for i, m in pairs], split)

    def class_names(self) -> list[str]:
        return ["background", "person"]

    def read(self, item: Item) -> Sample:
        return read_sample(item)

    def check_spec(self, split: str = "all") -> CheckSpec:
        items = self.items(split)
        return CheckSpec(pairs=[(i.image, i.mask) for i in items], task="multiclass", label_map=None,
                         ignore_index=None, layout=f"format: {self.format} (instance ids), split {split}")


def read_sample(item: Item) -> Sample:
    """A photo with its people: person-vs-background mask and one instance per id of the mask file."""
    image = read_image(item.image)
    ids = read_mask(item.mask, task="multiclass", ignore_index=None)
    if ids.shape != image.shape[:2]:
        raise DataError(f"{item.mask}: instance mask is {ids.shape[::-1]}, image is {image.shape[1::-1]}")
    object_ids = np.unique(ids)
    object_ids = object_ids[object_ids != 0]
    masks = ids[None] == object_ids.reshape(-1, 1, 1)
    instances = Instances(masks, np.ones(len(object_ids), dtype=np.int64), np.zeros(len(object_ids), bool))
    return Sample(image, (ids > 0).astype(np.int64), instances, name=item.name)
