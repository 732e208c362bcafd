"""One reader: ``workshop data check`` and ``workshop train`` see a folder, a file and a pairing the same way.

A learner's own folder (issue 24): masks named ``scene_00_mask.png`` in ``labels/``, a plain
``images/`` + ``masks/`` folder with only ``data.root``, a relative ``images_dir`` written from the
working folder, images without a mask. A VIA export cut short in transfer (issue 23). Each is run
through the command line, in the smoke profile, with a tiny model standing in for the U-Net.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from workshop import cli
from workshop.data.datasets import CSVDataset, FolderDataset, PairDataset, PolygonDataset, SegmentationDataset, SourceDataset
from workshop.errors import DataError


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tiny_create_model(arch, encoder="mobilenet_v2", encoder_weights=None, num_classes=1, *args, **kwargs):
    """Stands in for ``workshop.models.create_model``: the data path is under test, not the U-Net."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, num_classes, 1))


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    import workshop.models

    monkeypatch.setenv("WORKSHOP_PROFILE", "smoke")
    monkeypatch.setattr(workshop.models, "create_model", tiny_create_model)
    monkeypatch.chdir(tmp_path)  # relative paths in configs are read from here, as a learner's would be
    return tmp_path


def photos(root: Path, images: str, masks: str, n: int = 6, suffix: str = "", ext: str = ".jpg") -> Path:
    """``n`` photos 24x32 in ``root/images`` with 0/255 masks in ``root/masks``, masks named ``stem + suffix``."""
    rng = np.random.default_rng(0)
    for k in range(n):
        (root / images).mkdir(parents=True, exist_ok=True)
        (root / masks).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(root / images / f"scene_{k:02d}{ext}", quality=95)
        mask = np.zeros((24, 32), np.uint8)
        mask[4 + k: 14 + k, 6:20] = 255
        Image.fromarray(mask).save(root / masks / f"scene_{k:02d}{suffix}.png")
    return root


def write_config(path: Path, **data) -> Path:
    lines = ["data:", "  source: folder"] + [f"  {k}: {v}" for k, v in data.items()]
    lines += ["model:", "  encoder_weights: null", "train:", "  epochs: 1"]
    path.write_text("\n".join(lines) + "\n")
    return path


def train(capsys, config: Path, run: Path) -> tuple[int, str, str]:
    return run_cli(capsys, "train", "--config", config, "--run-dir", run, "--max-minutes", "1e-7")


# ----------------------------------------------------------------------------- a learner's own folder


def test_masks_named_with_a_suffix_pair_the_same_in_check_and_train(tiny, capsys) -> None:
    photos(tiny / "project", "photos", "labels", suffix="_mask")
    code, out, _ = run_cli(capsys, "data", "check", "project", "--images-dir", "photos", "--masks-dir", "labels")
    assert code == 0 and out.splitlines()[-2].startswith("OK: ready to train")
    assert "6 images, 6 masks, 6 pairs" in out and "mask names add '_mask' to the image names; paired that way" in out
    # images_dir written from the working folder (project/photos) is not joined to the root twice
    config = write_config(tiny / "own.yaml", root="project", images_dir="project/photos", masks_dir="labels")
    code, out, err = train(capsys, config, tiny / "run")
    assert (code, err) == (0, ""), err
    assert "data: 5 training / 1 validation images (folder, binary" in out, "all 6 pairs, as data check found them"
    assert "data check (folders photos/ + labels/): 1 warning(s)" in out


def test_a_plain_images_and_masks_folder_trains_with_only_the_root(tiny, capsys) -> None:
    photos(tiny / "plain", "images", "masks", ext=".png")
    config = write_config(tiny / "plain.yaml", root="plain")
    code, out, err = train(capsys, config, tiny / "run")
    assert (code, err) == (0, ""), err
    assert "data: 5 training / 1 validation images (folder, binary" in out
    code, out, _ = run_cli(capsys, "data", "check", "plain")
    assert code == 0 and out.splitlines()[0] == "data check of plain (folders images/ + masks/, task binary)"


