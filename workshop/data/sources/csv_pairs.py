"""A CSV of pairs (columns ``images`` and ``masks``), and a list file of ``image mask`` lines.

Relative paths are resolved against the file's folder (``read_pairs_csv`` also drops a leading
folder name that the CSV carries from the archive it came in).

Taught in: notebooks/03_dataset.ipynb
"""

from __future__ import annotations

import os
from pathlib import Path

from workshop.data.datasets import read_pairs_csv
from workshop.data.sources.base import read_list
from workshop.data.sources.folder import PairSource
from workshop.errors import DataError


class CSVSource(PairSource):
    """Pairs listed in a CSV file (see ``workshop.data.datasets.read_pairs_csv``)."""

    format = "CSV of pairs"

    def __init__(self, csv_file: str | os.PathLike, root: str | os.PathLike | None = None,
                 image_column: str = "images", mask_column: str = "masks", **kwargs) -> None:
        self.csv_file = Path(csv_file).expanduser()
        super().__init__(where=self.csv_file, **kwargs)
        self.base = None if root is None else Path(root).expanduser()
        self.columns = (image_column, mask_column)
        self._pairs: list[tuple[Path, Path]] | None = None

    def pairs(self) -> list[tuple[Path, Path]]:
        if self._pairs is None:
            self._pairs = read_pairs_csv(self.csv_file, self.base, *self.columns)
        return self._pairs

    def listing_report(self):
        from workshop.data.check import check_path

        return check_path(self.csv_file, task=self.task, label_map=self._label_map, ignore_index=self.ignore_index)


class ListSource(PairSource):
    """A text file with one ``image mask`` pair per line, paths relative to the file's folder (CamVid's ``*_rel.txt``)."""

    format = "list file of pairs"

    def __init__(self, list_file: str | os.PathLike, **kwargs) -> None:
        self.list_file = Path(list_file).expanduser()
        super().__init__(where=self.list_file, **kwargs)
        self._pairs: list[tuple[Path, Path]] | None = None

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
