"""The embedded data set: layout, determinism, masks that agree with the polygon labels, caching."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workshop.data import synthetic
from workshop.data.polygons import (
    load_polygon_labels,
    polygon_area,
    polygon_to_mask,
    render_instance_id_mask,
    render_semantic_mask,
)
from workshop.data.synthetic import (
    CLASS_COLORS,
    CLASSES,
    default_data_dir,
    embedded_dir,
    ensure_dataset,
    generate_dataset,
    generate_scene,
)

SIZE = 64
NUM = 8
CLASS_TO_ID = {name: index for index, name in enumerate(CLASSES)}
MASK_KINDS = ("binary", "multiclass", "instance")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("embedded") / "aerial", NUM, SIZE, seed=3)


def stems(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "images").glob("*.png"))


def file_bytes(root: Path) -> dict[str, bytes]:
    """Every image, mask and label file of a data set, by relative path."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.suffix in {".png", ".json"} and path.name not in {"manifest.json"}
    }


def load_mask(root: Path, kind: str, stem: str) -> np.ndarray:
    with Image.open(root / "masks" / kind / f"{stem}.png") as image:
        assert image.mode == "L"
        return np.asarray(image)


# ----------------------------------------------------------------------------- layout


def test_layout_has_every_file(dataset):
    expected = [f"{i:05d}" for i in range(NUM)]
    assert stems(dataset) == expected
    assert sorted(p.stem for p in (dataset / "labels").glob("*.json")) == expected
    for kind in MASK_KINDS:
        assert sorted(p.stem for p in (dataset / "masks" / kind).glob("*.png")) == expected
    assert sorted(p.name for p in dataset.iterdir()) == ["images", "labelmap.json", "labels", "manifest.json", "masks"]


def test_manifest(dataset):
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest == {
        "name": "embedded-aerial",
        "format_version": 1,
        "seed": 3,
        "num_images": NUM,
        "image_size": SIZE,
        "classes": ["background", "building", "road", "vegetation", "water"],
        "generator": "workshop.data.synthetic",
    }


def test_labelmap_ids_and_colours(dataset):
    labelmap = json.loads((dataset / "labelmap.json").read_text())
    assert [c["name"] for c in labelmap["classes"]] == list(CLASSES)
    assert [c["id"] for c in labelmap["classes"]] == [0, 1, 2, 3, 4]
    assert [tuple(c["color"]) for c in labelmap["classes"]] == list(CLASS_COLORS)
    assert len(set(CLASS_COLORS)) == len(CLASSES)  # colour-coded masks tell every class apart


def test_image_files(dataset):
    for stem in stems(dataset):
        with Image.open(dataset / "images" / f"{stem}.png") as image:
            assert image.mode == "RGB" and image.size == (SIZE, SIZE)


def test_label_files(dataset):
    for stem in stems(dataset):
        labels = load_polygon_labels(dataset / "labels" / f"{stem}.json")
        assert labels["image"] == f"{stem}.png"
        assert (labels["width"], labels["height"]) == (SIZE, SIZE)
        classes = [obj["class"] for obj in labels["objects"]]
        assert set(classes) <= set(CLASSES) - {"background"}
        first_building = classes.index("building")
        assert set(classes[first_building:]) == {"building"}  # buildings are drawn last
        building_ids = [obj["instance_id"] for obj in labels["objects"] if obj["class"] == "building"]
        assert building_ids == list(range(1, len(building_ids) + 1))
        for obj in labels["objects"]:
            xy = np.asarray(obj["points"])
            assert xy.min() >= 0 and xy.max() <= SIZE - 1
            np.testing.assert_array_equal(np.round(xy, 1), xy)  # one decimal


# ----------------------------------------------------------------------------- masks agree with labels


def test_masks_rerender_from_labels(dataset):
    for stem in stems(dataset):
        objects = load_polygon_labels(dataset / "labels" / f"{stem}.json")["objects"]
        semantic = render_semantic_mask(objects, SIZE, SIZE, CLASS_TO_ID)
        np.testing.assert_array_equal(load_mask(dataset, "multiclass", stem), semantic)
        instance = render_instance_id_mask(objects, SIZE, SIZE)
        np.testing.assert_array_equal(load_mask(dataset, "instance", stem), instance)


