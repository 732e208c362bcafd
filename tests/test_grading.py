"""workshop grade: a class of small notebooks (made here with nbformat), one attack per exercise slot.

The whole class is graded once, through the CLI (``workshop grade DIR --out OUT --jobs 2``), and each
test reads one learner's row of the gradebook. Every learner's grading process imports torch once and
forks one box per exercise, so the slow part is one process per learner.
"""

from __future__ import annotations

import csv
import inspect
import textwrap
from pathlib import Path

import pytest

from grading_answers import CORRECT, WRONG_DICE, check_cell, exercise_cell, notebook_06, notebook_07, write
from workshop.cli import main
from workshop.errors import WorkshopError
from workshop.grading.sandbox import landlock_abi
from workshop.tasks import get_exercise

TIMEOUT = 4
HAS_LANDLOCK = landlock_abi() >= 1


def _reference_source(name: str) -> str:
    return textwrap.dedent(inspect.getsource(get_exercise(name).reference))


EPOCH_RENAMED = '''from workshop.hooks import Hooks


def train_one_epoch(net, data, criterion, opt, dev="cpu", extras=None):
    """My own training loop."""
    extras = Hooks.of(extras)
    net.train()
    running, seen = 0.0, 0
    for b in extras.batches(data):
        x = b["image"].to(dev, non_blocking=True)
        y = b["mask"].to(dev, non_blocking=True)
        with extras.autocast():
            out = net(x)
            l = criterion(out, y)
        extras.after_loss(l, out, y)
        opt.zero_grad()
        extras.scale(l).backward()
        extras.step(opt)
        running += l.detach().float() * len(x)
        seen += len(x)
    return extras.epoch_mean(running, seen)
'''


