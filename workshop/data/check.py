"""Scan a data set before training and report every problem, per file, in one go.

A data set that is broken in one file out of three hundred should not crash an epoch an hour
into training. ``check_path`` (the ``workshop data check PATH`` command) and ``check_config`` (run
by ``workshop train`` before it builds the model) read every file once and collect:

==========================================  ========  ==================================================
problem                                     severity  why
==========================================  ========  ==================================================
unreadable, corrupt, truncated, empty file  error     the loader cannot decode it
image without mask, mask without image      error     the pair cannot be made
mask values that are not class ids          error     binary: not 0/1 or 0/255; multiclass: not in the
                                                      label map (plus the ignore index)
mask size with another aspect ratio         error     almost always the wrong mask for this image
mask size with the same aspect ratio        warning   resized with nearest-neighbour when loaded
EXIF orientation (phone photos)             warning   the loader turns the image upright; the mask must
                                                      match the upright picture
exact duplicate images (same bytes)         warning   the same picture may land in train and validation
mixed modes (RGB, RGBA, L, P, I;16)         warning   the loader converts, but odd files are suspects
==========================================  ========  ==================================================

Speed: each file is read once. Headers (size, mode, EXIF) come from ``PIL.Image.open``; PNG chunk
checksums from ``verify``; images are decoded only to catch truncation (large JPEGs at a reduced
scale, which still reads every byte) and masks are decoded fully for their values. A few hundred
small files take well under two seconds.

This module detects no layout and reads no format of its own: it reaches data only through the
sources (``workshop.data.sources``), which list the files, pair them (one rule: ``a.jpg`` <-> ``a.png``
or ``a_mask.png``), name what could not be listed, and say what to verify (``Source.check_spec``).
So ``data check`` and ``workshop train`` give one answer for the same data. The layouts are
``open_source``'s: ``images/`` + ``masks/`` (or ``masks/binary``), a CSV of pairs, a list file, COCO /
VIA / LabelMe / CVAT annotations, the registered data sets, or ``--images-dir`` / ``--masks-dir``.

Example:
    >>> report = check_path("data/my_set")  # doctest: +SKIP
    >>> print(report.format())  # doctest: +SKIP
    >>> report.ok  # doctest: +SKIP
    True

Taught in: notebooks/03_dataset.ipynb
"""

from __future__ import annotations

import hashlib
import io
import os
import shlex
import time
import warnings
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from workshop.data.io import LabelMap
from workshop.data.sources import named_split_source, open_source, source_from_config
from workshop.data.sources.base import DATASET, Problem, display_path
from workshop.errors import DataError

__all__ = ["DATASET", "SEVERITIES", "DataReport", "Problem", "check_config", "check_path", "check_source",
           "display_path", "scan_pairs"]

SEVERITIES = ("error", "warning")
TASKS = ("binary", "multiclass")
ASPECT_TOLERANCE = 0.02  # same rule as workshop.data.io.load_pair
_EXIF_ORIENTATION = 0x0112
_ORIENTATIONS = {
    2: "mirrored left-right",
    3: "rotated 180 degrees",
    4: "mirrored top-bottom",
    5: "mirrored and rotated 90 degrees",
    6: "rotated 90 degrees (stored sideways)",
    7: "mirrored and rotated 270 degrees",
    8: "rotated 270 degrees (stored sideways)",
}
_MODE_NOTES = {
    "RGB": "8-bit colour",
    "RGBA": "colour with an alpha channel, dropped when loaded",
    "L": "8-bit grey, repeated to 3 channels when loaded",
    "LA": "grey with alpha, converted to RGB when loaded",
    "P": "palette colours, converted to RGB when loaded",
    "1": "1-bit black and white",
    "CMYK": "print colours, converted to RGB when loaded",
    "I;16": "16-bit grey, scaled to 8 bits when loaded",
    "I;16B": "16-bit grey, scaled to 8 bits when loaded",
    "I;16L": "16-bit grey, scaled to 8 bits when loaded",
    "I": "32-bit integer grey, scaled to 8 bits when loaded",
    "F": "32-bit float grey",
}
_JPEG_DRAFT_ABOVE = 512  # decode JPEGs larger than this at a reduced scale (truncation is still caught)


