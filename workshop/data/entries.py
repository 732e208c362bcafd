"""What the workshop records about a real data set: its archives and its layout on disk.

``Archive`` is one file to download and how to unpack it; ``DatasetEntry`` is everything known about
one data set. The entries themselves live next to the source that reads them
(``workshop.data.sources.camvid`` and so on); ``workshop.data.sources.registered`` collects them.
This module imports nothing from the rest of the data package, so the downloader, the local lookup
and the sources can all import it without a cycle.

Taught in: notebooks/03_dataset.ipynb (the registry)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

MARKER = ".workshop-download.json"
"""File written into a data set's folder once download, checks and extraction have all succeeded."""


@dataclass(frozen=True)
class Archive:
    """One file to download and how to unpack it.

    Args:
        url: the publisher's address of the file.
        filename: name the file gets in the downloads folder.
        sha256: the published / recorded sha256, or None where no trustworthy value is known
            (then ``verify`` prints the computed one instead of inventing one).
        checksum_source: where ``sha256`` comes from.
        size: size in bytes where known (shown before downloading, checked after).
        mirrors: further addresses of the same bytes, tried in order when ``url`` fails.
        rules: ``(pattern, target)`` pairs mapping archive paths to the data set's layout.
            A pattern ending in ``/`` is a folder (everything below it is kept, re-rooted at
            ``target``); otherwise it names one file. Path components may use shell wildcards
            (``*`` matches e.g. the single top folder of a GitHub archive). Members no rule
            matches are skipped; no rules keep everything as it is.
    """

    url: str
    filename: str
    sha256: str | None
    checksum_source: str = ""
    size: int | None = None
    mirrors: tuple[str, ...] = ()
    rules: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DatasetEntry:
    """Everything the workshop knows about one real data set.

    Attributes:
        name: registry key (also the folder name on disk).
        title: human name.
        task: ``"binary"``, ``"multiclass"`` or ``"instance"`` (the native task; some data sets
            offer other views, see ``tasks``).
        tasks: every task ``load_dataset`` accepts for it.
        description: one paragraph.
        licence: licence / terms of use, with the source.
        homepage: the publisher's page.
        archives: the files to download.
        layout: paths (relative to the data set folder) that a complete copy has.
        counts: ``(path, pattern, n)``: a complete copy has ``n`` files matching ``pattern`` in
            folder ``path`` (``pattern=None``: ``path`` is a text file with ``n`` entry lines).
        num_images: images (pairs) in the copy.
        disk_size: approximate size on disk after extraction.
        download_size: approximate download size, or "" where not known.
        finalize: called with the extracted folder to add files the layout needs.
    """

    name: str
    title: str
    task: str
    tasks: tuple[str, ...]
    description: str
    licence: str
    homepage: str
    archives: tuple[Archive, ...]
    layout: tuple[str, ...]
    counts: tuple[tuple[str, str | None, int], ...] = ()
    num_images: int = 0
    disk_size: str = ""
    download_size: str = ""
    finalize: Callable[[Path], None] | None = field(default=None, compare=False)
