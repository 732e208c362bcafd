"""Folder pairs: images in one folder, masks in another, matched by file stem (``a.jpg`` <-> ``a.png``).

The one pairing rule of the workshop (``data check``, ``workshop train``, ``FolderDataset`` and the
registered sets all use :func:`pair_folders`): an image pairs with the mask of the same stem, or
with the mask whose name adds a suffix (``a.png`` <-> ``a_mask.png``); the suffix is guessed from
the names when it is not given.

Masks may be 0/255 or 0/1 (binary), class ids, palette PNGs or colour PNGs with a label map (see
``workshop.data.sources.palette``). A multiclass folder without a label map gets one derived from
the ids in its masks. A data set that ships one binary mask per class (Open Images) keeps them in
one folder per class (``masks/road/a.png``, ``masks/car/a.png``; ``class_masks=True``): they are
merged into one class map with :func:`workshop.data.io.merge_binary_masks`.

Taught in: notebooks/03_dataset.ipynb
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from workshop.data.io import IMAGE_EXTENSIONS, LabelClass, LabelMap, default_palette, list_images, merge_binary_masks, read_image, read_mask, resize_mask_nearest
from workshop.data.sources.base import DATASET, CheckSpec, Item, Problem, Sample, Source, display_path
from workshop.data.sources.palette import derive_label_map, read_label_png
from workshop.errors import DataError

__all__ = ["FolderSource", "PairSource", "Pairing", "guess_mask_suffix", "match_by_stem", "pair_folders"]


# ----------------------------------------------------------------------------- the pairing rule


@dataclass
class Pairing:
    """What pairing two folders found.

    Attributes:
        pairs: (image, mask) files matched by stem, in image-name order.
        images: every image file of the images folder.
        masks: every mask file of the masks folder.
        suffix: what mask names add to image names (``"_mask"``), ``""`` when they match as they are.
        problems: unpaired files (errors), names used twice and a guessed suffix (warnings).
    """

    pairs: list[tuple[Path, Path]] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    masks: list[Path] = field(default_factory=list)
    suffix: str = ""
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def guess_mask_suffix(image_stems: set[str], mask_stems: set[str]) -> str:
    """The suffix that mask names add to image names (``a.png`` <-> ``a_mask.png``), or ``""``.

    A suffix starts at a ``_``, ``-`` or ``.`` and counts when it pairs at least half of the masks
    whose names are no image name.
    """
    found: Counter[str] = Counter()
    for stem in mask_stems - image_stems:
        for cut in range(len(stem) - 1, 0, -1):
            if stem[cut] in "_-." and stem[:cut] in image_stems:
                found[stem[cut:]] += 1
                break
    if not found:
        return ""
    suffix, n = found.most_common(1)[0]
    return suffix if n >= max(1, len(mask_stems - image_stems) // 2) else ""


def _list(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def pair_folders(images_dir: str | os.PathLike, masks_dir: str | os.PathLike, mask_suffix: str | None = None) -> Pairing:
    """Pair the files of two folders by stem, and collect every problem of the pairing (nothing raised).

    Args:
        mask_suffix: what mask names add to image names (``"_mask"``); None: guessed from the
            names when they do not match as they are (a warning says so); ``""``: names match as they are.
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    found = Pairing()
    for folder, what in ((images_dir, "images"), (masks_dir, "masks")):
        if not folder.is_dir():
            found.problems.append(Problem(display_path(folder), "error", f"{what} folder not found"))
    if found.problems:
        return found
    found.images, found.masks = _list(images_dir), _list(masks_dir)
    for files, folder, what in ((found.images, images_dir, "images"), (found.masks, masks_dir, "masks")):
        if not files:
            found.problems.append(Problem(display_path(folder), "error",
                                          f"no {what} here (looked for {', '.join(IMAGE_EXTENSIONS)})"))
    if mask_suffix is None:
        mask_suffix = guess_mask_suffix({p.stem for p in found.images}, {p.stem for p in found.masks})
        if mask_suffix:
            found.problems.append(Problem(
                DATASET, "warning",
                f"mask names add {mask_suffix!r} to the image names; paired that way "
                f"(in code: FolderDataset(images, masks, mask_suffix={mask_suffix!r}))",
            ))
    found.suffix = mask_suffix
    same = _same(images_dir, masks_dir)
    by_stem: dict[str, dict[str, list[Path]]] = {"image": defaultdict(list), "mask": defaultdict(list)}
    for p in found.images:
        if not (same and mask_suffix and p.stem.endswith(mask_suffix)):  # one folder: a.png next to a_mask.png
            by_stem["image"][p.stem].append(p)
    for p in found.masks:
        if mask_suffix and p.stem.endswith(mask_suffix):
            by_stem["mask"][p.stem[: -len(mask_suffix)]].append(p)
        elif not same:
            by_stem["mask"][p.stem].append(p)
    for role, table in by_stem.items():
        for stem, files in table.items():
            if len(files) > 1:
                others = ", ".join(display_path(f.name) for f in files[:-1])
                found.problems.append(Problem(
                    display_path(files[-1]), "warning",
                    f"{len(files)} {role}s share the name {display_path(stem)!r} ({others} too); the loader uses this one only",
                ))
    for stem in sorted(by_stem["image"]):
        image = by_stem["image"][stem][-1]
        if stem in by_stem["mask"]:
            found.pairs.append((image, by_stem["mask"][stem][-1]))
        elif found.masks:
            name = display_path(stem)
            names = f"{name}.* or {name}{display_path(mask_suffix)}.*" if mask_suffix else f"{name}.*"
            found.problems.append(Problem(display_path(image), "error",
                                          f"image has no mask (no {names} in {display_path(masks_dir.name)}/)"))
    for stem in sorted(set(by_stem["mask"]) - set(by_stem["image"])):
        if found.images:
            found.problems.append(Problem(display_path(by_stem["mask"][stem][-1]), "error",
                                          f"mask has no image (no {display_path(stem)}.* in {display_path(images_dir.name)}/)"))
    return found