@dataclass
class DataReport:
    """What a data scan found.

    Attributes:
        problems: every finding as ``(path, severity, message)``.
        counts: ``images``, ``masks``, ``pairs``, ``errors``, ``warnings``, ``files_with_errors``,
            ``files_with_warnings``.
        image_modes: number of images per PIL mode (``{"RGB": 318, "L": 2}``).
        mask_modes: number of masks per PIL mode.
        mask_values: every value found in the readable masks (after colour decoding).
        root: folder the paths are shown relative to.
        layout: how the pairs were found, in words.
        task: ``"binary"`` or ``"multiclass"``.
        seconds: how long the scan took.
        train_command: the ``workshop train`` command that trains on this data ("" when no config
            names it); the report ends with it when the data is ready.
    """

    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    image_modes: dict[str, int] = field(default_factory=dict)
    mask_modes: dict[str, int] = field(default_factory=dict)
    mask_values: list[int] = field(default_factory=list)
    root: str = ""
    layout: str = ""
    task: str = "binary"
    seconds: float = 0.0
    train_command: str = ""

    @property
    def ok(self) -> bool:
        """True when nothing would stop training (warnings allowed)."""
        return not self.errors

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def for_file(self, name: str) -> list[Problem]:
        """Problems of the files whose path ends with ``name`` (e.g. ``"images/a.png"``)."""
        return [p for p in self.problems if p.path == name or p.path.endswith(os.sep + name)]

    def _short(self, path: str) -> str:
        if self.root and path.startswith(self.root.rstrip(os.sep) + os.sep):
            return path[len(self.root.rstrip(os.sep)) + 1 :]
        return path

    def problem_lines(self, severity: str | None = None) -> list[str]:
        """The findings grouped per file: a line with the file, then one indented line per problem."""
        if severity is not None and severity not in SEVERITIES:
            raise ValueError(f"severity must be one of: {', '.join(SEVERITIES)} (got {severity!r})")
        groups: dict[str, list[Problem]] = defaultdict(list)
        for p in self.problems:
            if severity is None or p.severity == severity:
                groups[p.path].append(p)
        order = sorted(groups, key=lambda k: (k != DATASET, self._short(k)))
        lines: list[str] = []
        for path in order:
            lines.append(self._short(path))
            rank = {"error": 0, "warning": 1}
            for p in sorted(groups[path], key=lambda q: rank[q.severity]):
                lines.append(f"  {p.severity}: {p.message}")
        return lines

    def summary(self) -> str:
        """One line: files, pairs, errors, warnings, modes, time."""
        c = self.counts
        modes = ", ".join(f"{m} {n}" for m, n in sorted(self.image_modes.items(), key=lambda kv: -kv[1])) or "none"
        mask_modes = ", ".join(f"{m} {n}" for m, n in sorted(self.mask_modes.items(), key=lambda kv: -kv[1])) or "none"
        return (
            f"{c.get('images', 0)} images, {c.get('masks', 0)} masks, {c.get('pairs', 0)} pairs: "
            f"{c.get('errors', 0)} errors in {c.get('files_with_errors', 0)} files, "
            f"{c.get('warnings', 0)} warnings in {c.get('files_with_warnings', 0)} files; "
            f"image modes {modes}; mask modes {mask_modes}; mask values {_show(set(self.mask_values))} "
            f"({self.seconds:.2f}s)"
        )

    def format(self, severity: str | None = None, max_lines: int | None = None) -> str:
        """The report as text: a header, the problems grouped per file, a summary and a verdict.

        Args:
            severity: ``"error"`` or ``"warning"`` to show only those; None shows both.
            max_lines: cut the per-file lines after this many and say how many are left out.
        """
        head = f"data check of {self.root or '?'} ({self.layout}, task {self.task})"
        lines = self.problem_lines(severity)
        if max_lines is not None and len(lines) > max_lines:
            hidden = [ln for ln in lines[max_lines:] if ln.startswith("  ")]
            files = sum(1 for ln in lines[max_lines:] if not ln.startswith("  "))
            lines = lines[:max_lines] + [f"... and {len(hidden)} more problems ({files} more files)"]
        if self.ok:
            verdict = "OK: ready to train" + (" (read the warnings above)" if self.warnings else "")
            if self.train_command:
                verdict += f"; train on it with:\n  {self.train_command}"
        else:
            verdict = "NOT OK: fix the errors above before training"
        return "\n".join([head, *lines, self.summary(), verdict])

    def __str__(self) -> str:
        return self.format()


