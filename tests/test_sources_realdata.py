"""Sources against the real data sets in ../shared/datasets (skipped when that folder is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_dataset
from workshop.config import load_config
from workshop.data.check import check_path
from workshop.data.sources import AnnotationSource, config_splits, open_source

pytestmark = [pytest.mark.realdata, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def test_kudzu_via_export_is_a_source_with_its_polygons() -> None:
    root = shared_dataset("kudzu")
    for split, images, polygons in (("train", 24, 520), ("val", 16, 349)):
        src = open_source(root / split / "via_region_data.json")
        assert isinstance(src, AnnotationSource) and src.annotations.format == "via"
        items = src.items()
        assert len(items) == images
        assert sum(len(im.objects) for im in src.annotations.images) == polygons
        sample = src.read(items[0])
        assert sample.mask.shape == sample.image.shape[:2] and max(sample.image.shape[:2]) == 768
        assert set(np.unique(sample.mask).tolist()) == {0, 1}
        assert len(sample.instances) == len(src.annotations.images[0].objects)
        union = sample.instances.masks.any(axis=0)
        assert np.array_equal(union, sample.mask == 1), "the semantic mask is the union of the instances"


def test_the_kudzu_config_validates_on_the_val_folder() -> None:
    shared_dataset("kudzu")
    from pathlib import Path

    config = Path(__file__).resolve().parents[1] / "configs" / "kudzu.yaml"
    cfg = load_config(config, profile="smoke")
    base = Path(__file__).resolve().parents[1]
    cfg.data.root, cfg.data.val = str(base / cfg.data.root), str(base / cfg.data.val)  # the config is relative to the repo
    splits = config_splits(cfg)
    assert (len(splits.train[1]), len(splits.val[1])) == (24, 16) and splits.how.startswith("data.val")


@pytest.mark.parametrize(("name", "fmt"), [
    ("camvid", "registered data set camvid"), ("pennfudan", "registered data set pennfudan"),
    ("human_seg", "registered data set human_seg"), ("kudzu/train", "VIA (VGG Image Annotator) JSON"),
])
def test_data_check_names_the_format_of_each_shared_set(name: str, fmt: str) -> None:
    report = check_path(shared_dataset(name.split("/")[0]).parent / name)
    assert report.layout.startswith(f"format: {fmt}") and report.ok, report.format(max_lines=10)


def test_camvid_official_splits_through_the_config() -> None:
    root = shared_dataset("camvid")
    cfg = load_config(profile="smoke", overrides={"data": {"source": "camvid", "task": "multiclass", "root": str(root)}})
    splits = config_splits(cfg)
    assert (len(splits.train[1]), len(splits.val[1])) == (367, 101) and splits.how == "the publisher's split"
    src = splits.train[0]
    with pytest.raises(Exception, match="has no CamVid test split: expected test_rel.txt, or test/ \\+ testannot/"):
        src.items("test")  # the shared copy has no test split; a folder with test/ + testannot/ does


def test_pennfudan_instances_through_the_source() -> None:
    from workshop.data.sources import registered_source

    src = registered_source("pennfudan", shared_dataset("pennfudan"), "instance")
    items = src.items("all")
    assert len(items) == 170 and (len(src.items("train")), len(src.items("val"))) == (136, 34)
    assert sum(len(src.read(i).instances) for i in items[:20]) > 20


def test_pennfudan_as_coco_gives_back_the_same_masks_through_the_annotation_source(tmp_path) -> None:
    import json

    from pycocotools import mask as mask_utils

    from workshop.data.sources import registered_source

    src = registered_source("pennfudan", shared_dataset("pennfudan"), "instance")
    items = src.items("all")[:6]
    images, annotations, originals = [], [], {}
    for k, item in enumerate(items, start=1):
        sample = src.read(item)
        h, w = sample.mask.shape
        images.append({"id": k, "file_name": str(item.image), "height": h, "width": w})
        originals[item.image.name] = sample
        for m in sample.instances.masks:
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            annotations.append({"id": len(annotations) + 1, "image_id": k, "category_id": 1, "segmentation": rle,
                                "area": float(m.sum()), "bbox": list(map(float, mask_utils.toBbox(rle))), "iscrowd": 0})
    coco = tmp_path / "pennfudan_coco.json"
    coco.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "person"}]}))
    back = open_source(coco, task="binary")
    assert back.annotations.format == "coco" and len(back.items()) == len(items)
    for item in back.items():
        sample, original = back.read(item), originals[item.image.name]
        assert np.array_equal(sample.mask, original.mask)
        assert np.array_equal(sample.instances.masks, original.instances.masks)
