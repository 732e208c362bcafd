"""The augmentation explorer builds and re-renders headless, and shows image and mask aligned."""

from __future__ import annotations

import numpy as np
import pytest

from workshop.widgets import (
    augmentation_explorer,
    augmentation_explorer_apply,
    augmentation_explorer_transforms,
    figure_png,
)

PNG_MAGIC = b"\x89PNG"


def l_shape(size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """An asymmetric L: white on a dark-grey background in the image, 1 on 0 in the mask."""
    mask = np.zeros((size, size), np.int64)
    mask[6:36, 6:14] = 1
    mask[28:36, 6:30] = 1
    image = np.where(mask[:, :, None] == 1, 255, 40).astype(np.uint8).repeat(3, axis=2)
    return image, mask


def shown_mask(image: np.ndarray) -> np.ndarray:
    return (image[:, :, 0] > 150).astype(np.int64)


def test_explorer_builds_headless_and_renders_once() -> None:
    image, mask = l_shape()
    box = augmentation_explorer(image, mask)
    state = box.explorer
    assert state.error is None
    assert state.renders == 1
    assert state.view.value[:4] == PNG_MAGIC
    assert set(state.sliders) == {"angle"}
    assert box.children[-1] is state.view


def test_moving_a_slider_re_renders() -> None:
    image, mask = l_shape()
    state = augmentation_explorer(image, mask, transform="Rotate (Affine)").explorer
    before = state.view.value
    state.sliders["angle"].value = 90
    assert state.error is None and state.renders == 2
    assert state.view.value != before
    # a quarter turn with nearest-neighbour mask sampling is exactly np.rot90 (clockwise for +90 in albumentations' frame)
    assert np.array_equal(state.shown["mask"], np.rot90(mask, 1)) or np.array_equal(state.shown["mask"], np.rot90(mask, -1))
    state.seed.value = 7
    assert state.renders == 3 and state.error is None


def test_flip_shows_image_and_mask_aligned() -> None:
    image, mask = l_shape()
    state = augmentation_explorer(image, mask).explorer
    state.dropdown.value = "HorizontalFlip"
    assert state.error is None
    assert state.sliders == {}
    new_image, new_mask = state.shown["image"], state.shown["mask"]
    assert np.array_equal(new_mask, mask[:, ::-1])
    assert np.array_equal(shown_mask(new_image), new_mask)


@pytest.mark.parametrize("name", list(augmentation_explorer_transforms()))
def test_every_transform_renders_and_keeps_image_and_mask_together(name: str) -> None:
    image, mask = l_shape()
    state = augmentation_explorer(image, mask, transform=name).explorer
    assert state.error is None, state.error
    new_image, new_mask = state.shown["image"], state.shown["mask"]
    assert new_image.shape == image.shape and new_image.dtype == np.uint8
    assert new_mask.shape == mask.shape and new_mask.dtype == np.int64
    assert set(np.unique(new_mask).tolist()) <= {0, 1, 255}  # nearest-neighbour: no new class ids
    entry = augmentation_explorer_transforms()[name]
    if entry.geometric:
        inside = new_mask != 255
        agree = (shown_mask(new_image)[inside] == new_mask[inside]).mean()
        assert agree > 0.97, f"{name}: only {agree:.0%} of pixels agree"
    else:
        assert np.array_equal(new_mask, mask)  # colour transforms leave the mask alone


def test_changing_the_transform_rebuilds_the_sliders() -> None:
    image, mask = l_shape()
    state = augmentation_explorer(image, mask).explorer
    state.dropdown.value = "ColorJitter"
    assert set(state.sliders) == {"brightness", "contrast", "saturation", "hue"}
    renders = state.renders
    state.sliders["hue"].value = -0.2
    assert state.renders == renders + 1 and state.error is None


def test_apply_is_seeded() -> None:
    image, mask = l_shape()
    a = augmentation_explorer_apply(image, mask, "ElasticTransform", seed=3)
    b = augmentation_explorer_apply(image, mask, "ElasticTransform", seed=3)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"name": "Twirl"}, "choose one of: HorizontalFlip"),
        ({"name": "Rotate (Affine)", "angel": 3}, "its parameters: angle"),
    ],
)
def test_bad_names_list_the_valid_ones(kwargs: dict, words: str) -> None:
    image, mask = l_shape()
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        augmentation_explorer_apply(image, mask, **kwargs)


def test_explorer_rejects_a_mask_of_another_size() -> None:
    image, mask = l_shape()
    with pytest.raises(ValueError, match="does not match"):
        augmentation_explorer(image, mask[:10])


def test_figure_png_is_a_png() -> None:
    png = figure_png([np.zeros((8, 8, 3), np.uint8), np.ones((8, 8))], ["a", "b"], caption="c")
    assert png[:4] == PNG_MAGIC


def test_pictures_are_drawn_at_twice_their_display_size_and_shown_at_it() -> None:
    from workshop.widgets import PIXEL_RATIO, png_size

    png = figure_png([np.zeros((8, 8, 3), np.uint8)] * 3, ["a", "b", "c"], size=2.8)
    width, height = png_size(png)
    assert (width, height) == (round(3 * 2.8 * 80 * PIXEL_RATIO), round(3.05 * 80 * PIXEL_RATIO))
    image, mask = l_shape()
    box = augmentation_explorer(image, mask)
    view = box.explorer.view
    assert view.layout.width == f"{png_size(view.value)[0] // PIXEL_RATIO}px"  # not stretched to the cell
    assert view.layout.max_width == "100%"


@pytest.mark.parametrize(("ids", "shown"), [([0, 1], False), ([0, 1, 255], True)])
def test_the_ignore_caption_only_when_255_is_there(ids: list[int], shown: bool, monkeypatch) -> None:
    import workshop.widgets as w

    captions: list[str] = []
    monkeypatch.setattr(w, "figure_png", lambda panels, titles, caption="", size=2.8: captions.append(caption) or b"")
    image = np.zeros((4, 4, 3), np.uint8)
    mask = np.array(ids * 16)[:16].reshape(4, 4)
    w.augmentation_explorer_figure(image, mask, image, mask, "HorizontalFlip")
    assert ("(255 = ignore)" in captions[0]) is shown, captions[0]
