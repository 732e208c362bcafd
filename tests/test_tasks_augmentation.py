"""The augmentation exercises: the reference passes, the stub and plausible wrong answers fail with teaching messages."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pytest
from albumentations.pytorch import ToTensorV2

from workshop.augment import IMAGENET_MEAN, IMAGENET_STD
from workshop.tasks import get_exercise

MEAN, STD = IMAGENET_MEAN, IMAGENET_STD


def stub_function(name: str):
    namespace: dict = {}
    exec(get_exercise(name).stub, namespace)
    return namespace[name]


@pytest.mark.parametrize("name", ["paired_hflip", "train_transform"])
def test_reference_passes(name: str) -> None:
    ex = get_exercise(name)
    verdict = ex.run_checks(ex.reference)
    assert verdict.passed, verdict.message


@pytest.mark.parametrize("name", ["paired_hflip", "train_transform"])
def test_untouched_stub_is_not_implemented(name: str) -> None:
    verdict = get_exercise(name).run_checks(stub_function(name))
    assert not verdict.passed
    assert "not implemented yet" in verdict.message


@pytest.mark.parametrize("name", ["paired_hflip", "train_transform"])
@pytest.mark.parametrize("n", [0, 4, -1])
def test_hint_out_of_range_raises(name: str, n: int) -> None:
    with pytest.raises(ValueError, match="hints 1..3"):
        get_exercise(name).hint(n)


def test_hints_and_solution_print(capsys) -> None:
    ex = get_exercise("train_transform")
    ex.hint(1)
    assert "Hint 1/3" in capsys.readouterr().out
    assert ex.solution() is None  # nothing for Jupyter to echo a second time
    printed = capsys.readouterr().out
    assert "INTER_NEAREST" in printed and printed == ex.solution_source() + "\n"


# ----------------------------------------------------------------------------- paired_hflip


def hflip_image_only(image, mask):
    return image[:, ::-1], mask


def hflip_vertical(image, mask):
    return image[::-1], mask[::-1]


def hflip_returns_image(image, mask):
    return image[:, ::-1]


def hflip_mask_vertical(image, mask):
    return image[:, ::-1], mask[::-1]


@pytest.mark.parametrize(
    "wrong, words",
    [
        (hflip_image_only, ["mask unchanged", "no longer line up"]),
        (hflip_vertical, ["top-bottom", "axis 1"]),
        (hflip_returns_image, ["a pair (image, mask)", "hint(1)"]),
        (hflip_mask_vertical, ["mask flipped top-bottom"]),
    ],
)
def test_paired_hflip_wrong_answers_fail_with_a_reason(wrong, words: list[str]) -> None:
    verdict = get_exercise("paired_hflip").run_checks(wrong)
    assert not verdict.passed
    for word in words:
        assert word in verdict.message, verdict.message


def test_np_fliplr_is_accepted() -> None:
    assert get_exercise("paired_hflip").run_checks(lambda i, m: (np.fliplr(i), np.fliplr(m))).passed


# ----------------------------------------------------------------------------- train_transform


def resize(size: int, mask_interpolation: int = cv2.INTER_NEAREST) -> A.Resize:
    return A.Resize(size, size, mask_interpolation=mask_interpolation)


def tt_bilinear_mask(size):
    return A.Compose([resize(size, cv2.INTER_LINEAR), A.HorizontalFlip(), A.RandomRotate90(), A.Normalize(MEAN, STD), ToTensorV2()])


def _flip_image(img, **kwargs):
    return np.ascontiguousarray(img[:, ::-1])


def tt_flip_image_only(size):
    image_only_flip = A.Lambda(image=_flip_image, p=0.5)
    return A.Compose([resize(size), image_only_flip, A.RandomRotate90(), A.Normalize(MEAN, STD), ToTensorV2()])


def tt_no_normalize(size):
    return A.Compose([resize(size), A.HorizontalFlip(), A.RandomRotate90(), ToTensorV2()])


def tt_no_to_tensor(size):
    return A.Compose([resize(size), A.HorizontalFlip(), A.RandomRotate90(), A.Normalize(MEAN, STD)])


def tt_half_normalize(size):
    return A.Compose([resize(size), A.HorizontalFlip(), A.RandomRotate90(), A.Normalize((0.5,) * 3, (0.5,) * 3), ToTensorV2()])


def tt_scaled_only(size):
    return A.Compose([resize(size), A.HorizontalFlip(), A.RandomRotate90(), A.ToFloat(max_value=255), ToTensorV2()])


def tt_no_resize(size):
    return A.Compose([A.HorizontalFlip(), A.RandomRotate90(), A.Normalize(MEAN, STD), ToTensorV2()])


def tt_no_flip(size):
    return A.Compose([resize(size), A.RandomRotate90(), A.Normalize(MEAN, STD), ToTensorV2()])


def tt_always_flip(size):
    return A.Compose([resize(size), A.HorizontalFlip(p=1.0), A.RandomRotate90(), A.Normalize(MEAN, STD), ToTensorV2()])


def tt_no_rotate(size):
    return A.Compose([resize(size), A.HorizontalFlip(), A.Normalize(MEAN, STD), ToTensorV2()])


def tt_image_numpy_flip(size):
    """Flips the image with numpy outside albumentations, and the mask never."""
    inner = A.Compose([resize(size), A.Normalize(MEAN, STD), ToTensorV2()])

    def transform(image, mask):
        return inner(image=np.ascontiguousarray(image[:, ::-1]), mask=mask)

    return transform


@pytest.mark.parametrize(
    "wrong, check, words",
    [
        (tt_bilinear_mask, "mask resized with nearest neighbour", ["invents ids", "blending neighbours", "{0, 2, 5}"]),
        (tt_flip_image_only, "image and mask move together", ["without its mask", "Compose"]),
        (tt_image_numpy_flip, "image and mask move together", ["agree", "without its mask"]),
        (tt_no_normalize, "output types and shapes", ["float32", "never normalised"]),
        (tt_no_to_tensor, "output types and shapes", ["ToTensorV2"]),
        (tt_half_normalize, "ImageNet normalisation", ["(1 - mean) / std", "scaled to 0..1 but not normalised"]),
        (tt_scaled_only, "ImageNet normalisation", ["not normalised"]),
        (tt_no_resize, "output types and shapes", ["(3, 32, 32)", "not resized"]),
        (tt_no_flip, "random flips and rotations", ["no random horizontal flip"]),
        (tt_always_flip, "random flips and rotations", ["p=1"]),
        (tt_no_rotate, "random flips and rotations", ["no random 90-degree rotation"]),
    ],
)
def test_train_transform_wrong_answers_fail_with_a_reason(wrong, check: str, words: list[str]) -> None:
    verdict = get_exercise("train_transform").run_checks(wrong)
    assert not verdict.passed
    assert verdict.failed_check == check, verdict.message
    for word in words:
        assert word in verdict.message, verdict.message


def test_train_transform_verdict_is_deterministic() -> None:
    ex = get_exercise("train_transform")
    assert ex.run_checks(tt_flip_image_only).message == ex.run_checks(tt_flip_image_only).message


def test_a_reordered_but_correct_pipeline_passes() -> None:
    def transform(size):
        return A.Compose([A.RandomRotate90(), A.HorizontalFlip(), resize(size), A.Normalize(MEAN, STD), ToTensorV2()])

    assert get_exercise("train_transform").run_checks(transform).passed
