"""Malformed entries in every format end in a problem line or a DataError naming the file, never a stack trace."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from PIL import Image

from workshop.data.formats import instance_masks, read_annotations, semantic_mask
from workshop.errors import DataError

# pycocotools' decode trips a NumPy 2 deprecation notice that is not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")

BAD = [None, "x", 3, -1, [], {}, [1, 2], {"a": 1}, [[1, "x"]], [None], 1.5, True]

COCO = {"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 6}], "categories": [{"id": 1, "name": "c"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 2, 0, 2, 2]],
                         "bbox": [0, 0, 2, 2], "iscrowd": 0}]}
VIA = {"a": {"filename": "a.png", "regions": [{"shape_attributes": {"name": "polygon", "all_points_x": [0, 2, 2],
                                                                      "all_points_y": [0, 0, 2]},
                                                 "region_attributes": {"k": "c"}}]}}
LABELME = {"shapes": [{"label": "c", "points": [[0, 0], [2, 0], [2, 2]], "shape_type": "polygon"}], "imagePath": "a.png",
           "imageHeight": 6, "imageWidth": 8}
CVAT = ('<annotations><version>1.1</version><meta><task><labels><label><name>c</name></label></labels></task></meta>'
        '<image id="0" name="a.png" width="{w}" height="6"><polygon label="c" points="{pts}" z_order="{z}"/>'
        '<box label="c" xtl="{x}" ytl="0" xbr="2" ybr="2" rotation="{r}"/>'
        '<mask label="c" rle="{rle}" left="0" top="0" width="2" height="2"/></image></annotations>')


def variants():
    def put(doc, keys, value):
        doc = copy.deepcopy(doc)
        target = doc
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
        return doc

    for value in BAD:
        for key in ("segmentation", "bbox", "image_id", "category_id", "iscrowd"):
            yield "coco", put(COCO, ["annotations", 0, key], value)
        for key in ("file_name", "width", "height", "id"):
            yield "coco", put(COCO, ["images", 0, key], value)
        for key in ("images", "annotations", "categories"):
            yield "coco", put(COCO, [key], value)
        for key in ("all_points_x", "all_points_y", "name"):
            yield "via", put(VIA, ["a", "regions", 0, "shape_attributes", key], value)
        for key in ("shape_attributes", "region_attributes"):
            yield "via", put(VIA, ["a", "regions", 0, key], value)
        for key in ("regions", "filename"):
            yield "via", put(VIA, ["a", key], value)
        yield "via", put(VIA, ["a", "regions", 0, "region_attributes", "k"], value)
        for key in ("label", "points", "shape_type", "group_id"):
            yield "labelme", put(LABELME, ["shapes", 0, key], value)
        for key in ("imagePath", "imageHeight", "imageWidth", "imageData", "shapes"):
            yield "labelme", put(LABELME, [key], value)
    for w, pts, z, x, r, rle in [("x", "0,0;2,0;2,2", 0, 0, 0, "1, 3"), (8, "0,0;2", 0, 0, 0, "1, 3"),
                                 (8, "a,b;c,d;e,f", "q", 0, 0, "1, 3"), (8, "0,0;2,0;2,2", 0, "x", "y", "z"),
                                 (8, "", 0, 0, 0, "9"), (-3, "0,0;2,0;2,2", 0, 0, 0, "1, 3")]:
        yield "cvat", CVAT.format(w=w, pts=pts, z=z, x=x, r=r, rle=rle)


def test_malformed_entries_never_escape_as_raw_exceptions(tmp_path: Path):
    Image.new("RGB", (8, 6)).save(tmp_path / "a.png")
    escaped = []
    for number, (fmt, doc) in enumerate(variants()):
        path = tmp_path / (f"case{number}.xml" if fmt == "cvat" else f"case{number}.json")
        path.write_text(doc if fmt == "cvat" else json.dumps(doc))
        try:
            s = read_annotations(path, label_attribute="k" if fmt == "via" else None, extract_dir=tmp_path / "x")
            ids = {label: n + 1 for n, label in enumerate(s.labels)}
            for img in s.images:
                semantic_mask(img.objects, ids, img.height, img.width)
                instance_masks(img.objects, ids, img.height, img.width)
        except DataError as err:
            assert str(path) in str(err), f"the error does not name the file: {err}"
        except Exception as err:  # noqa: BLE001 - the point of the test
            escaped.append(f"{fmt} {str(doc)[:120]}: {type(err).__name__}: {err}")
    assert not escaped, "\n".join(escaped[:10])
