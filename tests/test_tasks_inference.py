"""The predict_mask exercise (notebooks/08_inference.ipynb): reference passes, stub and wrong answers fail."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workshop import tasks
from workshop.augment import get_inference_transform
from workshop.inference import predict_mask
from workshop.tasks.inference import ProbeModel, expected_mask, probe_image

EX = tasks.predict_mask


def stub():
    namespace: dict = {}
    exec(EX.stub, namespace)
    return namespace["predict_mask"]


def _logits(model, image, image_size):
    x = get_inference_transform(image_size)(image=image)["image"].unsqueeze(0)
    return model(x)


# ---------------------------------------------------------------- plausible wrong answers


def no_sigmoid(model, image, image_size, threshold=0.5):
    model.eval()
    with torch.no_grad():
        logits = F.interpolate(_logits(model, image, image_size), size=image.shape[:2], mode="bilinear")
    return (logits[0, 0] > threshold).long().numpy()


def model_size(model, image, image_size, threshold=0.5):
    model.eval()
    with torch.no_grad():
        logits = _logits(model, image, image_size)
    return (torch.sigmoid(logits[0, 0]) > threshold).long().numpy()


def no_eval(model, image, image_size, threshold=0.5):
    with torch.no_grad():
        logits = F.interpolate(_logits(model, image, image_size), size=image.shape[:2], mode="bilinear")
    return (torch.sigmoid(logits[0, 0]) > threshold).long().numpy()


def no_grad_missing(model, image, image_size, threshold=0.5):
    model.eval()
    logits = F.interpolate(_logits(model, image, image_size), size=image.shape[:2], mode="bilinear")
    return (torch.sigmoid(logits[0, 0]) > threshold).long().numpy()


def no_grad_missing_numpy_first(model, image, image_size, threshold=0.5):
    model.eval()
    logits = F.interpolate(_logits(model, image, image_size), size=image.shape[:2], mode="bilinear")
    return np.where(torch.sigmoid(logits[0, 0]).numpy() > threshold, 1, 0).astype(np.int64)


def swapped_size(model, image, image_size, threshold=0.5):
    model.eval()
    with torch.no_grad():
        logits = F.interpolate(_logits(model, image, image_size), size=image.shape[1::-1], mode="bilinear")
    return (torch.sigmoid(logits[0, 0]) > threshold).long().numpy()


def boolean_mask(model, image, image_size, threshold=0.5):
    model.eval()
    with torch.no_grad():
        logits = F.interpolate(_logits(model, image, image_size), size=image.shape[:2], mode="bilinear")
    return (torch.sigmoid(logits[0, 0]) > threshold).numpy()


def fixed_threshold(model, image, image_size, threshold=0.5):
    return predict_mask(model, image, image_size)


WRONG = [
    (no_sigmoid, ["foreground where p > 0.5", "compared with the logits", "not probabilities"]),
    (model_size, ["shape and dtype", "(32, 32) (the model's size)", "never resized back"]),
    (no_eval, ["eval mode, no gradients", "1 update(s)", "left in training mode"]),
    (no_grad_missing, ["eval mode, no gradients", "gradients on", "built a graph"]),
    (no_grad_missing_numpy_first, ["shape and dtype", "requires grad", "gradients on"]),
    (swapped_size, ["shape and dtype", "height and width swapped"]),
    (boolean_mask, ["shape and dtype", "int64", "bool"]),
    (fixed_threshold, ["the threshold argument", "`threshold` argument is ignored"]),
]


def test_reference_passes() -> None:
    assert EX.reference is predict_mask
    assert EX.run_checks(EX.reference).passed


def test_stub_is_not_implemented() -> None:
    verdict = EX.run_checks(stub())
    assert not verdict.passed and "not implemented yet" in verdict.message


@pytest.mark.parametrize(("wrong", "words"), WRONG, ids=[w.__name__ for w, _ in WRONG])
def test_wrong_answers_fail_with_a_teaching_message(wrong, words) -> None:
    verdict = EX.run_checks(wrong)
    assert not verdict.passed
    for word in words:
        assert word in verdict.message, verdict.message


@pytest.mark.parametrize(("threshold", "foreground"), [(0.5, 2 / 3), (0.7, 1 / 3), (0.95, 0.0)])
def test_expected_mask_by_hand(threshold: float, foreground: float) -> None:
    assert expected_mask(threshold).mean() == pytest.approx(foreground)
    mask = predict_mask(ProbeModel(), probe_image(), 32, threshold)
    assert (mask == expected_mask(threshold)).mean() > 0.95


@pytest.mark.parametrize("n", [0, 4])
def test_hint_out_of_range(n: int) -> None:
    with pytest.raises(ValueError, match="hints 1..3"):
        EX.hint(n)


def test_probe_image_is_uint8_rgb() -> None:
    image = probe_image()
    assert image.dtype == np.uint8 and image.shape == (40, 60, 3)


# ---------------------------------------------------------------- answers that used to pass (issue 10)


def returns_a_tensor(model, image, image_size, threshold=0.5):
    model.eval()
    with torch.no_grad():
        logits = F.interpolate(_logits(model, image, image_size), size=image.shape[:2], mode="bilinear")
    return (torch.sigmoid(logits[0, 0]) > threshold).long()


def threshold_then_resize_nearest(model, image, image_size, threshold=0.5):
    model.eval()
    with torch.no_grad():
        small = (torch.sigmoid(_logits(model, image, image_size)) > threshold).float()
    return F.interpolate(small, size=image.shape[:2], mode="nearest")[0, 0].long().numpy()


def threshold_then_resize_bilinear(model, image, image_size, threshold=0.5):
    model.eval()
    with torch.no_grad():
        small = (torch.sigmoid(_logits(model, image, image_size)) > threshold).float()
    return (F.interpolate(small, size=image.shape[:2], mode="bilinear")[0, 0] > 0.5).long().numpy()


def own_preprocessing(model, image, image_size, threshold=0.5):
    import cv2

    x = torch.from_numpy(cv2.resize(image, (image_size, image_size))).permute(2, 0, 1).float().div(255).unsqueeze(0)
    model.eval()
    with torch.no_grad():
        logits = F.interpolate(model(x), size=image.shape[:2], mode="bilinear")
    return (torch.sigmoid(logits[0, 0]) > threshold).long().numpy()


def resize_probabilities_align_corners(model, image, image_size, threshold=0.5):
    """Not the lesson's order of steps, but a sound one: it must pass."""
    model.eval()
    with torch.no_grad():
        probs = torch.sigmoid(_logits(model, image, image_size))
    probs = F.interpolate(probs, size=image.shape[:2], mode="bilinear", align_corners=True)
    return (probs[0, 0] > threshold).long().numpy()


FALSE_PASSES = [
    (returns_a_tensor, ["shape and dtype", "a NumPy array", "stayed a torch tensor"]),
    (threshold_then_resize_nearest, ["resize the logits, then threshold", "thresholded before resizing"]),
    (threshold_then_resize_bilinear, ["resize the logits, then threshold", "thresholded before resizing"]),
    (own_preprocessing, ["input prepared like validation", "0..1", "ImageNet", "not prepared as for validation"]),
]


@pytest.mark.parametrize(("wrong", "words"), FALSE_PASSES, ids=[w.__name__ for w, _ in FALSE_PASSES])
def test_answers_that_used_to_pass_now_fail(wrong, words) -> None:
    verdict = EX.run_checks(wrong)
    assert not verdict.passed
    for word in words:
        assert word in verdict.message, verdict.message


def test_a_sound_variant_passes() -> None:
    assert EX.run_checks(resize_probabilities_align_corners).passed