def _class(root: Path, out: Path) -> dict[str, Path]:
    """Write every learner's folder; returns paths the attacks aim at."""
    stub = {n: None for n in ("dice_loss", "iou_score", "train_one_epoch")}
    targets = {"planted": root / "planted.txt", "gradebook": out / "grades.csv"}
    # 1. the one honest, correct learner
    notebook_06(root / "good", {n: CORRECT[n] for n in stub})
    notebook_07(root / "good", CORRECT["is_improvement"])
    # 2. stored outputs claim the opposite of the truth; a check cell replaced by a printed PASS
    notebook_06(root / "saved_outputs", {"dice_loss": WRONG_DICE, "iou_score": CORRECT["iou_score"], "train_one_epoch": None},
                outputs={"dice_loss": "PASS dice_loss: all 5 checks pass. Using your dice_loss.",
                         "iou_score": "FAIL iou_score: not implemented yet",
                         "train_one_epoch": "PASS train_one_epoch: all 3 checks pass. Using your train_one_epoch."})
    fake = check_cell("is_improvement", "PASS is_improvement: all 6 checks pass. Using your is_improvement.")
    fake.source = 'print("PASS is_improvement: all 6 checks pass. Using your is_improvement.")'
    notebook_07(root / "saved_outputs", None, check=fake)
    # 3. the reference: assigned, pasted verbatim, pasted with renamed variables, imported
    notebook_06(root / "copier", {"dice_loss": "dice_loss = tasks.dice_loss.reference",
                                  "iou_score": "import torch\nfrom torch import Tensor\n\n\n" + _reference_source("iou_score"),
                                  "train_one_epoch": EPOCH_RENAMED})
    notebook_07(root / "copier", "from workshop.engine import is_improvement")
    # 4. solution() and the implementation reached through an attribute chain; notebook 07 not handed in
    notebook_06(root / "copier2", {
        "dice_loss": "exec(tasks.dice_loss.solution())",
        "iou_score": "import workshop.metrics\n\n\ndef iou_score(logits, target, threshold=0.5):\n"
                     "    return workshop.metrics.iou_score(logits, target, threshold)\n",
        "train_one_epoch": None})
    # 5. tampering with the checker from the exercise cell
    notebook_06(root / "patcher", {
        "dice_loss": get_exercise("dice_loss").stub + "\n\ntasks.dice_loss.checks = []\n",
        "iou_score": "import workshop.tasks.core as core\n\ncore.Exercise.run_checks = lambda self, c: "
                     "core.Verdict(self.name, True)\n\n\ndef iou_score(logits, target, threshold=0.5):\n    return 0.0\n",
        "train_one_epoch": "import workshop.tasks.training_functions as t\n\n\ndef train_one_epoch(model, loader, "
                           "loss_fn, optimizer, device):\n    t.expect = lambda *a, **k: None\n    return 3.55\n"})
    notebook_07(root / "patcher", "def _always(*a, **k):\n    return None\n\n\n"
                "@(lambda f: setattr(tasks.is_improvement, 'checks', []) or f)\n"
                "def is_improvement(value, best, monitor):\n    return True\n")
    # 6. the process: an endless loop, sys.exit(), os._exit(), a 50 GB allocation
    notebook_06(root / "sandbox", {
        "dice_loss": "def dice_loss(logits, target, smooth=1.0):\n    while True:\n        pass\n",
        "iou_score": "import sys\n\n\ndef iou_score(logits, target, threshold=0.5):\n    sys.exit(0)\n",
        "train_one_epoch": "import os\n\n\ndef train_one_epoch(model, loader, loss_fn, optimizer, device):\n"
                           "    os._exit(0)\n"})
    notebook_07(root / "sandbox", "def is_improvement(value, best, monitor):\n    hog = bytearray(50 * 2**30)\n"
                "    return len(hog) > 0\n")
    # 7. files: write outside the box, read and overwrite the gradebook; is_improvement is honest
    notebook_06(root / "files", {
        "dice_loss": f"def dice_loss(logits, target, smooth=1.0):\n    with open({str(targets['planted'])!r}, 'w') as f:\n"
                     "        f.write('pwned')\n    return 0.3\n",
        "iou_score": f"def iou_score(logits, target, threshold=0.5):\n    return float(len(open({str(targets['gradebook'])!r}).read()))\n",
        "train_one_epoch": f"def train_one_epoch(model, loader, loss_fn, optimizer, device):\n"
                           f"    open({str(targets['gradebook'])!r}, 'w').write('files,pass,pass,pass,pass')\n    return 3.55\n"})
    notebook_07(root / "files", CORRECT["is_improvement"])
    # 8. cells that do not follow the script: raises on import, deleted, duplicated, renamed
    path = notebook_06(root / "broken", {"dice_loss": "from torch import no_such_thing\n\n\n" + CORRECT["dice_loss"],
                                         "train_one_epoch": CORRECT["train_one_epoch"]})
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    nb.cells.append(exercise_cell("train_one_epoch", CORRECT["train_one_epoch"]))
    nbformat.write(nb, str(path))
    notebook_07(root / "broken", CORRECT["is_improvement"].replace("def is_improvement", "def is_better"))
    # 9. a notebook that is not JSON, beside a correct one
    (root / "invalid").mkdir()
    (root / "invalid" / "06_train_val_functions.ipynb").write_text('{"cells": [ not json')
    notebook_07(root / "invalid", CORRECT["is_improvement"])
    # 10. a zip, with a path that tries to climb out of the unpacking folder
    import zipfile

    inner = notebook_07(root.parent / "zip-src", CORRECT["is_improvement"])
    with zipfile.ZipFile(root / "zipped.zip", "w") as zf:
        zf.write(inner, "zipped/07_training.ipynb")
        zf.writestr("../../escaped.ipynb", "{}")
    return targets


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("class")
    out = tmp_path_factory.mktemp("gradebook")
    (out / "grades.csv").write_text("secret,grades\n")  # a previous gradebook the learners try to read
    targets = _class(root, out)
    code = main(["grade", str(root), "--out", str(out), "--jobs", "2", "--timeout", str(TIMEOUT)])
    with open(out / "grades.csv", newline="") as f:
        rows = {row["learner"]: row for row in csv.DictReader(f)}
    return {"code": code, "rows": rows, "out": out, "targets": targets, "root": root}


def _feedback(graded: dict, learner: str) -> str:
    return (graded["out"] / "feedback" / f"{learner}.md").read_text()


def test_grading_worked_and_wrote_the_gradebook(graded) -> None:
    assert graded["code"] == 0
    assert set(graded["rows"]) == {"good", "saved_outputs", "copier", "copier2", "patcher", "sandbox", "files",
                                   "broken", "invalid", "zipped"}
    header = list(next(iter(graded["rows"].values())))
    assert header == ["learner", "dice_loss", "iou_score", "train_one_epoch", "is_improvement", "total", "out_of"]
    page = (graded["out"] / "grades.md").read_text()
    assert "## Exercises, hardest first" in page and "| good |" in page