def test_binary_and_instance_masks_agree_with_multiclass(dataset):
    for stem in stems(dataset):
        multiclass = load_mask(dataset, "multiclass", stem)
        binary = load_mask(dataset, "binary", stem)
        instance = load_mask(dataset, "instance", stem)
        assert set(np.unique(binary)) <= {0, 255}
        assert multiclass.max() <= 4
        np.testing.assert_array_equal(binary, (multiclass == 1).astype(np.uint8) * 255)
        np.testing.assert_array_equal(instance > 0, multiclass == 1)
        objects = json.loads((dataset / "labels" / f"{stem}.json").read_text())["objects"]
        buildings = [obj for obj in objects if obj["class"] == "building"]
        visible = np.unique(instance[instance > 0])
        assert visible.tolist() == list(range(1, len(buildings) + 1))  # every building stays visible


def test_every_class_appears(dataset):
    seen = set()
    for stem in stems(dataset):
        seen |= set(np.unique(load_mask(dataset, "multiclass", stem)).tolist())
    assert seen == {0, 1, 2, 3, 4}


# ----------------------------------------------------------------------------- scenes


@pytest.mark.parametrize("seed", range(12))
def test_scene_buildings(seed):
    image, objects = generate_scene(np.random.default_rng([seed, 0]), SIZE)
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    buildings = [obj["points"] for obj in objects if obj["class"] == "building"]
    assert 2 <= len(buildings) <= 8
    masks = np.stack([polygon_to_mask(points, SIZE, SIZE) for points in buildings])
    assert masks.sum(axis=0).max() == 1  # no two buildings overlap
    assert masks.reshape(len(buildings), -1).sum(axis=1).min() >= 40  # at least ~6x6 px
    assert min(polygon_area(points) for points in buildings) >= 36
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    assert rows.sum(axis=1).min() >= 6 and cols.sum(axis=1).min() >= 6


def test_scene_same_rng_same_scene():
    a_image, a_objects = generate_scene(np.random.default_rng(7), SIZE)
    b_image, b_objects = generate_scene(np.random.default_rng(7), SIZE)
    np.testing.assert_array_equal(a_image, b_image)
    assert a_objects == b_objects


def test_scene_is_not_trivial():
    image, objects = generate_scene(np.random.default_rng(1), 96)
    assert image.std() > 10  # textured, not flat colour
    semantic = render_semantic_mask(objects, 96, 96, CLASS_TO_ID)
    building = semantic == 1
    assert 0.02 < building.mean() < 0.6


@pytest.mark.parametrize("size", [0, 16, 31, 64.0, "64"])
def test_scene_rejects_bad_size(size):
    with pytest.raises(ValueError, match="size must be an integer >= 32"):
        generate_scene(np.random.default_rng(0), size)


# ----------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_and_image_i_independent_of_count(dataset, tmp_path):
    fewer = generate_dataset(tmp_path / "fewer", 3, SIZE, seed=3)
    ours, theirs = file_bytes(dataset), file_bytes(fewer)
    shared = [name for name in theirs if name != "labelmap.json"]
    assert len(shared) == 3 * 5  # image, label and three masks per image
    for name in shared:
        assert theirs[name] == ours[name], name
    assert theirs["labelmap.json"] == ours["labelmap.json"]


def test_drawn_by_several_processes_same_bytes_as_by_one(tmp_path, monkeypatch):
    drawn = []
    in_processes = synthetic._write_scenes_in_processes
    monkeypatch.setattr(synthetic, "_write_scenes_in_processes", lambda *a: drawn.append(in_processes(*a)) or drawn[-1])
    monkeypatch.setattr(synthetic, "_generation_processes", lambda n: 2)
    forked = file_bytes(generate_dataset(tmp_path / "forked", 5, 32, seed=1))
    assert drawn == [True]  # the two processes drew them (no fallback)
    monkeypatch.setattr(synthetic, "_generation_processes", lambda n: 1)
    alone = file_bytes(generate_dataset(tmp_path / "alone", 5, 32, seed=1))
    assert drawn == [True] and len(forked) == 5 * 5 + 1 and forked == alone  # image, label, 3 masks each; labelmap


def test_no_processes_to_be_had_draws_them_in_this_one(tmp_path, monkeypatch):
    import concurrent.futures

    def refuse(*args, **kwargs):
        raise OSError("no processes here")

    monkeypatch.setattr(synthetic, "_generation_processes", lambda n: 2)
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", refuse)
    root = generate_dataset(tmp_path / "data", 3, 32, seed=1)
    assert sorted(p.name for p in (root / "images").iterdir()) == ["00000.png", "00001.png", "00002.png"]


def test_different_seed_differs(dataset, tmp_path):
    other = generate_dataset(tmp_path / "other", 3, SIZE, seed=4)
    for stem in ("00000", "00001", "00002"):
        assert (other / "images" / f"{stem}.png").read_bytes() != (dataset / "images" / f"{stem}.png").read_bytes()
        assert (other / "labels" / f"{stem}.json").read_text() != (dataset / "labels" / f"{stem}.json").read_text()


