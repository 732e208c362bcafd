"""VIA 1.x + 2.x JSON (mixed in one file), the VIA 2 project file, the class attribute, and the real kudzu export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workshop.data.formats import detect_format, instance_masks, read_annotations, semantic_mask
from workshop.errors import DataError

# pycocotools' decode trips a NumPy 2 deprecation notice that is not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")

KUDZU = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "kudzu"


def image(folder: Path, name: str, w: int = 40, h: int = 30, mode: str = "RGB") -> None:
    Image.new(mode, (w, h)).save(folder / name)


def region(shape: dict, **attributes) -> dict:
    return {"shape_attributes": shape, "region_attributes": attributes}


def mixed_export(tmp_path: Path) -> Path:
    """VIA 2 entries (regions as a list) and VIA 1 entries (regions as a dict) in one export."""
    for name, mode in (("a.jpg", "RGB"), ("b.png", "L"), ("c.png", "RGBA"), ("empty.png", "RGB")):
        image(tmp_path, name, mode=mode)
    data = {
        "a.jpg1234": {"filename": "a.jpg", "size": 1234, "file_attributes": {}, "regions": [
            region({"name": "polygon", "all_points_x": [1, 5, 5, 1], "all_points_y": [1, 1, 4, 4]}, kind="roof"),
            region({"name": "rect", "x": 10, "y": 2, "width": 3, "height": 4}, kind="tree"),
            region({"name": "point", "cx": 3, "cy": 3}, kind="roof"),
            region({"name": "polyline", "all_points_x": [0, 9], "all_points_y": [0, 9]}, kind="roof"),
        ]},
        "b.png99": {"fileref": "", "size": 99, "filename": "b.png", "base64_img_data": "", "file_attributes": {},
                    "regions": {  # VIA 1.x
                        "0": region({"name": "circle", "cx": 20, "cy": 15, "r": 5}, kind="tree"),
                        "1": region({"name": "ellipse", "cx": 8, "cy": 8, "rx": 6, "ry": 3}, kind="roof"),
                        "2": region({"name": "polygon", "all_points_x": [0, 2, 2, 0], "all_points_y": [28, 28, 30, 30]}, kind="roof"),
                    }},
        "c.png5": {"filename": "c.png", "size": 5, "regions": [
            region({"name": "ellipse", "cx": 20, "cy": 15, "rx": 10, "ry": 4, "theta": 1.5707963267948966}, kind="tree"),
        ]},
        "empty.png1": {"filename": "empty.png", "size": 1, "regions": []},
        "gone.jpg7": {"filename": "gone.jpg", "size": 7, "regions": [
            region({"name": "rect", "x": 0, "y": 0, "width": 1, "height": 1}, kind="roof")]},
        "web": {"filename": "https://example.org/x.jpg", "size": -1, "regions": []},
    }
    path = tmp_path / "via_region_data.json"
    path.write_text(json.dumps(data))
    return path


def test_mixed_via1_via2_export_reads_every_shape(tmp_path):
    path = mixed_export(tmp_path)
    assert detect_format(path) == "via"
    s = read_annotations(path, label_attribute="kind")
    assert s.format == "via" and s.labels == ["roof", "tree"]
    assert [img.file.name for img in s.images] == ["a.jpg", "b.png", "c.png"]
    a, b, c = s.images
    assert (a.width, a.height) == (40, 30)
    assert [(o.shape, o.kind, o.label) for o in a.objects] == [("polygon", "polygon", "roof"), ("rect", "box", "tree")]
    assert a.objects[1].box == (10.0, 2.0, 13.0, 6.0)
    assert [o.shape for o in b.objects] == ["circle", "ellipse", "polygon"]  # VIA 1 dict order kept
    ids = {"roof": 1, "tree": 2}
    m = semantic_mask(a.objects, ids, a.height, a.width)
    assert (m == 1).sum() == 4 * 3 and (m == 2).sum() == 3 * 4 and (m[2:6, 10:13] == 2).all()
    masks, labels, _ = instance_masks(b.objects, ids, b.height, b.width)
    assert abs(masks[0].sum() - np.pi * 25) < 8 and abs(masks[1].sum() - np.pi * 18) < 8 and masks[2].sum() == 4
    assert labels.tolist() == [2, 1, 1]
    ys, xs = np.nonzero(instance_masks(c.objects, ids, c.height, c.width)[0][0])
    assert xs.max() - xs.min() + 1 == 8 and ys.max() - ys.min() + 1 == 20  # theta = pi/2 turns the long axis upright
    text = "\n".join(s.problems)
    assert "a.jpg region 2: a point has no area" in text and "a.jpg region 3: a polyline has no area" in text
    assert "'gone.jpg' not found" in text and "web address" in text
    assert "1 image(s) have no annotations: empty.png; skipped" in text
    assert "not in the annotation file" not in text  # every image file there is listed


def test_images_listed_twice_are_merged_and_unlisted_files_reported(tmp_path):
    image(tmp_path, "a.jpg")
    image(tmp_path, "stray.jpg")
    (tmp_path / ".DS_Store").write_bytes(b"x")
    rect = region({"name": "rect", "x": 0, "y": 0, "width": 2, "height": 2})
    data = {"a.jpg1": {"filename": "a.jpg", "regions": [rect]}, "a.jpg2": {"filename": "a.jpg", "regions": {"0": rect}}}
    (tmp_path / "v.json").write_text(json.dumps(data))
    s = read_annotations(tmp_path / "v.json")
    assert len(s.images) == 1 and len(s.images[0].objects) == 2
    text = "\n".join(s.problems)
    assert "image a.jpg is listed more than once; its objects are merged" in text
    assert f"1 image file(s) in {tmp_path.resolve()} are not in the annotation file: stray.jpg" in text


def test_single_attribute_is_taken_as_the_class_without_being_named(tmp_path):
    s = read_annotations(mixed_export(tmp_path), keep_unannotated=True)
    assert s.labels == ["roof", "tree"]
    empty = [img for img in s.images if img.file.name == "empty.png"]
    assert len(empty) == 1 and not empty[0].annotated and empty[0].objects == []


def test_missing_and_ambiguous_class_attributes_list_what_was_found(tmp_path):
    image(tmp_path, "a.jpg")
    data = {"a": {"filename": "a.jpg", "regions": [
        region({"name": "rect", "x": 0, "y": 0, "width": 2, "height": 2}, kind="roof", quality="good"),
        region({"name": "rect", "x": 3, "y": 0, "width": 2, "height": 2}, kind="tree", quality="bad")]}}
    path = tmp_path / "v.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"v.json: the regions' class is ambiguous: attributes found: 'kind' \('roof', 'tree'\); "
                                        r"'quality' \('good', 'bad'\); name the attribute"):
        read_annotations(path)
    with pytest.raises(DataError, match=r"v.json: no region has the attribute 'colour' .*'kind' \('roof', 'tree'\)"):
        read_annotations(path, label_attribute="colour")
    s = read_annotations(path, label_attribute="quality")
    assert [o.label for o in s.images[0].objects] == ["good", "bad"]


def test_regions_without_the_named_attribute_are_reported(tmp_path):
    image(tmp_path, "a.jpg")
    data = {"a": {"filename": "a.jpg", "regions": [
        region({"name": "rect", "x": 0, "y": 0, "width": 2, "height": 2}, kind="roof"),
        region({"name": "rect", "x": 3, "y": 0, "width": 2, "height": 2})]}}
    (tmp_path / "v.json").write_text(json.dumps(data))
    s = read_annotations(tmp_path / "v.json", label_attribute="kind")
    assert [o.label for o in s.images[0].objects] == ["roof"]
    assert any("1 region(s) have no single value of 'kind': a.jpg region 1; skipped" in p for p in s.problems)


def test_one_class_without_attributes_is_binary(tmp_path):
    image(tmp_path, "a.jpg")
    data = {"a": {"filename": "a.jpg", "regions": [region({"name": "rect", "x": 0, "y": 0, "width": 2, "height": 2})]}}
    (tmp_path / "v.json").write_text(json.dumps(data))
    assert read_annotations(tmp_path / "v.json").labels == ["foreground"]
    assert read_annotations(tmp_path / "v.json", default_label="kudzu").labels == ["kudzu"]
    with pytest.raises(DataError, match="the regions carry no attributes; leave the label attribute unset"):
        read_annotations(tmp_path / "v.json", label_attribute="kind")


def test_via2_project_file_takes_label_order_and_checkboxes(tmp_path):
    image(tmp_path, "a.jpg")
    project = {
        "_via_settings": {"ui": {}, "core": {}, "project": {"name": "p"}},
        "_via_img_metadata": {"a.jpg10": {"filename": "a.jpg", "size": 10, "file_attributes": {}, "regions": [
            region({"name": "rect", "x": 0, "y": 0, "width": 2, "height": 2}, type="car"),
            region({"name": "rect", "x": 3, "y": 0, "width": 2, "height": 2}, type={"tree": True, "car": False}),
        ]}},
        "_via_attributes": {"region": {"type": {"type": "dropdown", "description": "",
                                                "options": {"tree": "", "car": "", "road": ""}, "default_options": {}}},
                            "file": {}},
    }
    (tmp_path / "project.json").write_text(json.dumps(project))
    s = read_annotations(tmp_path / "project.json", label_attribute="type")
    assert s.labels == ["tree", "car", "road"] and [o.label for o in s.images[0].objects] == ["car", "tree"]


def test_via3_project_is_refused_with_the_way_out(tmp_path):
    (tmp_path / "via3.json").write_text(json.dumps({"project": {}, "config": {}, "attribute": {}, "file": {},
                                                    "view": {}, "metadata": {}}))
    assert detect_format(tmp_path / "via3.json") is None
    with pytest.raises(DataError, match="VIA 3 project file.*COCO format"):
        read_annotations(tmp_path / "via3.json")


@pytest.mark.realdata
@pytest.mark.skipif(not KUDZU.is_dir(), reason="needs ../shared/datasets/kudzu")
@pytest.mark.parametrize("split, images, polygons", [("train", 24, 520), ("val", 16, 349)])
def test_real_kudzu_export(split, images, polygons):
    path = KUDZU / split / "via_region_data.json"
    assert detect_format(path) == "via" and detect_format(path.parent) == "via"
    s = read_annotations(path, default_label="kudzu")
    assert s.problems == [] and s.labels == ["kudzu"]
    assert len(s.images) == images and s.num_objects == polygons
    assert all(o.kind == "polygon" and o.label == "kudzu" for img in s.images for o in img.objects)
    img = s.images[0]
    assert (img.width, img.height) == Image.open(img.file).size
    masks, _, _ = instance_masks(img.objects, {"kudzu": 1}, img.height, img.width)
    sem = semantic_mask(img.objects, {"kudzu": 1}, img.height, img.width)
    assert masks.any(axis=(1, 2)).all() and ((sem == 1) == masks.any(axis=0)).all()


@pytest.mark.realdata
@pytest.mark.skipif(not KUDZU.is_dir(), reason="needs ../shared/datasets/kudzu")
def test_real_kudzu_train_class_attribute_can_be_named():
    s = read_annotations(KUDZU / "train" / "via_region_data.json", label_attribute="insect")
    assert s.labels == ["kudzu"] and s.num_objects == 520
    with pytest.raises(DataError, match=r"no region has the attribute 'insect'.*no attributes; leave the label attribute unset"):
        read_annotations(KUDZU / "val" / "via_region_data.json", label_attribute="insect")


def test_sizes_are_upright_and_match_read_image(tmp_path):
    from workshop.data.io import read_image

    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40 wide x 30 high, shown upright as 30 x 40
    Image.new("RGB", (40, 30)).save(tmp_path / "phone.jpg", exif=exif)
    Image.new("I;16", (40, 30)).save(tmp_path / "deep.png")
    rect = region({"name": "rect", "x": 0, "y": 0, "width": 2, "height": 2})
    data = {"p": {"filename": "phone.jpg", "regions": [rect]}, "d": {"filename": "deep.png", "regions": [rect]}}
    (tmp_path / "v.json").write_text(json.dumps(data))
    s = read_annotations(tmp_path / "v.json")
    for img in s.images:
        pixels = read_image(img.file)
        assert pixels.shape[:2] == (img.height, img.width)
        assert semantic_mask(img.objects, {"foreground": 1}, img.height, img.width).shape == pixels.shape[:2]
    assert [(img.width, img.height) for img in s.images] == [(30, 40), (40, 30)]
