"""The ``workshop`` command line: exit codes and the one-line errors a learner sees."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from workshop import cli
from workshop.config import TrainConfig
from workshop.engine import load_checkpoint
from workshop.errors import DataError


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_doctor_prints_versions_and_offline_weights(capsys) -> None:
    import albumentations
    import segmentation_models_pytorch
    import torchvision

    code, out, _ = run_cli(capsys, "doctor")
    assert code == 0
    fields = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in out.splitlines()}
    assert fields["torch"] == torch.__version__
    assert fields["torchvision"] == torchvision.__version__
    assert fields["segmentation_models_pytorch"] == segmentation_models_pytorch.__version__
    assert fields["albumentations"] == albumentations.__version__
    assert fields["offline_weights"]
    assert fields["device"] == ("cuda" if torch.cuda.is_available() else "cpu")


def test_unknown_config_key_lists_the_valid_keys(tmp_path, capsys) -> None:
    config = tmp_path / "x.yaml"
    config.write_text("train:\n  learning_rate: 0.1\n")
    code, _, err = run_cli(capsys, "train", "--config", config)
    valid = ", ".join(f.name for f in dataclasses.fields(TrainConfig))
    assert code == 2
    assert err == f"error: unknown config key 'train.learning_rate'; valid keys in train: {valid}\n"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_on_a_cpu_machine_is_a_one_line_error(tmp_path, capsys) -> None:
    config = tmp_path / "x.yaml"
    config.write_text("train:\n  epochs: 1\n")
    code, _, err = run_cli(capsys, "train", "--config", config, "--set", "train.device=cuda")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: CUDA was requested but this machine has no CUDA GPU (available: cpu")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--set", "data.source=folder"], "error: data.root must name the data folder when data.source is 'folder'"),
        (["train", "--config", "missing.yaml"], "error: config file not found: missing.yaml"),
        (["train", "--resume", "no-such-run"], "error: config file not found: no-such-run/config.yaml"),
        (["predict", "no-such-run", "x.png"], "error: checkpoint not found: no-such-run"),
    ],
)
def test_user_errors_exit_2_with_one_line(capsys, argv, message) -> None:
    code, _, err = run_cli(capsys, *argv)
    assert (code, err) == (2, message + "\n")


# ----------------------------------------------------------------------------- a real smoke run


def tiny_create_model(arch, encoder="mobilenet_v2", encoder_weights=None, num_classes=1, *args, **kwargs):
    """Stands in for ``workshop.models.create_model``: the CLI's plumbing is under test, not the U-Net."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, num_classes, 1))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """A smoke-profile run stopped by a tiny time budget after one step of epoch 1."""
    import workshop.models

    tmp = tmp_path_factory.mktemp("cli")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKSHOP_DATA_DIR", str(tmp / "data"))
        mp.setenv("WORKSHOP_PROFILE", "smoke")
        mp.setattr(workshop.models, "create_model", tiny_create_model)
        config = tmp / "smoke.yaml"
        config.write_text("model:\n  encoder_weights: null\ntrain:\n  epochs: 2\n")
        run = tmp / "run"
        assert cli.main(["train", "--config", str(config), "--run-dir", str(run), "--max-minutes", "1e-7"]) == 0
        yield run


