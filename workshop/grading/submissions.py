"""Turn the SUBMISSIONS arguments into learners, each with the notebooks they handed in.

SUBMISSIONS is a folder with one sub-folder or ``.zip`` per learner (notebooks directly in the
folder count as one learner each), or a list of notebook files. Zips are unpacked into a private
temporary folder, refusing absolute paths, ``..`` and archives that unpack to more than 200 MB.

Taught in: not taught (instructor tooling).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from workshop.errors import WorkshopError

MAX_UNZIPPED = 200 * 2**20


@dataclass
class Learner:
    """One learner: a name (the folder, zip or notebook stem) and their notebook files."""

    name: str
    notebooks: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _notebooks_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts and p.is_file())


def _unzip(archive: Path, into: Path) -> tuple[list[Path], list[str]]:
    target = into / archive.stem
    target.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if m.filename.endswith(".ipynb") and not m.is_dir()]
            if sum(m.file_size for m in members) > MAX_UNZIPPED:
                return [], [f"{archive.name}: unpacks to more than {MAX_UNZIPPED // 2**20} MB of notebooks; not graded"]
            for m in members:
                parts = Path(m.filename).parts
                if Path(m.filename).is_absolute() or ".." in parts or "__MACOSX" in parts:
                    continue
                dest = target.joinpath(*parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(zf.read(m))
    except (zipfile.BadZipFile, OSError) as exc:
        return [], [f"{archive.name}: not a readable zip ({exc})"]
    return _notebooks_in(target), []


def collect(paths: list[str | Path], unzip_dir: Path) -> list[Learner]:
    """The learners named by ``paths`` (see the module docstring).

    Raises:
        WorkshopError: a path that does not exist, or no submission found at all.
    """
    learners: list[Learner] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise WorkshopError(f"no such submission: {path}")
        if path.is_file():
            if path.suffix == ".zip":
                found, problems = _unzip(path, unzip_dir)
                learners.append(Learner(path.stem, found, problems))
            elif path.suffix == ".ipynb":
                learners.append(Learner(path.stem, [path]))
            else:
                raise WorkshopError(f"{path}: not a notebook, a zip or a folder")
            continue
        for entry in sorted(path.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                learners.append(Learner(entry.name, _notebooks_in(entry)))
            elif entry.suffix == ".zip":
                found, problems = _unzip(entry, unzip_dir)
                learners.append(Learner(entry.stem, found, problems))
            elif entry.suffix == ".ipynb":
                learners.append(Learner(entry.stem, [entry]))
    if not learners:
        raise WorkshopError(f"no submissions found in {', '.join(str(p) for p in paths)} (expected one sub-folder "
                            "or .zip per learner, or .ipynb files)")
    seen: dict[str, int] = {}
    for learner in learners:  # two learners with one name (a.ipynb and a.zip): keep both, apart
        seen[learner.name] = seen.get(learner.name, 0) + 1
        if seen[learner.name] > 1:
            learner.name = f"{learner.name}-{seen[learner.name]}"
    return learners
