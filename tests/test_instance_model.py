"""workshop.instance.model and .stages: the CPU Mask R-CNN, its parts, freezing, and YAML stage plans."""

from __future__ import annotations

import pytest
import torch

from workshop.errors import ConfigError
from workshop.instance import model as im
from workshop.instance.stages import STAGE_KEYS, Stage, load_stages, stages_from_list

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fpn_model():
    torch.manual_seed(0)
    return im.create_maskrcnn(num_classes=3, weights=None, min_size=64, max_size=64)


def test_fpn_model_has_parts_and_counts(fpn_model) -> None:
    rows = im.parameter_counts(fpn_model)
    names = [r["part"] for r in rows]
    assert names == [f"backbone.stage{i}" for i in range(1, 6)] + ["neck", "rpn", "roi_heads", "total"]
    assert rows[-1]["total"] == sum(p.numel() for p in fpn_model.parameters())
    assert sum(r["total"] for r in rows[:-1]) == rows[-1]["total"]  # the parts cover the model exactly once
    assert rows[0]["total"] == 1664  # MobileNetV2 stage 1: conv 3x3x3x32 + depthwise 3x3x32 + pointwise 32x16 (FrozenBN has no parameters)
    text = im.format_parameter_counts(rows)
    assert text.splitlines()[0].split() == ["part", "total", "trainable"]


def test_predictors_fit_the_number_of_classes(fpn_model) -> None:
    heads = fpn_model.roi_heads
    assert heads.box_predictor.cls_score.out_features == 3 and heads.box_predictor.bbox_pred.out_features == 12
    assert heads.mask_predictor.mask_fcn_logits.out_channels == 3
    assert heads.mask_predictor.mask_fcn_logits.weight.std() < 0.01  # small start: mask probabilities near 0.5


def test_replace_predictors_keeps_input_sizes(fpn_model) -> None:
    model = im.create_maskrcnn(num_classes=91, weights=None)
    before = model.roi_heads.box_head.fc7.weight.clone()
    im.replace_predictors(model, 2)
    heads = model.roi_heads
    assert heads.box_predictor.cls_score.out_features == 2 and heads.mask_predictor.mask_fcn_logits.out_channels == 2
    assert heads.box_predictor.cls_score.in_features == 512 and heads.mask_predictor.conv5_mask.in_channels == 128
    assert torch.equal(heads.box_head.fc7.weight, before)
    with pytest.raises(ValueError, match="background"):
        im.replace_predictors(model, 1)


@pytest.mark.parametrize(
    ("trainable", "expected"),
    [
        ("heads", ["neck", "rpn", "roi_heads"]),
        (["heads", "backbone.stage5"], ["neck", "rpn", "roi_heads", "backbone.stage5"]),
        ("backbone", [f"backbone.stage{i}" for i in range(1, 6)]),
        ("all", [f"backbone.stage{i}" for i in range(1, 6)] + ["neck", "rpn", "roi_heads"]),
    ],
)
def test_set_trainable_parts(fpn_model, trainable, expected) -> None:
    assert im.set_trainable_parts(fpn_model, trainable) == expected
    rows = {r["part"]: r for r in im.parameter_counts(fpn_model)}
    for name, row in rows.items():
        if name != "total":
            assert row["trainable"] == (row["total"] if name in expected else 0), name


def test_unknown_part_lists_the_valid_names(fpn_model) -> None:
    with pytest.raises(ValueError, match=r"unknown trainable part 'backbone.layer4'; valid names: backbone.stage1, .*heads, backbone, all"):
        im.set_trainable_parts(fpn_model, ["heads", "backbone.layer4"])


def test_unknown_backbone_and_too_few_classes() -> None:
    with pytest.raises(ValueError, match="mobilenet_v2_fpn, mobilenet_v2"):
        im.create_maskrcnn(backbone="resnet50")
    with pytest.raises(ValueError, match="background"):
        im.create_maskrcnn(num_classes=1, weights=None)


