"""Human Segmentation Dataset: 290 photos of people with 0/255 masks and a CSV of pairs (binary).

198 masks are smaller than their photo (same aspect ratio) and are resized to it with
nearest-neighbour. No official split: ``train`` / ``val`` are a seeded ``val_fraction`` split.

Taught in: notebooks/03_dataset.ipynb (the registry)
"""

from __future__ import annotations

from pathlib import Path

from workshop.data.sources.csv_pairs import list_csv_pairs, read_pairs_csv
from workshop.data.entries import Archive, DatasetEntry
from workshop.data.io import read_image, read_mask, resize_mask_nearest
from workshop.data.sources.base import CheckSpec, Item, Sample
from workshop.data.sources.registered import RegisteredSource

ENTRY = DatasetEntry(
    name="human_seg",
    title="Human Segmentation Dataset",
    task="binary",
    tasks=("binary",),
    description=(
        "290 photos of people (183x275 up to 1280x1055) with 0/255 person masks and a CSV "
        "of pairs; 198 masks are smaller than their photo and are resized (nearest)."
    ),
    licence="no licence stated (VikramShenoy97, republished by parth1620): use for learning and testing only",
    homepage="https://github.com/parth1620/Human-Segmentation-Dataset-master",
    archives=(
        Archive(
            url="https://github.com/parth1620/Human-Segmentation-Dataset-master/archive/refs/heads/master.zip",
            filename="human_seg-master.zip",
            sha256=None,  # GitHub builds branch archives on request: no stable published checksum
            rules=(
                ("*/Training_Images/", "Training_Images/"),
                ("*/Ground_Truth/", "Ground_Truth/"),
                ("*/train.csv", "train.csv"),
                ("*/README.md", "README.md"),
            ),
        ),
    ),
    layout=("Training_Images", "Ground_Truth", "train.csv"),
    counts=(("Training_Images", "*.jpg", 290), ("Ground_Truth", "*.png", 290)),
    num_images=290,
    disk_size="16 MB",
)


def csv_pairs(root: Path) -> list[tuple[Path, Path]]:
    """The 290 (photo, mask) pairs of ``train.csv`` (paths carry the archive's folder name; it is dropped)."""
    return read_pairs_csv(root / "train.csv", root)


class HumanSegSource(RegisteredSource):
    """human_seg: ``all`` (290 pairs), ``train`` / ``val`` (seeded split). Masks 0/1 at the photo's size."""

    entry = ENTRY
    splits = ("train", "val", "all")

    def items(self, split: str = "all") -> list[Item]:
        return self.seeded_split([Item(i, m) for i, m in csv_pairs(self.root)], split)

    def read(self, item: Item) -> Sample:
        image = read_image(item.image)
        mask = read_mask(item.mask, task="binary")
        if mask.shape != image.shape[:2]:
            mask = resize_mask_nearest(mask, *image.shape[:2])
        return Sample(image, mask, name=item.name)

    def check_spec(self, split: str = "all") -> CheckSpec:
        """The CSV's pairs; a file it lists that is not there is a problem of that file (all of them listed)."""
        if split != "all":
            items = self.items(split)
            return CheckSpec(pairs=[(i.image, i.mask) for i in items], task="binary", layout=f"format: {self.format}, split {split}")
        pairs, images, masks, problems = list_csv_pairs(self.root / "train.csv", self.root)
        paired = {m for _, m in pairs}
        return CheckSpec(pairs=pairs, images=[i for i in images if i not in {p for p, _ in pairs}],
                         masks=[m for m in masks if m not in paired], task="binary", problems=problems,
                         layout=f"format: {self.format}, split {split}")
