"""The replace_head exercise (notebooks/05_model.ipynb): reference passes, stub and wrong answers fail."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.segmentation import deeplabv3_resnet50

from workshop import tasks
from workshop.models import replace_deeplab_head
from workshop.tasks.model import small_deeplab

EX = tasks.replace_head


def stub():
    namespace: dict = {}
    exec(EX.stub, namespace)
    return namespace["replace_head"]


# ---------------------------------------------------------------- plausible wrong answers


def whole_classifier(model, num_classes):
    """Replaces the whole head with one conv: ASPP is gone."""
    in_channels = model.classifier[0].convs[0][0].in_channels
    model.classifier = nn.Conv2d(in_channels, num_classes, kernel_size=1)
    return model


def linear_layer(model, num_classes):
    model.classifier[-1] = nn.Linear(256, num_classes)
    return model


def forgets_return(model, num_classes):
    model.classifier[-1] = nn.Conv2d(256, num_classes, kernel_size=1)


def returns_the_layer(model, num_classes):
    model.classifier[-1] = nn.Conv2d(256, num_classes, kernel_size=1)
    return model.classifier[-1]


def three_by_three(model, num_classes):
    model.classifier[-1] = nn.Conv2d(256, num_classes, kernel_size=3, padding=1)
    return model


def reinitialises_everything(model, num_classes):
    model.classifier[-1] = nn.Conv2d(256, num_classes, kernel_size=1)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight)
    return model


def appends_a_layer(model, num_classes):
    """Keeps the 21-class conv and adds another one after it."""
    model.classifier.append(nn.Conv2d(21, num_classes, kernel_size=1))
    return model


WRONG = [
    (whole_classifier, ["ASPP head kept", "whole head was replaced", "ASPP and its pretrained layers are gone"]),
    (linear_layer, ["new last layer", "nn.Linear works on the LAST axis", "not on the channels"]),
    (forgets_return, ["returns the model", "None", "not returned"]),
    (returns_the_layer, ["returns the model", "Conv2d(256, 3", "not returned"]),
    (three_by_three, ["new last layer", "kernel_size=1", "(3, 3)"]),
    (reinitialises_everything, ["other weights untouched", "these changed", "backbone.conv.weight"]),
    (appends_a_layer, ["ASPP head kept", "a layer was added", "appended instead of replacing"]),
]


def test_reference_passes() -> None:
    assert EX.run_checks(EX.reference).passed
    assert EX.reference is replace_deeplab_head


def test_stub_is_not_implemented() -> None:
    verdict = EX.run_checks(stub())
    assert not verdict.passed and "not implemented yet" in verdict.message


@pytest.mark.parametrize(("wrong", "words"), WRONG, ids=[w.__name__ for w, _ in WRONG])
def test_wrong_answers_fail_with_a_teaching_message(wrong, words) -> None:
    verdict = EX.run_checks(wrong)
    assert not verdict.passed
    for word in words:
        assert word in verdict.message, verdict.message


@pytest.mark.parametrize("n", [0, 4])
def test_hint_out_of_range(n: int) -> None:
    with pytest.raises(ValueError, match="hints 1..3"):
        EX.hint(n)


def test_small_deeplab_has_the_head_of_deeplabv3_resnet50() -> None:
    """The checks' model has the same head layout as the real one (only the backbone differs)."""
    real = deeplabv3_resnet50(weights=None, weights_backbone=None, aux_loss=False).classifier
    small = small_deeplab().classifier
    assert [type(m).__name__ for m in small] == [type(m).__name__ for m in real]
    assert [repr(m) for m in list(small)[1:]] == [repr(m) for m in list(real)[1:]]


def test_reference_on_the_real_model_keeps_everything_but_the_last_layer() -> None:
    model = deeplabv3_resnet50(weights=None, weights_backbone=None, aux_loss=False)
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("classifier.4.")}
    replace_deeplab_head(model, 5)
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert model.classifier[4].in_channels == 256 and model.classifier[4].out_channels == 5
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, 64, 64))["out"].shape == (1, 5, 64, 64)
