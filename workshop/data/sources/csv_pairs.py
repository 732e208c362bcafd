"""A CSV of pairs (columns ``images`` and ``masks``), and a list file of ``image mask`` lines.

Relative paths are resolved against the file's folder (or ``root``); a path that is not there is
tried again without its first folder, which CSV files often carry from the archive they came in
(``Human-Segmentation-Dataset-master/Training_Images/1.jpg``).

Taught in: notebooks/03_dataset.ipynb
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from workshop.data.sources.base import Problem, display_path, read_list
from workshop.data.sources.folder import PairSource
from workshop.errors import DataError

__all__ = ["CSVSource", "ListSource", "list_csv_pairs", "read_pairs_csv"]


def list_csv_pairs(
    csv_file: str | os.PathLike,
    root: str | os.PathLike | None = None,
    image_column: str = "images",
    mask_column: str = "masks",
) -> tuple[list[tuple[Path, Path]], list[Path], list[Path], list[Problem]]:
    """The pairs a CSV lists, the image and mask files found, and one problem per file that is not
    there (or one for the whole CSV: missing, unreadable, a missing column, no rows); nothing raised."""
    csv_file = Path(csv_file)
    if not csv_file.is_file():
        return [], [], [], [Problem(display_path(csv_file), "error", "CSV file not found")]
    try:
        with csv_file.open(newline="") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return [], [], [], [Problem(display_path(csv_file), "error", f"CSV cannot be read ({exc})")]
    for col in (image_column, mask_column):
        if col not in columns:
            return [], [], [], [Problem(display_path(csv_file), "error",
                                        f"no column {col!r}; columns found: {', '.join(columns) or 'none'}")]
    if not rows:
        return [], [], [], [Problem(display_path(csv_file), "error", "the CSV lists no pairs")]
    base = Path(root) if root is not None else csv_file.parent

    def resolve(text: str) -> tuple[Path, bool]:
        path = Path(text)
        if path.is_absolute():
            return path, path.is_file()
        candidates = [base / path] + ([base / Path(*path.parts[1:])] if len(path.parts) > 1 else [])
        for candidate in candidates:
            if candidate.is_file():
                return candidate, True
        return candidates[0], False

    pairs, images, masks, problems = [], [], [], []
    for line, row in enumerate(rows, start=2):
        found = {}
        for column, role, files in ((image_column, "image", images), (mask_column, "mask", masks)):
            path, exists = resolve(row[column] or "")
            found[role] = path if exists else None
            if exists:
                files.append(path)
            else:
                problems.append(Problem(display_path(path), "error",
                                        f"{role} listed in {csv_file.name} line {line} is not there (file not found)"))
        if found["image"] is not None and found["mask"] is not None:
            pairs.append((found["image"], found["mask"]))
    return pairs, images, masks, problems


def read_pairs_csv(
    csv_file: str | os.PathLike,
    root: str | os.PathLike | None = None,
    image_column: str = "images",
    mask_column: str = "masks",
) -> list[tuple[Path, Path]]:
    """Read image/mask pairs from a CSV; relative paths are resolved against ``root`` (default: the CSV's folder).

    Raises:
        DataError: missing file or column (lists the columns found), or a path that exists nowhere
            (the first one, with its line).
    """
    pairs, _, _, problems = list_csv_pairs(csv_file, root, image_column, mask_column)
    if problems:
        path, _, message = problems[0]
        if "line" in message:
            line = message.split(" line ")[1].split(" ")[0]
            raise DataError(f"{csv_file} line {line}: file not found: {path}")
        raise DataError(f"{csv_file}: {message}" if path == display_path(csv_file) else f"{path}: {message}")
    return pairs


class CSVSource(PairSource):
    """Pairs listed in a CSV file (see :func:`list_csv_pairs`)."""

    format = "CSV of pairs"

    def __init__(self, csv_file: str | os.PathLike, root: str | os.PathLike | None = None,
                 image_column: str = "images", mask_column: str = "masks", **kwargs) -> None:
        self.csv_file = Path(csv_file).expanduser()
        super().__init__(where=self.csv_file, **kwargs)
        self.base = None if root is None else Path(root).expanduser()
        self.columns = (image_column, mask_column)

    def pairs(self) -> list[tuple[Path, Path]]:
        if self._pairs is None:
            self._pairs = read_pairs_csv(self.csv_file, self.base, *self.columns)
        return self._pairs

    def listing(self):
        return list_csv_pairs(self.csv_file, self.base, *self.columns)

    def layout(self) -> str:
        return f"CSV {display_path(self.csv_file.name)}"

    def train_settings(self) -> dict[str, str] | None:
        """``data.source: csv``: the CSV's folder as ``data.root`` (relative paths in it are read from there)."""
        if self.base is not None and self.base != self.csv_file.parent:
            return None  # paths relative to another folder than the CSV's: no config key says so
        settings = {"data.source": "csv", "data.root": display_path(self.csv_file.parent), "data.csv_file": self.csv_file.name}
        settings.update(self._task_settings())
        if self.label_map_file is not None and self.task != "binary":
            settings["data.label_map"] = display_path(self.label_map_file)
        return settings


class ListSource(PairSource):
    """A text file with one ``image mask`` pair per line, paths relative to the file's folder (CamVid's ``*_rel.txt``)."""

    format = "list file of pairs"

    def __init__(self, list_file: str | os.PathLike, **kwargs) -> None:
        self.list_file = Path(list_file).expanduser()
        super().__init__(where=self.list_file, **kwargs)

    def pairs(self) -> list[tuple[Path, Path]]:
        if self._pairs is None:
            pairs = []
            base = self.list_file.parent
            for n, line in enumerate(read_list(self.list_file), start=1):
                parts = line.split()
                if len(parts) != 2:
                    raise DataError(f"{self.list_file} line {n}: expected 'image mask' (two paths), got {line!r}")
                image, mask = (Path(p) if Path(p).is_absolute() else base / p for p in parts)
                for p in (image, mask):
                    if not p.is_file():
                        raise DataError(f"{self.list_file} line {n}: file not found: {p}")
                pairs.append((image, mask))
            if not pairs:
                raise DataError(f"{self.list_file} lists no pairs")
            self._pairs = pairs
        return self._pairs
