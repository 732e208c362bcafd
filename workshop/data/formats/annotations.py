"""Annotation files from labelling tools, read into one shape: images, each with its labelled objects.

The readers (one module per tool: :mod:`.coco`, :mod:`.via`, :mod:`.labelme`, :mod:`.cvat`) all return
an :class:`AnnotationSet`; :mod:`.rasterize` turns an image's objects into a semantic mask or instance
masks. The format is detected from the file's *content*, not its extension::

    annotation file(s) --read_annotations--> AnnotationSet(images=[AnnotatedImage(file, objects)])
      --rasterize.semantic_mask--> (H, W) int64 class ids   (binary and multiclass tasks)
      --rasterize.instance_masks--> (K, H, W) bool + labels  (the instance track)

Coordinates are pixels in the **EXIF-corrected (upright) frame** of the image, the frame
:func:`workshop.data.io.read_image` returns; pixel ``i`` spans ``[i, i + 1)`` (the COCO convention).

Example:
    >>> s = read_annotations(Path("kudzu/train/via_region_data.json"))  # doctest: +SKIP
    >>> s.format, len(s.images), s.labels  # doctest: +SKIP
    ('via', 24, ['kudzu'])

Not taught in a notebook yet: the annotation-file data sources and ``workshop data check`` use it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from workshop.data.formats import coco, cvat, labelme, via
from workshop.data.formats.common import AnnotatedImage, AnnotatedObject, AnnotationSet, is_junk, load_json
from workshop.data.io import IMAGE_EXTENSIONS
from workshop.errors import DataError

__all__ = [
    "FORMATS",
    "AnnotatedImage",
    "AnnotatedObject",
    "AnnotationSet",
    "detect_format",
    "read_annotations",
]

#: The formats :func:`read_annotations` understands, with the tool that writes each.
FORMATS = {
    "coco": "COCO instances JSON (CVAT, Roboflow, Label Studio, detectron2 exports)",
    "via": "VGG Image Annotator 1.x / 2.x JSON (export or project file)",
    "labelme": "LabelMe JSON, one file per image",
    "cvat": "CVAT for images 1.1 XML",
}

# ----------------------------------------------------------------------------- detection


def _detect_json(data: Any) -> str | None:
    if isinstance(data, dict):
        if "images" in data and "annotations" in data and isinstance(data["images"], list):
            return "coco"
        if "_via_img_metadata" in data:
            return "via"
        if "shapes" in data and isinstance(data["shapes"], list) and ("imagePath" in data or "imageHeight" in data):
            return "labelme"
        if data and all(isinstance(v, dict) and "filename" in v and "regions" in v for v in data.values()):
            return "via"
    return None


def _is_via3(data: Any) -> bool:
    return isinstance(data, dict) and {"project", "file", "metadata"} <= set(data)


def _detect_xml(path: Path) -> str | None:
    try:
        for _, elem in ET.iterparse(path, events=("start",)):
            return "cvat" if elem.tag == "annotations" else None
    except ET.ParseError:
        return None
    return None


def _looks_like_xml(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(256).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<")


def detect_format(path: Path) -> str | None:
    """Which tool wrote this annotation file (or folder), judged from its content.

    Args:
        path: a ``.json`` / ``.xml`` file, or a folder of LabelMe JSON files.

    Returns:
        ``"coco"``, ``"via"``, ``"labelme"``, ``"cvat"``, or None when it is none of them (also for a
        missing, empty or unparsable file).

    Example:
        >>> detect_format(Path("kudzu/train/via_region_data.json"))  # doctest: +SKIP
        'via'
    """
    path = Path(path)
    if path.is_dir():
        formats = {fmt for _, fmt, _ in _scan_folder(path)[0]}
        return formats.pop() if len(formats) == 1 else None
    if not path.is_file() or path.stat().st_size == 0 or is_junk(path):
        return None
    if _looks_like_xml(path):
        return _detect_xml(path)
    try:
        return _detect_json(load_json(path))
    except DataError:
        return None


# ----------------------------------------------------------------------------- reading


def read_annotations(
    path: Path,
    *,
    label_attribute: str | None = None,
    keep_unannotated: bool = False,
    images_dir: Path | None = None,
    extract_dir: Path | None = None,
    default_label: str = "foreground",
) -> AnnotationSet:
    """Read an annotation export from COCO, VIA, LabelMe or CVAT; the format is detected.

    Images are looked up in ``images_dir`` when given, else next to the annotation file (and in an
    ``images/`` folder beside or above it, where COCO and CVAT exports put them). Sizes and
    coordinates are in the image's EXIF-corrected (upright) frame: a file that declares the stored
    (sideways) size of a rotated photo has its geometry turned upright, with a problem line.

    Args:
        path: the annotation file, or a folder of LabelMe JSON files (or holding exactly one
            COCO / VIA / CVAT file).
        label_attribute: VIA only: the region attribute that holds the class name. None works when the
            regions carry one attribute, or one class (read as a binary task).
        keep_unannotated: keep images the tool listed without any region, as all background.
            Either way they are reported in ``problems``.
        images_dir: folder holding the images, when they are not beside the annotation file.
        extract_dir: LabelMe only: where images embedded as ``imageData`` are written when the
            image file is missing (default: ``<workshop data dir>/labelme-images``).
        default_label: VIA only: the class name of regions when the file names no class at all
            (a binary task); pass the training split's label so every split agrees.

    Returns:
        The images, labels and problems (skipped images, skipped shapes, OS junk files...).

    Raises:
        DataError: the file is missing, empty, not valid JSON/XML, not one of the four formats, or
            (VIA) the class attribute is missing or ambiguous; the message names the file and the fix.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"annotation file or folder not found: {path}")
    folders = _image_folders(path, images_dir)
    if path.is_file() and is_junk(Path(path.name)):
        raise DataError(f"{path} is an operating-system junk file, not an annotation file")
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(f"{path}: empty (zero-byte) annotation file; export it again from the tool")
    try:
        if path.is_dir():
            return _read_folder(path, folders, label_attribute, keep_unannotated, extract_dir, default_label)
        return _read_file(path, folders, label_attribute, keep_unannotated, extract_dir, default_label)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{path}: malformed annotation file ({type(err).__name__}: {err})") from None