def test_resume_with_max_minutes_continues_the_run(smoke_run, capsys) -> None:
    first = load_checkpoint(smoke_run / "checkpoints" / "last.pt")
    assert first["epoch"] == 1 and first["history"][0]["partial"] is True
    code, out, _ = run_cli(capsys, "train", "--resume", smoke_run, "--max-minutes", "5")
    assert code == 0
    assert "epoch   2/2" in out and "finished (finished)" in out
    history = json.loads((smoke_run / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2] and history[1]["partial"] is False
    for name in ("curves.png", "predictions.png", "checkpoints/best.pt"):
        assert (smoke_run / name).is_file()


def test_predict_missing_input_names_it(smoke_run, tmp_path, capsys) -> None:
    from workshop.inference import load_trained_model, predict_paths

    missing = tmp_path / "nope" / "photo.jpg"
    code, _, err = run_cli(capsys, "predict", smoke_run, missing, "--out", tmp_path / "out")
    assert (code, err) == (2, f"error: input not found: {missing}\n")
    model, _ = load_trained_model(smoke_run)
    with pytest.raises(DataError, match=f"input not found: {missing}"):
        predict_paths(model, missing, tmp_path / "out", 64)
    # And a real image is predicted.
    Image.fromarray(np.full((40, 50, 3), 128, np.uint8)).save(tmp_path / "grey.png")
    code, out, _ = run_cli(capsys, "predict", smoke_run, tmp_path / "grey.png", "--out", tmp_path / "out")
    assert code == 0 and out.endswith("1 image(s) predicted into " + str(tmp_path / "out") + "\n")
    with Image.open(tmp_path / "out" / "grey_mask.png") as mask:
        assert mask.size == (50, 40)


# ----------------------------------------------------------------------------- data check


def make_folder(root: Path, names=("a", "b")) -> Path:
    for k, name in enumerate(names):
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.random.default_rng(k).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / "images" / f"{name}.png")
        Image.fromarray(np.eye(8, dtype=np.uint8) * 255).save(root / "masks" / f"{name}.png")
    return root


def test_data_check_exit_codes(tmp_path, capsys) -> None:
    good = make_folder(tmp_path / "good")
    code, out, _ = run_cli(capsys, "data", "check", good)
    assert code == 0 and out.splitlines()[-2] == "OK: ready to train; train on it with:"
    assert out.splitlines()[-1] == f"  workshop train --set data.source=folder --set data.root={good}"
    broken = make_folder(tmp_path / "broken")
    (broken / "masks" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    code, out, _ = run_cli(capsys, "data", "check", broken)
    assert code == 1
    assert "masks/b.png\n  error: not a readable image (8 bytes that PIL does not recognise" in out
    assert out.splitlines()[-1] == "NOT OK: fix the errors above before training"
    code, out, _ = run_cli(capsys, "data", "check", tmp_path / "absent")
    assert code == 1 and "error: path not found" in out


def test_data_check_options(tmp_path, capsys) -> None:
    make_folder(tmp_path, names=("a",))
    (tmp_path / "images").rename(tmp_path / "pics")
    code, out, _ = run_cli(capsys, "data", "check", tmp_path, "--images-dir", "pics", "--masks-dir", "masks", "--task", "multiclass")
    assert code == 1, "0/255 masks checked as multiclass"
    assert "hold only [0, 255]: that is a binary task (data.task=binary / --task binary), not multiclass" in out
    Image.fromarray((np.arange(64).reshape(8, 8) % 3).astype(np.uint8)).save(tmp_path / "masks" / "a.png")
    code, out, _ = run_cli(capsys, "data", "check", tmp_path, "--images-dir", "pics", "--masks-dir", "masks", "--task", "multiclass")
    assert code == 0
    assert out.splitlines()[0] == f"data check of {tmp_path} (folders pics/ + masks/, task multiclass)"
    assert "no label map: 3 classes derived from the mask ids (background, class_1, class_2)" in out
    lm = tmp_path / "labels.json"
    lm.write_text(json.dumps({"classes": [{"name": n, "id": i, "color": [i, i, i]} for i, n in enumerate(["bg", "car"])]}))
    code, out, _ = run_cli(capsys, "data", "check", tmp_path, "--images-dir", "pics", "--masks-dir", "masks", "--label-map", str(lm))
    assert code == 1 and "mask values not in the label map: {2}" in out, "--label-map declares the valid ids (and implies multiclass)"
    code, out, _ = run_cli(capsys, "data", "check", tmp_path, "--images-dir", "pics", "--masks-dir", "masks", "--label-map", str(lm),
                           "--ignore-index", "2")
    assert code == 0, "an ignore id is declared with --ignore-index"