def test_images_within_a_dataset_differ(dataset):
    images = [(dataset / "images" / f"{stem}.png").read_bytes() for stem in stems(dataset)]
    assert len(set(images)) == NUM


# ----------------------------------------------------------------------------- writing safely


def test_generate_replaces_an_earlier_dataset(tmp_path):
    root = generate_dataset(tmp_path / "data", 3, SIZE, seed=0)
    again = generate_dataset(root, 2, SIZE, seed=1)
    assert again == root
    assert stems(root) == ["00000", "00001"]
    assert json.loads((root / "manifest.json").read_text())["seed"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no staging or old copies left behind


def test_generate_refuses_a_folder_that_is_not_a_dataset(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    (root / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="mine exists and is not a complete data set made by workshop.data.synthetic"):
        generate_dataset(root, 2, SIZE)
    assert (root / "notes.txt").read_text() == "keep me"


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing_scene(rng, size):
        calls.append(size)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return generate_scene(rng, size)

    monkeypatch.setattr(synthetic, "generate_scene", failing_scene)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(tmp_path / "data", 4, SIZE)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_images": 0}, "num_images must be an integer >= 1"),
        ({"image_size": 16}, "image_size must be an integer >= 32"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"num_images": 2.5}, "num_images must be an integer"),
    ],
)
def test_generate_rejects_bad_arguments(tmp_path, kwargs, message):
    arguments = {"num_images": 2, "image_size": SIZE, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=message):
        generate_dataset(tmp_path / "data", **arguments)


# ----------------------------------------------------------------------------- caching and locations


def test_ensure_dataset_reuses_then_regenerates(tmp_path):
    root = tmp_path / "data"
    first = ensure_dataset(root, 2, SIZE, seed=0)
    manifest = first / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    image_stamp = (first / "images" / "00000.png").stat().st_mtime_ns
    assert ensure_dataset(root, 2, SIZE, seed=0) == first
    assert manifest.stat().st_mtime_ns == stamp
    assert (first / "images" / "00000.png").stat().st_mtime_ns == image_stamp

    for params in ({"num_images": 3, "seed": 0}, {"num_images": 3, "seed": 5}):
        ensure_dataset(root, image_size=SIZE, **params)
        written = json.loads(manifest.read_text())
        assert (written["num_images"], written["seed"]) == (params["num_images"], params["seed"])
        assert len(stems(root)) == params["num_images"]


@pytest.mark.parametrize("manifest", [None, {"name": "my-data", "generator": "labelme"}, "not json"])
def test_ensure_dataset_never_deletes_a_folder_it_did_not_make(tmp_path, manifest):
    root = ensure_dataset(tmp_path / "data", 2, SIZE, seed=0)
    if manifest is None:
        (root / "manifest.json").unlink()  # e.g. a hand-made copy of the layout
    else:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        (root / "manifest.json").write_text(text)
    with pytest.raises(ValueError, match="data.*no matching manifest.json.*delete it"):
        ensure_dataset(root, 2, SIZE, seed=0)
    assert stems(root) == ["00000", "00001"]


def test_ensure_dataset_default_location(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKSHOP_DATA_DIR", str(tmp_path))
    root = ensure_dataset(None, 2, SIZE, seed=9)
    assert root == tmp_path / "embedded-aerial-n2-s64-seed9"
    assert (root / "manifest.json").exists()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WORKSHOP_DATA_DIR": "/data/ws", "XDG_CACHE_HOME": "/cache"}, "/data/ws"),
        ({"XDG_CACHE_HOME": "/cache"}, "/cache/workshop"),
        ({}, "~/.cache/workshop"),
        ({"WORKSHOP_DATA_DIR": "", "XDG_CACHE_HOME": ""}, "~/.cache/workshop"),
    ],
)
def test_default_data_dir(monkeypatch, env, expected):
    for name in ("WORKSHOP_DATA_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert default_data_dir() == Path(os.path.expanduser(expected))


def test_embedded_dir(tmp_path, monkeypatch):
    assert embedded_dir(300, 128, 0, data_dir=tmp_path) == tmp_path / "embedded-aerial-n300-s128-seed0"
    monkeypatch.setenv("WORKSHOP_DATA_DIR", str(tmp_path / "x"))
    assert embedded_dir(8, 64, 2) == tmp_path / "x" / "embedded-aerial-n8-s64-seed2"
