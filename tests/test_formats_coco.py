"""COCO instances JSON: a spec-built fixture (polygons, both RLE kinds, crowds), EXIF, Penn-Fudan round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from pycocotools import mask as mask_util

from workshop.data.formats import detect_format, instance_masks, read_annotations, semantic_mask
from workshop.errors import DataError

# pycocotools' decode trips a NumPy 2 deprecation notice that is not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")

PENNFUDAN = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "pennfudan"


def save_image(path: Path, width: int, height: int, mode: str = "RGB", orientation: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new(mode, (width, height))
    if orientation is None:
        img.save(path)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        img.save(path, exif=exif)
    return path


def column_major_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE counts, written out by hand: runs down the columns, background first."""
    flat = np.asarray(mask, dtype=np.uint8).flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    return ([0] + counts) if flat[0] else counts


def write_coco(tmp_path: Path) -> Path:
    """A COCO file by the spec: 3 images (one unannotated), 2 categories, every segmentation kind."""
    for name, mode in (("a.png", "RGB"), ("b.png", "L"), ("c.png", "RGBA")):
        save_image(tmp_path / "images" / name, 8, 6, mode)
    blob = np.zeros((6, 8), dtype=np.uint8)
    blob[4:6, 0:3] = 1  # 6 pixels
    compressed = mask_util.encode(np.asfortranarray(blob))
    coco = {
        "info": {"description": "fixture"},
        "images": [
            {"id": 1, "file_name": "a.png", "width": 8, "height": 6},
            {"id": 2, "file_name": "b.png", "width": 8, "height": 6},
            {"id": 3, "file_name": "c.png", "width": 8, "height": 6},
            {"id": 4, "file_name": "gone.png", "width": 8, "height": 6},
        ],
        "categories": [{"id": 7, "name": "cat", "supercategory": "animal"}, {"id": 3, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "iscrowd": 0, "bbox": [1, 1, 3, 2],
             "segmentation": [[1, 1, 4, 1, 4, 3, 1, 3]]},  # 3 x 2 = 6 pixels
            {"id": 2, "image_id": 1, "category_id": 3, "iscrowd": 1, "bbox": [5, 0, 2, 6],
             "segmentation": {"size": [6, 8], "counts": column_major_counts(np.pad(np.ones((6, 2)), ((0, 0), (5, 1))))}},
            {"id": 3, "image_id": 2, "category_id": 3, "iscrowd": 0, "bbox": [0, 4, 3, 2],
             "segmentation": {"size": [6, 8], "counts": compressed["counts"].decode("ascii")}},
            {"id": 4, "image_id": 2, "category_id": 7, "iscrowd": 0, "bbox": [6, 0, 2, 2], "segmentation": []},
            {"id": 5, "image_id": 4, "category_id": 7, "iscrowd": 0, "bbox": [0, 0, 1, 1],
             "segmentation": [[0, 0, 1, 0, 1, 1]]},
            {"id": 6, "image_id": 9, "category_id": 7, "iscrowd": 0, "bbox": [0, 0, 1, 1], "segmentation": []},
            {"id": 7, "image_id": 1, "category_id": 99, "iscrowd": 0, "bbox": [0, 0, 1, 1], "segmentation": []},
        ],
    }
    path = tmp_path / "annotations" / "instances_default.json"
    path.parent.mkdir()
    path.write_text(json.dumps(coco))
    return path


