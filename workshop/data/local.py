"""Where a registered data set lies on this machine.

Looked for in order (:func:`find_local`): the finished download in the data dir
(``workshop data download NAME``), else ``$WORKSHOP_SHARED_DATASETS/NAME``, else
``../shared/datasets/NAME`` next to the repository. Every function takes the ``DatasetEntry``, so this
module needs nothing but ``workshop.data.entries`` (no import cycle with the sources or the downloader).

Taught in: notebooks/03_dataset.ipynb (the registry)
"""

from __future__ import annotations

import os
from pathlib import Path

from workshop.data.entries import MARKER, DatasetEntry
from workshop.errors import DataError


def data_dir() -> Path:
    """The workshop data dir (``$WORKSHOP_DATA_DIR``, else ``~/.cache/workshop``)."""
    from workshop.data.synthetic import default_data_dir

    return default_data_dir()


def dataset_dir(entry: DatasetEntry) -> Path:
    """Where ``workshop data download NAME`` puts the data set: ``<data dir>/datasets/NAME``."""
    return data_dir() / "datasets" / entry.name


def downloads_dir() -> Path:
    """Where archives are downloaded to (and where to put one downloaded by hand)."""
    return data_dir() / "downloads"


def shared_candidates(name: str) -> list[Path]:
    """The shared folders a data set called ``name`` may be in (``$WORKSHOP_SHARED_DATASETS``, ``../shared``)."""
    found = []
    explicit = os.environ.get("WORKSHOP_SHARED_DATASETS")
    if explicit:
        found.append(Path(explicit).expanduser() / name)
    repo = Path(__file__).resolve().parents[2]
    found.append(repo.parent / "shared" / "datasets" / name)
    return found


def has_layout(entry: DatasetEntry, path: str | os.PathLike) -> bool:
    """True when ``path`` holds every path of the entry's layout."""
    path = Path(path)
    return path.is_dir() and all((path / rel).exists() for rel in entry.layout)


def is_downloaded(entry: DatasetEntry) -> bool:
    own = dataset_dir(entry)
    return (own / MARKER).is_file() and has_layout(entry, own)


def find_local(entry: DatasetEntry, candidates: list[Path] | None = None) -> Path | None:
    """The folder of a data set on this machine, or None (see the module docstring for the order)."""
    if is_downloaded(entry):
        return dataset_dir(entry)
    for candidate in shared_candidates(entry.name) if candidates is None else candidates:
        if has_layout(entry, candidate):
            return candidate
    return None


def require_root(entry: DatasetEntry, root: str | os.PathLike | None, candidates: list[Path] | None = None) -> Path:
    """``root`` checked against the entry's layout, or the local copy when ``root`` is None.

    Raises:
        DataError: ``root`` lacks part of the layout (named), or the data set is nowhere on this
            machine (the message says how to download it or how to point ``data.root`` at a copy).
    """
    if root is not None:
        path = Path(root).expanduser()
        missing = [rel for rel in entry.layout if not (path / rel).exists()]
        if missing:
            raise DataError(f"{path} is not a {entry.name} folder: missing {', '.join(missing)} "
                            f"(data.root must be the folder that holds {', '.join(entry.layout[:4])})")
        return path
    found = find_local(entry, candidates)
    if found is None:
        raise DataError(
            f"data set {entry.name!r} is not on this machine: run `workshop data download {entry.name}` "
            f"(it goes to {dataset_dir(entry)}), or set data.root (--set data.root=PATH) to a copy you have"
        )
    return found