def train_printed_command(capsys, out: str, run: Path) -> tuple[int, str, str]:
    """Run the ``workshop train`` command that ``data check`` printed last, as a learner pastes it
    (with a run folder and a budget of a single step added, so the test stays short)."""
    command = out.splitlines()[-1].strip()
    argv = shlex.split(command)
    assert argv[:2] == ["workshop", "train"], command
    return run_cli(capsys, *argv[1:], "--run-dir", run, "--max-minutes", "1e-7")


@pytest.mark.parametrize(("images", "masks", "suffix", "expected"), [
    ("photos", "labels", "_mask", "workshop train --set data.source=folder --set data.root=project "
                                  "--set data.images_dir=photos --set data.masks_dir=labels"),
    ("images", "masks", "", "workshop train --set data.source=folder --set data.root=project"),
    ("images", "labels", "", "workshop train --set data.source=folder --set data.root=project --set data.masks_dir=labels"),
], ids=["own names with a suffix", "plain images and masks", "masks elsewhere"])
def test_data_check_ends_with_the_train_command_and_that_command_trains(tiny, capsys, images, masks, suffix, expected) -> None:
    photos(tiny / "project", images, masks, suffix=suffix)
    argv = ["data", "check", "project"] + (["--images-dir", images] if images != "images" else [])
    argv += ["--masks-dir", masks] if masks != "masks" else []
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0 and out.splitlines()[-2].startswith("OK: ready to train")
    assert out.splitlines()[-1] == "  " + expected
    code, out, err = train_printed_command(capsys, out, tiny / "run")
    assert (code, err) == (0, ""), err
    assert "data: 5 training / 1 validation images (folder, binary" in out, "all 6 pairs, as data check found them"


def test_a_multiclass_folder_command_names_the_task_and_the_label_map(tiny, capsys) -> None:
    root = photos(tiny / "project", "images", "masks", ext=".png")
    for mask in (root / "masks").iterdir():  # class ids 0 and 2 instead of 0/255
        Image.fromarray((np.asarray(Image.open(mask)) > 0).astype(np.uint8) * 2).save(mask)
    (root / "labelmap.json").write_text(json.dumps({"classes": [
        {"name": "background", "id": 0, "color": [0, 0, 0]}, {"name": "road", "id": 1, "color": [128, 64, 128]},
        {"name": "car", "id": 2, "color": [0, 0, 142]}]}))
    code, out, _ = run_cli(capsys, "data", "check", "project")
    assert code == 0, out
    assert out.splitlines()[-1] == ("  workshop train --set data.source=folder --set data.root=project "
                                    "--set data.task=multiclass --set data.label_map=project/labelmap.json --set train.loss=dice_ce")
    code, out, err = train_printed_command(capsys, out, tiny / "run")
    assert (code, err) == (0, ""), err
    assert "(folder, multiclass" in out


def test_train_with_only_set_starts_from_the_profile_defaults(tiny, capsys) -> None:
    photos(tiny / "project", "photos", "labels", suffix="_mask")
    code, out, err = run_cli(capsys, "train", "--set", "data.source=folder", "--set", "data.root=project",
                             "--set", "data.images_dir=photos", "--set", "data.masks_dir=labels",
                             "--run-dir", tiny / "run", "--max-minutes", "1e-7")
    assert (code, err) == (0, ""), err
    assert "data: 5 training / 1 validation images (folder, binary" in out
    saved = (tiny / "run" / "config.yaml").read_text()
    assert "profile: smoke" in saved and "root: project" in saved and "masks_dir: labels" in saved


