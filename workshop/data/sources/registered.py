"""What the registered data sets have in common: an entry, a folder found on this machine, named splits.

Taught in: notebooks/03_dataset.ipynb (the registry)
"""

from __future__ import annotations

import os
from pathlib import Path

from workshop.data.entries import DatasetEntry
from workshop.data.local import require_root
from workshop.data.sources.base import Item, Source, display_path
from workshop.data.splits import split_indices
from workshop.errors import ConfigError


class RegisteredSource(Source):
    """A data set of the registry (CamVid, Pets, human_seg, Penn-Fudan).

    Args:
        root: the data set folder; None: the download, else the shared copy (``workshop.data.local``).
        task: one of the entry's ``tasks``; default the entry's own task.
        ignore_index: the id void pixels get.
        val_fraction, seed: the seeded split of data sets that have no official one.
    """

    entry: DatasetEntry
    official: bool = False  # train and val are the publisher's lists

    def __init__(self, root: str | os.PathLike | None = None, task: str | None = None, ignore_index: int = 255,
                 val_fraction: float = 0.2, seed: int = 0) -> None:
        task = task or self.entry.task
        if task not in self.entry.tasks:
            raise ConfigError(f"data.task={task!r} does not fit {self.entry.name}; choose one of: {', '.join(self.entry.tasks)}")
        super().__init__(task, ignore_index)
        self.given_root = None if root is None else Path(root).expanduser()
        self.val_fraction = val_fraction
        self.seed = seed
        self._root: Path | None = None

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def format(self) -> str:  # type: ignore[override]
        return f"registered data set {self.entry.name} ({self.entry.title})"

    @property
    def root(self) -> Path:
        """The data set folder (checked against the entry's layout the first time it is asked for)."""
        if self._root is None:
            self._root = require_root(self.entry, self.given_root)
        return self._root

    def official_split(self) -> bool:
        return self.official

    def train_settings(self) -> dict[str, str] | None:
        """``data.source`` is the data set's name; ``data.root`` only where a folder was given."""
        settings = {"data.source": self.entry.name}
        if self.given_root is not None:
            settings["data.root"] = display_path(self.given_root)
        if self.task != self.entry.task:
            settings["data.task"] = self.task
        return settings

    def seeded_split(self, items: list[Item], split: str) -> list[Item]:
        """``train`` / ``val`` of ``items`` by the seeded ``val_fraction`` split; ``all`` as it is."""
        self.require_split(split)
        if split == "all":
            return items
        train, val = split_indices(len(items), self.val_fraction, self.seed)
        return [items[i] for i in (train if split == "train" else val)]
