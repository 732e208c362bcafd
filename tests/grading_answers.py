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
