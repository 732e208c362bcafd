"""workshop.inference: one image, a folder, mask PNGs, a trained run reloaded; and the inference viewer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from workshop.config import load_config
from workshop.errors import DataError, WorkshopError
from workshop.inference import (
    load_trained_model,
    predict_mask,
    predict_paths,
    predict_probabilities,
    probabilities_to_mask,
    save_mask_png,
)
from workshop.runs import train_from_config
from workshop.widgets import inference_viewer

PNG_MAGIC = b"\x89PNG"


class RedIsForeground(nn.Module):
    """logit = 4 * (normalised red - normalised green): red pixels are foreground, whatever the size."""

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, kernel_size=1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.zero_()
            self.conv.weight[0, 0] = 4.0
            self.conv.weight[0, 1] = -4.0
            if channels > 1:
                self.conv.weight[1, 1] = 4.0  # class 1 where green is bright
                self.conv.weight[1, 0] = -4.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def red_square(height: int = 48, width: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """Green image with a red rectangle; the mask is the rectangle."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 1] = 200
    mask = np.zeros((height, width), np.int64)
    mask[10:30, 20:60] = 1
    image[mask == 1] = (230, 20, 20)
    return image, mask


# ------------------------------------------------------------------------------ one image


@pytest.mark.parametrize(("height", "width", "size"), [(48, 80, 32), (64, 64, 64), (100, 37, 32)])
def test_predict_mask_is_at_the_image_size_and_finds_the_square(height: int, width: int, size: int) -> None:
    image, mask = red_square(height, width)
    out = predict_mask(RedIsForeground(), image, size)
    assert out.shape == (height, width) and out.dtype == np.int64
    assert set(np.unique(out).tolist()) <= {0, 1}
    assert (out == mask).mean() > 0.95


def mask_as_predicted_before_issue_23(model: nn.Module, image: np.ndarray, size: int, threshold: float) -> np.ndarray:
    """What ``workshop predict`` computed before it ran ``predict_mask`` (the removed ``predict_image``)."""
    return probabilities_to_mask(predict_probabilities(model, image, size, "cpu"), threshold)


