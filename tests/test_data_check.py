"""The data scan (``workshop data check``): every problem, per file, with its severity."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workshop.config import load_config
from workshop.data.check import DATASET, Problem, check_path, display_path, scan_pairs
from workshop.data.io import LabelClass, LabelMap, read_mask
from workshop.errors import DataError

H, W = 24, 32  # image height and width of the fixtures


def noise(seed: int, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def bar_mask(h: int = H, w: int = W, value: int = 255) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    mask[:, w // 4 : w // 2] = value
    return mask


def save(array: np.ndarray, path: Path, mode: str | None = None, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (Image.fromarray(array, mode=mode) if mode else Image.fromarray(array)).save(path, **kwargs)
    return path


def make_folder(root: Path, names=("a", "b", "c"), masks: str = "masks") -> Path:
    """Images ``images/NAME.png`` (distinct noise) and 0/255 masks ``MASKS/NAME.png``."""
    for k, name in enumerate(names):
        save(noise(k), root / "images" / f"{name}.png")
        save(bar_mask(), root / masks / f"{name}.png")
    return root


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def exif_jpeg(path: Path, array: np.ndarray, orientation: int) -> Path:
    img = Image.fromarray(array)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, exif=exif.tobytes(), quality=95)
    return path


# ----------------------------------------------------------------------------- one fault at a time


def _zero_byte_image(root: Path) -> None:
    (root / "images" / "b.png").write_bytes(b"")


def _random_bytes_image(root: Path) -> None:
    (root / "images" / "b.png").write_bytes(np.random.default_rng(1).bytes(500))


def _random_bytes_jpg_mask(root: Path) -> None:
    (root / "masks" / "b.png").unlink()
    (root / "masks" / "b.jpg").write_bytes(np.random.default_rng(2).bytes(500))


def _truncated_png_image(root: Path) -> None:
    truncate(root / "images" / "b.png")


def _truncated_jpeg_image(root: Path) -> None:
    (root / "images" / "b.png").unlink()
    save(noise(7, 64, 64), root / "images" / "b.jpg", quality=90)
    save(bar_mask(64, 64), root / "masks" / "b.png")
    truncate(root / "images" / "b.jpg", 0.6)


def _truncated_mask(root: Path) -> None:
    save(np.random.default_rng(3).integers(0, 2, (H, W), dtype=np.uint8) * 255, root / "masks" / "b.png")
    truncate(root / "masks" / "b.png", 0.7)


def _image_without_mask(root: Path) -> None:
    (root / "masks" / "b.png").unlink()


def _mask_without_image(root: Path) -> None:
    save(bar_mask(), root / "masks" / "z.png")


def _mask_same_aspect(root: Path) -> None:
    save(bar_mask(H // 2, W // 2), root / "masks" / "b.png")


def _mask_other_aspect(root: Path) -> None:
    save(bar_mask(W, H), root / "masks" / "b.png")


def _mask_grey_values(root: Path) -> None:
    mask = bar_mask()
    mask[0, 0] = 128
    save(mask, root / "masks" / "b.png")


def _jpeg_mask(root: Path) -> None:
    (root / "masks" / "b.png").unlink()
    save(np.kron(np.eye(4, dtype=np.uint8) * 255, np.ones((6, 8), np.uint8)), root / "masks" / "b.jpg", quality=50)


def _exif_rotated(root: Path) -> None:
    (root / "images" / "b.png").unlink()
    exif_jpeg(root / "images" / "b.jpg", noise(5, W, H), 6)  # stored 24x32 (w x h), upright 32x24


def _exif_mask_matches_stored(root: Path) -> None:
    (root / "images" / "b.png").unlink()
    exif_jpeg(root / "images" / "b.jpg", noise(5), 6)  # stored 32x24, upright 24x32


def _duplicate(root: Path) -> None:
    (root / "images" / "c.png").write_bytes((root / "images" / "a.png").read_bytes())


def _grey_image(root: Path) -> None:
    save(noise(1)[..., 0], root / "images" / "b.png")


def _sixteen_bit_image(root: Path) -> None:
    save((noise(1)[..., 0].astype(np.uint16) * 257), root / "images" / "b.png")


def _macos_metadata(root: Path) -> None:
    (root / "images" / "._a.png").write_bytes(b"\x00\x05\x16\x07" + bytes(60))


def _two_images_same_stem(root: Path) -> None:
    save(noise(9), root / "images" / "b.jpg")


FAULTS = [
    # (fault, file, severity, words in the message)
    (_zero_byte_image, "images/b.png", "error", "zero-byte (empty) image file"),
    (_random_bytes_image, "images/b.png", "error", "not a readable image (500 bytes"),
    (_random_bytes_jpg_mask, "masks/b.jpg", "error", "not a readable image"),
    (_truncated_png_image, "images/b.png", "error", "corrupt or truncated PNG data"),
    (_truncated_jpeg_image, "images/b.jpg", "error", "corrupt or truncated JPEG data (image file is truncated"),
    (_truncated_mask, "masks/b.png", "error", "corrupt or truncated PNG data"),
    (_image_without_mask, "images/b.png", "error", "image has no mask (no b.* in masks/)"),
    (_mask_without_image, "masks/z.png", "error", "mask has no image (no z.* in images/)"),
    (_mask_same_aspect, "masks/b.png", "warning", "mask is 16x12, image b.png is 32x24: same aspect ratio"),
    (_mask_other_aspect, "masks/b.png", "error", "aspect ratios differ (0.75 vs 1.33)"),
    (_mask_grey_values, "masks/b.png", "error", "binary mask has values {0, 128, 255}; expected 0/1 or 0/255"),
    (_jpeg_mask, "masks/b.jpg", "error", "binary mask has values {0, 1,"),
    (_exif_rotated, "images/b.jpg", "warning", "EXIF orientation 6 (rotated 90 degrees (stored sideways)): the loader turns it upright to 32x24"),
    (_exif_mask_matches_stored, "masks/b.png", "error", "has EXIF orientation 6 and is loaded upright as 24x32"),
    (_duplicate, "images/c.png", "warning", "exact duplicate of a.png (same bytes"),
    (_grey_image, "images/b.png", "warning", "image mode L (8-bit grey, repeated to 3 channels when loaded) while most images are RGB"),
    (_sixteen_bit_image, "images/b.png", "warning", "image mode I;16 (16-bit grey, scaled to 8 bits when loaded)"),
    (_macos_metadata, "images/._a.png", "error", "a '._' file is macOS metadata"),
    (_two_images_same_stem, "images/b.png", "warning", "2 images share the name 'b' (b.jpg too); the loader uses this one only"),
]


@pytest.mark.parametrize(("fault", "name", "severity", "words"), FAULTS, ids=[f[0].__name__.strip("_") for f in FAULTS])
def test_each_fault_is_reported_on_its_file(tmp_path, fault, name, severity, words) -> None:
    fault(make_folder(tmp_path))
    report = check_path(tmp_path)
    found = report.for_file(name)
    assert any(p.severity == severity and words in p.message for p in found), report.format()
    assert report.ok is (not report.errors) and report.ok is (severity == "warning" and not report.errors)
    # Only the broken file (and its partner, for EXIF) is named; mixed modes add a data-set note.
    named = {p.path for p in report.problems} - {DATASET}
    assert str(tmp_path / name) in named
    assert all(Path(p).stem == Path(name).stem for p in named)
    assert report.counts[f"{severity}s"] >= 1
    text = report.format()
    assert f"\n{name}\n  {severity}: " in text and words in text


def test_good_folder_is_ok_with_counts_and_summary(tmp_path) -> None:
    report = check_path(make_folder(tmp_path))
    assert report.ok and report.problems == []
    assert report.counts == {"images": 3, "masks": 3, "pairs": 3, "errors": 0, "warnings": 0,
                             "files_with_errors": 0, "files_with_warnings": 0}
    assert report.image_modes == {"RGB": 3} and report.mask_modes == {"L": 3}
    assert report.mask_values == [0, 255]
    lines = report.format().splitlines()
    assert lines[0] == f"data check of {tmp_path} (folders images/ + masks/, task binary)"
    assert lines[1].startswith("3 images, 3 masks, 3 pairs: 0 errors in 0 files, 0 warnings in 0 files; image modes RGB 3")
    assert lines[-2:] == ["OK: ready to train; train on it with:",
                          f"  workshop train --set data.source=folder --set data.root={tmp_path}"]


def test_several_problems_are_all_reported_grouped_per_file(tmp_path) -> None:
    make_folder(tmp_path, names=("a", "b", "c", "d"))
    _zero_byte_image(tmp_path)
    _mask_grey_values(tmp_path)  # b's mask too: both of b's files are named
    _duplicate(tmp_path)
    save(bar_mask(), tmp_path / "masks" / "z.png")
    report = check_path(tmp_path)
    assert not report.ok
    assert report.counts["errors"] == 3 and report.counts["warnings"] == 1
    assert report.counts["files_with_errors"] == 3
    lines = report.format().splitlines()
    assert lines[1:9] == [
        "images/b.png",
        "  error: zero-byte (empty) image file: the copy or download did not finish",
        "images/c.png",
        f"  warning: {report.for_file('images/c.png')[0].message}",
        "masks/b.png",
        "  error: binary mask has values {0, 128, 255}; expected 0/1 or 0/255 (a JPEG mask or smoothed edges? save masks as PNG with exact values)",
        "masks/z.png",
        "  error: mask has no image (no z.* in images/)",
    ]
    assert "3 errors in 3 files, 1 warnings in 1 files" in lines[-2]
    assert lines[-1] == "NOT OK: fix the errors above before training"
    # Problems are plain (path, severity, message) tuples.
    path, severity, message = report.errors[0]
    assert isinstance(report.errors[0], Problem) and severity == "error" and path == str(tmp_path / "masks" / "z.png")


def test_format_can_show_errors_only_and_cap_the_lines(tmp_path) -> None:
    make_folder(tmp_path, names=[f"n{i:02d}" for i in range(15)])
    for i in range(15):
        (tmp_path / "masks" / f"n{i:02d}.png").write_bytes(b"")
    (tmp_path / "images" / "n01.png").write_bytes((tmp_path / "images" / "n00.png").read_bytes())  # a warning
    report = check_path(tmp_path)
    text = report.format("error", max_lines=10)
    assert "warning" not in text.split("\n", 1)[1].rsplit("\n", 2)[0]
    lines = text.splitlines()
    assert len(lines) == 1 + 10 + 1 + 2
    assert lines[11] == "... and 10 more problems (10 more files)"
    with pytest.raises(ValueError, match="error, warning"):
        report.format("info")


def test_mixed_modes_are_counted_per_mode_with_a_note_per_odd_file(tmp_path) -> None:
    make_folder(tmp_path, names=("a", "b", "c", "d", "e"))
    save(noise(1)[..., 0], tmp_path / "images" / "b.png")
    save(np.dstack([noise(2), np.full((H, W), 255, np.uint8)]), tmp_path / "images" / "c.png")
    save(bar_mask(value=1), tmp_path / "masks" / "d.png", mode=None)
    Image.fromarray(bar_mask(value=1)).convert("P").save(tmp_path / "masks" / "e.png")
    report = check_path(tmp_path)
    assert report.ok
    assert report.image_modes == {"RGB": 3, "L": 1, "RGBA": 1}
    assert report.mask_modes == {"L": 4, "P": 1}
    data_set = [p.message for p in report.for_file(DATASET)]
    assert "mixed image modes: RGB 3, L 1, RGBA 1; the odd files are listed with a note (check they belong to this data set)" in data_set
    assert any(m.startswith("mixed mask modes: L 4, P 1") for m in data_set)
    assert report.for_file("images/c.png")[0].message == (
        "image mode RGBA (colour with an alpha channel, dropped when loaded) while most images are RGB"
    )
    assert report.for_file("masks/e.png")[0].message.startswith("mask mode P (palette colours")
    assert report.mask_values == [0, 1, 255]


# ----------------------------------------------------------------------------- multiclass and label maps


def label_map() -> LabelMap:
    return LabelMap([LabelClass("bg", 0, (0, 0, 0)), LabelClass("car", 1, (255, 0, 0)), LabelClass("road", 2, (0, 0, 255))])


def test_multiclass_values_outside_the_label_map_are_listed(tmp_path) -> None:
    make_folder(tmp_path)
    label_map().to_json(tmp_path / "labelmap.json")
    ids = np.zeros((H, W), np.uint8)
    ids[0, :3] = (1, 2, 255)  # valid ids and the ignore index
    save(ids, tmp_path / "masks" / "a.png")
    ids[1, :2] = (7, 9)
    save(ids, tmp_path / "masks" / "b.png")
    save(np.zeros((H, W), np.uint8), tmp_path / "masks" / "c.png")
    report = check_path(tmp_path)  # labelmap.json next to the data: multiclass
    assert report.task == "multiclass"
    assert [(p.path, p.message) for p in report.problems] == [(
        str(tmp_path / "masks" / "b.png"),
        "mask values not in the label map: {7, 9} (found {0, 1, 2, 7, 9, 255}; valid ids: {0, 1, 2}, ignore index 255)",
    )]


def test_colour_masks_need_a_label_map_and_unknown_colours_are_listed(tmp_path) -> None:
    make_folder(tmp_path, names=("a", "b"))
    colour = np.zeros((H, W, 3), np.uint8)
    colour[:, :5] = (255, 0, 0)
    save(colour, tmp_path / "masks" / "a.png")
    colour[0, 0] = (1, 2, 3)
    save(colour, tmp_path / "masks" / "b.png")
    without = check_path(tmp_path, task="multiclass")
    assert without.layout.endswith("no label map: class ids not checked")
    assert [p.message.split(" (")[0] for p in without.errors] == ["colour-coded mask"] * 2
    assert "needs a label map (labelmap.json: class name, id, colour)" in without.errors[0].message
    with_map = check_path(tmp_path, task="multiclass", label_map=label_map())
    assert [p.path for p in with_map.errors] == [str(tmp_path / "masks" / "b.png")]
    assert with_map.errors[0].message.startswith("colours not in the label map: (1, 2, 3)")
    assert with_map.mask_values == [0, 1]


@pytest.mark.parametrize(
    ("values", "task", "valid"),
    [
        ((0, 255), "binary", True),
        ((0, 1), "binary", True),
        ((0, 1, 255), "binary", True),  # 255 = ignore
        ((0,), "binary", True),
        ((0, 2), "binary", False),
        ((0, 128, 255), "binary", False),
        ((0, 1, 2), "multiclass", True),
        ((0, 3), "multiclass", False),
        ((0, 2, 255), "multiclass", True),
    ],
)
def test_scan_agrees_with_the_loader_on_mask_values(tmp_path, values, task, valid) -> None:
    mask = np.array(values, np.uint8).repeat(4).reshape(1, -1).repeat(3, axis=0)
    save(mask, tmp_path / "m.png")
    save(noise(0, *mask.shape), tmp_path / "i.png")
    lm = label_map() if task == "multiclass" else None
    report = scan_pairs([(tmp_path / "i.png", tmp_path / "m.png")], task, lm)
    assert report.ok is valid
    try:
        read_mask(tmp_path / "m.png", task=task, label_map=lm)
        loader_ok = True
    except DataError:
        loader_ok = False
    assert loader_ok is valid


# ----------------------------------------------------------------------------- layouts


def test_embedded_layout_uses_masks_binary(tmp_path) -> None:
    make_folder(tmp_path, masks="masks/binary")
    (tmp_path / "masks" / "multiclass").mkdir()
    report = check_path(tmp_path)
    assert report.ok and report.layout == "folders images/ + masks/binary/" and report.counts["pairs"] == 3


def test_generated_embedded_data_set_is_clean() -> None:
    from workshop.data.synthetic import embedded_dir, ensure_dataset

    cfg = load_config(profile="smoke")
    root = ensure_dataset(embedded_dir(cfg.data.num_images, cfg.data.image_size, 0), cfg.data.num_images, cfg.data.image_size, 0)
    binary = check_path(root)
    multi = check_path(root, task="multiclass")
    assert binary.ok and binary.problems == [] and binary.mask_values == [0, 255]
    assert multi.ok and multi.layout == "folders images/ + masks/multiclass/"
    assert set(multi.mask_values) <= {0, 1, 2, 3, 4}


def test_explicit_folders_and_mask_suffix(tmp_path) -> None:
    for k, name in enumerate(("x", "y")):
        save(noise(k), tmp_path / "train" / f"{name}.png")
        save(bar_mask(), tmp_path / "trainannot" / f"{name}_mask.png")
    report = check_path(tmp_path, images_dir="train", masks_dir=str(tmp_path / "trainannot"))
    assert report.ok and report.counts["pairs"] == 2
    assert report.for_file(DATASET)[0].message.startswith("mask names add '_mask' to the image names; paired that way")
    strict = check_path(tmp_path, images_dir="train", masks_dir="trainannot", mask_suffix="")
    assert not strict.ok and strict.counts["errors"] == 4


def test_csv_of_pairs_with_a_missing_file(tmp_path) -> None:
    for k, name in enumerate(("1", "2", "3")):
        save(noise(k), tmp_path / "Training_Images" / f"{name}.jpg", quality=95)
        save(bar_mask(), tmp_path / "Ground_Truth" / f"{name}.png")
    (tmp_path / "train.csv").write_text(
        "masks,images\n"
        "Ground_Truth/1.png,Training_Images/1.jpg\n"
        "Dataset-master/Ground_Truth/2.png,Dataset-master/Training_Images/2.jpg\n"  # zip folder name dropped
        "Ground_Truth/3.png,Training_Images/gone.jpg\n"
    )
    # the CSV, or the folder holding it (which has the human_seg layout: that source reads the same CSV)
    for path, layout in ((tmp_path / "train.csv", "CSV train.csv"),
                         (tmp_path, "format: registered data set human_seg (Human Segmentation Dataset), split all")):
        report = check_path(path)
        assert report.layout == layout
        assert [(p.path, p.message) for p in report.problems] == [
            (str(tmp_path / "Training_Images/gone.jpg"), "image listed in train.csv line 4 is not there (file not found)")
        ]
        assert report.counts == {"images": 2, "masks": 3, "pairs": 2, "errors": 1, "warnings": 0,
                                 "files_with_errors": 1, "files_with_warnings": 0}


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        (lambda p: None, "path not found"),
        (lambda p: p.mkdir(), "no images/ folder and no CSV here"),
        (lambda p: (p / "images").mkdir(parents=True), "masks folder not found"),
        (lambda p: p.with_suffix(".csv").write_text("a,b\n1,2\n"), "no column 'images'; columns found: a, b"),
    ],
    ids=["missing", "empty", "no-masks", "bad-columns"],
)
def test_unusable_paths_are_errors_not_exceptions(tmp_path, setup, words) -> None:
    target = tmp_path / "data"
    setup(target)
    report = check_path(target.with_suffix(".csv") if "column" in words else target)
    assert not report.ok and words in report.errors[0].message


def test_bad_task_names_the_choices(tmp_path) -> None:
    with pytest.raises(ValueError, match="binary, multiclass"):
        check_path(tmp_path, task="instance")


def test_non_utf8_file_names_are_named_printably(tmp_path) -> None:
    folder = make_folder(tmp_path, names=("a",))
    base = os.fsencode(folder)
    with open(os.path.join(base, b"images", b"img_\xff.png"), "wb") as fh:
        fh.write(b"not a png")
    with open(os.path.join(base, b"masks", b"img_\xff.png"), "wb") as fh:
        fh.write((folder / "masks" / "a.png").read_bytes())
    report = check_path(folder)
    assert [p.path for p in report.errors] == [str(folder / "images") + "/img_\\xff.png"]
    text = report.format()
    text.encode("utf-8")  # printable
    assert "images/img_\\xff.png\n  error: not a readable image" in text
    assert display_path(b"img_\xff.png") == "img_\\xff.png" and display_path("plain.png") == "plain.png"


def test_real_human_seg_csv() -> None:
    from conftest import shared_dataset

    root = shared_dataset("human_seg")
    report = check_path(root / "train.csv")
    assert report.ok and report.counts["pairs"] == 290
    # The real data set has a true duplicate and two grey-scale photos.
    assert report.for_file("Training_Images/270.jpg")[0].message.startswith("exact duplicate of 102.jpg")
    assert report.image_modes == {"RGB": 288, "L": 2}


def test_scan_of_300_small_files_is_fast(tmp_path) -> None:
    rng = np.random.default_rng(0)
    for i in range(150):
        save(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), tmp_path / "images" / f"{i:03d}.png")
        save(bar_mask(64, 64), tmp_path / "masks" / f"{i:03d}.png")
    t0 = time.perf_counter()
    report = check_path(tmp_path)
    elapsed = time.perf_counter() - t0
    assert report.ok and report.counts["pairs"] == 150
    assert elapsed < 3.0, f"scan of 300 files took {elapsed:.2f}s"


# ----------------------------------------------------------------------------- training refuses broken data


def folder_config(root: Path, **data):
    return load_config(profile="smoke", overrides={
        "data": {"source": "folder", "root": str(root), "images_dir": "images", "masks_dir": "masks", **data},
        "model": {"encoder_weights": None},
        "run_dir": str(root / "runs"),
    })


def test_training_refuses_with_the_report_before_building_the_model(tmp_path, monkeypatch) -> None:
    from workshop import runs

    make_folder(tmp_path, names=[f"n{i:02d}" for i in range(30)])
    for i in range(25):
        (tmp_path / "masks" / f"n{i:02d}.png").write_bytes(b"")

    def no_model(*args, **kwargs):
        raise AssertionError("the model must not be built when the data is broken")

    monkeypatch.setattr(runs, "build_model", no_model)
    with pytest.raises(DataError) as info:
        runs.train_from_config(folder_config(tmp_path), log=lambda s: None)
    lines = str(info.value).splitlines()
    assert lines[0] == (
        f"data check found 25 error(s) in 25 file(s) under {tmp_path}; training not started "
        "(full report: workshop data check)"
    )
    assert lines[1:3] == ["masks/n00.png", "  error: zero-byte (empty) mask file: the copy or download did not finish"]
    assert len(lines) == 1 + 20 + 1 and lines[-1] == "... and 15 more problems (15 more files)"
    assert not (tmp_path / "runs").exists()


def test_training_reports_every_unpaired_file(tmp_path, monkeypatch) -> None:
    from workshop import runs

    make_folder(tmp_path)
    (tmp_path / "masks" / "a.png").unlink()
    save(bar_mask(), tmp_path / "masks" / "q.png")
    (tmp_path / "images" / "c.png").write_bytes(b"junk")
    with pytest.raises(DataError) as info:
        runs.train_from_config(folder_config(tmp_path), log=lambda s: None)
    text = str(info.value)
    assert text.startswith("data check found 3 error(s) in 3 file(s)")
    for words in ("images/a.png\n  error: image has no mask", "masks/q.png\n  error: mask has no image",
                  "images/c.png\n  error: not a readable image"):
        assert words in text


def test_training_logs_warnings_and_goes_on(tmp_path, monkeypatch) -> None:
    from workshop import runs

    make_folder(tmp_path, names=[f"n{i}" for i in range(6)])
    save(bar_mask(H // 2, W // 2), tmp_path / "masks" / "n1.png")

    def stop_here(cfg, num_classes):
        raise RuntimeError("stop after the data step")

    monkeypatch.setattr(runs, "build_model", stop_here)
    logged: list[str] = []
    with pytest.raises(RuntimeError, match="stop after the data step"):
        runs.train_from_config(folder_config(tmp_path), log=logged.append)
    assert logged[0] == "data check (folders images/ + masks/): 1 warning(s), training goes on:"
    assert logged[1:3] == [
        "  masks/n1.png",
        "    warning: mask is 16x12, image n1.png is 32x24: same aspect ratio, the mask is resized with nearest-neighbour when loaded",
    ]


# ----------------------------------------------------------------------------- the fingerprint, for every source


def make_via_export(root: Path, sizes=((24, 32), (30, 40)), unannotated: bool = True) -> Path:
    """A VIA 2.x export: one rectangle per image (rows 2..9, columns 4..15), plus one image without regions."""
    import json

    data = {}
    names = [f"v{k}" for k in range(len(sizes))] + (["blank"] if unannotated else [])
    for k, name in enumerate(names):
        h, w = sizes[k] if k < len(sizes) else sizes[0]
        save(noise(k, h, w), root / f"{name}.png")
        size = (root / f"{name}.png").stat().st_size
        regions = [] if name == "blank" else [{
            "shape_attributes": {"name": "rect", "x": 4, "y": 2, "width": 12, "height": 8},
            "region_attributes": {"insect": "bug"}}]
        data[f"{name}.png{size}"] = {"filename": f"{name}.png", "size": size, "regions": regions, "file_attributes": {}}
    path = root / "via_region_data.json"
    path.write_text(json.dumps(data))
    return path


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


@pytest.mark.parametrize("keep", [False, True])
def test_data_check_prints_the_fingerprint_of_an_annotation_file(tmp_path, capsys, keep) -> None:
    from workshop import cli
    from workshop.data.sources import open_source

    via = make_via_export(tmp_path / "bugs")
    source = open_source(via, keep_unannotated=keep)
    masks = [source.read(item).mask for item in source.items()]  # what training reads: masks drawn from the shapes
    fg = [int((m == 1).sum()) for m in masks]
    assert fg == [12 * 8, 12 * 8] + ([0] if keep else []), "a 12 x 8 rectangle in each annotated image"
    pixels = [24 * 32, 30 * 40] + ([24 * 32] if keep else [])
    args = ["data", "check", str(via)] + (["--keep-unannotated"] if keep else [])
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    n = 3 if keep else 2
    assert f"fingerprint: {n} image(s), binary" in out, out
    median_h = 24 if keep else 27  # heights 24, 30 (+ 24 for the blank image)
    assert f"image size: height {median_h} (24..30), width {32 if keep else 36} (32..40)" in out
    share = sum(fg) / sum(pixels)
    background, name = source.class_names()
    assert name == "bug", "the annotation's class name, not 'foreground'"
    assert f"classes: {background} {_pct(1 - share)}, bug {_pct(share)}" in out
    areas = sorted(f / p for f, p in zip(fg, pixels[:2]))
    assert (f"objects: 1 per image (median), area {_pct(float(np.median(areas)))} of the image "
            f"(median; {_pct(areas[0])}..{_pct(areas[1])}); {1 if keep else 0} image(s) without foreground") in out
    lines = out.splitlines()
    assert lines.index(next(ln for ln in lines if ln.startswith("fingerprint:"))) < len(lines) - 2, "before the verdict"


def test_data_check_fingerprints_a_multiclass_coco_file_with_its_class_names(tmp_path, capsys) -> None:
    import json

    from workshop import cli

    root = tmp_path / "coco"
    save(noise(0), root / "p.png")  # 24 x 32
    data = {"images": [{"id": 1, "file_name": "p.png", "height": H, "width": W}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 3, "iscrowd": 0, "area": 64.0, "bbox": [0, 0, 8, 8],
                 "segmentation": [[0, 0, 8, 0, 8, 8, 0, 8]]},
                {"id": 2, "image_id": 1, "category_id": 7, "iscrowd": 0, "area": 128.0, "bbox": [16, 8, 16, 8],
                 "segmentation": [[16, 8, 32, 8, 32, 16, 16, 16]]}],
            "categories": [{"id": 3, "name": "ant"}, {"id": 7, "name": "bee"}]}
    (root / "instances.json").write_text(json.dumps(data))
    from workshop.data.sources import open_source

    source = open_source(root / "instances.json", task="multiclass")
    mask = source.read(source.items()[0]).mask
    counts = np.bincount(mask.ravel(), minlength=3)
    assert counts[1] > 0 and counts[2] > counts[1]
    assert cli.main(["data", "check", str(root / "instances.json"), "--task", "multiclass"]) == 0
    out = capsys.readouterr().out
    assert "fingerprint: 1 image(s), multiclass" in out and f"image size: height {H} ({H}..{H}), width {W} ({W}..{W})" in out
    shares = counts / counts.sum()
    names = source.class_names()
    assert names[1:] == ["ant", "bee"]
    assert "classes: " + ", ".join(f"{n} {_pct(s)}" for n, s in zip(names, shares)) in out, out


def test_data_check_without_a_readable_source_prints_no_fingerprint(tmp_path, capsys) -> None:
    from workshop import cli

    make_folder(tmp_path, names=("a",))
    (tmp_path / "images" / "a.png").write_bytes(b"junk")
    assert cli.main(["data", "check", str(tmp_path)]) == 1
    assert "fingerprint:" not in capsys.readouterr().out


def test_data_check_fingerprints_masks_named_with_a_suffix_as_it_pairs_them(tmp_path, capsys) -> None:
    from workshop import cli

    for k, name in enumerate(("x", "y", "z")):
        save(noise(k), tmp_path / "images" / f"{name}.png")
        save(bar_mask(), tmp_path / "masks" / f"{name}_mask.png")
    assert cli.main(["data", "check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "mask names add '_mask' to the image names" in out
    share = (W // 2 - W // 4) / W  # bar_mask: columns W/4..W/2 of every row
    assert "fingerprint: 3 image(s), binary" in out and f"foreground {_pct(share)}" in out, out
