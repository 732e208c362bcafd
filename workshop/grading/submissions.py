"""Turn the SUBMISSIONS arguments into learners, each with the notebooks they handed in.

SUBMISSIONS is a folder with one sub-folder or ``.zip`` per learner (notebooks directly in the
folder count as one learner each), or a list of notebook files. With ``group_by_prefix`` the files
of a flat folder are grouped by the learner's name before `` - `` (``Ada Lovelace - 06_train.ipynb``),
the way learning management systems export one assignment.

A learner's folder is searched for notebooks at any depth (``.ipynb_checkpoints``, ``__MACOSX`` and
``._*`` files skipped), and the zips found there are opened too (a zip inside a zip, up to three
levels). Zips are unpacked into a private temporary folder, refusing absolute paths and ``..``. The
size limit (``max_unpacked_mb``) is measured without the notebooks' outputs, which the grader never
reads: each notebook is unpacked, its outputs, attachments and widget state are dropped, and only what
is left counts against the limit (one notebook may be at most the limit *with* its outputs, so the
unpacking itself stays bounded). An unpacked notebook keeps the modification time stored in the zip.

Taught in: not taught (instructor tooling).
"""

from __future__ import annotations

import io
import json
import os
import re
import time
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from workshop.errors import WorkshopError

MAX_UNPACKED_MB = 200
_ZIP_DEPTH = 3
_PREFIX = re.compile(r"^(?P<name>.+?)\s+-\s+(?P<rest>.+)$")


@dataclass
class Learner:
    """One learner: a name (the folder, zip or notebook stem) and their notebook files.

    ``shown`` gives each notebook the name the feedback uses (its path in the learner's folder or zip).
    """

    name: str
    notebooks: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    shown: dict[Path, str] = field(default_factory=dict)

    def label(self, path: Path) -> str:
        return self.shown.get(path, path.name)


class _Unpacker:
    """Unpacks zips into ``root``, each into a folder of its own, within a byte budget per archive."""

    def __init__(self, root: Path, max_unpacked_mb: int) -> None:
        self.root = root
        self.limit = max_unpacked_mb * 2**20
        self.count = 0

    def unpack(self, archive: Path | io.BytesIO, label: str, learner: Learner, depth: int = 0,
               budget: list[int] | None = None) -> None:
        """Add the notebooks of ``archive`` (shown as ``label``) to ``learner``; problems become notes."""
        budget = budget if budget is not None else [0]
        self.count += 1
        target = self.root / f"zip-{self.count}"
        target.mkdir(parents=True, exist_ok=True)
        limit_mb = self.limit // 2**20
        try:
            with zipfile.ZipFile(archive) as zf:
                for m in zf.infolist():
                    parts = Path(m.filename).parts
                    if m.is_dir() or Path(m.filename).is_absolute() or ".." in parts or "__MACOSX" in parts \
                            or ".ipynb_checkpoints" in parts or parts[-1].startswith("._"):
                        continue
                    shown = f"{label}/{m.filename}"
                    suffix = Path(m.filename).suffix.lower()
                    if suffix not in (".ipynb", ".zip"):
                        continue
                    if m.file_size > self.limit:
                        learner.problems.append(f"{shown}: unpacks to {m.file_size / 2**20:.0f} MB, more than the "
                                                f"{limit_mb} MB limit even for one file; not graded (raise it with "
                                                "--max-unpacked-mb)")
                        continue
                    data = zf.read(m)
                    if suffix == ".zip":
                        if depth + 1 >= _ZIP_DEPTH:
                            learner.problems.append(f"{shown}: a zip nested more than {_ZIP_DEPTH} deep; not opened")
                        else:
                            self.unpack(io.BytesIO(data), shown, learner, depth + 1, budget)
                        continue
                    data = _without_outputs(data)
                    budget[0] += len(data)
                    if budget[0] > self.limit:
                        learner.problems.append(f"{label}: its notebooks, without their outputs, unpack to more than "
                                                f"{limit_mb} MB; the rest was not graded (raise the limit with "
                                                "--max-unpacked-mb)")
                        return
                    dest = target.joinpath(*parts)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(data)
                    stamp = time.mktime(m.date_time + (0, 0, -1))
                    os.utime(dest, (stamp, stamp))
                    learner.notebooks.append(dest)
                    learner.shown[dest] = shown
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, NotImplementedError, RuntimeError) as exc:
            learner.problems.append(f"{label}: not a readable zip ({exc})")


