"""LabelMe: a folder of JSON files with every shape, embedded imageData, relative paths, stray files."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workshop.data.formats import detect_format, instance_masks, read_annotations, semantic_mask
from workshop.data.io import read_image
from workshop.errors import DataError

# pycocotools' decode trips a NumPy 2 deprecation notice that is not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")


def labelme(path: Path, image_path: str | None, shapes: list[dict], w: int = 20, h: int = 10, image_data: str | None = None):
    doc = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": image_path, "imageData": image_data,
           "imageHeight": h, "imageWidth": w}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def shape(label: str, points, kind: str = "polygon", group_id=None, **extra) -> dict:
    return {"label": label, "points": points, "group_id": group_id, "description": "", "shape_type": kind, "flags": {}, **extra}


def png_base64(mode: str, w: int, h: int, colour) -> str:
    buf = io.BytesIO()
    Image.new(mode, (w, h), colour).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "labels"
    root.mkdir()
    Image.new("RGB", (20, 10)).save(root / "a.jpg")
    labelme(root / "a.json", "a.jpg", [
        shape("cat", [[1, 1], [5, 1], [5, 4], [1, 4]]),                      # 4 x 3 = 12 pixels
        shape("dog", [[12, 8], [8, 2]], "rectangle"),                        # corners in any order: 4 x 6 = 24
        shape("dog", [[15, 5], [18, 5]], "circle"),                          # radius 3
        shape("cat", [[3, 3]], "point"),
        shape("cat", [[0, 0], [9, 9]], "line"),
    ])
    labelme(root / "b.json", "missing/b.png", [shape("cat", [[0, 0], [4, 0], [4, 4], [0, 4]])],
            image_data=png_base64("RGBA", 20, 10, (255, 0, 0, 128)))
    (tmp_path / "imgs").mkdir()
    Image.new("L", (20, 10)).save(tmp_path / "imgs" / "c.png")
    part = io.BytesIO()
    Image.fromarray(np.array([[1, 1, 0], [1, 1, 1]], dtype=np.uint8) * 255).save(part, format="PNG")
    labelme(root / "c.json", "../imgs/c.png", [
        shape("dog", [[0, 0], [2, 0], [2, 2], [0, 2]], group_id=1),
        shape("dog", [[10, 0], [12, 0], [12, 2], [10, 2]], group_id=1),  # same group: one object in two parts
        shape("cat", [[5, 5], [7, 6]], "mask", mask=base64.b64encode(part.getvalue()).decode()),
    ])
    Image.new("RGB", (20, 10)).save(root / "d.jpg")
    labelme(root / "d.json", "d.jpg", [])
    Image.new("RGB", (20, 10)).save(root / "e.jpg")  # no JSON at all
    (root / "zero.json").write_bytes(b"")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "Thumbs.db").write_bytes(b"\xd0\xcf")
    (root / "__MACOSX").mkdir()
    (root / "__MACOSX" / "._a.json").write_bytes(b"\0\5\x16\7")
    (root / "notes.json").write_text('{"todo": []}')
    return root


def test_labelme_folder_reads_every_shape(folder, tmp_path):
    assert detect_format(folder) == "labelme" and detect_format(folder / "a.json") == "labelme"
    s = read_annotations(folder, extract_dir=tmp_path / "extracted")
    assert s.format == "labelme" and s.labels == ["cat", "dog"]
    names = [img.name for img in s.images]
    assert names == ["a.jpg", "missing/b.png", "../imgs/c.png"]
    a, b, c = s.images
    assert [(o.shape, o.kind) for o in a.objects] == [("polygon", "polygon"), ("rectangle", "box"), ("circle", "polygon")]
    ids = {"cat": 1, "dog": 2}
    masks, labels, _ = instance_masks(a.objects, ids, a.height, a.width)
    assert masks[0].sum() == 12 and masks[1].sum() == 24 and abs(masks[2].sum() - np.pi * 9) < 6
    assert labels.tolist() == [1, 2, 2]
    # the embedded image was written out and reads like any other (RGBA -> RGB)
    assert b.file.parent == (tmp_path / "extracted").resolve() and b.file.suffix == ".png"
    pixels = read_image(b.file)
    assert pixels.shape == (10, 20, 3) and semantic_mask(b.objects, ids, b.height, b.width).sum() == 16
    # imagePath relative to the JSON; group_id parts merged; a mask shape placed at its box
    assert c.file == (tmp_path / "imgs" / "c.png").resolve()
    assert len(c.objects) == 2 and len(c.objects[0].polygons) == 2
    m = semantic_mask(c.objects, ids, c.height, c.width)
    assert (m == 2).sum() == 8 and (m == 1).sum() == 5 and m[5, 5:8].tolist() == [1, 1, 0] and m[6, 5:8].tolist() == [1, 1, 1]

    text = "\n".join(s.problems)
    assert "a point has no area" in text and "a line has no area" in text
    assert "zero.json: empty (zero-byte) file, skipped" in text
    assert "__MACOSX/._a.json: operating-system junk file, skipped" in text
    assert "notes.json: not an annotation file of a known format, skipped" in text
    assert "2 image(s) have no annotations: d.jpg, e.jpg; skipped" in text


def test_labelme_keeps_unannotated_images_when_asked(folder, tmp_path):
    s = read_annotations(folder, keep_unannotated=True, extract_dir=tmp_path / "x")
    empty = {img.file.name: img for img in s.images if not img.annotated}
    assert sorted(empty) == ["d.jpg", "e.jpg"] and all(img.objects == [] for img in empty.values())


def test_labelme_single_file_and_missing_image(tmp_path):
    Image.new("RGB", (20, 10)).save(tmp_path / "x.jpg")
    labelme(tmp_path / "x.json", "x.jpg", [shape("cat", [[0, 0], [2, 0], [2, 2]])])
    s = read_annotations(tmp_path / "x.json")
    assert len(s.images) == 1 and s.labels == ["cat"]
    labelme(tmp_path / "y.json", "nowhere.jpg", [shape("cat", [[0, 0], [2, 0], [2, 2]])])
    s = read_annotations(tmp_path / "y.json")
    assert s.images == [] and any("y.json: image 'nowhere.jpg' not found next to the JSON file and no 'imageData'" in p
                                  for p in s.problems)


def test_labelme_bad_image_data_and_wrong_size_are_reported(tmp_path):
    labelme(tmp_path / "y.json", "nowhere.jpg", [shape("cat", [[0, 0], [2, 0], [2, 2]])], image_data="bm90IGFuIGltYWdl")
    s = read_annotations(tmp_path / "y.json", extract_dir=tmp_path / "x")
    assert s.images == [] and any("'imageData' is not a base64-encoded image" in p for p in s.problems)
    Image.new("RGB", (30, 10)).save(tmp_path / "z.jpg")
    labelme(tmp_path / "z.json", "z.jpg", [shape("cat", [[0, 0], [2, 0], [2, 2]])], w=20, h=10)
    s = read_annotations(tmp_path / "z.json")
    assert s.images == [] and any("z.jpg is 30x10 pixels (upright) but the annotation file says 20x10" in p for p in s.problems)


def test_folders_without_annotations_or_with_several_formats_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".DS_Store").write_bytes(b"x")
    with pytest.raises(DataError, match="empty: no annotation file found"):
        read_annotations(tmp_path / "empty")
    mixed = tmp_path / "mixed"
    labelme(mixed / "a.json", "a.jpg", [])
    (mixed / "coco.json").write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    with pytest.raises(DataError, match=r"holds several annotation files \(a.json \(labelme\), coco.json \(coco\)\)"):
        read_annotations(mixed)
    junk = tmp_path / "Thumbs.db"
    junk.write_bytes(b"x")
    with pytest.raises(DataError, match="junk file"):
        read_annotations(junk)
