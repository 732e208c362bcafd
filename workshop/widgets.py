"""Interactive notebook widgets (ipywidgets) that also build and render headless.

Every widget here draws into an ``ipywidgets.Image`` (PNG bytes rendered with matplotlib's
object-oriented API), never with ``plt.show()``: building and displaying one never blocks, and
it behaves the same under nbval, in JupyterLab and in Colab. They work with ipywidgets 7 (what Colab
preinstalls: 7.7.1) and 8; notebooks show them with ``display(...)``.

* ``augmentation_explorer(image, mask)``: pick a transform, move its parameters, see the
  augmented image and mask side by side.
* ``inference_viewer(images, probabilities, masks=None)``: threshold and opacity sliders and a
  slider over the images, to see how the threshold turns probabilities into masks.

Taught in: notebooks/02_augmentation.ipynb (augmentation explorer), notebooks/08_inference.ipynb
(inference viewer)
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable, Sequence

import numpy as np

# ----------------------------------------------------------------------------- shared helpers


def enable_colab_widgets() -> bool:
    """In Google Colab with ipywidgets 8, switch on Colab's custom widget manager; otherwise do nothing.

    Colab preinstalls ipywidgets 7, whose widgets its own front end draws: switching the custom
    manager on there is not needed. ipywidgets 8 (installed by hand) needs it.

    Returns:
        Whether the custom widget manager was switched on.
    """
    import ipywidgets

    if "google.colab" not in sys.modules or int(ipywidgets.__version__.split(".")[0]) < 8:
        return False
    try:
        from google.colab import output  # type: ignore[import-not-found]

        output.enable_custom_widget_manager()
    except Exception:  # an older Colab: widgets still work, or the notebook says why
        return False
    return True


# A widget's picture is drawn at DISPLAY_DPI x PIXEL_RATIO and shown at its DISPLAY_DPI size (``show_png``
# fixes the image widget's width): sharp on high-density screens, never stretched by the page.
DISPLAY_DPI = 80
PIXEL_RATIO = 2


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels, read from a PNG's header."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def show_png(view: Any, png: bytes) -> None:
    """Put ``png`` into an ``ipywidgets.Image`` at its intended size (its pixels / PIXEL_RATIO).

    Without a fixed width the page stretches the picture to the cell's width, which blurs it.
    """
    width, _ = png_size(png)
    view.value = png
    view.layout.width = f"{width // PIXEL_RATIO}px"
    view.layout.max_width = "100%"  # a narrow window shrinks it (sharp), never stretches it
    view.layout.height = "auto"


def figure_png(panels: Sequence[np.ndarray], titles: Sequence[str], caption: str = "", size: float = 2.8) -> bytes:
    """Draw images side by side, with a title over each, and return the PNG bytes.

    Uses a bare ``matplotlib.figure.Figure`` (no pyplot): nothing is shown or kept open. The PNG
    has ``PIXEL_RATIO`` pixels per display pixel; show it with ``show_png``.

    Args:
        panels: (H, W, 3) uint8 images (or (H, W) arrays, drawn in grey).
        titles: one title per panel.
        caption: a line of text under the panels.
        size: inches per panel.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size * len(panels), size + (0.45 if caption else 0.25)), dpi=DISPLAY_DPI * PIXEL_RATIO)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel, title in zip(axes, panels, titles):
        ax.imshow(panel, cmap="gray" if np.asarray(panel).ndim == 2 else None, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if caption:
        fig.text(0.5, 0.02, caption, ha="center", fontsize=9)
    fig.tight_layout(rect=(0, 0.06 if caption else 0, 1, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _float_slider(widgets: Any, name: str, low: float, high: float, step: float, value: float) -> Any:
    return widgets.FloatSlider(value=value, min=low, max=high, step=step, description=name, continuous_update=False)


def _int_slider(widgets: Any, name: str, low: int, high: int, value: int, step: int = 1) -> Any:
    return widgets.IntSlider(value=value, min=low, max=high, step=step, description=name, continuous_update=False)


# ----------------------------------------------------------------------------- augmentation explorer


@dataclass(frozen=True)
class AugmentationExplorerParam:
    """A slider of the augmentation explorer: name, range, step and starting value."""

    name: str
    low: float
    high: float
    step: float
    value: float

    @property
    def is_int(self) -> bool:
        return float(self.step).is_integer() and float(self.low).is_integer()


@dataclass(frozen=True)
class AugmentationExplorerEntry:
    """One transform in the explorer's dropdown: how to build it from the slider values."""

    build: Callable[..., Any]  # build(hw=(H, W), **slider values) -> an albumentations transform with p=1
    params: tuple[AugmentationExplorerParam, ...] = field(default_factory=tuple)
    geometric: bool = True  # moves pixels (image and mask); False: changes colours (image only)


def _augmentation_explorer_entries() -> dict[str, AugmentationExplorerEntry]:
    import albumentations as A
    import cv2

    P = AugmentationExplorerParam
    nearest = dict(mask_interpolation=cv2.INTER_NEAREST)
    border = dict(border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=255)  # outside pixels: black / ignore
    return {
        "HorizontalFlip": AugmentationExplorerEntry(lambda hw: A.HorizontalFlip(p=1.0)),
        "VerticalFlip": AugmentationExplorerEntry(lambda hw: A.VerticalFlip(p=1.0)),
        "Rotate (Affine)": AugmentationExplorerEntry(
            lambda hw, angle: A.Affine(rotate=(angle, angle), **nearest, **border, p=1.0),
            (P("angle", -180, 180, 5, 30),),
        ),
        "Scale + shift (Affine)": AugmentationExplorerEntry(
            lambda hw, scale, shift: A.Affine(scale=(scale, scale), translate_percent=(shift, shift), **nearest, **border, p=1.0),
            (P("scale", 0.5, 1.5, 0.05, 1.2), P("shift", -0.3, 0.3, 0.02, 0.1)),
        ),
        "RandomResizedCrop": AugmentationExplorerEntry(
            lambda hw, min_area, aspect: A.RandomResizedCrop(size=hw, scale=(min_area, min_area), ratio=(aspect, aspect), **nearest, p=1.0),
            (P("min_area", 0.05, 1.0, 0.05, 0.3), P("aspect", 0.5, 2.0, 0.05, 1.0)),
        ),
        "ElasticTransform": AugmentationExplorerEntry(
            lambda hw, alpha, sigma: A.ElasticTransform(alpha=alpha, sigma=sigma, **nearest, **border, p=1.0),
            (P("alpha", 0, 300, 10, 80), P("sigma", 2, 20, 1, 6)),
        ),
        "GridDistortion": AugmentationExplorerEntry(
            lambda hw, distort, steps: A.GridDistortion(num_steps=int(steps), distort_limit=(distort, distort), **nearest, **border, p=1.0),
            (P("distort", -0.6, 0.6, 0.05, 0.3), P("steps", 2, 10, 1, 5)),
        ),
        "ColorJitter": AugmentationExplorerEntry(
            lambda hw, brightness, contrast, saturation, hue: A.ColorJitter(
                brightness=(1 + brightness, 1 + brightness), contrast=(1 + contrast, 1 + contrast),
                saturation=(1 + saturation, 1 + saturation), hue=(hue, hue), p=1.0),
            (P("brightness", -0.8, 0.8, 0.05, 0.3), P("contrast", -0.8, 0.8, 0.05, 0.3),
             P("saturation", -0.9, 0.9, 0.05, 0.0), P("hue", -0.5, 0.5, 0.02, 0.1)),
            geometric=False,
        ),
        "GaussNoise": AugmentationExplorerEntry(
            lambda hw, std: A.GaussNoise(std_range=(std, std), p=1.0), (P("std", 0.0, 0.5, 0.01, 0.1),), geometric=False,
        ),
        "CoarseDropout": AugmentationExplorerEntry(
            lambda hw, holes, hole_size: A.CoarseDropout(num_holes_range=(int(holes), int(holes)),
                                                     hole_height_range=(hole_size, hole_size),
                                                     hole_width_range=(hole_size, hole_size), fill=0, p=1.0),
            (P("holes", 1, 16, 1, 4), P("hole_size", 0.05, 0.4, 0.01, 0.15)),
            geometric=False,
        ),
    }


def augmentation_explorer_transforms() -> dict[str, AugmentationExplorerEntry]:
    """The transforms the explorer offers, by dropdown name."""
    return _augmentation_explorer_entries()


def augmentation_explorer_apply(
    image: np.ndarray, mask: np.ndarray, name: str, seed: int = 0, **params: float
) -> tuple[np.ndarray, np.ndarray]:
    """Apply one explorer transform (always, p=1) to an image and its mask, seeded.

    Args:
        image: (H, W, 3) uint8.
        mask: (H, W) class ids.
        name: a key of ``augmentation_explorer_transforms()``.
        seed: seed of the transform's random choices (crops, elastic fields, noise).
        **params: slider values; missing ones take their starting value.

    Returns:
        (augmented image (h, w, 3) uint8, augmented mask (h, w) int64).

    Raises:
        ValueError: unknown transform or parameter name (the message lists the valid ones).
    """
    import albumentations as A

    entries = augmentation_explorer_transforms()
    if name not in entries:
        raise ValueError(f"unknown transform {name!r}; choose one of: {', '.join(entries)}")
    entry = entries[name]
    valid = {p.name: p for p in entry.params}
    unknown = set(params) - set(valid)
    if unknown:
        raise ValueError(f"{name} has no parameter {sorted(unknown)[0]!r}; its parameters: {', '.join(valid) or 'none'}")
    values = {p.name: params.get(p.name, p.value) for p in entry.params}
    transform = A.Compose([entry.build(hw=tuple(image.shape[:2]), **values)], seed=seed)
    out = transform(image=np.ascontiguousarray(image), mask=np.ascontiguousarray(mask).astype(np.uint8))
    return out["image"], np.asarray(out["mask"]).astype(np.int64)


def augmentation_explorer_figure(image: np.ndarray, mask: np.ndarray, new_image: np.ndarray, new_mask: np.ndarray, name: str) -> bytes:
    """PNG of the explorer's view: original with its mask | augmented image | augmented image with its mask."""
    from workshop.viz import overlay

    ids = sorted(int(v) for v in np.unique(new_mask))
    ignore = " (255 = ignore)" if 255 in ids else ""
    caption = f"{name}: image {new_image.shape[1]}x{new_image.shape[0]}, mask ids {ids}{ignore}"
    binary = set(ids) <= {0, 1, 255}
    color = (0, 230, 255) if binary else None  # cyan stands out on red roofs; multiclass: a colour per class
    return figure_png(
        [overlay(image, mask, alpha=0.45, color=color), new_image, overlay(new_image, new_mask, alpha=0.45, color=color)],
        ["original + mask", "augmented image", "augmented image + mask"],
        caption,
    )


def augmentation_explorer(image: np.ndarray, mask: np.ndarray, transform: str = "Rotate (Affine)", seed: int = 0) -> Any:
    """An interactive explorer: pick a transform, move its sliders, see image and mask move together.

    Display it by making it the last expression of a cell. It renders once when built and again
    on every change, into an image widget, so it also works headless (nothing blocks).

    Args:
        image: (H, W, 3) uint8.
        mask: (H, W) class ids.
        transform: the transform shown first (a key of ``augmentation_explorer_transforms()``).
        seed: starting value of the seed slider.

    Returns:
        An ``ipywidgets.VBox``. Its ``explorer`` attribute holds the controls (``dropdown``,
        ``seed``, ``sliders`` by name), the ``view`` image widget, what was drawn last
        (``shown["image"]``, ``shown["mask"]``), the number of ``renders`` and the last ``error``.

    Example:
        >>> box = augmentation_explorer(image, mask)  # doctest: +SKIP
        >>> box.explorer.dropdown.value = "HorizontalFlip"  # doctest: +SKIP

    Taught in: notebooks/02_augmentation.ipynb
    """
    import ipywidgets as widgets

    entries = augmentation_explorer_transforms()
    if transform not in entries:
        raise ValueError(f"unknown transform {transform!r}; choose one of: {', '.join(entries)}")
    image = np.ascontiguousarray(image)
    mask = np.asarray(mask)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {image.shape[:2]}")
    enable_colab_widgets()
    state = SimpleNamespace(
        dropdown=widgets.Dropdown(options=list(entries), value=transform, description="transform"),
        seed=_int_slider(widgets, "seed", 0, 99, seed),
        sliders={},
        slider_box=widgets.VBox(),
        view=widgets.Image(format="png"),
        note=widgets.HTML(),
        shown={},
        renders=0,
        error=None,
    )

    def render(*_: Any) -> None:
        name = state.dropdown.value
        try:
            values = {k: s.value for k, s in state.sliders.items()}
            new_image, new_mask = augmentation_explorer_apply(image, mask, name, state.seed.value, **values)
            show_png(state.view, augmentation_explorer_figure(image, mask, new_image, new_mask, name))
            state.shown = {"image": new_image, "mask": new_mask}
            state.error = None
            moves = "moves image AND mask" if entries[name].geometric else "changes the image only; the mask stays"
            state.note.value = f"<i>{name} {moves}.</i>"
        except Exception as exc:  # show it in the widget: an exception in a callback would be swallowed
            state.error = f"{type(exc).__name__}: {exc}"
            state.note.value = f"<b>error:</b> {state.error}"
        state.renders += 1

    def build_sliders(*_: Any) -> None:
        for slider in state.sliders.values():
            slider.unobserve(render, names="value")
        state.sliders = {}
        for p in entries[state.dropdown.value].params:
            if p.is_int:
                slider = _int_slider(widgets, p.name, int(p.low), int(p.high), int(p.value), int(p.step))
            else:
                slider = _float_slider(widgets, p.name, p.low, p.high, p.step, p.value)
            slider.observe(render, names="value")
            state.sliders[p.name] = slider
        state.slider_box.children = tuple(state.sliders.values())

    def on_transform(change: Any) -> None:
        build_sliders()
        render()

    state.dropdown.observe(on_transform, names="value")
    state.seed.observe(render, names="value")
    build_sliders()
    render()
    box = widgets.VBox([widgets.HBox([state.dropdown, state.seed]), state.slider_box, state.note, state.view])
    box.explorer = state
    return box


# ----------------------------------------------------------------------------- inference viewer


def _inference_prediction(probability: np.ndarray, threshold: float) -> np.ndarray:
    """(H, W) foreground probabilities -> 0/1 mask; (C, H, W) class probabilities -> argmax ids."""
    if probability.ndim == 3:
        return probability.argmax(axis=0).astype(np.int64)
    return (probability > threshold).astype(np.int64)


def _inference_check_inputs(images: Sequence[np.ndarray], probabilities: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None) -> list[np.ndarray]:
    """Validate the viewer's inputs; return the probabilities as (H, W) or (C, H, W) float arrays."""
    if len(images) == 0:
        raise ValueError("inference_viewer needs at least one image")
    if len(probabilities) != len(images):
        raise ValueError(f"got {len(images)} images but {len(probabilities)} probability maps; give one per image")
    if masks is not None and len(masks) != len(images):
        raise ValueError(f"got {len(images)} images but {len(masks)} masks; give one per image, or masks=None")
    probs = []
    for i, (image, prob) in enumerate(zip(images, probabilities)):
        prob = np.asarray(prob, dtype=np.float32)
        if prob.ndim == 3 and prob.shape[0] == 1:
            prob = prob[0]  # (1, H, W) from predict_probabilities -> (H, W)
        if prob.shape[-2:] != np.asarray(image).shape[:2]:
            raise ValueError(f"probabilities {i} have shape {prob.shape}, image {i} is {np.asarray(image).shape[:2]}: "
                             "predict at the image's own size (workshop.inference.predict_probabilities)")
        if prob.size and (prob.min() < 0 or prob.max() > 1):
            raise ValueError(f"probabilities {i} hold values outside [0, 1] ({prob.min():.2f}..{prob.max():.2f}): "
                             "pass sigmoid / softmax outputs, not logits")
        if masks is not None and np.asarray(masks[i]).shape != prob.shape[-2:]:
            raise ValueError(f"mask {i} has shape {np.asarray(masks[i]).shape}, image {i} is {prob.shape[-2:]}")
        probs.append(prob)
    return probs


def _inference_caption(prediction: np.ndarray, mask: np.ndarray | None, index: int, count: int, threshold: float | None) -> str:
    """One line: which image, the threshold, the foreground share, and the IoU when a mask is given."""
    text = f"image {index + 1}/{count}"
    if threshold is not None:
        text += f" | threshold {threshold:.2f}"
    text += f" | predicted foreground {float((prediction > 0).mean()):.1%}"
    if mask is not None:
        from workshop.metrics import binary_iou

        mask = np.asarray(mask).astype(np.int64)
        if threshold is not None and set(np.unique(mask).tolist()) <= {0, 1, 255}:
            iou = float(binary_iou(prediction[None], mask[None])[0])
            text += f" | IoU with the ground truth {iou:.3f}"
    return text


def inference_viewer(
    images: Sequence[np.ndarray],
    probabilities: Sequence[np.ndarray],
    masks: Sequence[np.ndarray] | None = None,
    threshold: float = 0.5,
    opacity: float = 0.5,
) -> Any:
    """Browse predictions: a slider over the images, one for the threshold, one for the overlay opacity.

    Each view shows the image, the foreground probability (grey: white = 1), the predicted mask
    over the image and, when ``masks`` is given, the ground truth over the image, with a caption
    giving the foreground share and the IoU. Moving the threshold shows how the mask grows or
    shrinks: where the model is sure, nothing changes; where it hesitates, the edge moves.
    It renders once when built and again on every change, into an image widget, so it also works
    headless (nothing blocks).

    Args:
        images: the images, each (H, W, 3) uint8.
        probabilities: one per image: (H, W) or (1, H, W) foreground probabilities (binary), or
            (C, H, W) class probabilities (multiclass: argmax, the threshold slider is disabled).
        masks: optional ground-truth masks, each (H, W) class ids.
        threshold: starting threshold.
        opacity: starting opacity of the mask colour over the image.

    Returns:
        An ``ipywidgets.VBox``. Its ``viewer`` attribute holds the sliders (``index``,
        ``threshold``, ``opacity``), the ``view`` image widget, the ``caption``, what was drawn last
        (``shown["prediction"]``), the number of ``renders`` and the last ``error``.

    Raises:
        ValueError: the lists differ in length, or a probability map does not fit its image or
            holds values outside [0, 1].

    Example:
        >>> probs = [predict_probabilities(model, im, 64) for im in images]  # doctest: +SKIP
        >>> inference_viewer(images, probs, masks)  # doctest: +SKIP

    Taught in: notebooks/08_inference.ipynb
    """
    import ipywidgets as widgets

    from workshop.viz import overlay

    probs = _inference_check_inputs(images, probabilities, masks)
    images = [np.ascontiguousarray(image) for image in images]
    binary = all(p.ndim == 2 for p in probs)
    enable_colab_widgets()
    slider = dict(continuous_update=False, style={"description_width": "initial"})
    state = SimpleNamespace(
        index=widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="image", **slider),
        threshold=widgets.FloatSlider(value=threshold, min=0.05, max=0.95, step=0.05, description="threshold",
                                      disabled=not binary, **slider),
        opacity=widgets.FloatSlider(value=opacity, min=0.0, max=1.0, step=0.05, description="opacity", **slider),
        view=widgets.Image(format="png"),
        caption=widgets.HTML(),
        shown={},
        renders=0,
        error=None,
    )
    color = (0, 230, 255) if binary else None  # cyan stands out on red roofs; multiclass: a colour per class

    def render(*_: Any) -> None:
        try:
            i = state.index.value
            image, prob = images[i], probs[i]
            prediction = _inference_prediction(prob, state.threshold.value)
            alpha = state.opacity.value
            panels = [image, prob if binary else prob.max(axis=0), overlay(image, prediction, alpha, color)]
            titles = ["image", "probability" if binary else "top class probability", "prediction"]
            mask = None if masks is None else np.asarray(masks[i])
            if mask is not None:
                panels.append(overlay(image, mask, alpha, color))
                titles.append("ground truth")
            caption = _inference_caption(prediction, mask, i, len(images), state.threshold.value if binary else None)
            show_png(state.view, figure_png(panels, titles))
            state.caption.value = f"<i>{caption}</i>"
            state.shown = {"index": i, "prediction": prediction}
            state.error = None
        except Exception as exc:  # show it in the widget: an exception in a callback would be swallowed
            state.error = f"{type(exc).__name__}: {exc}"
            state.caption.value = f"<b>error:</b> {state.error}"
        state.renders += 1

    for control in (state.index, state.threshold, state.opacity):
        control.observe(render, names="value")
    render()
    box = widgets.VBox([widgets.HBox([state.index, state.threshold, state.opacity]), state.caption, state.view])
    box.viewer = state
    return box
