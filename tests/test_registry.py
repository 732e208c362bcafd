"""The real-data registry offline: entries, mask conversions, splits, loaders on tiny layouts made here."""

from __future__ import annotations

import csv
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workshop.config import load_config
from workshop.data import registry
from workshop.data.datasets import InstanceDataset
from workshop.errors import ConfigError, DataError


def save_png(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def rgb(h: int, w: int, value: int = 90) -> np.ndarray:
    img = np.full((h, w, 3), value, np.uint8)
    img[0, 0] = (255, 0, 0)  # a marker pixel, so orientation mistakes show
    return img


# ----------------------------------------------------------------------------- tiny layouts


def make_camvid(root: Path) -> Path:
    """train: a (ids 0, 3, 11), b (ids 10, 11); val: c (ids 1, 2). 8x6 images."""
    ids = {
        "train/a": np.array([[0, 0, 3, 3, 11, 11]] * 8),
        "train/b": np.array([[10, 10, 10, 11, 11, 11]] * 8),
        "val/c": np.array([[1, 1, 1, 2, 2, 2]] * 8),
    }
    lines = {"train": [], "val": []}
    for key, mask in ids.items():
        split, stem = key.split("/")
        save_png(rgb(8, 6), root / split / f"{stem}.png")
        save_png(mask, root / f"{split}annot" / f"{stem}.png")
        lines[split].append(f"{split}/{stem}.png {split}annot/{stem}.png")
    for split, rows in lines.items():
        (root / f"{split}_rel.txt").write_text("\n".join(rows) + "\n")
    (root / "classes.txt").write_text("0 Sky\n")
    return root


def make_pets(root: Path) -> Path:
    """Three pets (trimaps 1 pet / 2 background / 3 border); trainval: cat_1, dog_1; test: cat_2."""
    trimap = np.array([[2, 2, 2, 2], [2, 3, 3, 2], [3, 1, 1, 3], [3, 1, 1, 3], [2, 3, 3, 2]])
    for stem in ("cat_1", "dog_1", "cat_2"):
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb(5, 4)).save(root / "images" / f"{stem}.jpg", quality=95)
        save_png(trimap, root / "annotations" / "trimaps" / f"{stem}.png")
    (root / "annotations" / "trainval.txt").write_text("cat_1 1 1 1\ndog_1 2 2 1\n")
    (root / "annotations" / "test.txt").write_text("cat_2 1 1 1\n")
    return root