# ----------------------------------------------------------------------------- reading one file


@dataclass
class _FileInfo:
    """What one readable file looked like."""

    path: Path
    size: tuple[int, int]  # (width, height) as the loader sees it (EXIF applied)
    stored_size: tuple[int, int]  # (width, height) as stored
    mode: str
    format: str
    orientation: int
    sha1: str
    values: set[int] | None = None


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(_EXIF_ORIENTATION, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except Exception:  # a broken EXIF block is not worth failing the scan over
        return 1


def _show(values: set[int] | list[int]) -> str:
    items = sorted(values)
    text = ", ".join(str(v) for v in items[:12])
    return "{" + text + (", ..." if len(items) > 12 else "") + "}"


def _inspect(
    path: Path,
    role: str,
    task: str,
    label_map: LabelMap | None,
    ignore_index: int | None,
) -> tuple[_FileInfo | None, list[Problem]]:
    """Read one image or mask file; return its info (None if unreadable) and its problems."""
    name = display_path(path)

    def error(message: str) -> tuple[None, list[Problem]]:
        if Path(path).name.startswith("._"):
            message += " (a '._' file is macOS metadata, not an image: delete it)"
        return None, [Problem(name, "error", message)]

    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return error(f"{role} file not found")
    except OSError as exc:
        return error(f"{role} cannot be read from disk: {exc.strerror or exc}")
    if not data:
        return error(f"zero-byte (empty) {role} file: the copy or download did not finish")
    ext = Path(path).suffix.lower().lstrip(".")
    fmt = {"jpg": "JPEG", "jpeg": "JPEG", "tif": "TIFF"}.get(ext, ext.upper() or role)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            fmt, mode, stored = img.format or "?", img.mode, img.size
            if fmt == "PNG":
                img.verify()  # chunk checksums; the object cannot be used after verify
                img = Image.open(io.BytesIO(data))
            orientation = _orientation(img)
            if role == "image" and fmt == "JPEG" and max(stored) > _JPEG_DRAFT_ABOVE:
                img.draft("RGB", (stored[0] // 4, stored[1] // 4))
            img.load()
    except UnidentifiedImageError:
        return error(f"not a readable image ({len(data)} bytes that PIL does not recognise: corrupt, or not an image)")
    except Image.DecompressionBombError as exc:
        return error(f"{role} is too large to decode safely ({exc})")
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError) as exc:
        return error(f"corrupt or truncated {fmt} data ({exc})")
    w, h = stored
    size = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    info = _FileInfo(path, size, stored, mode, fmt, orientation, hashlib.sha1(data).hexdigest())
    problems: list[Problem] = []
    if orientation != 1:
        what = _ORIENTATIONS.get(orientation, "rotated")
        problems.append(Problem(
            name, "warning",
            f"EXIF orientation {orientation} ({what}): the loader turns it upright to {size[0]}x{size[1]}; "
            "its mask must match the upright picture",
        ))
    if role == "mask":
        values, message = _mask_values(img, task, label_map, ignore_index, name)
        info.values = values
        if message:
            problems.append(Problem(name, "error", message))
    return info, problems


def looks_like_class_ids(values: set[int]) -> bool:
    """Few small integer values (0..11, say): class ids, not a blurred or JPEG-compressed 0/255 mask."""
    return len(values) <= 64 and max(values, default=0) < 64 and len(values) > 2


def binary_values_message(values: set[int]) -> str:
    """Why a mask is not binary, and the fix: class ids want the multiclass task, noise wants a PNG."""
    if looks_like_class_ids(values):
        return (f"mask holds class ids {_show(values)}, not a binary mask: check it with --task multiclass "
                "(data.task=multiclass), and name the classes with --label-map FILE (data.label_map)")
    return (f"binary mask has values {_show(values)}; expected 0/1 or 0/255 "
            "(a JPEG mask or smoothed edges? save masks as PNG with exact values)")


def _mask_values(
    img: Image.Image, task: str, label_map: LabelMap | None, ignore_index: int | None, name: str
) -> tuple[set[int] | None, str | None]:
    """The class-id values of a decoded mask and, if they are not valid, why (mirrors ``read_mask``)."""
    if img.mode == "P":
        img = img.convert("RGB")
    arr = np.asarray(img)
    if arr.ndim == 3:
        rgb = arr[..., :3]
        grey = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
        if grey and label_map is None:
            arr = rgb[..., 0]
        elif label_map is None:
            colours = np.unique(rgb.reshape(-1, 3), axis=0)[:6]
            shown = ", ".join(str(tuple(int(v) for v in c)) for c in colours)
            return None, (
                f"colour-coded mask (colours {shown}{', ...' if len(colours) == 6 else ''}) needs a label map "
                "(labelmap.json: class name, id, colour): pass it with --label-map FILE (data.label_map)"
            )
        else:
            try:
                ids = label_map.encode(rgb, source="mask")
            except DataError as exc:
                return None, str(exc).removeprefix("mask: ")
            return set(np.unique(ids).tolist()), None
    values = set(np.unique(arr).tolist())
    if task == "binary":
        allowed = values <= {0, 255} or values <= {0, 1}
        if not allowed and ignore_index is not None:
            allowed = values <= {0, 1, ignore_index}
        if not allowed:
            return values, binary_values_message(values)
        return values, None
    if label_map is not None:
        unexpected = values - label_map.valid_values()
        if unexpected:
            ignore = f", ignore index {label_map.ignore_index}" if label_map.ignore_index is not None else ""
            return values, (
                f"mask values not in the label map: {_show(unexpected)} (found {_show(values)}; "
                f"valid ids: {_show(set(label_map.ids))}{ignore})"
            )
    return values, None


# ----------------------------------------------------------------------------- the scan


def _scan(
    images: Sequence[Path],
    masks: Sequence[Path],
    pairs: Sequence[tuple[Path, Path]],
    task: str,
    label_map: LabelMap | None,
    ignore_index: int | None,
    root: str,
    layout: str,
    problems: list[Problem] | None = None,
    workers: int | None = None,
) -> DataReport:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    t0 = time.perf_counter()
    problems = list(problems or [])
    jobs = [(p, "image") for p in images] + [(p, "mask") for p in masks]

    def run(job: tuple[Path, str]) -> tuple[_FileInfo | None, list[Problem]]:
        return _inspect(job[0], job[1], task, label_map, ignore_index)

    workers = workers or min(4, os.cpu_count() or 1)
    if workers > 1 and len(jobs) > 32:
        with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL decodes without holding the GIL
            results = list(pool.map(run, jobs))
    else:
        results = [run(job) for job in jobs]
    image_info: dict[Path, _FileInfo] = {}
    mask_info: dict[Path, _FileInfo] = {}
    for (path, role), (info, found) in zip(jobs, results):
        problems.extend(found)
        if info is not None:
            (image_info if role == "image" else mask_info)[Path(path)] = info

    for image_path, mask_path in pairs:
        image, mask = image_info.get(Path(image_path)), mask_info.get(Path(mask_path))
        if image is None or mask is None:
            continue
        problems.extend(_pair_problems(image, mask))

    problems.extend(_duplicate_problems(list(image_info.values())))
    problems.extend(_mode_problems(list(image_info.values()), "image", "RGB"))
    problems.extend(_mode_problems(list(mask_info.values()), "mask", "L"))

    values: set[int] = set()
    for info in mask_info.values():
        values |= info.values or set()
    report = DataReport(
        problems=problems,
        image_modes=dict(Counter(i.mode for i in image_info.values())),
        mask_modes=dict(Counter(i.mode for i in mask_info.values())),
        mask_values=sorted(values),
        root=root,
        layout=layout,
        task=task,
    )
    report.counts = {
        "images": len(images),
        "masks": len(masks),
        "pairs": len(pairs),
        "errors": len(report.errors),
        "warnings": len(report.warnings),
        "files_with_errors": len({p.path for p in report.errors}),
        "files_with_warnings": len({p.path for p in report.warnings}),
    }
    report.seconds = time.perf_counter() - t0
    return report


def _pair_problems(image: _FileInfo, mask: _FileInfo) -> list[Problem]:
    if image.size == mask.size:
        return []
    name = display_path(mask.path)
    (iw, ih), (mw, mh) = image.size, mask.size
    other = display_path(image.path.name)
    if image.orientation != 1 and image.stored_size == mask.size:
        return [Problem(
            name, "error",
            f"mask is {mw}x{mh} like image {other} as stored, but that image has EXIF orientation "
            f"{image.orientation} and is loaded upright as {iw}x{ih}: the mask would not line up "
            "(rotate the mask too, or save the image without the EXIF tag)",
        )]
    if abs(mh / mw - ih / iw) <= ASPECT_TOLERANCE:
        return [Problem(
            name, "warning",
            f"mask is {mw}x{mh}, image {other} is {iw}x{ih}: same aspect ratio, the mask is resized "
            "with nearest-neighbour when loaded",
        )]
    return [Problem(
        name, "error",
        f"mask is {mw}x{mh} but image {other} is {iw}x{ih} and the aspect ratios differ "
        f"({mw / mh:.2f} vs {iw / ih:.2f}): probably the wrong mask for this image",
    )]


def _duplicate_problems(infos: list[_FileInfo]) -> list[Problem]:
    by_hash: dict[str, list[_FileInfo]] = defaultdict(list)
    for info in infos:
        by_hash[info.sha1].append(info)
    problems = []
    for group in by_hash.values():
        if len(group) < 2:
            continue
        group = sorted(group, key=lambda i: display_path(i.path))
        first = display_path(group[0].path.name)
        for dup in group[1:]:
            problems.append(Problem(
                display_path(dup.path), "warning",
                f"exact duplicate of {first} (same bytes, sha1 {dup.sha1[:10]}): it may end up in both "
                "training and validation",
            ))
    return problems


def _mode_problems(infos: list[_FileInfo], role: str, usual: str) -> list[Problem]:
    modes = Counter(i.mode for i in infos)
    if len(modes) < 2:
        return []
    ranked = sorted(modes.items(), key=lambda kv: (-kv[1], kv[0] != usual))
    main = ranked[0][0]
    counts = ", ".join(f"{m} {n}" for m, n in ranked)
    problems = [Problem(
        DATASET, "warning",
        f"mixed {role} modes: {counts}; the odd files are listed with a note (check they belong to this data set)",
    )]
    for info in sorted(infos, key=lambda i: display_path(i.path)):
        if info.mode != main:
            note = _MODE_NOTES.get(info.mode, "converted when loaded")
            problems.append(Problem(
                display_path(info.path), "warning",
                f"{role} mode {info.mode} ({note}) while most {role}s are {main}",
            ))
    return problems


# ----------------------------------------------------------------------------- public entry points


def _common_root(paths: Sequence[Path]) -> str:
    if not paths:
        return ""
    try:
        return display_path(os.path.commonpath([os.fspath(Path(p).parent) for p in paths]))
    except ValueError:  # mixed absolute and relative paths
        return ""


def scan_pairs(
    pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    task: str = "binary",
    label_map: LabelMap | None = None,
    ignore_index: int | None = 255,
    root: str | os.PathLike | None = None,
    layout: str = "list of pairs",
) -> DataReport:
    """Scan image/mask pairs as the training loader will read them (used by ``workshop train``).

    Args:
        pairs: (image path, mask path) pairs, e.g. from ``workshop.data.loaders.resolve_pairs``.
        task: ``"binary"`` or ``"multiclass"``.
        label_map: valid class ids (and colours for colour-coded masks); multiclass only.
        ignore_index: mask value that is allowed besides the class ids (default 255).
        root: folder the report shows paths relative to (default: the files' common folder).
        layout: how the pairs were found, for the report header.

    Returns:
        The ``DataReport``; ``report.ok`` is False when training would fail.

    Raises:
        ValueError: ``task`` is not one of binary, multiclass.
    """
    pairs = [(Path(i), Path(m)) for i, m in pairs]
    images = list(dict.fromkeys(i for i, _ in pairs))
    masks = list(dict.fromkeys(m for _, m in pairs))
    root_text = display_path(root) if root is not None else _common_root(images + masks)
    return _scan(images, masks, pairs, task, label_map, ignore_index, root_text, layout)


def check_source(source, split: str = "all", root: str | os.PathLike | None = None) -> DataReport:
    """Scan what a ``workshop.data.sources`` source reads, as its ``check_spec`` says.

    Pair sources: every image and mask file (values checked against the raw label map), and the
    problems the source met while listing them (an image without a mask, a file a CSV names that
    is not there). Annotation sources: every image file, then every sample drawn from its shapes (a
    polygon outside the image, a size that disagrees with the file are errors of that image), plus
    the reader's own findings. A source that cannot list its samples at all is one error.

    Returns:
        The ``DataReport``; its ``layout`` names the format or the folders found.
    """
    root_text = display_path(root) if root is not None else ""
    try:
        spec = source.check_spec(split)
    except DataError as exc:
        where = display_path(root) if root is not None else DATASET
        return _scan([], [], [], _task_of(source), None, source.ignore_index, root_text, f"format: {source.format}",
                     [Problem(where, "error", str(exc))])
    pairs = list(spec.pairs)
    images = list(dict.fromkeys([i for i, _ in pairs] + list(spec.images)))
    masks = list(dict.fromkeys([m for _, m in pairs] + list(spec.masks)))
    root_text = root_text or _common_root(images + masks)
    report = _scan(images, masks, pairs, spec.task, spec.label_map, spec.ignore_index, root_text,
                   spec.layout or f"format: {source.format}", list(spec.problems))
    if spec.images and not spec.pairs and not spec.masks:  # no mask files: draw each sample's mask as the loader will
        bad = {p.path for p in report.errors}
        extra = []
        for item in source.items(split):
            if display_path(item.image) in bad:
                continue
            try:
                source.read(item)
            except DataError as exc:
                extra.append(Problem(display_path(item.image), "error", str(exc).replace(f"{item.image}: ", "")))
        report.problems.extend(extra)
        report.counts["pairs"] = report.counts["masks"] = len(spec.images)  # masks drawn from the annotations
    if spec.task == "binary" and report.mask_values and looks_like_class_ids(set(report.mask_values)) and not report.ok:
        report.problems.insert(0, Problem(DATASET, "error", (
            f"the masks hold class ids {_show(set(report.mask_values))}: this looks like a multiclass data set; "
            "run `workshop data check PATH --task multiclass --label-map FILE` (or data.task=multiclass)")))
    report.counts.update(errors=len(report.errors), warnings=len(report.warnings),
                         files_with_errors=len({p.path for p in report.errors}),
                         files_with_warnings=len({p.path for p in report.warnings}))
    return report


def _task_of(source) -> str:
    return "binary" if source.task == "binary" else "multiclass"


def check_path(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    masks_dir: str | os.PathLike | None = None,
    task: str | None = None,
    label_map: LabelMap | str | os.PathLike | None = None,
    ignore_index: int | None = 255,
    mask_suffix: str | None = None,
    label_attribute: str | None = None,
    keep_unannotated: bool = False,
    class_masks: bool = False,
) -> DataReport:
    """Scan the data at ``path`` and report every problem per file (``workshop data check``).

    The data is opened as training opens it: ``workshop.data.sources.open_source`` finds the source
    (folders, CSV and list files, COCO / VIA / LabelMe / CVAT annotations, registered data sets),
    and :func:`check_source` scans what that source reads. So a file the sources cannot read gets
    the same message here as in ``workshop train``.

    Args:
        path: a folder with ``images/`` + ``masks/`` (or ``masks/binary/``), a CSV of pairs, a list
            file, an annotation file, or a folder holding one of them.
        images_dir: images folder, relative to ``path`` unless absolute (default ``images``).
        masks_dir: masks folder, relative to ``path`` unless absolute (default ``masks``, or
            ``masks/binary`` / ``masks/multiclass`` in the embedded layout).
        task: ``"binary"`` or ``"multiclass"``; default: multiclass when the masks folder is
            called ``multiclass`` or a ``labelmap.json`` sits next to the data, else binary.
        label_map: a ``LabelMap`` or its JSON file; default: ``labelmap.json`` beside the data
            (multiclass only).
        ignore_index: mask value allowed besides the class ids.
        mask_suffix: what mask names add to image names (``"_mask"``); None guesses it when the
            names do not match as they are (reported as a warning).
        label_attribute: annotation files: the region attribute that holds the class (VIA).
        keep_unannotated: annotation files: keep images listed without regions (as background).
        class_masks: the masks folder holds one folder of binary masks per class.

    Returns:
        The ``DataReport`` (missing folders and files are problems in it, not exceptions).

    Raises:
        ValueError: ``task`` is not one of binary, multiclass.
    """
    if task is not None and task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    root = Path(path).expanduser()
    try:
        source = open_source(path, task=task, label_map=label_map, ignore_index=255 if ignore_index is None else ignore_index,
                             images_dir=images_dir, masks_dir=masks_dir, mask_suffix=mask_suffix,
                             label_attribute=label_attribute, keep_unannotated=keep_unannotated, class_masks=class_masks)
    except DataError as exc:  # nothing the sources can read there: their message, as `workshop train` gives it
        return _scan([], [], [], task or "binary", None, ignore_index, display_path(root), "not a data source",
                     [Problem(display_path(root), "error", str(exc).replace(f"{root}: ", ""))])
    if ignore_index is None:
        source.ignore_index = None  # no ignore value allowed in the masks
    report = check_source(source, root=root if root.is_dir() else root.parent)
    report.train_command = train_command(source.train_settings())
    return report


def train_command(settings: dict[str, str] | None) -> str:
    """The ``workshop train`` command line for a source's ``data.*`` settings ("" for None).

    A multiclass task also gets ``train.loss=dice_ce``: the default loss (``dice_bce``) is binary.

    Example:
        >>> train_command({"data.source": "folder", "data.root": "project", "data.images_dir": "photos"})
        'workshop train --set data.source=folder --set data.root=project --set data.images_dir=photos'
    """
    if settings is None:
        return ""
    if settings.get("data.task") == "multiclass":  # the default loss, dice_bce, is binary: its multiclass counterpart
        settings = {**settings, "train.loss": "dice_ce"}
    return " ".join(["workshop train", *(f"--set {shlex.quote(f'{key}={value}')}" for key, value in settings.items())])


def check_config(cfg) -> tuple[list[DataReport], LabelMap | None]:
    """Scan the data a config trains, validates and tests on (``workshop train`` runs this first).

    Returns:
        (one report per source: training data, then ``data.val`` and ``data.test`` when given,
        the training label map or None for binary tasks).

    Raises:
        DataError: the data cannot be opened (a file that is no data source, a label map that
            cannot be read).
    """
    d = cfg.data
    source = source_from_config(cfg)
    report = check_source(source, "all", root=Path(d.root).expanduser() if d.root else None)
    if not report.ok:
        return [report], None
    label_map = source.label_map() if d.task != "binary" else None
    reports = [report]
    for key in ("val", "test"):
        path = getattr(d, key, None)
        if path:
            reports.append(check_source(named_split_source(path, cfg, label_map), "all"))
    return reports, label_map
