"""The instance track from the command line: train (stages in steps, budget, resume), evaluate, predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from workshop.cli import main
from workshop.errors import ConfigError
from workshop.instance.plan import BudgetTooSmall, StagePlan, plan_steps, refit_remaining, scale_steps, stage_lr
from workshop.instance.stages import Stage

TINY = """\
data: {source: embedded, task: instance, num_images: 16, image_size: 64}
train: {device: cpu}
instance: {image_size: 64, batch_size: 2, min_stage_steps: 2, checkpoint_every: 2, eval_every_stage: false}
stages:
  - {title: heads, epochs: 1, lr: 0.01, step_size: 1, trainable: heads, warmup_steps: 2}
  - {title: all, epochs: 1, lr: 0.005, step_size: 1, trainable: all}
"""


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def tiny_run(tiny_config, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["train", "--config", str(tiny_config), "--run-dir", str(run)]) == 0
    return run


# ----------------------------------------------------------------------------- plan arithmetic


def test_scale_steps_hand_computed():
    # 150 s of steps for a 75 s budget: every stage halves
    assert scale_steps([30, 30, 30], [1.0, 2.0, 2.0], 75.0, 10) == [15, 15, 15]
    # stage 1 would get 5 < 10: it is fixed at 10; the 40 s left go to 90 steps: 40/90 * 30 = 13.3, * 60 = 26.7
    assert scale_steps([10, 30, 60], [1.0, 1.0, 1.0], 50.0, 10) == [10, 13, 26]
    # a larger budget lengthens every stage in proportion
    assert scale_steps([10, 20], [1.0, 1.0], 60.0, 5) == [20, 40]


def test_plan_steps_resizes_lr_period_and_warmup():
    stages = [Stage("a", epochs=3, lr=0.01, step_size=3, warmup_steps=30), Stage("b", epochs=3, lr=0.01, step_size=2)]
    plans = plan_steps(stages, steps_per_epoch=10, budget_seconds=30.0, seconds_per_step=[1.0, 1.0], min_steps=5)
    assert [p.steps for p in plans] == [15, 15]
    assert [p.full_steps for p in plans] == [30, 30]
    assert [p.lr_step for p in plans] == [15, 10]  # 3 epochs * 10 * 0.5, 2 * 10 * 0.5
    assert plans[0].warmup_steps == 7  # at most half the stage
    assert [p.steps for p in plan_steps(stages, steps_per_epoch=10)] == [30, 30]  # no budget: the YAML's epochs


def test_budget_too_small_is_refused_with_the_numbers():
    with pytest.raises(BudgetTooSmall, match=r"leaves 29 s for training, but the minimum of 20 steps in each of the 2 stages takes 30 s"):
        scale_steps([100, 100], [1.0, 0.5], 29.0, 20)  # needs 20 + 10 s


def test_refit_shrinks_and_grows_the_rest_of_the_plan_in_proportion():
    def plans():
        return [StagePlan("a", 100, 100, 100, 10), StagePlan("b", 100, 100, 60, 10), StagePlan("c", 100, 100, 60, 0)]

    # 40 steps done: 60 + 100 + 100 = 260 steps left at 1 s, but 130 s left: every remaining part halves
    p = plans()
    assert refit_remaining(p, 0, 40, [1.0, 1.0, 1.0], 130.0, min_steps=5) == pytest.approx(130 / 260)
    assert [x.steps for x in p] == [70, 50, 50]  # 40 done + 30, then 50 and 50
    assert [x.lr_step for x in p] == [70, 30, 30]  # each decay keeps its share of its stage
    assert [x.warmup_steps for x in p] == [10, 10, 0]
    # a faster machine: twice the time the rest needs, so the rest doubles
    p = plans()
    assert refit_remaining(p, 1, 50, [9.0, 0.5, 0.5], 150.0, min_steps=5) == pytest.approx(2.0)
    assert [x.steps for x in p] == [100, 150, 200]
    # within 3 % of the time left: nothing changes
    p = plans()
    assert refit_remaining(p, 0, 0, [1.0, 1.0, 1.0], 305.0) is None and [x.steps for x in p] == [100, 100, 100]
    # out of time: every stage keeps its minimum (the running one at least one more step)
    p = plans()
    refit_remaining(p, 0, 90, [1.0, 1.0, 1.0], 1.0, min_steps=20)
    assert [x.steps for x in p] == [91, 20, 20]


def test_a_budget_run_refits_its_plan_when_the_steps_are_slower_than_timed(tiny_config, tmp_path, monkeypatch, capsys):
    import workshop.instance.budget as budget

    # the timing before training says 1 ms per step (about 100x too fast), so the first plan is far too long
    monkeypatch.setattr(budget, "calibrate_step_seconds", lambda model, stages, *a, **k: [0.001] * len(stages))
    monkeypatch.setattr(budget, "REFIT_EVERY", 4)
    run = tmp_path / "run"
    assert main(["train", "--config", str(tiny_config), "--run-dir", str(run), "--max-minutes", "0.5"]) == 0
    out = capsys.readouterr().out
    planned = int(out.split("plan: ", 1)[1].split("(", 1)[1].split(" steps", 1)[0])
    summary = json.loads((run / "summary.json").read_text())
    assert "the rest of the plan is refitted to the" in out
    assert summary["steps"] == sum(p["steps"] for p in summary["plan"]) == sum(h["steps"] for h in summary["history"])
    assert summary["steps"] * 10 < planned, (summary["steps"], planned)
    assert all(p["steps"] >= 2 for p in summary["plan"])  # the tiny config's instance.min_stage_steps


def test_stage_lr_warmup_then_steps():
    stage = Stage("a", epochs=1, lr=0.1, step_size=1, gamma=0.5)
    plan = StagePlan("a", steps=10, full_steps=10, lr_step=4, warmup_steps=2)
    assert [round(stage_lr(stage, plan, t), 5) for t in (0, 1, 2, 3, 4, 8)] == [0.0001, 0.05005, 0.1, 0.1, 0.05, 0.025]  # 0.1 * (0.001 + 0.999 / 2)


# ----------------------------------------------------------------------------- config


def test_unknown_instance_key_lists_the_valid_ones(tiny_config, capsys):
    assert main(["train", "--config", str(tiny_config), "--set", "instance.nms=0.3"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'instance.nms'" in err and "nms_threshold" in err


def test_source_without_instances_is_refused(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(TINY.replace("source: embedded,", f"source: folder, root: {tmp_path}, masks_dir: masks,"))
    assert main(["train", "--config", str(cfg), "--run-dir", str(tmp_path / "run")]) == 2
    assert "has no instances" in capsys.readouterr().err


# ----------------------------------------------------------------------------- train, resume, budget


def test_cli_train_embedded_end_to_end(tiny_run):
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert summary["steps"] == 14  # 13 training images, batch 2 -> 7 steps per epoch, 1 epoch per stage
    assert [p["steps"] for p in summary["plan"]] == [7, 7]
    assert set(summary["val"]) >= {"segm_map", "segm_map_50", "bbox_map"}
    assert 0.0 <= summary["val"]["segm_map"] <= 1.0
    for name in ("config.yaml", "checkpoints/best.pt", "checkpoints/last.pt", "checkpoints/stage1.pt", "predictions.png"):
        assert (tiny_run / name).is_file(), name
    state = torch.load(tiny_run / "checkpoints" / "last.pt", weights_only=False)
    assert (state["stage"], state["step"]) == (2, 0)  # both stages done


def test_resume_mid_stage_ends_with_the_same_weights(tiny_config, tmp_path):
    from workshop.instance.runs import load_instance_config, train_instance

    cfg, icfg, stages = load_instance_config(tiny_config)
    quiet = lambda s: None  # noqa: E731
    train_instance(cfg, icfg, stages, run_dir=tmp_path / "whole", log=quiet)

    def stop(stage: int, step: int) -> None:
        if (stage, step) == (1, 3):  # stage 2, after its third step
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_instance(cfg, icfg, stages, run_dir=tmp_path / "cut", log=quiet, on_step=stop)
    saved = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=False)
    assert (saved["stage"], saved["step"]) == (1, 3)
    lines: list[str] = []
    train_instance(None, None, None, resume=tmp_path / "cut", log=lines.append)
    assert any("resuming: stage 2/2 (all) at step 3/7" in line for line in lines)
    whole = torch.load(tmp_path / "whole" / "checkpoints" / "best.pt", weights_only=False)["model"]
    resumed = torch.load(tmp_path / "cut" / "checkpoints" / "best.pt", weights_only=False)["model"]
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key


def test_budget_too_small_is_said_before_training(tiny_config, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--config", str(tiny_config), "--run-dir", str(run), "--max-minutes", "0.05",
                 "--set", "instance.min_stage_steps=50"])
    assert code == 2
    err = capsys.readouterr().err
    assert "minimum of 50 steps" in err and "training not started" in err and "--max-minutes" in err
    assert not (run / "checkpoints").exists()


# ----------------------------------------------------------------------------- evaluate


def _square_target(boxes):
    masks = torch.zeros(len(boxes), 16, 16, dtype=torch.bool)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        masks[k, y0:y1, x0:x1] = True
    return {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.ones(len(boxes), dtype=torch.int64), "masks": masks}


def test_perfect_predictions_score_one():
    from workshop.instance.evaluate import score_predictions

    target = _square_target([(0, 0, 6, 6), (8, 8, 16, 16)])
    pred = {**target, "scores": torch.tensor([0.9, 0.8])}
    s = score_predictions([pred], [target])
    assert s["mask"]["map"] == pytest.approx(1.0) and s["box"]["map_75"] == pytest.approx(1.0)
    assert s["mean_instance_iou"] == pytest.approx(1.0) and s["matched_objects"] == 2


def test_half_the_objects_found_scores_51_of_101():
    from workshop.instance.evaluate import score_predictions

    target = _square_target([(0, 0, 6, 6), (8, 8, 16, 16)])
    pred = {k: v[:1] for k, v in target.items()}
    pred["scores"] = torch.tensor([0.9])
    s = score_predictions([pred], [target])
    # precision 1 up to recall 0.5, nothing beyond: 51 of COCO's 101 recall points
    assert s["mask"]["map"] == pytest.approx(51 / 101, abs=1e-4)
    assert s["mean_instance_iou"] == pytest.approx(0.5)  # one object at IoU 1, one missed (0)


def test_per_class_ap_with_two_classes():
    from workshop.instance.evaluate import score_predictions

    target = _square_target([(0, 0, 6, 6), (8, 8, 16, 16)])
    target["labels"] = torch.tensor([1, 2])
    pred = {k: v[:1] for k, v in target.items()}
    pred["scores"] = torch.tensor([0.9])
    s = score_predictions([pred], [target], ["background", "cat", "dog"])
    assert s["per_class"] == {"cat": {"box_ap": 1.0, "mask_ap": 1.0}, "dog": {"box_ap": 0.0, "mask_ap": 0.0}}
    assert s["mask"]["map"] == pytest.approx(0.5)


def test_cli_evaluate_instance_run(tiny_run, capsys):
    out = tiny_run / "eval"
    assert main(["evaluate", str(tiny_run), "embedded", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "mask" in text and "mAP" in text and "mean IoU per object" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == 16 and metrics["objects"] > 0
    for kind in ("box", "mask"):
        assert set(metrics[kind]) >= {"map", "map_50", "map_75"}
        assert -1.0 <= metrics[kind]["map"] <= 1.0
    assert (out / "per_image.csv").is_file() and (out / "predictions.png").is_file()


def test_cli_evaluate_instance_run_on_its_own_validation_split(tiny_run, capsys):
    assert main(["evaluate", str(tiny_run)]) == 0
    text = capsys.readouterr().out
    summary = json.loads((tiny_run / "summary.json").read_text())
    metrics = json.loads((tiny_run / "evaluate-own-val" / "metrics.json").read_text())
    assert f"{summary['val_images']} images" in text and "split val" in text
    assert metrics["images"] == summary["val_images"] == 3 and metrics["data"].startswith("the run's validation split")
    assert main(["evaluate", str(tiny_run), "--split", "test"]) == 2
    assert "without DATA the run is scored on its own validation split" in capsys.readouterr().err


# ----------------------------------------------------------------------------- predict


def test_instance_id_mask_orders_by_score():
    from workshop.instance.predict import instance_id_mask

    m = np.zeros((3, 2, 2), bool)
    m[0, 0, 0] = m[1, 0, :] = m[2, 1, 1] = True
    ids = instance_id_mask(m, np.array([0.2, 0.9, 0.5]))
    assert ids.tolist() == [[1, 1], [0, 2]]  # object 1 (0.9) wins the overlap; object 0 (0.2) is hidden
    assert ids.dtype == np.uint8


def test_cli_predict_writes_ids_and_coco_results(tiny_run, tmp_path):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    from workshop.instance.data import EmbeddedInstanceSource

    images = EmbeddedInstanceSource(16, 64, 0).root / "images"
    out = tmp_path / "pred"
    assert main(["predict", str(tiny_run), str(images), "--out", str(out), "--threshold", "0.0"]) == 0
    ids_files = sorted(out.glob("*_ids.png"))
    assert len(ids_files) == 16 and len(list(out.glob("*_instances.png"))) == 16
    coco = COCO(str(out / "coco_images.json"))
    results = json.loads((out / "coco_results.json").read_text())
    assert results, "threshold 0 keeps every detection of the model"
    res = coco.loadRes(str(out / "coco_results.json"))
    assert len(res.getAnnIds()) == len(results)
    # the highest-scoring detection of image 1 is id 1 of its PNG, wherever it is visible
    first = max((r for r in results if r["image_id"] == 1), key=lambda r: r["score"], default=None)
    if first is not None:
        ids = np.asarray(Image.open(out / f"{coco.imgs[1]['file_name'][:-4]}_ids.png"))
        decoded = mask_utils.decode(first["segmentation"]).astype(bool)
        assert decoded.shape == ids.shape
        assert np.array_equal(ids == 1, decoded)


# ----------------------------------------------------------------------------- augmentation and sizing


@pytest.mark.parametrize("flags", [dict(hflip=1.0), dict(vflip=1.0), dict(rotate90=1.0)])
def test_flips_and_rotations_keep_every_object(flags):
    from workshop.instance.data import DetectionDataset

    image = np.zeros((6, 8, 3), np.uint8)
    masks = np.zeros((2, 6, 8), bool)
    masks[0, 1:3, 1:4] = True  # 6 px
    masks[1, 3:6, 5:8] = True  # 9 px
    ds = DetectionDataset([0], lambda _: (image, masks, np.array([1, 1])), train=True,
                          **{"hflip": 0.0, "vflip": 0.0, "rotate90": 0.0, **flags})
    _, target = ds[0]
    assert sorted(target["masks"].sum(dim=(1, 2)).tolist()) == [6, 9]
    w = target["boxes"][:, 2] - target["boxes"][:, 0]
    h = target["boxes"][:, 3] - target["boxes"][:, 1]
    assert sorted((w * h).tolist()) == [6.0, 9.0]  # the boxes still fit the (rectangular) objects exactly
    assert target["boxes"].tolist() != [[1.0, 1.0, 4.0, 3.0], [5.0, 3.0, 8.0, 6.0]]  # and they moved
    if "hflip" in flags:
        assert target["boxes"].tolist() == [[4.0, 1.0, 7.0, 3.0], [0.0, 3.0, 3.0, 6.0]]  # x -> 8 - x


def test_fit_detector_hand_computed():
    from workshop.instance.sizing import ObjectSizes, fit_detector

    sizes = ObjectSizes(np.array([30.0, 35.0, 40.0]), np.ones(3), np.array([3, 12]), np.array([768, 768]))
    fit = fit_detector(sizes, target_object_px=24, max_image_size=512)
    # wanted 768 * 24 / 35 = 526.6 -> capped at 512; detections 1.5 * 12 + 5 = 23
    assert fit.image_size == 512 and fit.detections_per_image == 23
    flat = [a for level in fit.anchor_sizes for a in level]
    assert len(fit.anchor_sizes) == 4 and flat == sorted(flat)
    scale = 512 / 768
    assert flat[0] <= 30 * scale and flat[-1] >= 40 * scale  # the anchors span the objects at the input size


def test_fit_detector_counts_every_image_once():
    from workshop.instance.sizing import ObjectSizes, fit_detector

    # one photo crowded with 100 insects of 5 px, three with one insect of 50, 60 and 70 px (kudzu's shape)
    sides = np.array([5.0] * 100 + [50.0, 60.0, 70.0])
    sizes = ObjectSizes(sides, np.ones(103), np.array([100, 1, 1, 1]), np.array([768] * 4))
    fit = fit_detector(sizes, target_object_px=24, max_image_size=512, min_image_size=320)
    # weights 1/100 x 100 and 1, 1, 1 (4 in all): the middle of the weight lies between 50 (centre at 1.5/4)
    # and 60 (2.5/4): median 55 px, not the plain median's 5 px; wanted 768 * 24 / 55 = 335 -> 320 (x 32)
    assert fit.image_size == 320 and fit.median_object_px_at_input == round(55 * 320 / 768, 1)
    assert fit.anchor_sizes[-1][-1] >= 70 * 320 / 768, "the largest insects have anchors"
    plain = fit_detector(ObjectSizes(sides, np.ones(103), np.array([103]), np.array([768])), target_object_px=24)
    assert plain.image_size == 512  # counted per object, the 5 px ones would ask for 3686 px


def test_fit_detector_refuses_a_set_without_objects():
    from workshop.instance.sizing import ObjectSizes, fit_detector

    with pytest.raises(ValueError, match="no objects"):
        fit_detector(ObjectSizes(np.zeros(0), np.zeros(0), np.array([0]), np.array([64])))


# ----------------------------------------------------------------------------- rooftop helpers


def test_polygon_normalisation_round_trips_and_survives_a_resize():
    from workshop.instance import denormalize_polygon, normalize_polygon

    poly = [[10, 5], [30, 5], [30, 20], [10, 20]]
    rel = normalize_polygon(poly, width=40, height=25)
    assert rel.tolist() == [[0.25, 0.2], [0.75, 0.2], [0.75, 0.8], [0.25, 0.8]]
    assert denormalize_polygon(rel, 40, 25).tolist() == [[10, 5], [30, 5], [30, 20], [10, 20]]
    assert denormalize_polygon(rel, 80, 50).tolist() == [[20, 10], [60, 10], [60, 40], [20, 40]]  # 2x image
    with pytest.raises(ValueError, match="at least 3"):
        normalize_polygon([[0, 0], [1, 1]], 10, 10)
    with pytest.raises(ValueError, match="positive"):
        normalize_polygon(poly, 0, 10)


def test_rooftop_helpers_are_reachable_from_the_library():
    import matplotlib

    matplotlib.use("Agg")
    from workshop.data.polygons import mean_points_per_polygon
    from workshop.instance import show_image_with_masks

    assert mean_points_per_polygon([{"class": "b", "points": [[0, 0], [1, 0], [1, 1]]},
                                    {"class": "b", "points": [[0, 0], [2, 0], [2, 2], [0, 2], [0, 1]]}]) == 4.0
    masks = np.zeros((2, 8, 8), bool)
    masks[0, :3, :3] = masks[1, 5:, 5:] = True
    fig = show_image_with_masks(np.zeros((8, 8, 3), np.uint8), masks)
    assert len(fig.axes) == 2 and fig.axes[1].get_title() == "2 object mask(s)"


# ----------------------------------------------------------------------------- annotation files


def _via_fixture(folder: Path, n: int = 2) -> Path:
    """A VIA 2.x export of ``n`` 32 x 32 images, each with a square and a triangle of class 'bug'."""
    folder.mkdir(parents=True, exist_ok=True)
    regions = {}
    for i in range(n):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
        shapes = [([2, 12, 12, 2], [2, 2, 12, 12]), ([20, 30, 25], [20, 20, 30])]
        regions[f"{i}.png{i}"] = {"filename": f"{i}.png", "size": 1, "regions": [
            {"shape_attributes": {"name": "polygon", "all_points_x": xs, "all_points_y": ys},
             "region_attributes": {"insect": "bug"}} for xs, ys in shapes]}
    path = folder / "via_region_data.json"
    path.write_text(json.dumps(regions))
    return path


def test_annotation_file_gives_instances_and_named_validation(tmp_path):
    from workshop.instance.runs import load_instance_config
    from workshop.instance.data import detection_splits

    train, val = _via_fixture(tmp_path / "train", 3), _via_fixture(tmp_path / "val", 2)
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(TINY.replace("source: embedded,", f"source: annotations, root: {train}, val: {val},"))
    cfg, _, _ = load_instance_config(cfg_file)
    train_set, val_set, names, how = detection_splits(cfg, max_side=None)
    assert (len(train_set), len(val_set)) == (3, 2) and names == ["background", "bug"] and "data.val" in how
    _, target = val_set[0]
    assert target["labels"].tolist() == [1, 1]
    assert target["boxes"][0].tolist() == [2.0, 2.0, 12.0, 12.0]  # pycocotools fills columns 2..11 of x in [2, 12]


def test_data_check_reports_object_sizes_of_an_annotation_file(tmp_path, capsys):
    path = _via_fixture(tmp_path / "train", 2)
    main(["data", "check", str(path)])
    out = capsys.readouterr().out
    assert "objects: 4 in 2 image(s), 2.0 per image (at most 2)" in out
    assert "object side sqrt(w*h) in px" in out and "fitted: image size 32" in out


@pytest.mark.realdata
def test_kudzu_reads_as_instances():
    kudzu = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "kudzu"
    if not kudzu.is_dir():
        pytest.skip("../shared/datasets/kudzu is not here")
    from workshop.config import load_config
    from workshop.instance.data import detection_splits

    cfg = load_config(overrides={"data": {"source": "annotations", "task": "instance",
                                          "root": str(kudzu / "train" / "via_region_data.json"),
                                          "val": str(kudzu / "val" / "via_region_data.json")}})
    train, val, names, _ = detection_splits(cfg, max_side=None)
    assert (len(train), len(val)) == (24, 16) and names == ["background", "kudzu"]
    assert len(train[0][1]["boxes"]) > 0


def test_fit_detector_never_upsamples_small_images_nor_shrinks_large_objects():
    from workshop.instance.sizing import ObjectSizes, fit_detector

    small = ObjectSizes(np.array([20.0, 22, 24]), np.ones(3), np.array([3]), np.array([128]))
    assert fit_detector(small, min_image_size=320).image_size == 128  # the images' own size, not 320
    people = ObjectSizes(np.array([150.0, 170, 190]), np.ones(3), np.array([3]), np.array([486]))
    assert fit_detector(people, min_image_size=320).image_size == 320  # 486 * 24 / 170 = 69 -> at least 320


def test_dense_images_get_more_rois_and_proposals():
    from workshop.instance.sizing import ObjectSizes, fit_detector

    sparse = fit_detector(ObjectSizes(np.array([30.0]), np.ones(1), np.array([12]), np.array([768])))
    dense = fit_detector(ObjectSizes(np.array([11.0]), np.ones(1), np.array([112, 3]), np.array([768])))
    assert (sparse.rois_per_image, sparse.proposals_per_image) == (64, 300)  # the CPU defaults
    assert (dense.rois_per_image, dense.proposals_per_image, dense.detections_per_image) == (224, 448, 173)


def test_nms_threshold_fitted_to_the_overlap_of_labelled_objects():
    from workshop.instance.sizing import ObjectSizes, fit_detector

    def sizes(overlaps):
        n = len(overlaps)
        return ObjectSizes(np.full(n, 30.0), np.ones(n), np.array([n]), np.array([320]), np.asarray(overlaps, float))

    assert fit_detector(sizes([0.0, 0.0, 0.1])).nms_threshold == 0.3  # apart: the low threshold that removed duplicates
    assert fit_detector(sizes([0.45] * 100)).nms_threshold == 0.55  # overlapping people: 0.45 + 0.1
    assert fit_detector(sizes([0.9] * 100)).nms_threshold == 0.7  # capped


def test_measure_objects_finds_the_overlap(tmp_path):
    from workshop.instance.data import DetectionDataset
    from workshop.instance.sizing import measure_objects

    masks = np.zeros((2, 10, 10), bool)
    masks[0, 0:4, 0:4] = True
    masks[1, 0:4, 2:6] = True  # IoU of the boxes: 8 / 24
    s = measure_objects(DetectionDataset([0], lambda _: (np.zeros((10, 10, 3), np.uint8), masks, np.array([1, 1]))))
    assert s.neighbour_iou.tolist() == pytest.approx([1 / 3, 1 / 3])
    assert s.sides.tolist() == [4.0, 4.0] and s.per_image.tolist() == [2]


@pytest.mark.parametrize(("overrides", "expected", "said"), [
    (["data.source=pennfudan"], {"hflip": 0.5, "vflip": 0.0, "rotate90": 0.0}, "data.source pennfudan holds upright scenes"),
    (["data.source=annotations"], {"hflip": 0.5, "vflip": 0.0, "rotate90": 0.0}, "upright assumed (photos)"),
    (["data.source=annotations", "augment.view=top_down"], {"hflip": 0.5, "vflip": 0.5, "rotate90": 0.5}, None),
    (["data.source=embedded"], {"hflip": 0.5, "vflip": 0.5, "rotate90": 0.5}, None),
])
def test_upright_data_gets_no_vertical_flips_nor_quarter_turns(overrides, expected, said):
    from workshop.config import load_config
    from workshop.instance.runs import InstanceConfig, upright_augment

    logged: list[str] = []
    augment = upright_augment(load_config(overrides=overrides), InstanceConfig(vflip=0.5, rotate90=0.5), log=logged.append)
    assert augment == expected
    if said is None:
        assert logged == []
    else:
        assert len(logged) == 1 and "instance.vflip and instance.rotate90 = 0" in logged[0] and said in logged[0]


def test_embedded_run_keeps_its_turns_and_records_them(tiny_run):
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert summary["augment"] == {"hflip": 0.5, "vflip": 0.5, "rotate90": 0.0}  # the InstanceConfig defaults: top-down data