def _read_file(path, folders, label_attribute, keep_unannotated, extract_dir, default_label) -> AnnotationSet:
    if _looks_like_xml(path):
        if _detect_xml(path) != "cvat":
            raise DataError(f"{path}: an XML file but not CVAT for images 1.1 (the root element must be <annotations>)")
        result = cvat.read(path, folders=folders, keep_unannotated=keep_unannotated)
    else:
        data = load_json(path)
        result = _read_json(path, data, folders, label_attribute, keep_unannotated, extract_dir, default_label)
    return _finish(result, path)


def _read_json(path, data, folders, label_attribute, keep_unannotated, extract_dir, default_label) -> AnnotationSet:
    fmt = _detect_json(data)
    if fmt == "coco":
        return coco.read(path, data, folders=folders, keep_unannotated=keep_unannotated)
    if fmt == "via":
        return via.read(path, data, folders=folders, label_attribute=label_attribute,
                        keep_unannotated=keep_unannotated, default_label=default_label)
    if fmt == "labelme":
        return labelme.read_files([(path, data)], folders=folders, keep_unannotated=keep_unannotated, extract_dir=extract_dir)
    if _is_via3(data):
        raise DataError(
            f"{path}: a VIA 3 project file, which is not supported; in VIA 3 use "
            "'Export annotations (COCO format)' and read that file instead"
        )
    keys = sorted(data)[:8] if isinstance(data, dict) else type(data).__name__
    raise DataError(
        f"{path}: not a COCO, VIA, LabelMe or CVAT annotation file (top level: {keys}); "
        "COCO needs 'images' and 'annotations', VIA entries need 'filename' and 'regions', "
        "LabelMe needs 'shapes' and 'imagePath'"
    )


def _image_folders(path: Path, images_dir: Path | None) -> list[Path]:
    base = path if path.is_dir() else path.parent
    folders = [Path(images_dir).expanduser()] if images_dir is not None else []
    folders += [base, base / "images", base.parent / "images", base.parent]
    seen: list[Path] = []
    for folder in folders:
        if folder not in seen:
            seen.append(folder)
    return seen


