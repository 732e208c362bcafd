"""Exercises of notebooks/10_instance.ipynb: the reference passes, the stub and plausible wrong answers fail."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

from workshop import tasks
from workshop.tasks.instance import tiny_maskrcnn

POLYGON = tasks.polygon_to_mask
BOX = tasks.mask_to_box
PREDICTORS = tasks.replace_predictors
ALL = [POLYGON, BOX, PREDICTORS]


def stub_of(exercise):
    namespace: dict = {}
    exec(exercise.stub, namespace)
    return namespace[exercise.name]


# ---------------------------------------------------------------- polygon_to_mask: wrong answers


def poly_swapped_xy(points, height, width):
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon([(float(y), float(x)) for x, y in points], fill=1)
    return np.asarray(canvas).astype(bool)


def poly_pil_size_as_shape(points, height, width):
    canvas = Image.new("L", (height, width), 0)
    ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in points], fill=1)
    return np.asarray(canvas).astype(bool)


def poly_uint8_255(points, height, width):
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in points], fill=255)
    return np.asarray(canvas)


def poly_bounding_box(points, height, width):
    xy = np.asarray(points)
    mask = np.zeros((height, width), dtype=bool)
    x0, y0 = np.floor(xy.min(axis=0)).astype(int)
    x1, y1 = np.ceil(xy.max(axis=0)).astype(int)
    mask[y0:y1 + 1, x0:x1 + 1] = True
    return mask


def poly_numpy_unfriendly(points, height, width):
    if isinstance(points, np.ndarray):
        raise TypeError("coordinate list must contain exactly 2 coordinates")
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in points], fill=1)
    return np.asarray(canvas).astype(bool)


@pytest.mark.parametrize(
    ("wrong", "check", "words"),
    [
        (poly_swapped_xy, "x is the column, y the row", "x and y swapped"),
        (poly_pil_size_as_shape, "shape and dtype", "(width, height)"),
        (poly_uint8_255, "shape and dtype", "not True/False"),
        (poly_bounding_box, "inside of a triangle", "bounding box"),
        (poly_numpy_unfriendly, "numpy points", "your code raised TypeError"),
    ],
)
def test_polygon_wrong_answers_fail_with_teaching_messages(wrong, check, words) -> None:
    verdict = POLYGON.run_checks(wrong)
    assert not verdict.passed
    assert verdict.failed_check == check, verdict.message
    assert words in verdict.message


# ---------------------------------------------------------------- mask_to_box: wrong answers


def box_inclusive(mask):
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float32)


def box_swapped(mask):
    ys, xs = np.nonzero(mask)
    return np.array([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1], dtype=np.float32)


def box_first_row_only(mask):
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask[rows[0]])
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float32)


def box_argmax_no_error(mask):
    cols, rows = mask.any(axis=0), mask.any(axis=1)
    return np.array([cols.argmax(), rows.argmax(), len(cols) - cols[::-1].argmax(), len(rows) - rows[::-1].argmax()], dtype=np.float32)


def box_width_height(mask):
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1], dtype=np.float32)


@pytest.mark.parametrize(
    ("wrong", "check", "words"),
    [
        (box_inclusive, "a known box", "stops AT the last pixel"),
        (box_swapped, "a known box", "swapped"),
        (box_first_row_only, "a mask in two parts", "does not cover every part"),
        (box_argmax_no_error, "an empty mask", "ValueError"),
        (box_width_height, "a known box", "[2.0, 1.0, 5.0, 3.0]"),
    ],
)
def test_box_wrong_answers_fail_with_teaching_messages(wrong, check, words) -> None:
    verdict = BOX.run_checks(wrong)
    assert not verdict.passed
    assert verdict.failed_check == check, verdict.message
    assert words in verdict.message


# ---------------------------------------------------------------- replace_predictors: wrong answers


def forgets_mask_predictor(model, num_classes):
    in_features = model.roi_heads.box_predictor.cls_score.in_features
    model.roi_heads.box_predictor = FastRCNNPredictor(in_features, num_classes)
    return model


def tutorial_numbers(model, num_classes):
    """Copies torchvision's ResNet-50 sizes (1024 features, 256 channels) instead of reading them."""
    model.roi_heads.box_predictor = FastRCNNPredictor(1024, num_classes)
    model.roi_heads.mask_predictor = MaskRCNNPredictor(256, 256, num_classes)
    return model


def forgets_return(model, num_classes):
    heads = model.roi_heads
    heads.box_predictor = FastRCNNPredictor(heads.box_predictor.cls_score.in_features, num_classes)
    old = heads.mask_predictor.conv5_mask
    heads.mask_predictor = MaskRCNNPredictor(old.in_channels, old.out_channels, num_classes)


def mask_with_tutorial_channels(model, num_classes):
    heads = model.roi_heads
    heads.box_predictor = FastRCNNPredictor(heads.box_predictor.cls_score.in_features, num_classes)
    heads.mask_predictor = MaskRCNNPredictor(256, 256, num_classes)
    return model