def make_human_seg(root: Path, n: int = 5) -> Path:
    """``n`` photos of 12x8 (WxH); odd-numbered masks are stored at half size (6x4), like the real set."""
    rows = []
    for i in range(1, n + 1):
        Image.fromarray(rgb(8, 12)).save(_mkdir(root / "Training_Images") / f"{i}.jpg", quality=95)
        full = np.zeros((8, 12), np.uint8)
        full[:, 4:8] = 255
        mask = full[::2, ::2] if i % 2 else full
        save_png(mask, root / "Ground_Truth" / f"{i}.png")
        rows.append((f"Human-Segmentation-Dataset-master/Ground_Truth/{i}.png",
                     f"Human-Segmentation-Dataset-master/Training_Images/{i}.jpg"))
    with (root / "train.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["masks", "images"])
        writer.writerows(rows)
    return root


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def make_pennfudan(root: Path) -> Path:
    """Two photos: FudanPed00001 with people 1 and 2, PennPed00001 with one person."""
    m1 = np.zeros((10, 12), np.uint8)
    m1[2:6, 1:3] = 1   # person 1: rows 2..5, cols 1..2 -> box (1, 2, 3, 6)
    m1[4:10, 7:11] = 2  # person 2: rows 4..9, cols 7..10 -> box (7, 4, 11, 10)
    m2 = np.zeros((10, 12), np.uint8)
    m2[0:3, 0:12] = 1
    for stem, mask in (("FudanPed00001", m1), ("PennPed00001", m2)):
        save_png(rgb(10, 12), root / "PNGImages" / f"{stem}.png")
        save_png(mask, root / "PedMasks" / f"{stem}_mask.png")
        _mkdir(root / "Annotation")
        (root / "Annotation" / f"{stem}.txt").write_text("# PASCAL Annotation Version 1.00\n")
    return root


MAKERS = {"camvid": make_camvid, "pets": make_pets, "human_seg": make_human_seg, "pennfudan": make_pennfudan}


@pytest.fixture
def layout(tmp_path):
    def build(name: str) -> Path:
        return MAKERS[name](_mkdir(tmp_path / name))

    return build


# ----------------------------------------------------------------------------- entries


def test_every_entry_is_complete_and_checksums_are_real_or_none() -> None:
    assert set(registry.REGISTRY) == {"pets", "human_seg", "camvid", "pennfudan"}
    for name, entry in registry.REGISTRY.items():
        assert entry.name == name and entry.task in entry.tasks
        assert entry.licence and entry.homepage.startswith("https://") and entry.layout
        for archive in entry.archives:
            assert archive.url.startswith("https://")
            assert archive.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", archive.sha256)
            assert archive.sha256 is None or archive.checksum_source, "a recorded checksum names its source"
    recorded = {a.filename: a.sha256 is not None for e in registry.REGISTRY.values() for a in e.archives}
    assert recorded["images.tar.gz"] and recorded["annotations.tar.gz"]
    assert not recorded["PennFudanPed.zip"]


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown data set 'coco'; choose one of: pets, human_seg, camvid, pennfudan"):
        registry.get_entry("coco")


@pytest.mark.parametrize(
    ("task", "border", "trimap_values", "expected"),
    [
        ("binary", "ignore", [1, 2, 3], [1, 0, 255]),
        ("binary", "foreground", [1, 2, 3], [1, 0, 1]),
        ("multiclass", "ignore", [1, 2, 3], [1, 0, 2]),
    ],
)
def test_trimap_conversion(task: str, border: str, trimap_values: list[int], expected: list[int]) -> None:
    lut = registry.trimap_lut(task, border)
    assert registry.remap_mask(np.array(trimap_values), lut).tolist() == expected


def test_trimap_bad_choices_name_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="choose one of: ignore, foreground"):
        registry.trimap_lut("binary", "edge")
    with pytest.raises(ValueError, match="choose one of: binary, multiclass"):
        registry.trimap_lut("instance")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [([0, 5, 10], [0, 5, 10]), ([11, 3], [255, 3]), ([11, 11], [255, 255])],
)
def test_camvid_void_becomes_ignore(raw: list[int], expected: list[int]) -> None:
    assert registry.remap_mask(np.array(raw), registry.camvid_lut()).tolist() == expected


def test_unexpected_raw_values_are_an_error_naming_the_file() -> None:
    with pytest.raises(DataError, match=r"x\.png: unexpected mask values \[12\]"):
        registry.remap_mask(np.array([[0, 12]]), registry.camvid_lut(), "x.png")


def test_camvid_label_map_has_eleven_classes_and_ignores_255() -> None:
    lm = registry.camvid_label_map()
    assert lm.names[:3] == ["Sky", "Building", "Pole"] and lm.names[-1] == "Bicyclist"
    assert lm.ids == list(range(11)) and lm.ignore_index == 255


# ----------------------------------------------------------------------------- load_dataset


def test_camvid_uses_the_rel_lists_and_remaps_void(layout) -> None:
    root = layout("camvid")
    train = registry.load_dataset("camvid", root, split="train")
    assert [p[0].name for p in train.pairs] == ["a.png", "b.png"]
    assert len(registry.load_dataset("camvid", root, split="val")) == 1
    assert len(registry.load_dataset("camvid", root, split="all")) == 3
    item = train[0]
    assert item["image"].shape == (8, 6, 3)
    assert item["mask"][0].tolist() == [0, 0, 3, 3, 255, 255]
    assert train.label_map.names == registry.camvid_label_map().names


