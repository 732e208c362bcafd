"""Learner answers shared by the grading tests and benchmarks/grade_class.py: small notebooks made with nbformat.

``CORRECT`` holds answers written here by hand (not the library's code), so the grader must call them
``pass``; ``notebook`` builds a learner's notebook from (source, tags) cells.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

SETUP_06 = "import torch\n\nfrom workshop import tasks"
SETUP_07 = "import math\n\nfrom workshop import tasks"

CORRECT = {
    "dice_loss": '''import torch


def dice_loss(logits, target, smooth=1.0):
    p = torch.sigmoid(logits)
    t = target.unsqueeze(1).float()
    inter = (p * t).sum()
    return 1 - (2 * inter + smooth) / (p.sum() + t.sum() + smooth)
''',
    "iou_score": '''import torch


def iou_score(logits, target, threshold=0.5):
    pred = torch.sigmoid(logits) > threshold
    truth = target.unsqueeze(1) == 1
    union = (pred | truth).sum().item()
    if union == 0:
        return 1.0
    return (pred & truth).sum().item() / union
''',
    "train_one_epoch": '''def train_one_epoch(model, loader, loss_fn, optimizer, device):
    model.train()
    losses = []
    for batch in loader:
        logits = model(batch["image"].to(device))
        loss = loss_fn(logits, batch["mask"].to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return sum(losses) / len(losses)
''',
    "is_improvement": '''def is_improvement(value, best, monitor):
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best if monitor == "loss" else value > best
''',
}

WRONG_DICE = '''import torch


def dice_loss(logits, target, smooth=1.0):
    p = torch.sigmoid(logits)
    t = target.unsqueeze(1).float()
    return 1 - 2 * (p * t).sum() / (p.sum() + t.sum())  # forgot the smoothing term
'''


def check_cell(name: str, output: str | None = None) -> nbformat.NotebookNode:
    """The notebook's check cell for ``name``, with a stored output line when given."""
    cell = nbformat.v4.new_code_cell(f"{name} = tasks.{name}.check({name})", metadata={"tags": ["nbval-check-output"]})
    if output is not None:
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output + "\n")]
    return cell


def exercise_cell(name: str, source: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source, metadata={"tags": ["exercise"], "exercise": name})


def write(path: Path, cells: list) -> Path:
    """Write a notebook of ``cells`` (NotebookNodes, or plain strings for untagged code cells)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) if isinstance(c, str) else c for c in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def notebook_06(path: Path, answers: dict[str, str | None], outputs: dict[str, str] | None = None,
                checks: dict[str, str] | None = None) -> Path:
    """Notebook 06 with an exercise cell per answer (None: the stub; key absent: the cell deleted)."""
    from workshop.tasks import get_exercise

    cells: list = [SETUP_06]
    for name in ("dice_loss", "iou_score", "train_one_epoch"):
        if name not in answers:
            continue
        cells.append(exercise_cell(name, answers[name] if answers[name] is not None else get_exercise(name).stub))
        if checks and name in checks:
            cells.append(checks[name])
        else:
            cells.append(check_cell(name, (outputs or {}).get(name)))
    return write(path / "06_train_val_functions.ipynb", cells)


def notebook_07(path: Path, answer: str | None, check: str | None = None) -> Path:
    from workshop.tasks import get_exercise

    source = answer if answer is not None else get_exercise("is_improvement").stub
    cells = [SETUP_07, exercise_cell("is_improvement", source), check if check is not None else check_cell("is_improvement")]
    return write(path / "07_training.ipynb", cells)


# ------------------------------------------------------------------ notebooks as learners really hand them in
# (built from the shipped notebooks; used by tests/test_grading_real.py and benchmarks/grade_class.py)

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
HONEST_HFLIP = '''import numpy as np


def paired_hflip(image, mask):
    return np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(mask[:, ::-1])
'''


def shipped(name: str) -> nbformat.NotebookNode:
    """A fresh copy of a shipped notebook (``"06"`` or the full file name)."""
    path = next(NOTEBOOKS.glob(f"{name}*.ipynb")) if len(name) == 2 else NOTEBOOKS / name
    return nbformat.read(str(path), as_version=4)


def exercise_index(nb, name: str) -> int:
    """The position of the exercise cell of ``name`` in ``nb``."""
    return next(i for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("exercise") == name
                and "exercise" in c.get("metadata", {}).get("tags", []))


def answer(nb, name: str, source: str) -> None:
    """Write ``source`` into the exercise cell of ``name`` (as a learner does in Jupyter)."""
    nb.cells[exercise_index(nb, name)].source = source


def add_below_check(nb, name: str, source: str, keep_stub: bool = True) -> int:
    """A new, untagged cell with ``source`` after the exercise's check cell; the stub cell kept or deleted.

    Returns the new cell's number as the grader counts cells (from 1, markdown included).
    """
    at = exercise_index(nb, name)
    new = nbformat.v4.new_code_cell(source)
    new.metadata = {}
    nb.cells.insert(at + 2, new)  # below the check cell
    if not keep_stub:
        del nb.cells[at]
        return at + 2
    return at + 3


def as_colab(nb) -> None:
    """Colab's metadata: a ``colab`` section, cell ids and ``outputId`` keys, widget state, nbformat 4.4."""
    nb.metadata["colab"] = {"provenance": [], "name": "06_train_val_functions.ipynb"}
    nb.metadata["accelerator"] = "GPU"
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"abc": {"model_name": "HBoxModel"}}}
    nb.nbformat_minor = 4
    for i, cell in enumerate(nb.cells):
        cell.pop("id", None)
        cell.metadata["id"] = f"c{i:04d}xyz"
        if cell.cell_type == "code":
            cell.metadata["outputId"] = f"{i:08x}-0000-0000-0000-000000000000"


def save(nb, path: Path, bom: bool = False, mtime: float | None = None) -> Path:
    """Write ``nb`` as JSON (with a UTF-8 BOM when asked, as Notepad saves), and set its modification time."""
    import json
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(nb, indent=1, ensure_ascii=False)
    path.write_bytes(("\ufeff" if bom else "").encode("utf-8") + text.encode("utf-8"))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path
