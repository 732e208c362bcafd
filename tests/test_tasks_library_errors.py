"""Errors raised inside a library are read for their known cause (workshop.tasks.library_errors).

Every error here is produced by really running the wrong code against the installed albumentations
and torch; the table must still recognise what they raise today.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workshop.tasks import Check, Exercise, get_exercise
from workshop.tasks.library_errors import KNOWN_ERRORS, explain, raised_by

ORDER_PIPELINES = {
    "ToTensorV2 before Normalize": "A.Resize(image_size, image_size, mask_interpolation=cv2.INTER_NEAREST), "
                                   "A.HorizontalFlip(), A.RandomRotate90(), ToTensorV2(), A.Normalize()",
    "ToTensorV2 before Resize": "ToTensorV2(), A.Resize(image_size, image_size, mask_interpolation=cv2.INTER_NEAREST), "
                                "A.HorizontalFlip(), A.RandomRotate90(), A.Normalize()",
    "ToTensorV2 before the flip": "A.Resize(image_size, image_size, mask_interpolation=cv2.INTER_NEAREST), ToTensorV2(), "
                                  "A.HorizontalFlip(p=1.0), A.RandomRotate90(), A.Normalize()",
}


def pipeline(steps: str):
    namespace: dict = {}
    exec("import albumentations as A\nimport cv2\nfrom albumentations.pytorch import ToTensorV2\n"
         f"def train_transform(image_size):\n    return A.Compose([{steps}])", namespace)
    return namespace["train_transform"]


@pytest.mark.parametrize("label", list(ORDER_PIPELINES))
def test_to_tensor_too_early_is_a_verdict_about_order(label: str) -> None:
    verdict = get_exercise("train_transform").run_checks(pipeline(ORDER_PIPELINES[label]))
    assert not verdict.passed and verdict.failed_check == "output types and shapes"
    assert "transform ORDER" in verdict.message, verdict.message
    assert "Normalize, Resize and the flips work on NumPy arrays" in verdict.message
    assert "ToTensorV2 must come last" in verdict.message
    assert re.search(r"\((albumentations|albucore) raised", verdict.message)  # who raised what, after the cause
    assert verdict.message.endswith("Read tasks.train_transform.hint(1).")


def test_the_issue_s_astype_error_is_read_as_order() -> None:
    verdict = get_exercise("train_transform").run_checks(pipeline(ORDER_PIPELINES["ToTensorV2 before Normalize"]))
    assert "AttributeError: 'Tensor' object has no attribute 'astype'" in verdict.message
    assert verdict.message.index("transform ORDER") < verdict.message.index("AttributeError")


def test_to_tensor_twice_is_named() -> None:
    steps = ("A.Resize(image_size, image_size, mask_interpolation=cv2.INTER_NEAREST), A.HorizontalFlip(), "
             "A.RandomRotate90(), A.Normalize(), ToTensorV2(), ToTensorV2()")
    verdict = get_exercise("train_transform").run_checks(pipeline(steps))
    assert "ToTensorV2 was given a tensor" in verdict.message, verdict.message


def predict_without_float(model, image, image_size, threshold=0.5):
    """Own preprocessing that forgets .float(): a uint8 batch reaches the model's convolution."""
    import cv2

    small = cv2.resize(image, (image_size, image_size))
    x = torch.from_numpy(small).permute(2, 0, 1).unsqueeze(0)
    model.eval()
    with torch.no_grad():
        logits = F.interpolate(model(x), size=image.shape[:2], mode="bilinear")
    return (torch.sigmoid(logits[0, 0]) > threshold).long().numpy()


def test_a_missing_float_in_the_learner_s_code_is_named() -> None:
    verdict = get_exercise("predict_mask").run_checks(predict_without_float)
    assert not verdict.passed
    assert "a missing .float()" in verdict.message and "unsigned char" in verdict.message, verdict.message
    assert "torch raised RuntimeError" in verdict.message
    assert "(line " in verdict.message and "model(x)" in verdict.message  # the learner's own line
    assert verdict.message.endswith("Read tasks.predict_mask.hint(1).")


def _raise(code) -> BaseException:
    try:
        code()
    except Exception as exc:  # noqa: BLE001 - the error under test
        return exc
    raise AssertionError("the wrong code ran without an error")


LOGITS = torch.randn(2, 3, 4, 4)
TARGET = torch.randint(0, 3, (2, 4, 4))
BINARY = torch.randn(2, 1, 4, 4)