def test_one_correct_submission_among_broken_ones_passes(graded) -> None:
    row = graded["rows"]["good"]
    assert [row[n] for n in ("dice_loss", "iou_score", "train_one_epoch", "is_improvement")] == ["pass"] * 4
    assert row["total"] == "4" and row["out_of"] == "4"


def test_saved_outputs_are_not_believed(graded) -> None:
    row = graded["rows"]["saved_outputs"]
    assert row["dice_loss"] == "fail"  # wrong answer, stored PASS
    assert row["iou_score"] == "pass"  # right answer, stored FAIL


def _verdict(name: str, source: str):
    """The library's own verdict on ``source``, computed here directly (the grader must report the same)."""
    namespace: dict = {}
    exec(source, namespace)
    return get_exercise(name).run_checks(namespace[name])


def _section(text: str, name: str) -> str:
    return text.split(f"## {name}: ")[1].split("\n## ")[0]


def test_untouched_stub_fails_with_the_libraries_verdict_and_a_hint(graded) -> None:
    assert graded["rows"]["saved_outputs"]["train_one_epoch"] == "fail"
    section = _section(_feedback(graded, "saved_outputs"), "train_one_epoch")
    assert _verdict("train_one_epoch", get_exercise("train_one_epoch").stub).message in section
    assert "to read" in section and any(h in section for h in get_exercise("train_one_epoch").hints)


def test_check_cell_replaced_by_printed_pass(graded) -> None:
    assert graded["rows"]["saved_outputs"]["is_improvement"] == "fail"


def test_wrong_answer_feedback_is_the_checks_verdict_and_its_hint(graded) -> None:
    section = _section(_feedback(graded, "saved_outputs"), "dice_loss")
    verdict = _verdict("dice_loss", WRONG_DICE)
    assert not verdict.passed and verdict.message in section
    assert "to read" in section and any(h in section for h in get_exercise("dice_loss").hints)


def test_reference_assigned(graded) -> None:
    assert graded["rows"]["copier"]["dice_loss"] == "reference"


def test_reference_pasted_verbatim(graded) -> None:
    assert graded["rows"]["copier"]["iou_score"] == "reference"


def test_reference_pasted_with_renamed_variables(graded) -> None:
    assert graded["rows"]["copier"]["train_one_epoch"] == "reference"


def test_reference_imported_from_workshop(graded) -> None:
    assert graded["rows"]["copier"]["is_improvement"] == "reference"


def test_solution_call_and_attribute_chain_are_reference(graded) -> None:
    row = graded["rows"]["copier2"]
    assert row["dice_loss"] == "reference" and row["iou_score"] == "reference"


def test_notebook_not_handed_in_is_missing(graded) -> None:
    assert graded["rows"]["copier2"]["is_improvement"] == "missing"


def test_checks_replaced_from_the_exercise_cell(graded) -> None:
    assert graded["rows"]["patcher"]["dice_loss"] == "error"
    assert "tampering" in _feedback(graded, "patcher")


def test_core_monkeypatched_from_the_exercise_cell(graded) -> None:
    assert graded["rows"]["patcher"]["iou_score"] == "error"


def test_checker_patched_at_call_time(graded) -> None:
    assert graded["rows"]["patcher"]["train_one_epoch"] == "error"


def test_checker_patched_by_a_decorator(graded) -> None:
    assert graded["rows"]["patcher"]["is_improvement"] == "error"


def test_infinite_loop_is_a_timeout(graded) -> None:
    assert graded["rows"]["sandbox"]["dice_loss"] == "timeout"


def test_sys_exit_is_an_error(graded) -> None:
    assert graded["rows"]["sandbox"]["iou_score"] == "error"
    assert "SystemExit" in _feedback(graded, "sandbox")


def test_os_exit_is_an_error(graded) -> None:
    assert graded["rows"]["sandbox"]["train_one_epoch"] == "error"
    assert "before the checks finished" in _feedback(graded, "sandbox")


def test_50_gb_allocation_is_an_error(graded) -> None:
    assert graded["rows"]["sandbox"]["is_improvement"] == "error"
    assert "MemoryError" in _feedback(graded, "sandbox")


@pytest.mark.skipif(not HAS_LANDLOCK, reason="Landlock (Linux 5.13+) confines files")
def test_write_outside_the_temporary_folder_is_refused(graded) -> None:
    assert not graded["targets"]["planted"].exists()
    assert graded["rows"]["files"]["dice_loss"] == "error"
    assert "PermissionError" in _feedback(graded, "files")


