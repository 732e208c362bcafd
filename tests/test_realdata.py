"""The loaders against the real data sets in ../shared/datasets (skipped when that folder is absent).

Every pair of every data set is opened once (a thread pool keeps this to seconds): images and masks
must align, class ids must be in range, and the counts must be the published ones.
"""

from __future__ import annotations

import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import shared_dataset
from workshop.data import registry

pytestmark = pytest.mark.realdata

THREADS = 4


def each(dataset, fn):
    """``fn(i, item)`` for every item, in a thread pool (PIL's decoders release the GIL)."""
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(lambda i: fn(i, dataset[i]), range(len(dataset))))


@pytest.mark.parametrize("name", ["human_seg", "camvid", "pennfudan"])
def test_shared_copy_has_the_registry_layout_and_counts(name: str) -> None:
    root = shared_dataset(name)
    entry = registry.get_entry(name)
    assert registry.has_layout(name, root)
    from workshop.data.download import _count

    for path, pattern, expected in entry.counts:
        assert _count(root, path, pattern) == expected, f"{path}/{pattern}"


def test_human_seg_every_pair_opens_and_aligns() -> None:
    root = shared_dataset("human_seg")
    ds = registry.load_dataset("human_seg", root, split="all")
    assert len(ds) == 290

    def check(i: int, item) -> tuple[bool, int]:
        image, mask = item["image"], item["mask"]
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert mask.shape == image.shape[:2], ds.pairs[i]
        values = set(np.unique(mask).tolist())
        assert values <= {0, 1} and 1 in values, (ds.pairs[i], values)
        return True, int(mask.sum())

    results = each(ds, check)
    assert all(ok for ok, _ in results)

    def smaller(pair) -> bool:
        with Image.open(pair[0]) as img, Image.open(pair[1]) as mask:
            return mask.size != img.size

    assert sum(map(smaller, ds.pairs)) == 198, "the masks the source resizes to their photo"
    train = registry.load_dataset("human_seg", root, split="train")
    val = registry.load_dataset("human_seg", root, split="val")
    assert (len(train), len(val)) == (232, 58)


def test_human_seg_through_the_config_path() -> None:
    from workshop.config import load_config
    from workshop.data.loaders import make_datasets

    root = shared_dataset("human_seg")
    cfg = load_config(profile="smoke", overrides={"data": {"source": "human_seg", "root": str(root), "image_size": 64}})
    train, val = make_datasets(cfg)
    assert (len(train), len(val)) == (232, 58) and not {p[0] for p in train.pairs} & {p[0] for p in val.pairs}
    item = val[0]
    assert tuple(item["mask"].shape) == (64, 64) and set(item["mask"].unique().tolist()) <= {0, 1}


def test_camvid_every_pair_opens_with_ids_0_to_10_and_255() -> None:
    root = shared_dataset("camvid")
    assert len(registry.load_dataset("camvid", root, split="train")) == 367
    ds = registry.load_dataset("camvid", root, split="all")
    assert len(ds) == 468

    def check(i: int, item) -> set[int]:
        assert item["image"].shape == (360, 480, 3) and item["image"].dtype == np.uint8
        assert item["mask"].shape == (360, 480) and item["mask"].dtype == np.int64
        return set(np.unique(item["mask"]).tolist())

    seen = set().union(*each(ds, check))
    assert seen == set(range(11)) | {255}, seen
    assert ds.label_map.names == list(registry.CAMVID_CLASSES)


def test_pennfudan_170_images_423_people_matching_the_annotations() -> None:
    root = shared_dataset("pennfudan")
    ds = registry.load_dataset("pennfudan", root, split="all")
    assert len(ds) == 170

    def check(i: int, item) -> int:
        image_path, mask_path = ds.pairs[i]
        h, w = item["image"].shape[:2]
        assert item["masks"].shape[1:] == (h, w), mask_path
        boxes = item["boxes"]
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        text = (root / "Annotation" / f"{Path(image_path).stem}.txt").read_text()
        listed = int(re.search(r"Objects with ground truth : (\d+)", text).group(1))
        assert len(item["labels"]) == listed, image_path
        return len(item["labels"])

    assert sum(each(ds, check)) == 423