@pytest.mark.parametrize(
    ("wrong", "check", "words"),
    [
        (forgets_mask_predictor, "mask predictor", "old 5 classes: it was not replaced"),
        (tutorial_numbers, "box predictor", "a number from elsewhere"),
        (forgets_return, "box predictor", "not returned"),
        (mask_with_tutorial_channels, "mask predictor", "not this model's mask head channels"),
    ],
)
def test_predictor_wrong_answers_fail_with_teaching_messages(wrong, check, words) -> None:
    verdict = PREDICTORS.run_checks(wrong)
    assert not verdict.passed
    assert verdict.failed_check == check, verdict.message
    assert words in verdict.message


# ---------------------------------------------------------------- common


@pytest.mark.parametrize("exercise", ALL, ids=lambda e: e.name)
def test_reference_passes_and_stub_is_not_implemented(exercise) -> None:
    assert exercise.run_checks(exercise.reference).passed
    verdict = exercise.run_checks(stub_of(exercise))
    assert not verdict.passed and "not implemented yet" in verdict.message


@pytest.mark.parametrize("exercise", ALL, ids=lambda e: e.name)
def test_hints_out_of_range_raise(exercise) -> None:
    for n in (0, len(exercise.hints) + 1):
        with pytest.raises(ValueError):
            exercise.hint(n)


def test_the_hints_last_answers_pass() -> None:
    def polygon_to_mask(points, height, width):
        canvas = Image.new("L", (width, height), 0)
        ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in points], fill=1)
        return np.asarray(canvas).astype(bool)

    def mask_to_box(mask):
        ys, xs = np.nonzero(mask)
        if xs.size == 0:
            raise ValueError("empty mask")
        return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)

    assert POLYGON.run_checks(polygon_to_mask).passed
    assert BOX.run_checks(mask_to_box).passed


def test_tiny_maskrcnn_trains_one_step_after_replacement() -> None:
    model = PREDICTORS.reference(tiny_maskrcnn(5), 3).train()
    masks = torch.zeros(1, 32, 32, dtype=torch.uint8)
    masks[0, 4:20, 6:18] = 1
    target = {"boxes": torch.tensor([[6.0, 4.0, 18.0, 20.0]]), "labels": torch.tensor([2]), "masks": masks}
    losses = model([torch.rand(3, 32, 32)], [target])
    assert {"loss_classifier", "loss_mask"} <= set(losses)
    sum(losses.values()).backward()


# ---------------------------------------------------------------- the references are what the pipeline runs


def test_create_maskrcnn_calls_the_replace_predictors_reference(monkeypatch) -> None:
    import workshop.instance.model as im

    calls: list[int] = []
    real = im.replace_predictors
    assert PREDICTORS.reference is real
    monkeypatch.setattr(im, "replace_predictors", lambda model, n: calls.append(n) or real(model, n))
    model = im.create_maskrcnn(num_classes=4, weights=None, min_size=64, max_size=64)
    assert calls == [4]
    assert model.roi_heads.box_predictor.cls_score.out_features == 4
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 4
    assert model.roi_heads.mask_predictor.mask_fcn_logits.weight.std() < 0.01  # small start after the replacement


SPY_CONFIG = """\
data: {source: embedded, task: instance, num_images: 8, image_size: 64}
train: {device: cpu}
instance: {image_size: 64, batch_size: 2, min_stage_steps: 1, eval_every_stage: false}
stages:
  - {title: heads, epochs: 1, lr: 0.01, step_size: 1, trainable: heads}
"""


def test_every_instance_reference_runs_in_workshop_train_evaluate_and_predict(tmp_path, monkeypatch) -> None:
    """Spy on each exercise's reference where the pipeline looks it up; each command must call them."""
    import workshop.data.polygons as polygons
    import workshop.instance.data as idata
    import workshop.instance.model as im
    from workshop.cli import main

    calls = {ex.name: 0 for ex in ALL}
    for module, exercise in ((polygons, POLYGON), (idata, BOX), (im, PREDICTORS)):
        assert getattr(module, exercise.name) is exercise.reference

        def spy(*args, _real=exercise.reference, _name=exercise.name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, exercise.name, spy)
    config = tmp_path / "spy.yaml"
    config.write_text(SPY_CONFIG)
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--run-dir", str(run)]) == 0
    assert all(calls.values()), f"not called by workshop train: {[n for n, c in calls.items() if not c]}"
    calls = dict.fromkeys(calls, 0)
    assert main(["evaluate", str(run), "embedded", "--out", str(tmp_path / "eval")]) == 0
    assert calls["polygon_to_mask"] and calls["mask_to_box"] and calls["replace_predictors"]  # data, targets, the model
    calls = dict.fromkeys(calls, 0)
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.full((40, 40, 3), 120, np.uint8)).save(images / "a.png")
    assert main(["predict", str(run), str(images), "--out", str(tmp_path / "pred")]) == 0
    assert calls["replace_predictors"] == 1  # predicting rebuilds the model; it reads no labels