class Scrambled(nn.Module):
    """A fixed random 3x3 convolution: logits with no structure, many near-ties between classes."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        torch.manual_seed(channels)
        self.conv = nn.Conv2d(3, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.mark.parametrize("channels", [1, 2, 5])
def test_predict_mask_gives_the_masks_predict_gave_before(channels: int) -> None:
    images = [red_square()[0], np.random.default_rng(3).integers(0, 256, (45, 71, 3), dtype=np.uint8)]
    for model in (RedIsForeground(channels=min(channels, 2)), Scrambled(channels)):
        for image in images:
            for threshold in (0.3, 0.5, 0.9):
                expected = mask_as_predicted_before_issue_23(model, image, 32, threshold)
                assert np.array_equal(predict_mask(model, image, 32, threshold), expected)


def test_predict_paths_runs_predict_mask(tmp_path, monkeypatch) -> None:
    import workshop.inference

    calls = []
    original = workshop.inference.predict_mask

    def spy(*args, **kwargs):
        calls.append(args[2:])
        return original(*args, **kwargs)

    monkeypatch.setattr(workshop.inference, "predict_mask", spy)
    Image.fromarray(red_square()[0]).save(tmp_path / "one.png")
    predict_paths(RedIsForeground(), tmp_path / "one.png", tmp_path / "out", image_size=32, threshold=0.7)
    assert calls == [(32, 0.7)]


def test_predict_mask_multiclass_takes_the_argmax() -> None:
    image, mask = red_square()
    out = predict_mask(RedIsForeground(channels=2), image, 32)
    assert (out == 1 - mask).mean() > 0.95  # class 1 (green) everywhere but the red square


def test_predict_mask_leaves_batchnorm_statistics_alone() -> None:
    model = nn.Sequential(RedIsForeground(), nn.BatchNorm2d(1)).train()
    predict_mask(model, red_square()[0], 32)
    assert int(model[1].num_batches_tracked) == 0 and not model.training


def test_probabilities_to_mask() -> None:
    probs = np.array([[[0.2, 0.6], [0.5, 0.9]]], np.float32)
    assert probabilities_to_mask(probs).tolist() == [[0, 1], [0, 1]]
    assert probabilities_to_mask(probs, threshold=0.1).tolist() == [[1, 1], [1, 1]]
    three = np.stack([probs[0], 1 - probs[0], np.array([[0.0, 0.0], [0.55, 0.0]], np.float32)])
    assert probabilities_to_mask(three).tolist() == [[1, 0], [2, 0]]


# ------------------------------------------------------------------------------ files


def test_save_mask_png_binary_as_255_and_class_ids_as_they_are(tmp_path) -> None:
    binary = np.array([[0, 1], [1, 0]])
    path = save_mask_png(binary, tmp_path / "sub" / "b.png")
    assert np.array(Image.open(path)).tolist() == [[0, 255], [255, 0]]
    ids = np.array([[0, 1], [2, 3]])
    assert np.array(Image.open(save_mask_png(ids, tmp_path / "m.png"))).tolist() == [[0, 1], [2, 3]]


def test_predict_paths_writes_a_mask_and_an_overlay_per_image(tmp_path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    image, mask = red_square()
    for name in ("a", "b"):
        Image.fromarray(image).save(inputs / f"{name}.png")
    (inputs / "notes.txt").write_text("not an image")
    written = predict_paths(RedIsForeground(), inputs, tmp_path / "out", image_size=32)
    assert [r["image"].rsplit("/", 1)[-1] for r in written] == ["a.png", "b.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_mask.png", "a_overlay.png", "b_mask.png", "b_overlay.png"]
    saved = np.array(Image.open(tmp_path / "out" / "a_mask.png"))
    assert saved.shape == mask.shape and ((saved == 255) == (mask == 1)).mean() > 0.95
    assert written[0]["foreground"] == pytest.approx(mask.mean(), abs=0.03)
    overlay = np.array(Image.open(tmp_path / "out" / "a_overlay.png"))
    assert overlay.shape == image.shape


def test_predict_paths_single_file(tmp_path) -> None:
    image, _ = red_square()
    Image.fromarray(image).save(tmp_path / "one.png")
    written = predict_paths(RedIsForeground(), tmp_path / "one.png", tmp_path / "out", image_size=32)
    assert len(written) == 1 and (tmp_path / "out" / "one_mask.png").is_file()


def test_predict_paths_missing_input_names_it(tmp_path) -> None:
    missing = tmp_path / "no_such_folder"
    with pytest.raises(DataError, match="no_such_folder"):
        predict_paths(RedIsForeground(), missing, tmp_path / "out", image_size=32)


def test_predict_paths_folder_without_images_names_it(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images in .*empty"):
        predict_paths(RedIsForeground(), tmp_path / "empty", tmp_path / "out", image_size=32)


def test_predict_paths_unreadable_image_names_it(tmp_path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        predict_paths(RedIsForeground(), tmp_path / "in", tmp_path / "out", image_size=32)


# ------------------------------------------------------------------------------ a trained run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    cfg = load_config(profile="smoke", overrides={"train": {"device": "cpu"}})
    run_dir = tmp_path_factory.mktemp("run")
    result = train_from_config(cfg, run_dir=run_dir, log=lambda line: None)
    return cfg, result


def test_load_trained_model_round_trip(tiny_run) -> None:
    cfg, result = tiny_run
    model, state = load_trained_model(result.run_dir)
    assert not model.training
    assert state["class_names"] == ["background", "building"]
    assert state["config"]["data"]["image_size"] == cfg.data.image_size
    saved = torch.load(result.run_dir / "checkpoints" / "best.pt", map_location="cpu", weights_only=False)["model"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key
    image = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    probs = predict_probabilities(model, image, cfg.data.image_size)
    assert probs.shape == (1, 50, 70) and probs.dtype == np.float32 and 0 <= probs.min() <= probs.max() <= 1
    assert np.array_equal(predict_mask(model, image, cfg.data.image_size), probabilities_to_mask(probs))


def test_load_trained_model_accepts_the_checkpoint_file(tiny_run) -> None:
    _, result = tiny_run
    model, state = load_trained_model(result.run_dir / "checkpoints" / "last.pt")
    assert state["epoch"] == 1 and not model.training


def test_load_trained_model_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(WorkshopError, match="checkpoint not found"):
        load_trained_model(tmp_path / "nothing.pt")
    torch.save({"model": {}}, tmp_path / "bare.pt")
    with pytest.raises(WorkshopError, match="bare.pt has no config"):
        load_trained_model(tmp_path / "bare.pt")


# ------------------------------------------------------------------------------ the viewer


def viewer_inputs(n: int = 3):
    image, mask = red_square()
    model = RedIsForeground()
    images = [np.roll(image, 7 * i, axis=1) for i in range(n)]
    masks = [np.roll(mask, 7 * i, axis=1) for i in range(n)]
    probs = [predict_probabilities(model, im, 32) for im in images]
    return images, probs, masks


def test_viewer_builds_headless_and_follows_its_sliders() -> None:
    images, probs, masks = viewer_inputs()
    box = inference_viewer(images, probs, masks)
    state = box.viewer
    assert state.error is None and state.renders == 1
    assert state.view.value[:4] == PNG_MAGIC
    assert "image 1/3" in state.caption.value and "IoU with the ground truth" in state.caption.value
    assert np.array_equal(state.shown["prediction"], probabilities_to_mask(probs[0]))
    state.index.value = 2
    assert state.shown["index"] == 2 and "image 3/3" in state.caption.value
    assert np.array_equal(state.shown["prediction"], probabilities_to_mask(probs[2]))
    grown = state.shown["prediction"].sum()
    state.threshold.value = 0.95
    assert state.shown["prediction"].sum() <= grown and "threshold 0.95" in state.caption.value
    before = state.view.value
    state.opacity.value = 0.9
    assert state.view.value != before and state.renders == 4 and state.error is None


def test_viewer_without_masks_and_multiclass() -> None:
    images, probs, _ = viewer_inputs(2)
    state = inference_viewer(images, [p[0] for p in probs]).viewer  # (H, W) maps work too
    assert state.error is None and "IoU" not in state.caption.value
    three = [np.stack([p[0], 1 - p[0], np.zeros_like(p[0])]) for p in probs]
    state = inference_viewer(images, three).viewer
    assert state.error is None and state.threshold.disabled
    assert set(np.unique(state.shown["prediction"]).tolist()) <= {0, 1}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda ims, ps, ms: (ims, ps[:1], ms), "2 images but 1 probability maps"),
        (lambda ims, ps, ms: (ims, ps, ms[:1]), "1 masks"),
        (lambda ims, ps, ms: (ims, [p[:, :10] for p in ps], ms), "predict at the image's own size"),
        (lambda ims, ps, ms: (ims, [p * 5 - 2 for p in ps], ms), "not logits"),
        (lambda ims, ps, ms: ([], [], None), "at least one image"),
    ],
)
def test_viewer_rejects_inputs_that_do_not_fit(change, words) -> None:
    images, probs, masks = change(*viewer_inputs(2))
    with pytest.raises(ValueError, match=words):
        inference_viewer(images, probs, masks)


def test_a_run_saved_before_model_decoder_existed_still_loads(tmp_path) -> None:
    """Checkpoints written before the ``model.decoder`` key had smp's standard decoder."""
    from workshop.engine import save_checkpoint
    from workshop.models import create_model

    cfg = load_config(profile="smoke", overrides={"model": {"encoder_weights": None}})
    old_config = cfg.to_dict()
    del old_config["model"]["decoder"]
    standard = create_model("unet", "mobilenet_v2", None, 1)
    save_checkpoint({"model": standard.state_dict(), "config": old_config, "class_names": ["background", "building"]},
                    tmp_path / "checkpoints" / "best.pt")
    model, _ = load_trained_model(tmp_path)
    assert model.decoder_channels is None
    for key, value in standard.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_a_light_decoder_run_reloads_with_its_decoder(tiny_run) -> None:
    cfg, result = tiny_run
    assert cfg.model.decoder == "light"
    model, state = load_trained_model(result.run_dir)
    assert model.decoder_channels == (128, 64, 32, 16, 8)
    assert state["config"]["model"]["decoder"] == "light"

