"""workshop.instance.data and .evaluate: detection samples from polygons / instance masks, IoU matching, mAP."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from workshop.instance import data as idata
from workshop.instance.evaluate import evaluate_map, greedy_match, mask_iou_matrix, per_instance_iou


def _write_polygon_set(root, objects_per_image):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for index, objects in enumerate(objects_per_image):
        Image.fromarray(np.full((12, 16, 3), 100 + index, np.uint8)).save(root / "images" / f"{index}.png")
        labels = {"image": f"{index}.png", "width": 16, "height": 12, "objects": objects}
        (root / "labels" / f"{index}.json").write_text(json.dumps(labels))
    return root


def square(x0, y0, x1, y1, cls="building"):
    return {"class": cls, "points": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]}


def test_normalize_image_is_channels_first_in_0_1() -> None:
    image = np.zeros((2, 3, 3), np.uint8)
    image[0, 1] = (255, 51, 0)
    out = idata.normalize_image(image)
    assert out.shape == (3, 2, 3) and out.dtype == torch.float32
    assert out[:, 0, 1].tolist() == pytest.approx([1.0, 0.2, 0.0])
    with pytest.raises(ValueError, match="uint8"):
        idata.normalize_image(image.astype(np.float32))


@pytest.mark.parametrize(
    ("rows", "cols", "expected"),
    [(slice(1, 3), slice(2, 5), [2, 1, 5, 3]), (slice(0, 1), slice(0, 1), [0, 0, 1, 1]), (slice(0, 6), slice(3, 7), [3, 0, 7, 6])],
)
def test_mask_to_box_is_exclusive_at_the_end(rows, cols, expected) -> None:
    mask = np.zeros((6, 7), bool)
    mask[rows, cols] = True
    box = idata.mask_to_box(mask)
    assert box.dtype == np.float32 and box.tolist() == expected
    assert mask[int(box[1]):int(box[3]), int(box[0]):int(box[2])].sum() == mask.sum()


def test_mask_to_box_rejects_empty_masks() -> None:
    with pytest.raises(ValueError, match="empty"):
        idata.mask_to_box(np.zeros((3, 3), bool))


def test_detection_target_drops_empty_masks_and_handles_no_objects() -> None:
    masks = np.zeros((2, 4, 5), bool)
    masks[1, 1:3, 0:2] = True
    target = idata.detection_target(masks, [1, 2], image_id=7)
    assert target["boxes"].tolist() == [[0.0, 1.0, 2.0, 3.0]]
    assert target["labels"].tolist() == [2] and target["labels"].dtype == torch.int64
    assert target["masks"].shape == (1, 4, 5) and target["masks"].dtype == torch.uint8
    assert target["image_id"] == 7
    empty = idata.detection_target(np.zeros((0, 4, 5), bool), [])
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,) and empty["masks"].shape == (0, 4, 5)
    with pytest.raises(ValueError, match="start at 1"):
        idata.detection_target(masks, [0, 1])


def test_polygon_dataset_renders_instances_with_occlusion(tmp_path) -> None:
    root = _write_polygon_set(tmp_path / "set", [
        [square(1, 1, 5, 4), square(8, 2, 12, 8), square(0, 0, 15, 11, "road")],  # the road hides both
        [square(1, 1, 5, 4), square(3, 2, 9, 6)],                                  # overlap: second on top
        [square(0, 0, 4, 4, "road")],                                              # no building at all
    ])
    ds = idata.polygon_dataset(root)
    assert len(ds) == 3
    image, target = ds[0]
    assert image.shape == (3, 12, 16) and target["boxes"].shape == (0, 4)  # both buildings hidden
    _, target = ds[1]
    assert target["boxes"].tolist() == [[1.0, 1.0, 6.0, 5.0], [3.0, 2.0, 10.0, 7.0]]
    assert target["masks"][0, 3, 4] == 0 and target["masks"][1, 3, 4] == 1  # the later building covers the earlier
    _, target = ds[2]
    assert len(target["labels"]) == 0
    loader = DataLoader(ds, batch_size=3, collate_fn=idata.collate_detection)
    images, targets = next(iter(loader))
    assert isinstance(images, list) and len(images) == 3 and len(targets) == 3


def test_polygon_dataset_labels_follow_the_class_list(tmp_path) -> None:
    root = _write_polygon_set(tmp_path / "set", [[square(1, 1, 3, 3, "tree"), square(6, 6, 9, 9)]])
    _, target = idata.polygon_dataset(root, classes=("building", "tree"))[0]
    assert target["labels"].tolist() == [2, 1]


def test_flips_move_image_masks_and_boxes_together(tmp_path) -> None:
    root = _write_polygon_set(tmp_path / "set", [[square(1, 1, 4, 3)]])
    ds = idata.polygon_dataset(root, train=True)
    flipped = None
    for epoch in range(20):
        ds.set_epoch(epoch)
        _, target = ds[0]
        if target["boxes"][0, 0] != 1.0:
            flipped = target
            break
    assert flipped is not None, "no flip in 20 epochs"
    assert flipped["boxes"].tolist() == [[11.0, 1.0, 15.0, 4.0]]
    assert flipped["masks"][0, 2, 11:15].all()


def test_resize_instances_shrinks_long_side() -> None:
    image = np.zeros((100, 50, 3), np.uint8)
    masks = np.zeros((1, 100, 50), bool)
    masks[0, 10:20, 10:20] = True
    small_image, small_masks = idata.resize_instances(image, masks, 40)
    assert small_image.shape == (40, 20, 3) and small_masks.shape == (1, 40, 20) and small_masks.dtype == bool
    assert small_masks.sum() == 16


def test_mask_iou_and_greedy_matching_by_hand() -> None:
    gt = torch.zeros(2, 4, 4, dtype=torch.bool)
    gt[0, :2] = True  # 8 pixels
    gt[1, 2:] = True
    pred = torch.zeros(3, 4, 4, dtype=torch.bool)
    pred[0, :2, :2] = True  # IoU with gt0: 4/8
    pred[1, :3] = True      # gt0: 8/12, gt1: 4/16
    pred[2, 3:] = True      # gt1: 4/8
    iou = mask_iou_matrix(pred, gt)
    assert iou.flatten().tolist() == pytest.approx([0.5, 0.0, 8 / 12, 0.25, 0.0, 0.5])
    assert greedy_match(iou) == [(1, 0, pytest.approx(8 / 12)), (2, 1, 0.5)]
    assert per_instance_iou(pred, gt).tolist() == pytest.approx([8 / 12, 0.5])
    scores = torch.tensor([0.9, 0.2, 0.9])
    assert per_instance_iou(pred, gt, scores).tolist() == pytest.approx([0.5, 0.5])
    assert per_instance_iou(torch.zeros(0, 4, 4), gt).tolist() == [0.0, 0.0]


class _Oracle(torch.nn.Module):
    """Returns the ground truth as its prediction (scores 1), so every mAP must be 1."""

    def __init__(self, targets):
        super().__init__()
        self.targets = targets

    def forward(self, images):
        out = []
        for image in images:
            t = self.targets[int(image[0, 0, 0])]
            n = len(t["labels"])
            out.append({"boxes": t["boxes"], "labels": t["labels"], "scores": torch.ones(n),
                        "masks": t["masks"][:, None].float()})
        return out


def test_evaluate_map_is_one_for_perfect_predictions() -> None:
    masks = np.zeros((2, 32, 32), bool)
    masks[0, 2:12, 3:15] = True
    masks[1, 18:30, 16:28] = True
    target = idata.detection_target(masks, [1, 1])
    image = torch.zeros(3, 32, 32)
    scores = evaluate_map(_Oracle([target]), [([image], [target])])
    assert scores["segm_map"] == pytest.approx(1.0) and scores["bbox_map_50"] == pytest.approx(1.0)
    assert {"bbox_map", "bbox_map_75", "segm_map_50"} <= set(scores)


@pytest.mark.realdata
def test_pennfudan_split_and_samples() -> None:
    from conftest import shared_dataset

    root = shared_dataset("pennfudan")
    train, val = idata.pennfudan_dataset(root, "train"), idata.pennfudan_dataset(root, "val")
    assert (len(train), len(val)) == (136, 34)
    assert not set(train.items) & set(val.items)
    image, target = val[0]
    assert max(image.shape[1:]) == 320 and image.dtype == torch.float32
    assert target["masks"].shape[1:] == image.shape[1:] and len(target["boxes"]) >= 1
    boxes = target["boxes"]
    assert bool((boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all())
    everything = idata.pennfudan_dataset(root, "all")
    total = sum(len(everything.load(item)[2]) for item in everything.items)
    assert total == 423