REAL_ERRORS = [
    ("CrossEntropy with a uint8 mask", lambda: F.cross_entropy(LOGITS, TARGET.to(torch.uint8)), ["uint8", "int64 (Long)"]),
    ("CrossEntropyLoss with a uint8 mask", lambda: torch.nn.CrossEntropyLoss()(LOGITS, TARGET.to(torch.uint8)), ["uint8"]),
    ("CrossEntropy with a float mask", lambda: F.cross_entropy(LOGITS, TARGET.float()), ["int64 class ids", "Float"]),
    ("CrossEntropy with an int32 mask", lambda: F.cross_entropy(LOGITS, TARGET.int()), ["int64 class ids", "Int"]),
    ("BCE with an int64 target", lambda: F.binary_cross_entropy_with_logits(BINARY, (BINARY > 0).long()),
     ["float target", "a missing .float()"]),
    ("BCE with a uint8 target", lambda: F.binary_cross_entropy_with_logits(BINARY, (BINARY > 0).to(torch.uint8)),
     ["Byte", "a missing .float()"]),
    ("a uint8 image into a convolution", lambda: torch.nn.Conv2d(3, 1, 1)(torch.zeros(1, 3, 4, 4, dtype=torch.uint8)),
     ["unsigned char", "a missing .float()"]),
    ("a float64 image into a convolution", lambda: torch.nn.Conv2d(3, 1, 1)(torch.zeros(1, 3, 4, 4, dtype=torch.float64)),
     ["double", "a missing .float()"]),
    ("an int64 input into a linear layer", lambda: torch.nn.Linear(3, 2)(torch.zeros(2, 3, dtype=torch.long)),
     ["Long", "a missing .float()"]),
    ("an int64 tensor resized bilinearly", lambda: F.interpolate(torch.zeros(1, 1, 4, 4, dtype=torch.long), size=(8, 8),
                                                                 mode="bilinear"), ["Long", "a missing .float()"]),
    ("a uint8 batch into batch-norm", lambda: torch.nn.BatchNorm2d(3)(torch.zeros(2, 3, 4, 4, dtype=torch.uint8)),
     ["batch_norm", "Byte", "a missing .float()"]),
    ("the mean of an int64 mask", lambda: TARGET.mean(), ["a mean of Long", "a missing .float()"]),
    ("backward on a detached loss", lambda: torch.zeros(2).sum().backward(), ["no gradient", ".item()"]),
    ("numpy() on a tensor with a graph", lambda: torch.zeros(2, requires_grad=True).mul(2).numpy(),
     ["records gradients"]),
    ("torch's method on a NumPy array", lambda: np.zeros((4, 4, 3)).permute(2, 0, 1), ["a NumPy array", ".permute"]),
]


@pytest.mark.parametrize(("label", "code", "words"), REAL_ERRORS, ids=[label for label, _, _ in REAL_ERRORS])
def test_real_library_errors_are_read_for_their_cause(label, code, words) -> None:
    cause = explain(_raise(code))
    assert cause is not None, f"{label}: not recognised"
    for word in words:
        assert word in cause, cause


def test_every_row_of_the_table_is_met_by_a_real_error() -> None:
    """No row is dead: each one recognises at least one error the installed libraries really raise."""
    import albumentations as A
    from albumentations.pytorch import ToTensorV2

    image, mask = np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)
    errors = [_raise(code) for _, code, _ in REAL_ERRORS] + [
        _raise(lambda: A.Compose([ToTensorV2(), A.Normalize()])(image=image, mask=mask)),
        _raise(lambda: A.Compose([ToTensorV2(), A.Resize(4, 4)])(image=image, mask=mask)),
        _raise(lambda: A.Compose([ToTensorV2(), ToTensorV2()])(image=image, mask=mask)),
    ]
    met = {i for exc in errors for i, known in enumerate(KNOWN_ERRORS)
           if known.match(exc, __import__("workshop.tasks.library_errors", fromlist=["x"]).libraries_in(exc))}
    device_row = next(i for i, k in enumerate(KNOWN_ERRORS) if "same device" in k.pattern)
    cuda_row = next(i for i, k in enumerate(KNOWN_ERRORS) if "cuda" in k.pattern)
    assert met | {device_row, cuda_row} == set(range(len(KNOWN_ERRORS)))  # device rows need a GPU to raise


def test_the_device_rows_read_torch_s_messages() -> None:
    """Without a GPU the device mismatch cannot be raised here: its messages, as torch words them."""
    for message in ("Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!",
                    "Input type (torch.FloatTensor) and weight type (torch.cuda.FloatTensor) should be the same or "
                    "input should be a MKLDNN tensor and weight is a dense tensor"):
        assert "not on the same device" in explain(RuntimeError(message))


def test_an_unknown_error_is_left_as_it_is_and_a_stub_is_still_a_stub() -> None:
    assert explain(ValueError("something else")) is None
    assert explain(NotImplementedError("your code here")) is None
    assert raised_by(_raise(lambda: F.cross_entropy(LOGITS, TARGET.float()))) == "torch"


def test_a_library_not_implemented_error_is_not_read_as_the_stub() -> None:
    """torch raises NotImplementedError for integer means: that is a cause, not 'not implemented yet'."""
    def mean_of_ids(candidate) -> None:
        candidate(TARGET)

    ex = Exercise("mean_mask", "nb.ipynb", "", lambda m: m.float().mean(), [Check("mean", mean_of_ids)],
                  ["the idea", "the API", "the last step"])
    verdict = ex.run_checks(lambda mask: mask.mean())
    assert not verdict.message.startswith("not implemented yet"), verdict.message
    assert "a missing .float()" in verdict.message and "raised NotImplementedError" in verdict.message
    verdict = ex.run_checks(lambda mask: (_ for _ in ()).throw(NotImplementedError("your code here")))
    assert verdict.message.startswith("not implemented yet")