def match_by_stem(images_dir: str | os.PathLike, masks_dir: str | os.PathLike, mask_suffix: str | None = "") -> list[tuple[Path, Path]]:
    """The pairs of :func:`pair_folders`, or an error naming the cause and the files (``a.jpg`` <-> ``a.png``,
    or ``a_mask.png`` with ``mask_suffix="_mask"``; None: the suffix is guessed).

    Raises:
        DataError: a folder is missing or holds no images, or a file has no partner (the message
            names up to five of them and the names that were tried).
    """
    found = pair_folders(images_dir, masks_dir, mask_suffix)
    if found.errors:
        raise pairing_error(found, Path(images_dir), Path(masks_dir))
    return found.pairs


def pairing_error(found: Pairing, images_dir: Path, masks_dir: Path) -> DataError:
    """One error for the first kind of problem a pairing found (as ``workshop train`` shows it)."""
    errors = found.errors
    first = errors[0]
    if first.message.endswith("folder not found"):
        return DataError(f"{first.message}: {first.path}")
    if first.message.startswith("no images here"):
        return DataError(f"no images in {images_dir} (looked for {', '.join(IMAGE_EXTENSIONS)})")
    if first.message.startswith(("no masks here", "no class folders")):
        return DataError(f"{first.message.replace(' here', ' in ' + str(masks_dir))}")
    lonely_images = [p for p in errors if p.message.startswith("image has no mask")]
    if lonely_images:
        names = ", ".join(Path(p.path).name for p in lonely_images[:5])
        tried = lonely_images[0].message.split("(no ", 1)[-1].split(" in ")[0] if "(no " in lonely_images[0].message else ""
        looked = f"; for {Path(lonely_images[0].path).name} it looked for {tried}" if tried else ""
        return DataError(f"{len(lonely_images)} image(s) in {images_dir} have no mask in {masks_dir}: {names}{looked} "
                         "(a mask has its image's name, or adds a suffix such as '_mask' that most masks share)")
    lonely_masks = [p for p in errors if p.message.startswith("mask has no image")]
    if lonely_masks:
        names = ", ".join(Path(p.path).name for p in lonely_masks[:5])
        return DataError(f"{len(lonely_masks)} mask(s) in {masks_dir} have no image in {images_dir}: {names}")
    return DataError(f"{first.path}: {first.message}")


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def same_folder_message(folder: Path) -> str:
    return (f"images and masks are the same folder ({folder}): every image would be paired with itself; "
            "point the masks at the folder of the masks (--masks-dir / data.masks_dir), or give the suffix "
            "mask names add (a.png + a_mask.png: mask_suffix='_mask')")