@pytest.mark.parametrize("backbone", ["mobilenet_v2_fpn", "mobilenet_v2"])
def test_one_training_step_and_a_prediction(backbone) -> None:
    torch.manual_seed(0)
    model = im.create_maskrcnn(num_classes=2, backbone=backbone, weights=None, min_size=64, max_size=64)
    im.set_trainable_parts(model, "heads")
    masks = torch.zeros(1, 64, 64, dtype=torch.uint8)
    masks[0, 10:40, 12:30] = 1
    targets = [
        {"boxes": torch.tensor([[12.0, 10.0, 30.0, 40.0]]), "labels": torch.tensor([1]), "masks": masks},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 64, 64, dtype=torch.uint8)},
    ]
    model.train()
    losses = model([torch.rand(3, 64, 64), torch.rand(3, 64, 64)], targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
    assert losses["loss_mask"].item() == pytest.approx(0.693, abs=0.02)  # small predictor start: log 2
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.backbone.body.parameters()) if backbone.endswith("fpn") else True
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(3, 48, 64)])[0]
    assert out["masks"].shape[1:] == (1, 48, 64)


def test_imagenet_weights_load_offline_into_the_backbone() -> None:
    from workshop.weights import find_offline_mobilenet_v2, load_imagenet_state_dict

    if find_offline_mobilenet_v2() is None:
        pytest.skip("the offline MobileNetV2 weights are not installed")
    backbone = im.mobilenet_v2_backbone("imagenet", fpn=True)
    state, _ = load_imagenet_state_dict()
    assert torch.equal(backbone.body["0"][0].weight, state["features.0.0.weight"])
    assert torch.equal(backbone.body["18"][1].running_mean, state["features.18.1.running_mean"])


# ----------------------------------------------------------------------------- stages


def test_the_shipped_plan_loads() -> None:
    stages = load_stages(REPO / "configs" / "maskrcnn_progressive.yaml")
    assert [s.trainable for s in stages] == ["heads", ["heads", "backbone.stage4", "backbone.stage5"], "all"]
    assert all(s.epochs >= 1 and s.lr > 0 and s.step_size >= 1 for s in stages)


def test_unknown_stage_key_lists_the_valid_keys(tmp_path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text("stages:\n  - {title: heads, epochs: 1, lr: 0.01, step_size: 1, lr_step: 2}\n")
    with pytest.raises(ConfigError) as err:
        load_stages(path)
    message = str(err.value)
    assert str(path) in message and "stage 1 ('heads')" in message and "unknown key 'lr_step'" in message
    assert "valid keys: " + ", ".join(STAGE_KEYS) in message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("stage:\n  - {title: a}\n", "unknown top-level key 'stage'; valid keys: stages, profile"),
        ("stages: []\n", "non-empty list"),
        ("stages:\n  - {title: a, epochs: 1, lr: 0.01}\n", "missing step_size"),
        ("stages:\n  - {title: a, epochs: 0, lr: 0.01, step_size: 1}\n", "epochs must be an integer >= 1"),
        ("stages:\n  - {title: a, epochs: 1, lr: -1, step_size: 1}\n", "lr must be > 0"),
        ("stages:\n  - {title: a, epochs: 1, lr: 0.1, step_size: 1, optimizer: adam}\n", "choose one of: sgd, adamw"),
        ("stages:\n  - {title: a, epochs: 1, lr: 0.1, step_size: 1, trainable: 3}\n", "trainable must be"),
        ("stages:\n  - {title: a, epochs: 1, lr: 0.1, step_size: 1}\n  - {title: a, epochs: 1, lr: 0.1, step_size: 1}\n", "unique"),
        ("stages:\n  - {title: a, epochs: 1, lr: 0.1, step_sise: 1}\n", "did you mean 'step_size'?"),
        ("stages: [\n", "not valid YAML"),
    ],
)
def test_bad_plans_are_errors_that_say_what_is_wrong(tmp_path, text, words) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=None) as err:
        load_stages(path)
    assert words in str(err.value)


def test_missing_file_is_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_stages(tmp_path / "nope.yaml")


def test_stage_round_trips_through_a_dict() -> None:
    stage = Stage("x", 2, 0.01, 1, trainable=["heads"], gamma=0.5)
    assert stage.trainable == "heads" and stage.parts == ["heads"]
    assert stages_from_list([stage.to_dict()])[0] == stage