def test_images_without_a_mask_are_named_with_the_names_tried(tiny, capsys) -> None:
    root = photos(tiny / "project", "photos", "labels", suffix="_mask")
    for k in (3, 4):
        (root / "labels" / f"scene_{k:02d}_mask.png").unlink()
    expected = "image has no mask (no scene_03.* or scene_03_mask.* in labels/)"
    code, out, _ = run_cli(capsys, "data", "check", "project", "--images-dir", "photos", "--masks-dir", "labels")
    assert code == 1 and expected in out and "photos/scene_04.jpg" in out
    config = write_config(tiny / "own.yaml", root="project", images_dir="photos", masks_dir="labels")
    code, _, err = train(capsys, config, tiny / "run")
    assert code == 2 and "data check found 2 error(s) in 2 file(s)" in err and expected in err
    assert "images folder not found" not in err


def test_the_source_error_names_the_cause_and_the_names_tried(tmp_path) -> None:
    root = photos(tmp_path, "photos", "labels", suffix="_label")
    (root / "labels" / "scene_00_label.png").rename(root / "labels" / "other.png")
    with pytest.raises(DataError) as info:
        FolderDataset(root / "photos", root / "labels")
    message = str(info.value)
    assert message.startswith(f"1 image(s) in {root / 'photos'} have no mask in {root / 'labels'}: scene_00.jpg; "
                              "for scene_00.jpg it looked for scene_00.* or scene_00_label.*")


# ----------------------------------------------------------------------------- one answer for a broken file


def test_a_via_export_cut_short_gets_the_same_message_from_check_and_train(tiny, capsys) -> None:
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tiny / "a.jpg")
    full = json.dumps({"a.jpg8": {"filename": "a.jpg", "size": 8, "regions": [
        {"shape_attributes": {"name": "rect", "x": 1, "y": 1, "width": 4, "height": 4}, "region_attributes": {}}]}})
    export = tiny / "via_region_data.json"
    export.write_text(full[: len(full) // 2])  # the transfer stopped half way
    code, out, _ = run_cli(capsys, "data", "check", export)
    assert code == 1 and "not valid JSON" in out and "is the export complete?" in out
    assert "none of the annotation formats" not in out
    code, out, _ = run_cli(capsys, "data", "check", tiny)  # the folder holding it: the same cause
    assert code == 1 and "is the export complete?" in out
    config = tiny / "via.yaml"
    config.write_text(f"data:\n  source: annotations\n  root: {export}\nmodel:\n  encoder_weights: null\n")
    code, _, err = train(capsys, config, tiny / "run")
    assert code == 2 and "not valid JSON" in err and "is the export complete?" in err


# ----------------------------------------------------------------------------- one dataset family


def test_every_semantic_data_set_runs_the_taught_getitem(tmp_path) -> None:
    from workshop.config import load_config
    from workshop.data.loaders import make_datasets
    from workshop.data.synthetic import ensure_dataset

    root = photos(tmp_path, "images", "masks", n=3, ext=".png")
    (tmp_path / "pairs.csv").write_text("images,masks\n" + "".join(f"images/scene_{k:02d}.png,masks/scene_{k:02d}.png\n" for k in range(3)))
    pairs = [(root / "images" / f"scene_{k:02d}.png", root / "masks" / f"scene_{k:02d}.png") for k in range(3)]
    poly_root = ensure_dataset(tmp_path / "embedded", 4, 32, 0)
    train, val = make_datasets(load_config(profile="smoke"))
    built = [train, val, FolderDataset(root / "images", root / "masks"), CSVDataset(tmp_path / "pairs.csv"),
             PairDataset(pairs), PolygonDataset(poly_root)]
    for ds in built:
        assert isinstance(ds, SegmentationDataset), type(ds).__name__
        assert type(ds).__getitem__ is SegmentationDataset.__getitem__, f"{type(ds).__name__} has a __getitem__ of its own"
    assert isinstance(train, SourceDataset)
    # the taught class and the pair data set read the same files to the same sample
    taught = SegmentationDataset([p for p, _ in pairs], [m for _, m in pairs])
    for k in range(3):
        np.testing.assert_array_equal(taught[k]["mask"], PairDataset(pairs)[k]["mask"])
        np.testing.assert_array_equal(taught[k]["image"], FolderDataset(root / "images", root / "masks")[k]["image"])