def default_masks_dir(root: Path, task: str | None = None) -> Path:
    """``root/masks``, or its ``binary`` / ``multiclass`` sub-folder when the masks are kept per task
    (the embedded set's layout: ``masks/binary`` + ``masks/multiclass``; task None: ``binary`` when
    it is there, else ``multiclass``)."""
    masks = root / "masks"
    if masks.is_dir() and not list_images(masks):
        subs = [task] if task in ("binary", "multiclass") else ["binary", "multiclass"]
        for sub in subs:
            if (masks / sub).is_dir():
                return masks / sub
    return masks


# ----------------------------------------------------------------------------- sources of pairs


class PairSource(Source):
    """Any list of (image file, mask file) pairs: the reading and the label map that folder, CSV and list share.

    Args:
        pairs: the pairs (subclasses list them from a folder or a file instead).
        task: ``binary`` or ``multiclass``.
        label_map: a ``LabelMap`` or its JSON file (multiclass; derived from the masks when None).
        ignore_index: mask value excluded from losses and metrics.
        where: what the pairs come from, for messages.
    """

    format = "pairs"

    def __init__(self, pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]] | None = None, task: str = "binary",
                 label_map: LabelMap | str | os.PathLike | None = None, ignore_index: int = 255,
                 where: str | os.PathLike = "") -> None:
        super().__init__(task, ignore_index)
        self.label_map_file = None if label_map is None or isinstance(label_map, LabelMap) else Path(label_map)
        if self.label_map_file is not None:
            label_map = LabelMap.from_json(self.label_map_file, ignore_index)
        self._label_map = label_map
        self.derived = False
        self.where = where
        self._pairs = None if pairs is None else [(Path(i), Path(m)) for i, m in pairs]

    def pairs(self) -> list[tuple[Path, Path]]:
        if self._pairs is None:
            raise NotImplementedError(f"{type(self).__name__} lists no pairs")
        return self._pairs

    def items(self, split: str = "all") -> list[Item]:
        self.require_split(split)
        return [Item(i, m) for i, m in self.pairs()]

    def label_map(self) -> LabelMap | None:
        if self.task == "binary":
            return None
        if self._label_map is None:
            self._label_map = derive_label_map([m for _, m in self.pairs()], self.ignore_index, self.where)
            self.derived = True
        return self._label_map

    def read(self, item: Item) -> Sample:
        image = read_image(item.image)
        mask = read_label_png(item.mask, self.task, self.label_map(), self.ignore_index)
        if mask.shape != image.shape[:2]:
            mask = resize_mask_nearest(mask, *image.shape[:2])
        return Sample(image, mask, name=item.name)

    def listing(self) -> tuple[list[tuple[Path, Path]], list[Path], list[Path], list[Problem]]:
        """(pairs, images, masks, problems) as found, for ``data check``; default: the pairs, no problems."""
        pairs = self.pairs()
        return pairs, [i for i, _ in pairs], [m for _, m in pairs], []

    def layout(self) -> str:
        """How the pairs were found, in words (the header of the ``data check`` report)."""
        return f"format: {self.format}"

    def check_spec(self, split: str = "all") -> CheckSpec:
        """The files as listed (unpaired and missing files are problems, not an exception), and the
        label map the masks are checked against (derived from them, with a warning, when none is given)."""
        self.require_split(split)
        pairs, images, masks, problems = self.listing()
        layout, label_map = self.layout(), None
        if self.task != "binary":
            label_map = self._label_map
            if label_map is None and masks:
                try:
                    label_map = derive_label_map(masks, self.ignore_index, self.where or masks[0].parent)
                    problems.append(Problem(DATASET, "warning", (
                        f"no label map: {len(label_map)} classes derived from the mask ids ({', '.join(label_map.names)}); "
                        "to name them, write labelmap.json ({\"classes\": [{\"name\", \"id\", \"color\"}, ...]}) and pass "
                        "--label-map FILE (data.label_map)")))
                except DataError as exc:
                    if "colour-coded" in str(exc):
                        layout += ", no label map: class ids not checked"  # each colour mask is an error of its own
                    else:
                        problems.append(Problem(DATASET, "error", str(exc)))
                except (OSError, ValueError):
                    pass  # unreadable masks are reported file by file
        lonely = [m for m in masks if m not in {mm for _, mm in pairs}]
        return CheckSpec(pairs=pairs, images=[i for i in images if i not in {ii for ii, _ in pairs}], masks=lonely,
                         task="binary" if self.task == "binary" else "multiclass", label_map=label_map,
                         ignore_index=self.ignore_index, problems=problems, layout=layout)


