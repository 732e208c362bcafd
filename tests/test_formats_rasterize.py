"""Masks from annotated objects: hand-computed pixel counts, overlap order, crowds, RLE of both kinds."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_util

from workshop.data.formats import AnnotatedObject, instance_masks, object_mask, semantic_mask
from workshop.data.formats.rasterize import decode_rle
from workshop.data.formats.via import ellipse_polygon
from workshop.errors import DataError

# pycocotools' decode trips a NumPy 2 deprecation notice that is not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")


def poly(label, pts, **kw):
    return AnnotatedObject(label, "polygon", polygons=[np.asarray(pts, dtype=float)], **kw)


def test_rectangle_polygon_covers_exactly_its_pixels():
    # corners on pixel edges (2,3)-(6,8): columns 2..5 and rows 3..7, 4 x 5 = 20 pixels (COCO convention)
    m = object_mask(poly("a", [[2, 3], [6, 3], [6, 8], [2, 8]]), 10, 10)
    expected = np.zeros((10, 10), dtype=bool)
    expected[3:8, 2:6] = True
    assert m.sum() == 20
    assert (m == expected).all()


def test_box_fills_the_same_pixels_as_its_polygon():
    box = AnnotatedObject("a", "box", box=(2, 3, 6, 8))
    assert (object_mask(box, 10, 10) == object_mask(poly("a", [[2, 3], [6, 3], [6, 8], [2, 8]]), 10, 10)).all()


def test_rings_of_one_object_are_merged_and_clipped_to_the_image():
    obj = AnnotatedObject("a", "polygon", polygons=[np.array([[0, 0], [2, 0], [2, 2], [0, 2]], float),
                                                   np.array([[8, 8], [14, 8], [14, 14], [8, 14]], float)])
    m = object_mask(obj, 10, 10)
    assert m.sum() == 4 + 4  # 2x2, and the second ring's 2x2 inside the 10x10 image


def test_circle_polygon_area_is_close_to_pi_r_squared():
    m = object_mask(poly("a", ellipse_polygon(50, 50, 20, 20)), 100, 100)
    assert abs(m.sum() - np.pi * 400) < 0.01 * np.pi * 400


def test_ellipse_theta_turns_the_axes():
    ys, xs = np.nonzero(object_mask(poly("a", ellipse_polygon(50, 50, 30, 10, np.pi / 2)), 100, 100))
    assert xs.max() - xs.min() + 1 == 20 and ys.max() - ys.min() + 1 == 60


def test_later_object_wins_and_higher_z_order_wins():
    a = AnnotatedObject("road", "box", box=(0, 0, 4, 2))
    b = AnnotatedObject("car", "box", box=(1, 0, 3, 2))
    ids = {"road": 1, "car": 2}
    assert semantic_mask([a, b], ids, 2, 4).tolist() == [[1, 2, 2, 1], [1, 2, 2, 1]]
    assert semantic_mask([b, a], ids, 2, 4).tolist() == [[1, 1, 1, 1], [1, 1, 1, 1]]
    b_top = AnnotatedObject("car", "box", box=(1, 0, 3, 2), z_order=5)
    assert semantic_mask([b_top, a], ids, 2, 4).tolist() == [[1, 2, 2, 1], [1, 2, 2, 1]]


def test_crowd_is_ignore_but_objects_drawn_over_it_stay():
    crowd = AnnotatedObject("person", "box", box=(0, 0, 4, 4), iscrowd=True)
    person = AnnotatedObject("person", "box", box=(0, 0, 1, 1))
    m = semantic_mask([person, crowd], {"person": 1}, 5, 5, ignore_index=255)
    assert m[0, 0] == 1 and (m == 255).sum() == 15 and (m == 0).sum() == 9


def test_uncompressed_and_compressed_rle_decode_to_the_same_mask():
    # column-major counts, starting with background: a 3x4 mask with pixels (row 1, cols 1..2)
    expected = np.zeros((3, 4), dtype=bool)
    expected[1, 1:3] = True
    uncompressed = {"size": [3, 4], "counts": [4, 1, 2, 1, 4]}
    compressed = mask_util.encode(np.asfortranarray(expected.astype(np.uint8)))
    compressed = {"size": [3, 4], "counts": compressed["counts"].decode("ascii")}
    assert (decode_rle(uncompressed, 3, 4) == expected).all()
    assert (decode_rle(compressed, 3, 4) == expected).all()


def test_rle_of_another_size_and_bad_counts_are_clear_errors():
    with pytest.raises(DataError, match=r"size \[3, 4\].*\[4, 4\]"):
        decode_rle({"size": [3, 4], "counts": [12]}, 4, 4)
    with pytest.raises(DataError, match="sum to 11"):
        decode_rle({"size": [3, 4], "counts": [4, 1, 6]}, 3, 4)


def test_instance_masks_keep_overlaps_ids_and_crowd_flags():
    a = AnnotatedObject("cat", "box", box=(0, 0, 3, 3))
    b = AnnotatedObject("dog", "box", box=(1, 1, 4, 4), iscrowd=True)
    masks, ids, crowd = instance_masks([a, b], {"cat": 1, "dog": 2}, 5, 5)
    assert masks.shape == (2, 5, 5) and masks.dtype == bool
    assert masks[0].sum() == 9 and masks[1].sum() == 9 and (masks[0] & masks[1]).sum() == 4
    assert ids.tolist() == [1, 2] and ids.dtype == np.int64 and crowd.tolist() == [False, True]


def test_unknown_label_lists_the_known_ones():
    with pytest.raises(DataError, match=r"\['tree'\] have no class id; known labels: \['car', 'road'\]"):
        semantic_mask([AnnotatedObject("tree", "box", box=(0, 0, 1, 1))], {"road": 1, "car": 2}, 2, 2)


def test_empty_image_is_all_background():
    assert semantic_mask([], {"a": 1}, 3, 2).tolist() == [[0, 0]] * 3
    masks, ids, crowd = instance_masks([], {"a": 1}, 3, 2)
    assert masks.shape == (0, 3, 2) and ids.shape == (0,) and crowd.shape == (0,)
