"""``workshop evaluate``: scores from a confusion matrix, a run scored at the labels' resolution; multiclass predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workshop.config import load_config
from workshop.errors import WorkshopError
from workshop.evaluate import evaluate_run, scores_from_confusion


def save(array, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


def test_scores_from_a_hand_made_confusion_matrix() -> None:
    # rows true, columns predicted: bg 3 right 1 wrong; fg 4 right; class "none" never occurs
    cm = np.array([[3, 1, 0], [0, 4, 0], [0, 0, 0]])
    s = scores_from_confusion(cm, ["bg", "fg", "none"])
    fg, bg = s["per_class"]["fg"], s["per_class"]["bg"]
    assert fg["iou"] == pytest.approx(4 / 5) and bg["iou"] == pytest.approx(3 / 4)
    assert fg["dice"] == pytest.approx(8 / 9) and fg["precision"] == pytest.approx(4 / 5) and fg["recall"] == 1.0
    assert bg["precision"] == 1.0 and bg["recall"] == pytest.approx(3 / 4)
    assert s["per_class"]["none"]["iou"] is None, "a class in neither labels nor predictions has no score"
    assert s["miou"] == pytest.approx((0.8 + 0.75) / 2) and s["pixel_accuracy"] == pytest.approx(7 / 8)
    assert fg["pixels"] == 4 and bg["pixels"] == 4


def make_multiclass(root: Path, n: int, h: int, w: int, void: bool = False) -> Path:
    for k in range(n):
        img = np.random.default_rng(k).integers(0, 256, (h, w, 3), dtype=np.uint8)
        ids = (np.arange(w)[None, :].repeat(h, 0) * 3 // w).astype(np.uint8)  # three vertical bands 0, 1, 2
        if void:
            ids[0, :] = 255
        save(img, root / "images" / f"{k}.png")
        save(ids, root / "masks" / f"{k}.png")
    return root


@pytest.fixture(scope="module")
def multiclass_run(tmp_path_factory) -> Path:
    from workshop.runs import train_from_config

    base = tmp_path_factory.mktemp("eval")
    data = make_multiclass(base / "train", 4, 16, 16)
    cfg = load_config(profile="smoke", overrides={
        "data": {"source": "folder", "root": str(data), "masks_dir": "masks", "task": "multiclass", "image_size": 32,
                 "batch_size": 2},
        "model": {"encoder_weights": None}, "train": {"device": "cpu", "epochs": 1, "loss": "dice_ce"}})
    train_from_config(cfg, run_dir=base / "run", log=lambda line: None)
    return base / "run"


def test_evaluate_scores_every_labelled_pixel_at_full_resolution(multiclass_run, tmp_path) -> None:
    data = make_multiclass(tmp_path / "test", 3, 20, 30, void=True)  # another size than training, a void row
    result = evaluate_run(multiclass_run, str(data), out=tmp_path / "out", device="cpu", log=lambda line: None)
    cm = np.array(result["confusion_matrix"])
    assert cm.shape == (3, 3) and cm.sum() == 3 * 19 * 30, "every non-ignored pixel of the labels, at their size"
    assert [cm[i].sum() for i in range(3)] == [3 * 19 * 10] * 3
    assert result["class_names"] == ["background", "class_1", "class_2"]
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["miou"] == pytest.approx(np.mean([c["iou"] for c in saved["per_class"].values() if c["iou"] is not None]))
    assert saved["pixel_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    for name in ("confusion.png", "worst.png", "per_image.csv"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert len((tmp_path / "out" / "per_image.csv").read_text().splitlines()) == 4


def test_evaluate_refuses_data_with_other_classes_and_instance_runs(multiclass_run, tmp_path) -> None:
    five = tmp_path / "five"
    for k in range(2):
        save(np.zeros((8, 8, 3)), five / "images" / f"{k}.png")
        save(np.arange(64).reshape(8, 8) % 5, five / "masks" / f"{k}.png")
    with pytest.raises(WorkshopError, match=r"0.png: mask values not in the label map: \{3, 4\} .*valid ids: \{0, 1, 2, 255\}"):
        evaluate_run(multiclass_run, str(five), device="cpu", log=lambda line: None)
    instance = tmp_path / "instance-run"
    instance.mkdir()
    (instance / "stages.json").write_text("[]")
    with pytest.raises(WorkshopError, match=r"instance \(Mask R-CNN\) run: it is scored by box and mask mAP, with .*evaluate_instance_run"):
        evaluate_run(instance, str(five), log=lambda line: None)
    with pytest.raises(WorkshopError, match="run not found"):
        evaluate_run(tmp_path / "nothing", str(five))


def test_evaluate_without_data_scores_the_runs_own_validation_images(multiclass_run, tmp_path, capsys) -> None:
    from workshop.cli import main
    from workshop.data.sources import config_splits

    result = evaluate_run(multiclass_run, out=tmp_path / "own", device="cpu", log=lambda line: None)
    splits = config_splits(load_config(multiclass_run / "config.yaml"))
    held_out = sorted(str(item.image) for item in splits.val[1])
    trained = {str(item.image) for item in splits.train[1]}
    rows = (tmp_path / "own" / "per_image.csv").read_text().splitlines()[1:]
    assert held_out and not trained & set(held_out)
    assert sorted(row.split(",")[0] for row in rows) == held_out, "exactly the images the training held out"
    assert result["split"] == "val" and result["images"] == len(held_out)
    assert result["data"].startswith("the run's validation split (")
    with pytest.raises(WorkshopError, match=r"--split test: without DATA the run is scored on its own validation split"):
        evaluate_run(multiclass_run, split="test", device="cpu", log=lambda line: None)
    assert main(["evaluate", str(multiclass_run)]) == 0
    assert "split val): mIoU" in capsys.readouterr().out and (multiclass_run / "evaluate-own-val" / "metrics.json").is_file()


def test_cli_evaluate_and_multiclass_predict(multiclass_run, tmp_path, capsys) -> None:
    from workshop.cli import main

    data = make_multiclass(tmp_path / "test", 2, 12, 12)
    assert main(["evaluate", str(multiclass_run), str(data), "--out", str(tmp_path / "ev")]) == 0
    out = capsys.readouterr().out
    assert "2 images (folder pairs, split all): mIoU" in out and "class_1" in out
    assert main(["evaluate", str(multiclass_run), str(data), "--split", "test"]) == 2
    assert "has no split 'test'; choose one of: all" in capsys.readouterr().err

    assert main(["predict", str(multiclass_run), str(data / "images"), "--out", str(tmp_path / "pred")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "foreground" not in lines[0] and "(class ids: " in lines[0]
    shares = [float(part.rsplit(" ", 1)[1].rstrip("%")) for part in lines[0].rsplit(".png: ", 1)[1].split(", ")]
    assert sum(shares) == pytest.approx(100.0, abs=0.2)
    colour = Image.open(tmp_path / "pred" / "0_mask.png")
    ids = np.asarray(Image.open(tmp_path / "pred" / "0_ids.png"))
    assert colour.mode == "P" and np.array_equal(np.asarray(colour), ids), "the colour PNG's values are the class ids"
    palette = np.asarray(colour.getpalette()[:9]).reshape(3, 3)
    assert len({tuple(c) for c in palette}) == 3, "one colour per class"