def _scan_folder(folder: Path) -> tuple[list[tuple[Path, str, Any]], list[str]]:
    """Classify every JSON/XML file under ``folder``: ``[(file, format, data)]`` and problem lines."""
    found: list[tuple[Path, str, Any]] = []
    problems: list[str] = []
    for file in sorted(folder.rglob("*")):
        if not file.is_file() or file.suffix.lower() not in (".json", ".xml"):
            continue
        if is_junk(file.relative_to(folder)):
            problems.append(f"{file}: operating-system junk file, skipped")
            continue
        if file.stat().st_size == 0:
            problems.append(f"{file}: empty (zero-byte) file, skipped")
            continue
        if _looks_like_xml(file):
            fmt, data = _detect_xml(file), None
        else:
            try:
                data = load_json(file)
            except DataError as err:
                problems.append(f"{err}; skipped")
                continue
            fmt = _detect_json(data)
        if fmt is None:
            problems.append(f"{file}: not an annotation file of a known format, skipped")
            continue
        found.append((file, fmt, data))
    return found, problems


def _read_folder(folder, folders, label_attribute, keep_unannotated, extract_dir, default_label) -> AnnotationSet:
    found, problems = _scan_folder(folder)
    formats = sorted({fmt for _, fmt, _ in found})
    if not found:
        raise DataError(
            f"{folder}: no annotation file found (looked for COCO / VIA / LabelMe .json and CVAT .xml)"
            + (f"; {len(problems)} file(s) skipped: {problems[0]}" if problems else "")
        )
    if formats == ["labelme"]:
        result = labelme.read_files(
            [(f, d) for f, _, d in found], folders=folders, keep_unannotated=keep_unannotated,
            extract_dir=extract_dir, folder=folder,
        )
    elif len(found) == 1:
        file, fmt, data = found[0]
        if fmt == "cvat":
            result = cvat.read(file, folders=_image_folders(file, None if folders[0] == folder else folders[0]),
                               keep_unannotated=keep_unannotated)
        else:
            result = _read_json(file, data, _image_folders(file, None if folders[0] == folder else folders[0]),
                                label_attribute, keep_unannotated, extract_dir, default_label)
    else:
        listing = ", ".join(f"{f.relative_to(folder)} ({fmt})" for f, fmt, _ in found[:6])
        raise DataError(
            f"{folder}: holds several annotation files ({listing}); give the one to read, "
            "or keep only LabelMe files in the folder"
        )
    result.problems[:0] = problems
    return _finish(result, folder)


def _finish(result: AnnotationSet, path: Path) -> AnnotationSet:
    """Merge images listed twice, add labels used but not declared, record the path."""
    merged: dict[Path, AnnotatedImage] = {}
    for img in result.images:
        if img.file in merged:
            first = merged[img.file]
            result.problems.append(
                f"{img.source or path}: image {img.name or img.file.name} is listed more than once; its objects are merged"
            )
            first.objects.extend(img.objects)
            first.annotated = first.annotated or img.annotated
        else:
            merged[img.file] = img
    result.images = list(merged.values())
    if result.format in ("via", "cvat"):  # COCO split files often share one images folder: no report
        _report_unlisted(result, path)
    for img in result.images:
        for obj in img.objects:
            if obj.label not in result.labels:
                result.labels.append(obj.label)
    result.path = path
    return result


def _report_unlisted(result: AnnotationSet, path: Path) -> None:
    """One problem line per image folder holding images the annotation file does not name."""
    listed = {img.file for img in result.images}
    names = {Path(n.replace("\\", "/")).name for n in result.listed}
    for folder in sorted({img.file.parent for img in result.images}):
        unlisted = sorted(f.name for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS
                          and not is_junk(f) and f.resolve() not in listed and f.name not in names)
        if unlisted:
            shown = ", ".join(unlisted[:8]) + (f", ... ({len(unlisted) - 8} more)" if len(unlisted) > 8 else "")
            result.problems.append(f"{path}: {len(unlisted)} image file(s) in {folder} are not in the annotation "
                                   f"file: {shown}; not used")
