"""The custom Dataset exercise: the reference passes, the stub and plausible wrong answers fail with teaching messages."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image
from torch.utils.data import Dataset

from workshop.data.datasets import SegmentationDataset
from workshop.tasks import get_exercise

EX = get_exercise("SegmentationDataset")


class Base(Dataset):
    """A correct learner's answer; the wrong answers below override one step of it."""

    def __init__(self, image_paths, mask_paths, transform=None):
        self.image_paths, self.mask_paths, self.transform = image_paths, mask_paths, transform

    def __len__(self):
        return len(self.image_paths)

    def read_image(self, path):
        return np.array(Image.open(path).convert("RGB"))

    def read_mask(self, path):
        return (np.array(Image.open(path)) > 127).astype(np.int64)

    def __getitem__(self, index):
        image, mask = self.read_image(self.image_paths[index]), self.read_mask(self.mask_paths[index])
        if self.transform is not None:
            return self.transform(image=image, mask=mask)
        return {"image": image, "mask": mask}


class MaskFloat255(Base):
    def read_mask(self, path):
        return np.array(Image.open(path)).astype(np.float32)


class MaskUint8(Base):
    def read_mask(self, path):
        return (np.array(Image.open(path)) > 127).astype(np.uint8)


class ImageBGR(Base):
    def read_image(self, path):
        return cv2.imread(str(path))


class ImageGrey(Base):
    def read_image(self, path):
        return np.array(Image.open(path).convert("L"))


class TransformImageOnly(Base):
    def __getitem__(self, index):
        image, mask = self.read_image(self.image_paths[index]), self.read_mask(self.mask_paths[index])
        if self.transform is not None:
            image = self.transform(image=image)["image"]
        return {"image": image, "mask": mask}


class AlwaysFirstMask(Base):
    def __getitem__(self, index):
        return {"image": self.read_image(self.image_paths[index]), "mask": self.read_mask(self.mask_paths[0])}


class IgnoresTransform(Base):
    def __getitem__(self, index):
        return {"image": self.read_image(self.image_paths[index]), "mask": self.read_mask(self.mask_paths[index])}


class ReturnsTuple(Base):
    def __getitem__(self, index):
        return self.read_image(self.image_paths[index]), self.read_mask(self.mask_paths[index])


def test_reference_passes() -> None:
    verdict = EX.run_checks(EX.reference)
    assert verdict.passed, verdict.message


def test_a_plain_pil_answer_passes() -> None:
    verdict = EX.run_checks(Base)
    assert verdict.passed, verdict.message


def test_untouched_stub_is_not_implemented() -> None:
    namespace: dict = {"Dataset": Dataset}
    exec(EX.stub, namespace)
    verdict = EX.run_checks(namespace["SegmentationDataset"])
    assert not verdict.passed and "not implemented yet" in verdict.message


@pytest.mark.parametrize("n", [0, 4])
def test_hint_out_of_range_raises(n: int) -> None:
    with pytest.raises(ValueError):
        EX.hint(n)


@pytest.mark.parametrize(
    "wrong, check, words",
    [
        (MaskFloat255, "mask is (H, W) int64 in {0, 1}", ["[0.0, 255.0]", "0/255", "class 1"]),
        (MaskUint8, "mask is (H, W) int64 in {0, 1}", ["int64", "uint8"]),
        (ImageBGR, "image is (H, W, 3) uint8 RGB", ["(10, 50, 200)", "BGR", "cv2.imread reads blue first"]),
        (ImageGrey, "image is (H, W, 3) uint8 RGB", ["(10, 12)", "without converting it to RGB"]),
        (TransformImageOnly, "transform moves image and mask together", ["image only", "mask was not returned"]),
        (AlwaysFirstMask, "item i pairs image i with mask i", ["ds[1]", "same index"]),
        (IgnoresTransform, "transform moves image and mask together", ["transform given to the data set was not applied"]),
        (ReturnsTuple, "image is (H, W, 3) uint8 RGB", ["dict", "tuple"]),
    ],
)
def test_wrong_answers_fail_with_a_reason(wrong, check: str, words: list[str]) -> None:
    verdict = EX.run_checks(wrong)
    assert not verdict.passed
    assert verdict.failed_check == check, verdict.message
    for word in words:
        assert word in verdict.message, verdict.message


def test_reference_reads_embedded_pairs(tmp_path) -> None:
    from workshop.data.synthetic import ensure_dataset

    root = ensure_dataset(tmp_path / "d", num_images=2, image_size=32)
    images = sorted((root / "images").glob("*.png"))
    masks = sorted((root / "masks" / "binary").glob("*.png"))
    item = SegmentationDataset(images, masks)[1]
    assert item["image"].shape == (32, 32, 3) and item["image"].dtype == np.uint8
    assert item["mask"].dtype == np.int64 and set(np.unique(item["mask"]).tolist()) <= {0, 1}


def test_reference_rejects_lists_of_different_lengths() -> None:
    with pytest.raises(ValueError, match="2 images but 1 masks"):
        SegmentationDataset(["a.png", "b.png"], ["a.png"])