def test_coco_fixture_reads_every_segmentation_kind(tmp_path):
    path = write_coco(tmp_path)
    assert detect_format(path) == "coco"
    s = read_annotations(path)
    assert s.format == "coco" and s.labels == ["cat", "dog"]
    assert [img.file.name for img in s.images] == ["a.png", "b.png"]  # c has no annotation, gone is missing
    a, b = s.images
    assert (a.width, a.height) == (8, 6) and a.file == (tmp_path / "images" / "a.png").resolve()
    assert [(o.kind, o.label, o.iscrowd) for o in a.objects] == [("polygon", "cat", False), ("rle", "dog", True)]
    assert [(o.kind, o.label) for o in b.objects] == [("rle", "dog"), ("box", "cat")]
    assert b.objects[1].box == (6.0, 0.0, 8.0, 2.0)

    ids = {"cat": 1, "dog": 2}
    m = semantic_mask(a.objects, ids, a.height, a.width)
    assert (m == 1).sum() == 6 and (m == 255).sum() == 12 and (m[:, 5:7] == 255).all()
    m = semantic_mask(b.objects, ids, b.height, b.width)
    assert (m == 2).sum() == 6 and (m[4:6, 0:3] == 2).all() and (m == 1).sum() == 4
    masks, labels, crowd = instance_masks(a.objects, ids, a.height, a.width)
    assert masks.sum(axis=(1, 2)).tolist() == [6, 12] and labels.tolist() == [1, 2] and crowd.tolist() == [False, True]

    text = "\n".join(s.problems)
    assert "'gone.png' not found" in text
    assert "image id 9, which is not in 'images'" in text
    assert "category id 99, which is not in 'categories' [3, 7]" in text
    assert "1 image(s) have no annotations: c.png; skipped" in text


def test_coco_keeps_unannotated_images_only_when_asked(tmp_path):
    s = read_annotations(write_coco(tmp_path), keep_unannotated=True)
    c = [img for img in s.images if img.file.name == "c.png"]
    assert len(c) == 1 and c[0].annotated is False and c[0].objects == []
    assert any("c.png; kept as empty" in p for p in s.problems)


def test_coco_size_mismatch_is_reported(tmp_path):
    save_image(tmp_path / "a.png", 10, 10)
    path = tmp_path / "coco.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 6}],
                                "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2]}],
                                "categories": [{"id": 1, "name": "x"}]}))
    s = read_annotations(path)
    assert s.images == [] and any("a.png is 10x10 pixels (upright) but the annotation file says 8x6" in p for p in s.problems)


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_exif_rotated_photo_annotated_on_stored_pixels_is_turned_upright(tmp_path, orientation):
    # stored pixels 12 wide x 7 high; the annotation (declaring 12x7) was drawn on them
    save_image(tmp_path / "p.jpg", 12, 7, orientation=orientation)
    stored = np.zeros((7, 12), dtype=np.uint8)
    stored[1:3, 2:9] = 1  # an L shape: a bar and a leg
    stored[3:6, 2:4] = 1
    pts = [2, 1, 9, 1, 9, 3, 4, 3, 4, 6, 2, 6]
    rle = mask_util.encode(np.asfortranarray(stored))
    coco = {"images": [{"id": 1, "file_name": "p.jpg", "width": 12, "height": 7}],
            "categories": [{"id": 1, "name": "x"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [pts]},
                            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [2, 1, 7, 5], "segmentation": []},
                            {"id": 3, "image_id": 1, "category_id": 1,
                             "segmentation": {"size": [7, 12], "counts": rle["counts"].decode("ascii")}}]}
    (tmp_path / "c.json").write_text(json.dumps(coco))
    s = read_annotations(tmp_path / "c.json")
    (img,) = s.images
    assert (img.width, img.height) == (7, 12)
    marked = Image.fromarray(stored)
    marked.getexif()[0x0112] = orientation
    upright = np.asarray(ImageOps.exif_transpose(marked)).astype(bool)  # what read_image does to pixels
    box_stored = np.zeros((7, 12), dtype=np.uint8)
    box_stored[1:6, 2:9] = 1
    marked_box = Image.fromarray(box_stored)
    marked_box.getexif()[0x0112] = orientation
    upright_box = np.asarray(ImageOps.exif_transpose(marked_box)).astype(bool)
    masks, _, _ = instance_masks(img.objects, {"x": 1}, img.height, img.width)
    assert (masks[0] == upright).all() and (masks[2] == upright).all() and (masks[1] == upright_box).all()
    assert any("EXIF orientation" in p for p in s.problems)


