"""Data sources: one interface, one module each; config -> source, path -> source, named splits, messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workshop.config import load_config
from workshop.data.check import check_path
from workshop.data.io import LabelClass, LabelMap
from workshop.data.sources import (
    AnnotationSource, CSVSource, FolderSource, ListSource, config_splits, open_source, source_from_config,
)
from workshop.data.sources.palette import derive_label_map
from workshop.errors import ConfigError, DataError

H, W = 6, 8


def save(array, path: Path, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode=mode).save(path)
    return path


def image(k: int) -> np.ndarray:
    return np.random.default_rng(k).integers(0, 256, (H, W, 3), dtype=np.uint8)


def ids_mask(k: int, n_classes: int = 3) -> np.ndarray:
    """Columns cycle through the class ids, shifted by k: every id occurs."""
    return (np.arange(W)[None, :].repeat(H, 0) + k) % n_classes


def make_pairs(root: Path, names=("a", "b", "c"), mask=lambda k: ids_mask(k) * 0 + (np.arange(W) >= 4) * 255) -> Path:
    for k, name in enumerate(names):
        save(image(k), root / "images" / f"{name}.png")
        save(mask(k), root / "masks" / f"{name}.png")
    return root


# ----------------------------------------------------------------------------- folder, palette, derived label map


def test_folder_source_reads_binary_pairs(tmp_path) -> None:
    src = FolderSource(make_pairs(tmp_path) / "images", tmp_path / "masks")
    items = src.items()
    assert [i.image.name for i in items] == ["a.png", "b.png", "c.png"] and src.label_map() is None
    sample = src.read(items[0])
    assert sample.image.shape == (H, W, 3) and sample.image.dtype == np.uint8
    assert sample.mask.dtype == np.int64 and sample.mask[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_multiclass_folder_without_label_map_derives_one_from_the_ids(tmp_path) -> None:
    make_pairs(tmp_path, mask=lambda k: ids_mask(k, 4))
    src = FolderSource(tmp_path / "images", tmp_path / "masks", task="multiclass")
    lm = src.label_map()
    assert lm.names == ["background", "class_1", "class_2", "class_3"] and lm.ids == [0, 1, 2, 3]
    assert src.derived and src.class_names() == lm.names
    cfg = load_config(profile="smoke", overrides={"data": {"source": "folder", "root": str(tmp_path), "task": "multiclass",
                                                             "masks_dir": "masks", "image_size": 32}})
    from workshop.data.loaders import class_names

    assert list(class_names(cfg)) == lm.names, "never 'num_classes must be a positive int ..., got 0'"


def test_a_derived_label_map_refuses_what_is_not_class_ids(tmp_path) -> None:
    binary = [save((np.arange(W)[None].repeat(H, 0) > 3) * 255, tmp_path / "bin.png")]
    with pytest.raises(DataError, match=r"hold only \[0, 255\]: that is a binary task"):
        derive_label_map(binary, 255, tmp_path)
    grey = [save(np.arange(H * W).reshape(H, W) * 5, tmp_path / "grey.png")]
    with pytest.raises(DataError, match=r"ids up to 235 .* give a label map \(data.label_map / --label-map FILE\)"):
        derive_label_map(grey, 255, tmp_path)
    colour = np.zeros((H, W, 3), np.uint8)
    colour[:, :4] = (128, 64, 128)
    with pytest.raises(DataError, match=r"colour-coded mask \(colours \(0, 0, 0\), \(128, 64, 128\)\); .* needs a label map"):
        derive_label_map([save(colour, tmp_path / "colour.png")], 255, tmp_path)


def test_palette_masks_give_ids_and_their_colours(tmp_path) -> None:
    ids = ids_mask(0, 3).astype(np.uint8)
    ids[0, 0] = 255  # a VOC-style void pixel
    pal = Image.fromarray(ids, mode="P")
    pal.putpalette([0, 0, 0, 200, 10, 10, 10, 200, 10] + [0, 0, 0] * 252 + [255, 255, 255])
    save(image(0), tmp_path / "images" / "a.png")
    (tmp_path / "masks").mkdir()
    pal.save(tmp_path / "masks" / "a.png")
    src = FolderSource(tmp_path / "images", tmp_path / "masks", task="multiclass")
    lm = src.label_map()
    assert lm.ids == [0, 1, 2] and [c.color for c in lm.classes] == [(0, 0, 0), (200, 10, 10), (10, 200, 10)]
    mask = src.read(src.items()[0]).mask
    assert mask[0, :4].tolist() == [255, 1, 2, 0] and mask.dtype == np.int64


def test_colour_masks_with_a_label_map(tmp_path) -> None:
    lm = LabelMap([LabelClass("bg", 0, (0, 0, 0)), LabelClass("road", 1, (128, 64, 128))])
    colour = np.zeros((H, W, 3), np.uint8)
    colour[:, 5:] = (128, 64, 128)
    save(image(0), tmp_path / "images" / "a.png")
    save(colour, tmp_path / "masks" / "a.png")
    src = FolderSource(tmp_path / "images", tmp_path / "masks", task="multiclass", label_map=lm)
    assert src.read(src.items()[0]).mask[0].tolist() == [0, 0, 0, 0, 0, 1, 1, 1]


def test_the_same_folder_twice_is_refused_with_the_fix(tmp_path) -> None:
    make_pairs(tmp_path)
    with pytest.raises(DataError, match=r"images and masks are the same folder .*every image would be paired with itself"):
        FolderSource(tmp_path / "images", tmp_path / "images")
    report = check_path(tmp_path, images_dir="images", masks_dir="images")
    assert not report.ok and "every image would be paired with itself" in report.errors[0].message
    for name in ("a", "b", "c"):  # one folder, masks named a_mask.png: fine with the suffix
        save((np.arange(W)[None].repeat(H, 0) > 3) * 255, tmp_path / "images" / f"{name}_mask.png")
    both = FolderSource(tmp_path / "images", tmp_path / "images", mask_suffix="_mask")
    assert [(i.image.name, i.mask.name) for i in both.items()][0] == ("a.png", "a_mask.png")


# ----------------------------------------------------------------------------- CSV and list files


def test_csv_and_list_sources(tmp_path) -> None:
    make_pairs(tmp_path)
    (tmp_path / "pairs.csv").write_text("images,masks\nimages/a.png,masks/a.png\nimages/c.png,masks/c.png\n")
    (tmp_path / "val.txt").write_text("# image mask\nimages/b.png masks/b.png\n")
    csv_src = open_source(tmp_path / "pairs.csv")
    assert isinstance(csv_src, CSVSource) and [i.image.name for i in csv_src.items()] == ["a.png", "c.png"]
    lst = open_source(tmp_path / "val.txt")
    assert isinstance(lst, ListSource) and [i.mask.name for i in lst.items()] == ["b.png"]
    assert lst.read(lst.items()[0]).mask.max() == 1
    (tmp_path / "bad.txt").write_text("images/b.png\n")
    with pytest.raises(DataError, match=r"bad.txt line 1: expected 'image mask' \(two paths\)"):
        open_source(tmp_path / "bad.txt").items()


# ----------------------------------------------------------------------------- detection (data check, evaluate, data.val)


def test_open_source_detects_each_layout(tmp_path) -> None:
    folder = make_pairs(tmp_path / "folder")
    assert isinstance(open_source(folder), FolderSource)
    with pytest.raises(DataError, match="absent: path not found"):
        open_source(tmp_path / "absent")
    junk = tmp_path / "notes.json"
    junk.write_text(json.dumps({"hello": 1}))
    with pytest.raises(DataError, match=r"notes.json: this .json file is none of the annotation formats the workshop "
                                        r"reads \(COCO instances JSON, VIA 1.x/2.x JSON, LabelMe JSON, CVAT"):
        open_source(junk)
    with pytest.raises(DataError, match=r"no data layout found"):
        open_source(_mkdir(tmp_path / "empty"))


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def make_via(root: Path, names=("p", "q"), empty=("r",)) -> Path:
    """A VIA 2.x export: p and q with one 'bug' triangle each; r listed without regions."""
    data = {}
    for k, name in enumerate((*names, *empty)):
        save(image(k), root / f"{name}.jpg")
        size = (root / f"{name}.jpg").stat().st_size
        regions = [] if name in empty else [{
            "shape_attributes": {"name": "polygon", "all_points_x": [1, 6, 1], "all_points_y": [1, 1, 5]},
            "region_attributes": {"insect": "bug"}}]
        data[f"{name}.jpg{size}"] = {"filename": f"{name}.jpg", "size": size, "regions": regions, "file_attributes": {}}
    path = root / "via_region_data.json"
    path.write_text(json.dumps(data))
    return path


def test_an_annotation_file_is_a_source_and_data_check_names_its_format(tmp_path) -> None:
    via = make_via(tmp_path / "train")
    src = open_source(via)
    assert isinstance(src, AnnotationSource) and src.format.startswith("VIA (VGG Image Annotator) JSON")
    assert [i.image.name for i in src.items()] == ["p.jpg", "q.jpg"], "the image listed without regions is left out"
    sample = src.read(src.items()[0])
    assert sample.mask.shape == (H, W) and set(np.unique(sample.mask).tolist()) == {0, 1}
    assert len(sample.instances) == 1 and sample.instances.masks.shape == (1, H, W)
    assert bool((sample.instances.masks[0] == (sample.mask == 1)).all())
    kept = open_source(via, keep_unannotated=True)
    assert len(kept.items()) == 3 and kept.read(kept.items()[2]).mask.max() == 0
    report = check_path(via)
    assert report.ok and report.layout.startswith("format: VIA"), "never \"no column 'images'\""
    assert report.format().splitlines()[0].startswith(f"data check of {tmp_path / 'train'} (format: VIA")
    assert check_path(tmp_path / "train").layout == report.layout, "a folder holding the export is found too"


# ----------------------------------------------------------------------------- config -> source, named splits


def test_data_val_replaces_the_random_split(tmp_path) -> None:
    make_pairs(tmp_path / "train", names=("a", "b", "c", "d"))
    make_pairs(tmp_path / "val", names=("v1", "v2"))
    base = {"source": "folder", "root": str(tmp_path / "train"), "masks_dir": "masks", "image_size": 32}
    random = config_splits(load_config(profile="smoke", overrides={"data": base}))
    assert (len(random.train[1]), len(random.val[1])) == (3, 1) and "val_fraction" in random.how
    for val in (tmp_path / "val", tmp_path / "val.csv"):
        if val.suffix == ".csv":
            val.write_text("images,masks\nval/images/v1.png,val/masks/v1.png\nval/images/v2.png,val/masks/v2.png\n")
        cfg = load_config(profile="smoke", overrides={"data": {**base, "val": str(val), "val_fraction": 0.5}})
        splits = config_splits(cfg)
        assert [i.image.name for i in splits.train[1]] == ["a.png", "b.png", "c.png", "d.png"], "all of train trains"
        assert [i.image.stem for i in splits.val[1]] == ["v1", "v2"]
    via = make_via(tmp_path / "ann")
    cfg = load_config(profile="smoke", overrides={"data": {**base, "val": str(via), "test": str(tmp_path / "val")}})
    splits = config_splits(cfg)
    assert isinstance(splits.val[0], AnnotationSource) and len(splits.val[1]) == 2
    assert [i.image.stem for i in splits.test[1]] == ["v1", "v2"]
    from workshop.data.loaders import make_datasets

    train, val = make_datasets(cfg)
    assert (len(train), len(val)) == (4, 2) and tuple(val[0]["mask"].shape) == (32, 32)


def test_annotations_as_the_training_source(tmp_path) -> None:
    via = make_via(tmp_path)
    cfg = load_config(profile="smoke", overrides={"data": {"source": "annotations", "root": str(via), "task": "multiclass"}})
    src = source_from_config(cfg)
    assert src.label_map().names == ["background", "bug"]
    with pytest.raises(ConfigError, match="data.root must name the data folder when data.source is 'annotations'"):
        source_from_config(load_config(profile="smoke", overrides={"data": {"source": "annotations"}}))


def test_unknown_config_keys_still_list_the_new_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'data.val_dir' .*valid keys in data: .*label_map, val, test, "):
        load_config(profile="smoke", overrides=["data.val_dir=x"])


# ----------------------------------------------------------------------------- the messages of the issue


def test_class_id_masks_checked_as_binary_name_the_multiclass_task(tmp_path) -> None:
    make_pairs(tmp_path, mask=lambda k: ids_mask(k, 12))
    report = check_path(tmp_path, task="binary")
    assert not report.ok
    messages = [p.message for p in report.errors]
    assert any("this looks like a multiclass data set; run `workshop data check PATH --task multiclass --label-map FILE`" in m
               for m in messages)
    assert not any("JPEG" in m for m in messages), "never 'a JPEG mask or smoothed edges?' for class ids"
    blurred = make_pairs(tmp_path / "blur", mask=lambda k: np.linspace(0, 255, H * W).reshape(H, W))
    assert any("JPEG" in p.message for p in check_path(blurred, task="binary").errors), "noise is still called noise"


def _coco(root: Path) -> Path:
    data = {"images": [{"id": 1, "file_name": "p.jpg", "height": H, "width": W}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "iscrowd": 0, "area": 10.0, "bbox": [1, 1, 5, 4],
                             "segmentation": [[1, 1, 6, 1, 1, 5]]}],
            "categories": [{"id": 3, "name": "bug"}]}
    (root / "instances.json").write_text(json.dumps(data))
    return root / "instances.json"


def _labelme(root: Path) -> Path:
    data = {"version": "5.0.1", "flags": {}, "imagePath": "p.jpg", "imageData": None, "imageHeight": H, "imageWidth": W,
            "shapes": [{"label": "bug", "points": [[1, 1], [6, 1], [1, 5]], "shape_type": "polygon", "flags": {}}]}
    (root / "p.json").write_text(json.dumps(data))
    return root / "p.json"


def _cvat(root: Path) -> Path:
    (root / "annotations.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version>'
        '<meta><task><labels><label><name>bug</name></label></labels></task></meta>'
        f'<image id="0" name="p.jpg" width="{W}" height="{H}"><polygon label="bug" occluded="0" points="1,1;6,1;1,5" z_order="0"/>'
        '</image></annotations>')
    return root / "annotations.xml"


@pytest.mark.parametrize(("make", "fmt"), [(_coco, "COCO instances JSON"), (_labelme, "LabelMe JSON"),
                                           (_cvat, "CVAT for images 1.1 XML")])
def test_every_annotation_format_is_a_source_that_data_check_names(tmp_path, make, fmt) -> None:
    via = make_via(tmp_path / "via", names=("p",), empty=())
    reference = open_source(via).read(open_source(via).items()[0]).mask
    root = _mkdir(tmp_path / "export")
    save(image(0), root / "p.jpg")
    path = make(root)
    src = open_source(path)
    assert src.format.startswith(fmt) and len(src.items()) == 1
    assert np.array_equal(src.read(src.items()[0]).mask, reference), "the same triangle gives the same mask in every format"
    report = check_path(path)
    assert report.ok and report.layout.startswith(f"format: {fmt}")


def test_coco_crowd_regions_are_ignored_in_the_binary_view_and_left_out_of_instances(tmp_path) -> None:
    save(image(0), tmp_path / "p.jpg")
    path = _coco(tmp_path)
    data = json.loads(path.read_text())
    data["annotations"].append({"id": 2, "image_id": 1, "category_id": 3, "iscrowd": 1, "area": 4.0, "bbox": [6, 3, 2, 2],
                                "segmentation": [[6, 3, 8, 3, 8, 5, 6, 5]]})
    path.write_text(json.dumps(data))
    sample = open_source(path, task="binary").read(open_source(path).items()[0])
    assert set(np.unique(sample.mask).tolist()) == {0, 1, 255}
    assert (sample.mask[3:5, 6:8] == 255).all(), "the crowd box is ignored, not background"
    from workshop.instance.data import load_instance_source

    ds = load_instance_source("annotations", path)
    _, target = ds[0]
    assert len(target["labels"]) == 1, "crowd regions are no instance to learn"


# ----------------------------------------------------------------------------- one binary mask per class (Open Images)


def make_class_masks(root: Path) -> Path:
    """a: road on the top 3 rows, a car on columns 2..4 of rows 1..4 (over the road); b: only the car."""
    road, car = np.zeros((H, W), np.uint8), np.zeros((H, W), np.uint8)
    road[:3] = 255
    car[1:5, 2:5] = 255
    save(image(0), root / "images" / "a.png")
    save(image(1), root / "images" / "b.png")
    save(road, root / "masks" / "road" / "a.png")
    save(car, root / "masks" / "car" / "a.png")
    save(car, root / "masks" / "car" / "b.png")
    return root


def test_class_mask_folders_are_merged_with_merge_binary_masks(tmp_path, monkeypatch) -> None:
    import workshop.data.sources.folder as folder
    from workshop.multiclass import merge_binary_masks

    assert folder.merge_binary_masks is merge_binary_masks, "the exercise's reference is what the source runs"
    calls = []
    monkeypatch.setattr(folder, "merge_binary_masks", lambda *a: calls.append(a) or merge_binary_masks(*a))
    root = make_class_masks(tmp_path)
    lm = LabelMap([LabelClass("background", 0, (0, 0, 0)), LabelClass("road", 1, (128, 64, 128)),
                   LabelClass("car", 2, (0, 0, 142))])
    src = FolderSource(root / "images", root / "masks", class_masks=True, label_map=lm)
    assert src.task == "multiclass" and [i.image.name for i in src.items()] == ["a.png", "b.png"]
    a, b = (src.read(i).mask for i in src.items())
    expected = np.zeros((H, W), np.int64)
    expected[:3] = 1
    expected[1:5, 2:5] = 2  # the car (id 2, later in the label map) covers the road
    np.testing.assert_array_equal(a, expected)
    np.testing.assert_array_equal(b, np.where(expected == 2, 2, 0))
    assert len(calls) == 2 and list(calls[0][0]) == ["road", "car"]
    # without a label map: the class folders in name order (car 1, road 2: the road is drawn last)
    named = FolderSource(root / "images", root / "masks", class_masks=True)
    assert named.class_names() == ["background", "car", "road"]
    assert named.read(named.items()[0]).mask[1].tolist() == [2, 2, 2, 2, 2, 2, 2, 2]
    # the config and data check open the same source
    cfg = load_config(profile="smoke", overrides={"data": {"source": "folder", "root": str(root), "class_masks": True,
                                                            "task": "multiclass"}})
    np.testing.assert_array_equal(source_from_config(cfg).read(source_from_config(cfg).items()[1]).mask,
                                  named.read(named.items()[1]).mask)
    report = check_path(root, class_masks=True)
    assert report.ok and report.counts["pairs"] == 3 and report.layout.endswith("(one binary mask per class)")


def test_an_image_with_no_class_mask_is_named(tmp_path) -> None:
    root = make_class_masks(tmp_path)
    save(image(2), root / "images" / "c.png")
    report = check_path(root, class_masks=True)
    assert [(Path(p.path).name, p.message) for p in report.errors] == [
        ("c.png", "image has no mask in any class folder of masks/ (car, road)")]
    with pytest.raises(DataError, match=r"1 image\(s\) in .*images have no mask in .*masks: c.png"):
        FolderSource(root / "images", root / "masks", class_masks=True).items()