def test_pets_binary_and_three_class(layout) -> None:
    root = layout("pets")
    binary = registry.load_dataset("pets", root, split="train")
    assert len(binary) == 2 and len(registry.load_dataset("pets", root, split="test")) == 1
    assert binary[0]["mask"].tolist() == [[0, 0, 0, 0], [0, 255, 255, 0], [255, 1, 1, 255], [255, 1, 1, 255], [0, 255, 255, 0]]
    solid = registry.load_dataset("pets", root, split="val", border="foreground")
    assert solid[0]["mask"][2].tolist() == [1, 1, 1, 1]
    three = registry.load_dataset("pets", root, split="all", task="multiclass")
    assert len(three) == 3 and three[0]["mask"][1].tolist() == [0, 2, 2, 0]
    assert three.label_map.names == ["background", "pet", "border"]


def test_human_seg_reads_the_csv_with_masks_resized_to_the_photo(layout) -> None:
    root = layout("human_seg")
    everything = registry.load_dataset("human_seg", root, split="all")
    assert len(everything) == 5 and [p[0].name for p in everything.pairs][:2] == ["1.jpg", "2.jpg"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a known property of this data set: resized without a warning per item
        item = everything[0]  # 1.jpg: its mask is stored at half size
    assert item["image"].shape == (8, 12, 3) and item["mask"].shape == (8, 12)
    assert item["mask"][0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0]
    train = registry.load_dataset("human_seg", root, split="train")
    val = registry.load_dataset("human_seg", root, split="val")
    assert (len(train), len(val)) == (4, 1)
    assert not {p[0] for p in train.pairs} & {p[0] for p in val.pairs}


def test_pennfudan_instances_and_person_masks(layout) -> None:
    root = layout("pennfudan")
    ds = registry.load_dataset("pennfudan", root, split="all")
    assert isinstance(ds, InstanceDataset) and len(ds) == 2
    item = ds[0]
    assert item["masks"].shape == (2, 10, 12)
    assert item["boxes"].tolist() == [[1, 2, 3, 6], [7, 4, 11, 10]]
    assert item["labels"].tolist() == [1, 1]
    person = registry.load_dataset("pennfudan", root, split="all", task="binary")
    assert sorted(np.unique(person[0]["mask"]).tolist()) == [0, 1]
    assert int(person[0]["mask"].sum()) == 4 * 2 + 6 * 4


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("camvid", {"split": "trainval"}, "has no split 'trainval'; choose one of: train, val, test, all"),
        ("human_seg", {"task": "multiclass"}, "human_seg offers task\\(s\\): binary; got task='multiclass'"),
        ("pennfudan", {"task": "multiclass"}, "pennfudan offers task\\(s\\): instance, binary"),
    ],
)
def test_bad_split_or_task_names_the_choices(layout, name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        registry.load_dataset(name, layout(name), **kwargs)


def test_a_folder_without_the_layout_is_named(tmp_path) -> None:
    with pytest.raises(DataError, match=r"is not a camvid folder: expected train/ \+ trainannot/, val/ \+ valannot/ "
                                        r"or test/ \+ testannot/ \(the SegNet layout\) in data.root"):
        registry.load_dataset("camvid", tmp_path)
    with pytest.raises(DataError, match=r"is not a pennfudan folder: missing PNGImages, PedMasks, Annotation"):
        registry.load_dataset("pennfudan", tmp_path)


def test_the_camvid_test_split_in_the_segnet_layout(layout, tmp_path) -> None:
    root = layout("camvid")
    ids = np.array([[4, 4, 11, 11, 5, 5]] * 8)
    for stem in ("d", "e"):
        save_png(rgb(8, 6), root / "test" / f"{stem}.png")
        save_png(ids, root / "testannot" / f"{stem}.png")
    test = registry.load_dataset("camvid", root, split="test")
    assert [p[0].name for p in test.pairs] == ["d.png", "e.png"]
    assert test[0]["mask"][0].tolist() == [4, 4, 255, 255, 5, 5]
    assert len(registry.load_dataset("camvid", root, split="all")) == 3, "all = train + val; test stays held out"
    only_test = _mkdir(tmp_path / "camvid-test")  # a folder with the test split only is a camvid folder too
    for sub in ("test", "testannot"):
        (root / sub).rename(only_test / sub)
    assert len(registry.load_dataset("camvid", only_test, split="test")) == 2
    with pytest.raises(DataError, match=r"has no CamVid train split: expected train_rel.txt, or train/ \+ trainannot/"):
        registry.load_dataset("camvid", only_test, split="train")


def test_missing_listed_file_is_named(layout) -> None:
    root = layout("camvid")
    (root / "trainannot" / "b.png").unlink()
    with pytest.raises(DataError, match=r"train_rel\.txt line 2: file not found: .*trainannot/b\.png"):
        registry.load_dataset("camvid", root, split="train")


def test_official_split(layout) -> None:
    train, val = registry.official_split("camvid", layout("camvid"))
    assert (len(train), len(val)) == (2, 1)
    assert registry.official_split("pennfudan", layout("pennfudan")) is None


# ----------------------------------------------------------------------------- the config path


def test_the_config_path_reads_camvid_through_its_source(layout) -> None:
    from workshop.data.loaders import make_datasets

    root = layout("camvid")
    cfg = load_config(profile="smoke", overrides={"data": {"source": "camvid", "task": "multiclass", "root": str(root),
                                                             "image_size": 32, "val_fraction": 0.34}})
    train, val = make_datasets(cfg)
    assert train.label_map.names == registry.camvid_label_map().names
    masks = [train.load(i)[1] for i in range(len(train))] + [val.load(i)[1] for i in range(len(val))]
    assert masks[0][0].tolist() == [0, 0, 3, 3, 255, 255]
    assert set(np.unique(np.concatenate([m.ravel() for m in masks])).tolist()) == {0, 1, 2, 3, 10, 255}


@pytest.mark.parametrize(
    ("name", "task", "expected_values"),
    [("pets", "binary", {0, 1, 255}), ("pets", "multiclass", {0, 1, 2}), ("pennfudan", "binary", {0, 1}),
     ("human_seg", "binary", {0, 1})],
)
def test_each_registered_source_gives_training_ids(layout, name: str, task: str, expected_values: set[int]) -> None:
    from workshop.data.sources import source_from_config

    root = layout(name)
    cfg = load_config(profile="smoke", overrides={"data": {"source": name, "task": task, "root": str(root)}})
    source = source_from_config(cfg)
    values = set()
    for item in source.items("all"):
        sample = source.read(item)
        assert sample.mask.shape == sample.image.shape[:2] and sample.mask.dtype == np.int64
        values |= set(np.unique(sample.mask).tolist())
    assert values == expected_values


@pytest.mark.parametrize(
    ("name", "task", "train_stems", "val_stems"),
    [("camvid", "multiclass", ["a", "b"], ["c"]), ("pets", "binary", ["cat_1", "dog_1"], ["cat_2"])],
)
def test_make_datasets_keeps_the_official_split(layout, name, task, train_stems, val_stems) -> None:
    from workshop.data.loaders import make_datasets

    root = layout(name)
    for fraction in (0.34, 0.67):  # the publisher's split wins over val_fraction
        cfg = load_config(profile="smoke", overrides={"data": {"source": name, "task": task, "root": str(root),
                                                                 "image_size": 32, "val_fraction": fraction}})
        train, val = make_datasets(cfg)
        assert [Path(p[0]).stem for p in train.pairs] == train_stems
        assert [Path(p[0]).stem for p in val.pairs] == val_stems


def test_make_datasets_splits_sets_without_an_official_split_by_val_fraction(layout) -> None:
    from workshop.data.loaders import make_datasets

    root = layout("human_seg")
    sizes = []
    for fraction in (0.2, 0.6):
        cfg = load_config(profile="smoke", overrides={"data": {"source": "human_seg", "root": str(root),
                                                                 "image_size": 32, "val_fraction": fraction}})
        train, val = make_datasets(cfg)
        assert not {p[0] for p in train.pairs} & {p[0] for p in val.pairs}
        sizes.append((len(train), len(val)))
    assert sizes == [(4, 1), (2, 3)]


def test_the_camvid_config_trains_on_the_official_split(layout, tmp_path) -> None:
    import torch

    from workshop.runs import train_from_config

    root = layout("camvid")
    config_file = Path(__file__).resolve().parents[1] / "configs" / "camvid.yaml"
    cfg = load_config(config_file, profile="smoke", overrides={
        "data": {"root": str(root), "image_size": 32, "batch_size": 2},
        "model": {"encoder_weights": None}, "train": {"device": "cpu", "epochs": 2}})
    assert (cfg.data.source, cfg.data.task, cfg.train.loss) == ("camvid", "multiclass", "dice_ce")
    result = train_from_config(cfg, run_dir=tmp_path / "run", log=lambda line: None)
    assert len(result.history) == cfg.train.epochs
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()
    state = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", map_location="cpu", weights_only=False)
    assert state["class_names"] == registry.camvid_label_map().names


def test_a_real_data_set_needs_no_data_root(tmp_path, monkeypatch) -> None:
    from workshop.data.loaders import make_datasets

    shared = tmp_path / "shared-sets"
    make_camvid(_mkdir(shared / "camvid"))
    from workshop.data import local

    monkeypatch.setattr(local, "shared_candidates", lambda name: [shared / name])
    cfg = load_config(profile="smoke", overrides={"data": {"source": "camvid", "task": "multiclass", "image_size": 32}})
    assert cfg.data.root is None
    train, val = make_datasets(cfg)  # found in the shared folder
    assert (len(train), len(val)) == (2, 1)
    monkeypatch.setattr(local, "shared_candidates", lambda name: [tmp_path / "nowhere" / name])
    with pytest.raises(DataError, match=r"data set 'camvid' is not on this machine: run `workshop data download camvid` "
                                        r"\(it goes to .*\), or set data.root \(--set data.root=PATH\) to a copy you have"):
        make_datasets(cfg)


def test_folder_and_csv_sources_still_need_data_root() -> None:
    from workshop.data.loaders import make_datasets

    for source in ("folder", "csv"):
        cfg = load_config(profile="smoke", overrides={"data": {"source": source}})
        with pytest.raises(ConfigError, match=f"data.root must name the data folder when data.source is '{source}'"):
            make_datasets(cfg)


def test_an_official_split_without_validation_pairs_is_named(layout) -> None:
    from workshop.data.loaders import make_datasets

    root = layout("camvid")
    (root / "val_rel.txt").write_text("")  # a half-copied data set: no validation list
    cfg = load_config(profile="smoke", overrides={"data": {"source": "camvid", "task": "multiclass", "root": str(root)}})
    with pytest.raises(DataError, match=rf"camvid: the official split lists 2 training pairs of 2; the data set at "
                                        rf"{re.escape(str(root))} looks incomplete \(`workshop data verify camvid`\)"):
        make_datasets(cfg)


def test_official_train_count(layout) -> None:
    assert registry.official_train_count("camvid", layout("camvid")) == 2
    assert registry.official_train_count("pets", layout("pets")) == 2
    assert registry.official_train_count("human_seg", layout("human_seg")) is None
    with pytest.raises(ValueError, match="unknown data set 'coco'"):
        registry.official_train_count("coco")


def test_a_task_that_does_not_fit_the_data_set_is_refused(layout) -> None:
    from workshop.data.sources import source_from_config

    cfg = load_config(profile="smoke", overrides={"data": {"source": "camvid", "task": "binary", "root": str(layout("camvid"))}})
    with pytest.raises(ConfigError, match="data.task='binary' does not fit camvid; choose one of: multiclass"):
        source_from_config(cfg)


# ----------------------------------------------------------------------------- where, list, verify


def test_find_local_prefers_the_download_then_the_shared_folder(layout, tmp_path, monkeypatch) -> None:
    shared = tmp_path / "shared-sets"
    make_pennfudan(_mkdir(shared / "pennfudan"))
    monkeypatch.setenv("WORKSHOP_SHARED_DATASETS", str(shared))
    assert registry.find_local("pennfudan") == shared / "pennfudan"
    own = registry.dataset_dir("pennfudan")
    make_pennfudan(_mkdir(own))
    assert registry.find_local("pennfudan") == shared / "pennfudan", "no marker: not a finished download"
    (own / registry.MARKER).write_text(json.dumps({"name": "pennfudan"}))
    try:
        assert registry.find_local("pennfudan") == own
        assert len(registry.load_dataset("pennfudan", split="all")) == 2
        line = next(ln for ln in registry.describe_all() if ln.strip().startswith("pennfudan"))
        assert f"downloaded: {own}" in line and "170 images" in line
    finally:
        registry.remove_download("pennfudan")
    assert not own.exists()


def test_describe_all_has_one_line_per_data_set(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("WORKSHOP_SHARED_DATASETS", str(tmp_path / "none"))
    lines = registry.describe_all()
    body = lines[1:]
    assert [ln.split()[0] for ln in body] == ["pets", "human_seg", "camvid", "pennfudan"]
    assert "binary/multiclass" in body[0] and "811 MB download" in body[0]


def test_download_offline_is_one_line_with_the_manual_alternative(monkeypatch) -> None:
    monkeypatch.setenv("WORKSHOP_OFFLINE", "1")
    with pytest.raises(DataError) as err:
        registry.download("pennfudan", progress=False)
    text = str(err.value)
    assert "\n" not in text and "offline mode" in text
    assert "download https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip in a browser" in text
    assert f"put it at {registry.downloads_dir() / 'PennFudanPed.zip'}" in text
    assert "then run `workshop data verify pennfudan`" in text


def test_verify_without_a_download_says_where_to_put_the_archive() -> None:
    with pytest.raises(DataError, match=r"pennfudan is not downloaded and .*PennFudanPed\.zip does not exist"):
        registry.verify("pennfudan")


def test_cli_verify_prints_one_error_line(capsys) -> None:
    from workshop.cli import main

    assert main(["data", "verify", "camvid"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: camvid is not downloaded") and "\n" not in err


# ----------------------------------------------------------------------------- in-memory cache (benchmarks, CPU recipes)


def test_cached_pairs_resizes_once_and_normalises(layout) -> None:
    import torch

    from workshop.data.cache import CachedPairs

    root = layout("camvid")
    source = registry.load_dataset("camvid", root, split="train")
    cached = CachedPairs(source, size=(4, 3), workers=1)
    assert tuple(cached.images.shape) == (2, 3, 4, 3) and cached.images.dtype == torch.uint8
    assert cached.nbytes == 2 * 3 * 4 * 3 + 2 * 4 * 3
    item = cached[0]
    # mask a: columns 0,0,3,3,11->255,255 of width 6 -> nearest at width 3 takes columns 1, 3, 5
    assert item["mask"].tolist() == [[0, 3, 255]] * 4 and item["mask"].dtype == torch.int64
    # a flat grey pixel of 90: (90 / 255 - mean) / std per channel
    expected = [(90 / 255 - m) / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]
    assert torch.allclose(item["image"][:, 2, 1], torch.tensor(expected), atol=1e-5)


def test_cached_pairs_flips_move_image_and_mask_together(layout) -> None:
    import torch

    from workshop.data.cache import CachedPairs

    source = registry.load_dataset("camvid", layout("camvid"), split="train")
    cached = CachedPairs(source, size=8, hflip=1.0, workers=1, normalize=False)
    item = cached[0]
    assert item["mask"][0].tolist() == [255, 255, 255, 3, 3, 0, 0, 0]  # 6 columns -> 8, then mirrored
    assert torch.allclose(item["image"][:, 0, 7], torch.tensor([1.0, 0.0, 0.0]))  # the red marker pixel moved right
    a = CachedPairs(source, size=8, hflip=0.5, vflip=0.5, workers=1, seed=3)
    b = CachedPairs(source, size=8, hflip=0.5, vflip=0.5, workers=2, seed=3)
    assert all(torch.equal(a[i % 2]["mask"], b[i % 2]["mask"]) for i in range(12))


def test_cached_pairs_rejects_bad_arguments(layout) -> None:
    from workshop.data.cache import CachedPairs

    source = registry.load_dataset("camvid", layout("camvid"), split="train")
    with pytest.raises(ValueError, match=r"hflip is a probability in \[0, 1\], got 2"):
        CachedPairs(source, size=8, hflip=2)
    with pytest.raises(ValueError, match="size must be positive"):
        CachedPairs(source, size=0)
