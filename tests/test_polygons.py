"""Polygon labels -> masks, boxes and statistics, checked against hand-computed values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from workshop.data.polygons import (
    drop_empty_masks,
    load_polygon_labels,
    masks_to_boxes,
    mean_points_per_polygon,
    polygon_area,
    polygon_to_mask,
    render_instance_id_mask,
    render_instance_masks,
    render_semantic_mask,
)

CLASS_TO_ID = {"background": 0, "building": 1, "road": 2, "vegetation": 3, "water": 4}


def square(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


@pytest.mark.parametrize(
    ("points", "area"),
    [
        (square(0, 0, 4, 4), 16.0),
        (square(0, 0, 4, 4)[::-1], 16.0),  # clockwise or not: same area
        ([[0, 0], [4, 0], [0, 3]], 6.0),  # right triangle 4 x 3 / 2
        ([[0, 0], [4, 0], [4, 2], [2, 2], [2, 4], [0, 4]], 12.0),  # L: 4x4 minus a 2x2 corner
        ([[1.5, 1.5], [3.5, 1.5], [3.5, 2.5], [1.5, 2.5]], 2.0),
        ([[0, 0], [1, 1], [2, 2]], 0.0),  # collinear: no area
    ],
)
def test_polygon_area(points, area):
    assert polygon_area(points) == pytest.approx(area)


def test_polygon_area_needs_three_points():
    with pytest.raises(ValueError, match="at least 3"):
        polygon_area([[0, 0], [1, 1]])


@pytest.mark.parametrize(
    ("points", "pixels"),
    [
        (square(0, 0, 4, 4), 25),  # corners on pixel centres: the outline is filled too, 5 x 5
        (square(2, 1, 5, 3), 12),  # 4 columns x 3 rows
        (square(0, 0, 0, 0), 1),  # a degenerate polygon still marks its pixel
    ],
)
def test_rendered_pixel_count(points, pixels):
    mask = polygon_to_mask(points, 8, 8)
    assert mask.dtype == bool and mask.shape == (8, 8)
    assert mask.sum() == pixels


def test_square_mask_is_where_expected():
    mask = polygon_to_mask(square(2, 1, 5, 3), 6, 8)
    expected = np.zeros((6, 8), dtype=bool)
    expected[1:4, 2:6] = True
    np.testing.assert_array_equal(mask, expected)


def test_polygon_outside_the_image_is_clipped():
    mask = polygon_to_mask(square(-10, -10, 1, 1), 4, 4)
    assert mask.sum() == 4 and mask[:2, :2].all()


def test_all_renderers_rasterise_alike():
    # The data set generator paints images with polygon_to_mask and writes masks with the
    # other renderers: every pixel must agree, including on edges and fractional vertices.
    rng = np.random.default_rng(0)
    for _ in range(200):
        points = np.round(rng.uniform(-4, 20, (int(rng.integers(3, 10)), 2)), 1).tolist()
        objects = [{"class": "building", "points": points}]
        mask = polygon_to_mask(points, 16, 16)
        np.testing.assert_array_equal(render_semantic_mask(objects, 16, 16, CLASS_TO_ID) == 1, mask)
        np.testing.assert_array_equal(render_instance_id_mask(objects, 16, 16) == 1, mask)


def test_semantic_mask_values_and_dtype():
    objects = [
        {"class": "road", "points": square(0, 0, 5, 1)},
        {"class": "building", "points": square(1, 2, 2, 3)},
    ]
    mask = render_semantic_mask(objects, 4, 6, CLASS_TO_ID)
    expected = np.array(
        [
            [2, 2, 2, 2, 2, 2],
            [2, 2, 2, 2, 2, 2],
            [0, 1, 1, 0, 0, 0],
            [0, 1, 1, 0, 0, 0],
        ]
    )
    assert mask.dtype == np.int64
    np.testing.assert_array_equal(mask, expected)


def test_semantic_mask_later_objects_on_top():
    road = {"class": "road", "points": square(0, 0, 3, 3)}
    building = {"class": "building", "points": square(2, 2, 5, 5)}
    on_top = render_semantic_mask([road, building], 6, 6, CLASS_TO_ID)
    below = render_semantic_mask([building, road], 6, 6, CLASS_TO_ID)
    # the overlap is the 2x2 block at rows/cols 2..3
    assert (on_top[2:4, 2:4] == 1).all()
    assert (below[2:4, 2:4] == 2).all()
    assert (on_top == 1).sum() == 16 and (on_top == 2).sum() == 12
    assert (below == 1).sum() == 12 and (below == 2).sum() == 16


def test_semantic_mask_unknown_class_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown class 'car'.*building"):
        render_semantic_mask([{"class": "car", "points": square(0, 0, 1, 1)}], 4, 4, CLASS_TO_ID)


def test_empty_objects_give_background():
    mask = render_semantic_mask([], 3, 5, CLASS_TO_ID)
    assert mask.shape == (3, 5) and not mask.any()


OCCLUSION_SCENE = [
    {"class": "building", "instance_id": 1, "points": square(0, 0, 3, 3)},  # 16 px
    {"class": "road", "points": square(0, 0, 1, 7)},  # hides columns 0-1 of the first building
    {"class": "building", "instance_id": 2, "points": square(5, 5, 6, 6)},  # 4 px
    {"class": "building", "instance_id": 3, "points": square(2, 5, 3, 6)},  # 4 px, hidden below
    {"class": "water", "points": square(2, 5, 3, 6)},  # covers the third building entirely
]


def test_instance_id_mask_with_occlusion():
    ids = render_instance_id_mask(OCCLUSION_SCENE, 8, 8)
    assert ids.dtype == np.int64
    assert (ids == 1).sum() == 8  # 16 px minus the 2 columns under the road
    assert (ids[0:4, 2:4] == 1).all() and (ids[:, 0:2] == 0).all()
    assert (ids == 2).sum() == 4 and (ids[5:7, 5:7] == 2).all()
    assert (ids == 3).sum() == 0
    assert set(np.unique(ids)) == {0, 1, 2}


def test_instance_masks_one_per_instance_in_order():
    masks = render_instance_masks(OCCLUSION_SCENE, 8, 8)
    assert masks.shape == (3, 8, 8) and masks.dtype == bool
    assert masks.reshape(3, -1).sum(axis=1).tolist() == [8, 4, 0]
    np.testing.assert_array_equal(masks[0], render_instance_id_mask(OCCLUSION_SCENE, 8, 8) == 1)


def test_instance_masks_of_other_classes():
    masks = render_instance_masks(OCCLUSION_SCENE, 8, 8, classes=("road", "water"))
    assert masks.shape == (2, 8, 8)
    assert masks[0].sum() == 16 and masks[1].sum() == 4  # road 2x8, water 2x2 on top of building 3


def test_instance_masks_without_instances():
    masks = render_instance_masks([{"class": "road", "points": square(0, 0, 2, 2)}], 4, 4)
    assert masks.shape == (0, 4, 4)


def test_classes_must_be_a_sequence_not_a_string():
    with pytest.raises(ValueError, match="not a string"):
        render_instance_masks(OCCLUSION_SCENE, 8, 8, classes="building")


def test_drop_empty_masks_keeps_indices():
    masks = render_instance_masks(OCCLUSION_SCENE, 8, 8)
    kept, index = drop_empty_masks(masks)
    assert kept.shape == (2, 8, 8)
    assert index.tolist() == [0, 1]
    np.testing.assert_array_equal(kept, masks[:2])


@pytest.mark.parametrize(
    ("rows", "cols", "box"),
    [
        (slice(1, 3), slice(2, 5), [2, 1, 5, 3]),
        (slice(0, 6), slice(0, 7), [0, 0, 7, 6]),  # the whole image
        (slice(4, 5), slice(6, 7), [6, 4, 7, 5]),  # a single pixel: width and height 1
    ],
)
def test_masks_to_boxes_of_rectangles(rows, cols, box):
    masks = np.zeros((1, 6, 7), dtype=bool)
    masks[0, rows, cols] = True
    boxes = masks_to_boxes(masks)
    assert boxes.dtype == np.float32 and boxes.shape == (1, 4)
    assert boxes[0].tolist() == box


def test_masks_to_boxes_of_several_irregular_masks():
    masks = np.zeros((2, 5, 5), dtype=bool)
    masks[0, 1, 1] = masks[0, 3, 2] = True  # two pixels: box spans both
    masks[1, 0, 4] = masks[1, 4, 0] = True
    np.testing.assert_array_equal(masks_to_boxes(masks), [[1, 1, 3, 4], [0, 0, 5, 5]])


def test_masks_to_boxes_matches_rendered_polygon():
    masks = render_instance_masks(OCCLUSION_SCENE, 8, 8)
    kept, _ = drop_empty_masks(masks)
    np.testing.assert_array_equal(masks_to_boxes(kept), [[2, 0, 4, 4], [5, 5, 7, 7]])


def test_masks_to_boxes_rejects_empty_masks():
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[0, 1, 1] = True
    with pytest.raises(ValueError, match=r"\[1\].*drop_empty_masks"):
        masks_to_boxes(masks)


def test_masks_to_boxes_of_no_masks():
    assert masks_to_boxes(np.zeros((0, 4, 4), dtype=bool)).shape == (0, 4)


def test_masks_to_boxes_needs_a_stack():
    with pytest.raises(ValueError, match=r"\(K, H, W\)"):
        masks_to_boxes(np.zeros((4, 4), dtype=bool))


LABELS_A = {
    "image": "a.png",
    "width": 8,
    "height": 8,
    "objects": [
        {"class": "road", "points": square(0, 0, 7, 1)},  # 4 points
        {"class": "building", "instance_id": 1, "points": [[0, 0], [2, 0], [2, 2], [1, 3], [0, 2]]},  # 5
        {"class": "building", "instance_id": 2, "points": [[4, 4], [6, 4], [5, 6]]},  # 3
    ],
}
LABELS_B = {
    "image": "b.png",
    "width": 8,
    "height": 8,
    "objects": [{"class": "water", "points": [[0, 0], [4, 0], [5, 2], [4, 4], [0, 4], [1, 2]]}],  # 6
}


@pytest.mark.parametrize(
    ("labels", "classes", "mean"),
    [
        (LABELS_A, None, 4.0),  # (4 + 5 + 3) / 3
        (LABELS_A, ("building",), 4.0),  # (5 + 3) / 2
        (LABELS_A, ("road",), 4.0),
        ([LABELS_A, LABELS_B], None, 4.5),  # (4 + 5 + 3 + 6) / 4
        ([LABELS_A, LABELS_B], ("building", "water"), 14 / 3),
        (LABELS_A["objects"], ("building",), 4.0),  # a plain list of objects works too
    ],
)
def test_mean_points_per_polygon(labels, classes, mean):
    assert mean_points_per_polygon(labels, classes=classes) == pytest.approx(mean)


def test_mean_points_per_polygon_without_matches():
    with pytest.raises(ValueError, match="classes present.*building"):
        mean_points_per_polygon(LABELS_A, classes=("water",))


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_load_polygon_labels_round_trip(tmp_path):
    path = write_json(tmp_path / "a.json", LABELS_A)
    assert load_polygon_labels(path) == LABELS_A
    assert load_polygon_labels(str(path)) == LABELS_A


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("objects"), r"missing key\(s\) \['objects'\]"),
        (lambda d: d.pop("width"), r"missing key\(s\) \['width'\]"),
        (lambda d: d.update(height=0), "'height' must be a positive integer"),
        (lambda d: d.update(objects={}), "'objects' must be a list"),
        (lambda d: d["objects"][1].pop("class"), r"objects\[1\] is missing key\(s\) \['class'\]"),
        (lambda d: d["objects"][0].update(points=[[0, 0], [1, 1]]), "at least 3"),
        (lambda d: d["objects"][2].update(points=[[0, 0], [1], [2, 2]]), r"\[1\], which is not an \[x, y\]"),
    ],
)
def test_load_polygon_labels_names_file_and_problem(tmp_path, change, message):
    data = json.loads(json.dumps(LABELS_A))
    change(data)
    path = write_json(tmp_path / "broken.json", data)
    with pytest.raises(ValueError, match=message) as info:
        load_polygon_labels(path)
    assert "broken.json" in str(info.value)


def test_load_polygon_labels_bad_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        load_polygon_labels(path)


def test_load_polygon_labels_top_level_list(tmp_path):
    path = write_json(tmp_path / "list.json", [LABELS_A])
    with pytest.raises(ValueError, match="list.json: expected a JSON object"):
        load_polygon_labels(path)


def test_drop_empty_masks_handles_no_masks_at_all() -> None:
    from workshop.data.polygons import drop_empty_masks

    kept, index = drop_empty_masks(np.zeros((0, 4, 5), bool))
    assert kept.shape == (0, 4, 5) and index.tolist() == []
    masks = np.zeros((3, 4, 5), bool)
    masks[1, 2, 2] = True
    kept, index = drop_empty_masks(masks)
    assert index.tolist() == [1] and kept.shape == (1, 4, 5)