def _without_outputs(data: bytes) -> bytes:
    """A notebook's bytes without its outputs, attachments and widget state (unchanged if it is not JSON)."""
    try:
        nb = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return data
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return data
    for cell in nb["cells"]:
        if isinstance(cell, dict):
            if "outputs" in cell:
                cell["outputs"] = []
            cell.pop("attachments", None)
    if isinstance(nb.get("metadata"), dict):
        nb["metadata"].pop("widgets", None)
    return json.dumps(nb, ensure_ascii=False).encode("utf-8")


def _skipped(path: Path, base: Path) -> bool:
    parts = path.relative_to(base).parts
    return any(p in (".ipynb_checkpoints", "__MACOSX") or p.startswith(".") for p in parts)


def _gather(folder: Path, learner: Learner, unpacker: _Unpacker) -> None:
    """The notebooks of a learner's folder, at any depth, and those of the zips in it."""
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or _skipped(path, folder):
            continue
        shown = path.relative_to(folder).as_posix()
        if path.suffix.lower() == ".ipynb":
            learner.notebooks.append(path)
            learner.shown[path] = shown
        elif path.suffix.lower() == ".zip":
            unpacker.unpack(path, shown, learner)


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)  # macOS writes file names decomposed (e + combining accent)


def collect(paths: list[str | Path], unzip_dir: Path, max_unpacked_mb: int = MAX_UNPACKED_MB,
            group_by_prefix: bool = False) -> list[Learner]:
    """The learners named by ``paths`` (see the module docstring).

    Raises:
        WorkshopError: a path that does not exist, or no submission found at all.
    """
    unpacker = _Unpacker(unzip_dir, max_unpacked_mb)
    learners: list[Learner] = []
    grouped: dict[str, Learner] = {}

    def single(path: Path) -> None:
        """A notebook or zip given directly (or lying in the submissions folder)."""
        match = _PREFIX.match(path.name) if group_by_prefix else None
        if match:
            name = _nfc(match.group("name").strip())
            if name not in grouped:
                grouped[name] = Learner(name)
                learners.append(grouped[name])
            learner = grouped[name]
        else:
            learner = Learner(_nfc(path.stem))
            learners.append(learner)
        if path.suffix.lower() == ".zip":
            unpacker.unpack(path, path.name, learner)
        else:
            learner.notebooks.append(path)
            learner.shown[path] = path.name

    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise WorkshopError(f"no such submission: {path}")
        if path.is_file():
            if path.suffix.lower() not in (".zip", ".ipynb"):
                raise WorkshopError(f"{path}: not a notebook, a zip or a folder")
            single(path)
            continue
        for entry in sorted(path.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                if entry.name in ("__MACOSX", ".ipynb_checkpoints"):
                    continue
                learner = Learner(_nfc(entry.name))
                _gather(entry, learner, unpacker)
                learners.append(learner)
            elif entry.suffix.lower() in (".zip", ".ipynb"):
                single(entry)
    if not learners:
        raise WorkshopError(f"no submissions found in {', '.join(str(p) for p in paths)} (expected one sub-folder "
                            "or .zip per learner, or .ipynb files)")
    taken: set[str] = set()
    for learner in learners:  # two learners with one name (a.ipynb and a.zip): keep both, apart
        name, n = learner.name, 1
        while name in taken:
            n += 1
            name = f"{learner.name}-{n}"
        learner.name = name
        taken.add(name)
    return learners