def test_exif_rotated_photo_annotated_upright_is_left_alone(tmp_path):
    save_image(tmp_path / "p.jpg", 12, 7, orientation=6)  # upright: 7 wide x 12 high
    coco = {"images": [{"id": 1, "file_name": "p.jpg", "width": 7, "height": 12}],
            "categories": [{"id": 1, "name": "x"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 2, 0, 2, 3, 0, 3]]}]}
    (tmp_path / "c.json").write_text(json.dumps(coco))
    s = read_annotations(tmp_path / "c.json")
    (img,) = s.images
    assert s.problems == [] and img.objects[0].polygons[0].tolist() == [[0, 0], [2, 0], [2, 3], [0, 3]]


def test_coco_bad_files_are_clear_errors(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text("")
    with pytest.raises(DataError, match=r"empty.json: empty \(zero-byte\)"):
        read_annotations(empty)
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [')
    with pytest.raises(DataError, match="broken.json: not valid JSON"):
        read_annotations(broken)
    other = tmp_path / "other.json"
    other.write_text('{"foo": 1}')
    assert detect_format(other) is None
    with pytest.raises(DataError, match=r"other.json: not a COCO, VIA, LabelMe or CVAT annotation file \(top level: \['foo'\]\)"):
        read_annotations(other)
    with pytest.raises(DataError, match="not found"):
        read_annotations(tmp_path / "nope.json")
    bad_cat = tmp_path / "badcat.json"
    bad_cat.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"name": "x"}]}))
    with pytest.raises(DataError, match="badcat.json: every COCO category needs 'id' and 'name'"):
        read_annotations(bad_cat)


# ----------------------------------------------------------------------------- Penn-Fudan round trip


def _pennfudan_masks(count: int) -> list[tuple[str, np.ndarray]]:
    files = sorted((PENNFUDAN / "PedMasks").glob("*.png"))[:count]
    out = []
    for f in files:
        ids = np.asarray(Image.open(f))
        out.append((f.name.replace("_mask", ""), np.stack([ids == k for k in np.unique(ids) if k != 0])))
    return out


def _coco_from_masks(samples, kind: str) -> dict:
    images, annotations = [], []
    for i, (name, masks) in enumerate(samples, start=1):
        images.append({"id": i, "file_name": name, "height": masks.shape[1], "width": masks.shape[2]})
        for m in masks:
            encoded = mask_util.encode(np.asfortranarray(m.astype(np.uint8)))
            if kind == "rle":
                seg = {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}
            elif kind == "uncompressed":
                seg = {"size": list(m.shape), "counts": column_major_counts(m)}
            else:
                import cv2

                contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                seg = [(c.reshape(-1, 2) + 0.5).reshape(-1).tolist() for c in contours if len(c) >= 3]
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                                "segmentation": seg, "bbox": list(mask_util.toBbox(encoded)),
                                "area": float(mask_util.area(encoded))})
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "pedestrian"}]}


@pytest.mark.realdata
@pytest.mark.skipif(not (PENNFUDAN / "PedMasks").is_dir(), reason="needs ../shared/datasets/pennfudan")
@pytest.mark.parametrize("kind", ["rle", "uncompressed", "polygon"])
def test_pennfudan_instance_masks_round_trip_through_coco(tmp_path, kind):
    samples = _pennfudan_masks(6)
    path = tmp_path / f"pennfudan_{kind}.json"
    path.write_text(json.dumps(_coco_from_masks(samples, kind)))
    s = read_annotations(path, images_dir=PENNFUDAN / "PNGImages")
    assert s.problems == [] and s.labels == ["pedestrian"] and len(s.images) == len(samples)
    for img, (name, expected) in zip(s.images, samples):
        assert img.file.name == name and (img.height, img.width) == expected.shape[1:]
        masks, ids, crowd = instance_masks(img.objects, {"pedestrian": 1}, img.height, img.width)
        assert masks.shape == expected.shape and (ids == 1).all() and not crowd.any()
        if kind == "polygon":  # outlines through the boundary pixels' centres: nearly, not exactly, the mask
            iou = (masks & expected).sum(axis=(1, 2)) / (masks | expected).sum(axis=(1, 2))
            assert iou.min() > 0.9
        else:
            assert (masks == expected).all()
        sem = semantic_mask(img.objects, {"pedestrian": 1}, img.height, img.width)
        if kind != "polygon":
            assert ((sem == 1) == expected.any(axis=0)).all()