class FolderSource(PairSource):
    """``images_dir`` + ``masks_dir`` matched by stem with the one pairing rule (:func:`pair_folders`).

    Args:
        images_dir: the images folder.
        masks_dir: the masks folder; None: ``masks/`` beside the images (or its ``binary`` /
            ``multiclass`` sub-folder, the embedded set's layout).
        mask_suffix: what mask names add to image names (``"_mask"``); None: guessed from the names.
        class_masks: ``masks_dir`` holds one folder per class (named as the label map's classes, or
            class ids 1.. in name order without one), each with one binary mask per image; a class
            absent from an image has no file there. Merged with ``merge_binary_masks``, later classes
            on top.
        root: the folder the two are under (for the report's header).

    Raises:
        DataError: the two folders are the same one without a ``mask_suffix`` (every image would
            be paired with itself). A missing folder or an unpaired file is raised by :meth:`items`
            (naming the cause and the files) and listed by :meth:`check_spec`.
    """

    format = "folder pairs"

    def __init__(self, images_dir: str | os.PathLike, masks_dir: str | os.PathLike | None = None,
                 mask_suffix: str | None = None, class_masks: bool = False, root: str | os.PathLike | None = None,
                 **kwargs) -> None:
        self.images_dir = Path(images_dir).expanduser()
        if class_masks:
            kwargs["task"] = "multiclass"  # the merged masks hold class ids
        task = kwargs.get("task", "binary")
        self.masks_dir = Path(masks_dir).expanduser() if masks_dir is not None else default_masks_dir(self.images_dir.parent, task)
        self.root = Path(root).expanduser() if root is not None else self.images_dir.parent
        super().__init__(where=self.masks_dir, **kwargs)
        self.mask_suffix = mask_suffix
        self.class_masks = class_masks
        self._found: Pairing | None = None
        self._by_class: dict[str, Pairing] | None = None
        if _same(self.images_dir, self.masks_dir) and not mask_suffix and self.images_dir.is_dir():
            raise DataError(same_folder_message(self.images_dir))

    # ---- listing

    def pairing(self) -> Pairing:
        """The pairing of the two folders (one class folder at a time with ``class_masks``)."""
        if self._found is None:
            if self.class_masks:
                self._found = self._pair_class_folders()
            else:
                self._found = pair_folders(self.images_dir, self.masks_dir, self.mask_suffix)
        return self._found

    def pairs(self) -> list[tuple[Path, Path]]:
        found = self.pairing()
        if found.errors:
            raise pairing_error(found, self.images_dir, self.masks_dir)
        return found.pairs

    def items(self, split: str = "all") -> list[Item]:
        self.require_split(split)
        if not self.class_masks:
            return [Item(i, m) for i, m in self.pairs()]
        self.pairs()  # raises on an unpaired file
        return [Item(image, self.masks_dir, masks) for image, masks in self._class_items()]

    def listing(self) -> tuple[list[tuple[Path, Path]], list[Path], list[Path], list[Problem]]:
        found = self.pairing()
        return list(found.pairs), list(found.images), list(found.masks), list(found.problems)

    def train_settings(self) -> dict[str, str] | None:
        """``data.source: folder`` with ``data.root``, and the folders only where they are not the defaults."""
        settings = {"data.source": "folder", "data.root": display_path(self.root)}
        if self.images_dir != self.root / "images":
            settings["data.images_dir"] = _relative(self.images_dir, self.root)
        if self.masks_dir != default_masks_dir(self.images_dir.parent, self.task):
            settings["data.masks_dir"] = _relative(self.masks_dir, self.root)
        if self.class_masks:
            settings["data.class_masks"] = "true"
        settings.update(self._task_settings())
        if self.label_map_file is not None and self.task != "binary":
            settings["data.label_map"] = display_path(self.label_map_file)
        return settings

    def layout(self) -> str:
        if self.class_masks:
            return f"folders {_relative(self.images_dir, self.root)}/ + {_relative(self.masks_dir, self.root)}/<class>/ (one binary mask per class)"
        return f"folders {_relative(self.images_dir, self.root)}/ + {_relative(self.masks_dir, self.root)}/"

    # ---- one binary mask per class

    def _class_dirs(self) -> list[tuple[str, Path]]:
        """(class name, folder) in drawing order: the label map's order, else the folders' names."""
        if not self.masks_dir.is_dir():
            return []
        folders = {p.name: p for p in sorted(self.masks_dir.iterdir()) if p.is_dir()}
        if self._label_map is not None:
            return [(c.name, folders.get(c.name, self.masks_dir / c.name)) for c in self._label_map.classes if c.id != 0
                    and c.name in folders]
        return list(folders.items())

    def _pair_class_folders(self) -> Pairing:
        """Every class folder paired with the images; an image needs a mask in at least one of them."""
        found = Pairing()
        dirs = self._class_dirs()
        if not self.masks_dir.is_dir() or not dirs:
            what = "masks folder not found" if not self.masks_dir.is_dir() else (
                "no class folders here (class_masks: one folder of binary masks per class)")
            found.problems.append(Problem(display_path(self.masks_dir), "error", what))
            return found
        per_class = {name: pair_folders(self.images_dir, folder, self.mask_suffix) for name, folder in dirs}
        self._by_class = per_class
        first = next(iter(per_class.values()))
        found.images, found.suffix = first.images, first.suffix
        paired = set()
        for name, pairing in per_class.items():
            found.masks += pairing.masks
            found.pairs += pairing.pairs
            paired |= {i for i, _ in pairing.pairs}
            found.problems += [p for p in pairing.problems if not p.message.startswith(("image has no mask", "no masks here"))]
        for image in found.images:
            if image not in paired:
                found.problems.append(Problem(display_path(image), "error",
                                              f"image has no mask in any class folder of {display_path(self.masks_dir.name)}/ "
                                              f"({', '.join(per_class)})"))
        found.problems = list(dict.fromkeys(found.problems))
        return found

    def _class_items(self) -> list[tuple[Path, dict[str, Path]]]:
        self.pairing()
        masks: dict[Path, dict[str, Path]] = defaultdict(dict)
        for name, pairing in (self._by_class or {}).items():
            for image, mask in pairing.pairs:
                masks[image][name] = mask
        return [(image, masks[image]) for image in self.pairing().images if image in masks]

    def label_map(self) -> LabelMap | None:
        if self.class_masks and self._label_map is None:
            names = ["background", *(name for name, _ in self._class_dirs())]
            self._label_map = LabelMap([LabelClass(n, i, tuple(c)) for i, (n, c) in
                                        enumerate(zip(names, default_palette(len(names))))], self.ignore_index)
        return super().label_map()

    def read(self, item: Item) -> Sample:
        if not self.class_masks:
            return super().read(item)
        image = read_image(item.image)
        h, w = image.shape[:2]
        ids = {c.name: c.id for c in self.label_map().classes}
        masks = {name: read_mask(path, task="binary") for name, path in item.key.items()}
        order = sorted(masks, key=lambda name: ids.get(name, 0))  # the label map's order: later classes on top
        return Sample(image, merge_binary_masks({n: masks[n] for n in order}, ids, h, w), name=item.name)

    def check_spec(self, split: str = "all") -> CheckSpec:
        if self.class_masks:
            self.label_map()  # from the class folders: nothing to derive
        spec = super().check_spec(split)
        if self.class_masks:  # each class file is a binary mask; the merged map's ids come from the folders
            spec.task, spec.label_map = "binary", None
        return spec


def _relative(path: Path, root: Path) -> str:
    try:
        return display_path(path.relative_to(root))
    except ValueError:
        return display_path(path)
