"""Loading rules (EXIF, modes, mask normalisation, label maps) and the errors bad files give."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from workshop.data.datasets import CSVDataset, FolderDataset, match_by_stem, read_pairs_csv
from workshop.data.io import LabelClass, LabelMap, load_pair, read_image, read_mask, resize_mask_nearest
from workshop.errors import DataError


def save(array: np.ndarray, path, mode: str | None = None, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path, **kwargs) if mode else Image.fromarray(array).save(path, **kwargs)


@pytest.fixture
def folder(tmp_path):
    """Three 8x6 RGB images with 0/255 masks: a vertical bar at columns 2..3."""
    for name in ("a", "b", "c"):
        img = np.full((6, 8, 3), 40, np.uint8)
        mask = np.zeros((6, 8), np.uint8)
        mask[:, 2:4] = 255
        img[mask > 0] = 200
        save(img, tmp_path / "images" / f"{name}.jpg", quality=95)
        save(mask, tmp_path / "masks" / f"{name}.png")
    return tmp_path


def test_folder_dataset_pairs_by_stem_and_normalises_255(folder) -> None:
    ds = FolderDataset(folder / "images", folder / "masks")
    assert [p[0].name for p in ds.pairs] == ["a.jpg", "b.jpg", "c.jpg"]
    item = ds[1]
    assert item["image"].shape == (6, 8, 3) and item["image"].dtype == np.uint8
    assert item["mask"].dtype == np.int64
    expected = np.zeros((6, 8), np.int64)
    expected[:, 2:4] = 1
    np.testing.assert_array_equal(item["mask"], expected)


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        ("masks/b.png", "1 image(s) in .* have no mask in .*: b.jpg"),
        ("images/c.jpg", "1 mask(s) in .* have no image in .*: c.png"),
    ],
)
def test_unpaired_files_are_named(folder, remove: str, message: str) -> None:
    (folder / remove).unlink()
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        match_by_stem(folder / "images", folder / "masks")


def test_missing_and_empty_folders(tmp_path) -> None:
    with pytest.raises(DataError, match=r"images folder not found: .*nowhere"):
        FolderDataset(tmp_path / "nowhere", tmp_path / "masks")
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DataError, match=r"no images in .*images"):
        FolderDataset(tmp_path / "images", tmp_path / "masks")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty \\(zero-byte\\) file"),
        (b"this is not an image at all", "cannot be read"),
    ],
)
def test_corrupt_images_name_the_file(tmp_path, content: bytes, message: str) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        read_image(path)
    assert "broken.png" in str(info.value)


def test_truncated_png_is_reported(tmp_path) -> None:
    path = tmp_path / "cut.png"
    save(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8), path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match=r"cut\.png"):
        read_image(path)


def test_modes_become_rgb(tmp_path) -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    save(gray, tmp_path / "g.png", mode="L")
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 128
    save(rgba, tmp_path / "rgba.png", mode="RGBA")
    sixteen = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    Image.fromarray(sixteen).save(tmp_path / "i16.png")
    g = read_image(tmp_path / "g.png")
    assert g.shape == (3, 4, 3) and (g[..., 0] == gray).all() and (g[..., 2] == gray).all()
    r = read_image(tmp_path / "rgba.png")
    assert r.shape == (3, 4, 3) and (r[..., 0] == 255).all()
    s = read_image(tmp_path / "i16.png")
    assert s.dtype == np.uint8 and s.shape == (3, 4, 3)
    assert s[0, 0, 0] == 0 and s[2, 3, 0] == round(55000 * 255 / 65535)


def test_exif_orientation_is_applied(tmp_path) -> None:
    # Stored 4 wide x 2 high, with orientation 6 (rotate 90 degrees clockwise to display).
    img = np.zeros((2, 4, 3), np.uint8)
    img[0, 0] = (255, 0, 0)  # top-left red
    pil = Image.fromarray(img)
    exif = pil.getexif()
    exif[0x0112] = 6
    pil.save(tmp_path / "rot.png", exif=exif)
    out = read_image(tmp_path / "rot.png")
    assert out.shape == (4, 2, 3)  # now 2 wide x 4 high
    assert tuple(out[0, 1]) == (255, 0, 0)  # the red corner moved to the top right


def test_binary_mask_with_other_values_lists_them(tmp_path) -> None:
    m = np.zeros((4, 4), np.uint8)
    m[0, 0], m[1, 1] = 128, 7
    save(m, tmp_path / "m.png")
    with pytest.raises(DataError, match=r"m\.png: binary mask has values \{0, 7, 128\}"):
        read_mask(tmp_path / "m.png", task="binary")


def test_multiclass_values_outside_label_map_are_listed(tmp_path) -> None:
    lm = LabelMap.from_names(["bg", "road", "car"])
    m = np.array([[0, 1], [2, 9]], np.uint8)
    save(m, tmp_path / "m.png")
    with pytest.raises(DataError) as info:
        read_mask(tmp_path / "m.png", task="multiclass", label_map=lm)
    assert "m.png" in str(info.value) and "{9}" in str(info.value) and "found {0, 1, 2, 9}" in str(info.value)


def test_colour_masks_map_through_the_label_map(tmp_path) -> None:
    lm = LabelMap([LabelClass("bg", 0, (0, 0, 0)), LabelClass("road", 1, (128, 64, 128)), LabelClass("car", 2, (0, 0, 142))])
    ids = np.array([[0, 1, 2], [2, 1, 0]])
    save(lm.decode(ids), tmp_path / "colour.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "colour.png", "multiclass", lm), ids)
    lm.to_json(tmp_path / "lm.json")
    assert LabelMap.from_json(tmp_path / "lm.json").names == ["bg", "road", "car"]
    bad = lm.decode(ids)
    bad[0, 0] = (1, 2, 3)
    save(bad, tmp_path / "bad.png")
    with pytest.raises(DataError, match=r"colours not in the label map: \(1, 2, 3\)"):
        read_mask(tmp_path / "bad.png", "multiclass", lm)
    with pytest.raises(DataError, match="needs a label map"):
        read_mask(tmp_path / "colour.png", "multiclass")


def test_smaller_mask_is_resized_nearest_with_a_warning(tmp_path) -> None:
    save(np.zeros((8, 12, 3), np.uint8), tmp_path / "img.png")
    small = np.zeros((4, 6), np.uint8)
    small[:, 3:] = 255
    save(small, tmp_path / "mask.png")
    with pytest.warns(UserWarning, match=r"mask\.png: mask is 6x4, image is 12x8"):
        image, mask = load_pair(tmp_path / "img.png", tmp_path / "mask.png")
    assert mask.shape == (8, 12)
    assert set(np.unique(mask)) == {0, 1}
    np.testing.assert_array_equal(mask[:, 6:], 1)
    np.testing.assert_array_equal(mask[:, :6], 0)


@pytest.mark.parametrize(("shape", "target"), [((5, 7), (13, 3)), ((20, 20), (7, 9)), ((3, 3), (3, 3))])
def test_nearest_resize_keeps_the_label_set(shape, target) -> None:
    rng = np.random.default_rng(1)
    mask = rng.choice([0, 3, 7, 255], size=shape)
    out = resize_mask_nearest(mask, *target)
    assert out.shape == target
    assert set(np.unique(out)) <= set(np.unique(mask))


def test_csv_pairs_strip_the_zip_folder_name(folder) -> None:
    (folder / "pairs.csv").write_text(
        "masks,images\nproj-master/masks/a.png,proj-master/images/a.jpg\nmasks/b.png,images/b.jpg\n"
    )
    pairs = read_pairs_csv(folder / "pairs.csv")
    assert [(i.name, m.name) for i, m in pairs] == [("a.jpg", "a.png"), ("b.jpg", "b.png")]
    assert len(CSVDataset(folder / "pairs.csv")) == 2
    (folder / "bad.csv").write_text("image,mask\na.jpg,a.png\n")
    with pytest.raises(DataError, match="no column 'images'; columns found: image, mask"):
        read_pairs_csv(folder / "bad.csv")
    (folder / "missing.csv").write_text("masks,images\nmasks/z.png,images/z.jpg\n")
    with pytest.raises(DataError, match=r"missing\.csv line 2: file not found: .*z\.jpg"):
        read_pairs_csv(folder / "missing.csv")