@pytest.mark.skipif(not HAS_LANDLOCK, reason="Landlock (Linux 5.13+) confines files")
def test_gradebook_can_be_neither_read_nor_written(graded) -> None:
    row = graded["rows"]["files"]
    assert row["iou_score"] == "error" and row["train_one_epoch"] == "error"
    assert row["is_improvement"] == "pass"  # the learner's honest answer still counts


def test_exercise_cell_raising_on_import(graded) -> None:
    assert graded["rows"]["broken"]["dice_loss"] == "error"
    assert "ImportError" in _feedback(graded, "broken")


def test_deleted_exercise_cell_is_missing(graded) -> None:
    assert graded["rows"]["broken"]["iou_score"] == "missing"


def test_duplicated_exercise_cell(graded) -> None:
    assert graded["rows"]["broken"]["train_one_epoch"] == "duplicate"


def test_renamed_function(graded) -> None:
    assert graded["rows"]["broken"]["is_improvement"] == "renamed?"
    assert "is_better" in _feedback(graded, "broken")


def test_invalid_json_notebook_does_not_stop_the_learner(graded) -> None:
    row = graded["rows"]["invalid"]
    assert [row[n] for n in ("dice_loss", "iou_score", "train_one_epoch")] == ["error"] * 3
    assert row["is_improvement"] == "pass"
    assert "not a valid notebook" in _feedback(graded, "invalid")


def test_zipped_submission_is_unpacked_safely(graded) -> None:
    assert graded["rows"]["zipped"]["is_improvement"] == "pass"
    assert not (graded["root"].parent / "escaped.ipynb").exists()


def test_timings_are_written_per_learner(graded) -> None:
    import json

    timings = json.loads((graded["out"] / "timings.json").read_text())
    # copier and patcher are graded by the scan alone: nothing of theirs runs, no process is started
    assert {t["learner"] for t in timings} == set(graded["rows"]) - {"copier", "patcher"}
    for t in timings:
        assert t["launched"] <= t["started"] <= t["imports_started"] <= t["imported"] <= t["ready"] <= t["finished"]


def test_empty_folder_is_a_clear_error(tmp_path, capsys) -> None:
    with pytest.raises(WorkshopError, match="no submissions found"):
        from workshop.grading import grade

        grade([tmp_path], out=tmp_path / "out")
    assert main(["grade", str(tmp_path)]) == 2
    assert "no submissions found in" in capsys.readouterr().err


def test_self_grading_prints_what_the_instructor_sees(tmp_path, capsys) -> None:
    path = notebook_07(tmp_path, CORRECT["is_improvement"])
    assert main(["grade", "--self", str(path), "--timeout", str(TIMEOUT)]) == 0
    out = capsys.readouterr().out
    assert "is_improvement: pass" in out and "1 of 1 exercises pass" in out


def test_grade_needs_submissions_or_self(capsys) -> None:
    assert main(["grade"]) == 2
    assert "SUBMISSIONS" in capsys.readouterr().err


def test_an_untagged_cell_is_graded_and_named(tmp_path) -> None:
    """What the kernel ran counts, tag or not (the class test grades such notebooks end to end)."""
    from workshop.grading.cells import locate, read_cells

    path = write(tmp_path / "07_training.ipynb", ["import math", CORRECT["is_improvement"]])
    (found,) = locate([get_exercise("is_improvement")], read_cells(path))
    assert found.status is None and found.cell.number == 2
    assert found.graded == "untagged cell 2, `def is_improvement(value, best, monitor):`"
    assert [s.cell for s in found.segments] == [1, 2]  # `import math` brought in from cell 1


@pytest.mark.parametrize(("data", "words"), [(b'{"cells": [ not json', "is not a valid notebook"),
                                              (b"[1, 2]", "no list of cells"), (b"\xff\xfe{", "is not a valid notebook")])
def test_unreadable_notebooks_name_the_file(tmp_path, data, words) -> None:
    from workshop.grading.cells import NotebookError, read_cells

    path = tmp_path / "06_train_val_functions.ipynb"
    path.write_bytes(data)
    with pytest.raises(NotebookError, match=words) as info:
        read_cells(path)
    assert "06_train_val_functions.ipynb" in str(info.value)
