"""workshop grade on notebooks as learners really hand them in (issue 22's table, one test per row).

Every learner here is built from the shipped notebooks (``notebooks/``) with a known truth and graded
through the CLI (``workshop grade CLASS --out BOOK``). Rows share a learner where they touch different
exercises, so the class costs two grading runs: the class folder, and a flat LMS export graded with
``--group-by-prefix --pick best``.
"""

from __future__ import annotations

import csv
import inspect
import json
import os
import textwrap
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from grading_answers import (CORRECT, HONEST_HFLIP, add_below_check, answer, as_colab, save, shipped)
from workshop.cli import main
from workshop.tasks import get_exercise

TIMEOUT = 6
DAY = 86400.0
NOW = time.time()
U2028 = "\u2028"


def _reference_source(name: str) -> str:
    """The reference pasted, under the exercise's name (``train_epoch_simple`` -> ``train_one_epoch``)."""
    ref = get_exercise(name).reference
    return textwrap.dedent(inspect.getsource(ref)).replace(f"def {ref.__name__}(", f"def {name}(", 1)


def _nb07(source: str):
    nb = shipped("07")
    answer(nb, "is_improvement", source)
    return nb


def _class(root: Path) -> dict:
    """Write the class; returns facts the tests check (cell numbers, file names)."""
    facts: dict = {}
    # Row 1: Colab, every answer in a new untagged cell, the stub cells deleted
    nb = shipped("06")
    facts["colab_cell"] = add_below_check(nb, "dice_loss", CORRECT["dice_loss"], keep_stub=False)
    add_below_check(nb, "iou_score", CORRECT["iou_score"], keep_stub=False)
    add_below_check(nb, "train_one_epoch", CORRECT["train_one_epoch"], keep_stub=False)
    as_colab(nb)
    save(nb, root / "colab" / "06_train_val_functions.ipynb")
    # Row 2: the stub left in place, the answer below it (dice_loss); row 3: `?`, `!`, `%%time` in the
    # exercise cell (iou_score); and a pasted reference in an untagged cell is still a copy (train_one_epoch)
    nb = shipped("06")
    facts["below_cell"] = add_below_check(nb, "dice_loss", CORRECT["dice_loss"])
    answer(nb, "iou_score", "files = !ls\ntorch.sigmoid?\n%matplotlib inline\n" + CORRECT["iou_score"]
           + "\n!pip install -q nothing\nprint(files)\n")
    add_below_check(nb, "train_one_epoch", _reference_source("train_one_epoch"))
    save(nb, root / "below" / "06_train_val_functions.ipynb")
    nb = _nb07("%%time\nimport math\n\n\n" + CORRECT["is_improvement"] + "\nmath.isfinite?\n")
    save(nb, root / "below" / "07_training.ipynb")
    # Row 4: a comment holding U+2028, in a file saved with a BOM (07); row 5: an honest one-line paired_hflip (02)
    nb = _nb07("import math\n\n\n" + CORRECT["is_improvement"].replace(
        "    if best is None:", f"    # see https://example.org{U2028}for why NaN is never better\n    if best is None:"))
    save(nb, root / "unicode" / "07_training.ipynb", bom=True)
    nb = shipped("02")
    answer(nb, "paired_hflip", HONEST_HFLIP)
    save(nb, root / "unicode" / "02_augmentation.ipynb")
    # Row 6: two copies, the stub one older
    save(shipped("06"), root / "copies" / "06_train_val_functions.ipynb", mtime=NOW - DAY)
    nb = shipped("06")
    for name in ("dice_loss", "iou_score", "train_one_epoch"):
        answer(nb, name, CORRECT[name])
    save(nb, root / "copies" / "06_train_val_functions_final.ipynb", mtime=NOW)
    # Row 7: notebook 06 saved as 02_homework.ipynb
    save(nb, root / "renamed" / "02_homework.ipynb")
    # Row 8: notebooks 06 and 07 in one file
    combined = shipped("06")
    for name in ("dice_loss", "iou_score", "train_one_epoch"):
        answer(combined, name, CORRECT[name])
    combined.cells += _nb07("import math\n\n\n" + CORRECT["is_improvement"]).cells
    save(combined, root / "combined" / "06_and_07.ipynb")
    # Row 9: a learner folder holding submission.zip (and a non-ASCII name, row 10)
    inner = save(nb, root.parent / "zip-src" / "06_train_val_functions.ipynb")
    (root / "Zoë Ngô").mkdir()
    with zipfile.ZipFile(root / "Zoë Ngô" / "submission.zip", "w") as zf:
        zf.write(inner, "submission/06_train_val_functions.ipynb")
        zf.writestr("__MACOSX/submission/._06_train_val_functions.ipynb", b"\x00\x05\x16\x07")
    # Row 11: a zip of 4 x 55 MB notebooks (outputs saved), from the second non-ASCII learner (row 10)
    big = "A" * (55 * 2**20)
    (root / "王芳").mkdir()
    with zipfile.ZipFile(root / "王芳" / "homework.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for name, book in [("02_augmentation.ipynb", shipped("02")), ("06_train_val_functions.ipynb", nb),
                           ("07_training.ipynb", _nb07("import math\n\n\n" + CORRECT["is_improvement"])),
                           ("01_configuration.ipynb", shipped("01"))]:
            book = nbformat.from_dict(json.loads(json.dumps(book)))
            code = next(c for c in book.cells if c.cell_type == "code")
            code.outputs = [nbformat.v4.new_output("display_data", data={"image/png": big})]
            zf.writestr(name, json.dumps(book))
    return facts


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("class")
    out = tmp_path_factory.mktemp("gradebook")
    facts = _class(root)
    code = main(["grade", str(root), "--out", str(out), "--jobs", "2", "--timeout", str(TIMEOUT)])
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {row["learner"]: row for row in csv.DictReader(f)}
    return {"code": code, "rows": rows, "out": out, "facts": facts}


def _feedback(graded: dict, name: str) -> str:
    return (graded["out"] / "feedback" / f"{name}.md").read_text(encoding="utf-8")


def _section(text: str, name: str) -> str:
    return text.split(f"## {name}: ")[1].split("\n## ")[0]


def _grades(graded: dict, learner: str, names: str) -> list[str]:
    return [graded["rows"][learner][n] for n in names.split()]


def test_the_class_was_graded(graded) -> None:
    assert graded["code"] == 0
    assert set(graded["rows"]) == {"colab", "below", "unicode", "copies", "renamed", "combined", "Zoë Ngô", "王芳"}


def test_row1_colab_answers_in_new_untagged_cells_pass(graded) -> None:
    assert _grades(graded, "colab", "dice_loss iou_score train_one_epoch") == ["pass"] * 3
    text = _feedback(graded, "colab")
    section = _section(text, "dice_loss")
    assert f"Graded: untagged cell {graded['facts']['colab_cell']}, `def dice_loss(logits, target, smooth=1.0):`" \
        in section
    assert "add the tag" not in text and "tagged `exercise`" not in text  # Colab cannot tag cells


def test_row2_stub_left_in_place_answer_below_passes(graded) -> None:
    assert graded["rows"]["below"]["dice_loss"] == "pass"
    section = _section(_feedback(graded, "below"), "dice_loss")
    assert f"untagged cell {graded['facts']['below_cell']}" in section and "after the one in the exercise cell" in section


def test_row2_a_reference_pasted_below_the_stub_is_still_a_copy(graded) -> None:
    assert graded["rows"]["below"]["train_one_epoch"] == "reference"


def test_row3_help_shell_and_magic_lines_in_an_exercise_cell(graded) -> None:
    assert graded["rows"]["below"]["iou_score"] == "pass"  # files = !ls, torch.sigmoid?, %matplotlib, !pip
    assert graded["rows"]["below"]["is_improvement"] == "pass"  # a %%time cell


def test_row4_unicode_line_separator_in_a_comment_and_a_bom(graded) -> None:
    assert graded["rows"]["unicode"]["is_improvement"] == "pass"


def test_row5_honest_one_line_paired_hflip_is_not_accused(graded) -> None:
    assert graded["rows"]["unicode"]["paired_hflip"] == "pass"
    assert graded["rows"]["unicode"]["train_transform"] == "fail"  # the untouched stub


def test_row6_newest_copy_is_graded_and_named(graded) -> None:
    assert _grades(graded, "copies", "dice_loss iou_score train_one_epoch") == ["pass"] * 3
    text = _feedback(graded, "copies")
    assert "## dice_loss: pass (06_train_val_functions_final.ipynb)" in text
    assert "graded 06_train_val_functions_final.ipynb (the newest), not 06_train_val_functions.ipynb" in text


def test_row7_notebook_saved_under_another_number(graded) -> None:
    assert _grades(graded, "renamed", "dice_loss iou_score train_one_epoch") == ["pass"] * 3
    assert _grades(graded, "renamed", "paired_hflip train_transform") == ["missing"] * 2  # 02 was not handed in
    assert "02_homework.ipynb: holds the exercises of 06_train_val_functions.ipynb (its name says " \
           "02_augmentation.ipynb)" in _feedback(graded, "renamed")


def test_row8_two_notebooks_combined_in_one_file(graded) -> None:
    assert _grades(graded, "combined", "dice_loss iou_score train_one_epoch is_improvement") == ["pass"] * 4
    assert "## is_improvement: pass (06_and_07.ipynb)" in _feedback(graded, "combined")


def test_row9_zip_inside_a_learner_folder(graded) -> None:
    assert _grades(graded, "Zoë Ngô", "dice_loss iou_score train_one_epoch") == ["pass"] * 3
    assert "(submission.zip/submission/06_train_val_functions.ipynb)" in _feedback(graded, "Zoë_Ngô")


def test_row10_non_ascii_learners_get_readable_feedback_files(graded) -> None:
    assert sorted(p.name for p in (graded["out"] / "feedback").iterdir()) == sorted(
        ["below.md", "colab.md", "combined.md", "copies.md", "renamed.md", "unicode.md", "Zoë_Ngô.md", "王芳.md"])
    assert _feedback(graded, "王芳").startswith("# Feedback for 王芳\n")


def test_row11_zip_of_four_55_mb_notebooks_is_graded(graded) -> None:
    assert _grades(graded, "王芳", "dice_loss iou_score train_one_epoch is_improvement") == ["pass"] * 4
    assert graded["rows"]["王芳"]["paired_hflip"] == "fail"  # the stub
    assert "not graded" not in _feedback(graded, "王芳")


# ------------------------------------------------------------------ a flat LMS export: --group-by-prefix --pick best

@pytest.fixture(scope="module")
def flat(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("flat")
    out = tmp_path_factory.mktemp("flat-book")
    good = shipped("06")
    for name in ("dice_loss", "iou_score", "train_one_epoch"):
        answer(good, name, CORRECT[name])
    save(good, root / "Ada Lovelace - 06_train_val_functions.ipynb", mtime=NOW - DAY)
    save(shipped("06"), root / "Ada Lovelace - 06_train_val_functions (1).ipynb", mtime=NOW)  # newer, stubs
    save(_nb07("import math\n\n\n" + CORRECT["is_improvement"]), root / "Ada Lovelace - 07_training.ipynb")
    save(_nb07("import math\n\n\n" + CORRECT["is_improvement"]), root / "Grace Hopper - 07_training.ipynb")
    code = main(["grade", str(root), "--out", str(out), "--timeout", str(TIMEOUT), "--group-by-prefix",
                 "--pick", "best"])
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {row["learner"]: row for row in csv.DictReader(f)}
    return {"code": code, "rows": rows, "out": out}


def test_group_by_prefix_makes_one_learner_per_name(flat) -> None:
    assert flat["code"] == 0 and set(flat["rows"]) == {"Ada Lovelace", "Grace Hopper"}
    assert flat["rows"]["Ada Lovelace"]["is_improvement"] == "pass"
    assert flat["rows"]["Grace Hopper"]["is_improvement"] == "pass"
    assert flat["rows"]["Grace Hopper"]["dice_loss"] == "missing"


def test_pick_best_keeps_the_best_copy_and_names_both(flat) -> None:
    row = flat["rows"]["Ada Lovelace"]
    assert [row[n] for n in ("dice_loss", "iou_score", "train_one_epoch")] == ["pass"] * 3
    text = (flat["out"] / "feedback" / "Ada_Lovelace.md").read_text(encoding="utf-8")
    assert "kept Ada Lovelace - 06_train_val_functions.ipynb (3 of 3 pass), not " \
           "Ada Lovelace - 06_train_val_functions (1).ipynb (0)" in text


# ------------------------------------------------------------------ pieces, without grading

def test_newest_is_the_default_pick(tmp_path) -> None:
    from workshop.grading.grader import _candidates, _exercises_by_notebook, _read_copies
    from workshop.grading.submissions import collect

    save(shipped("06"), tmp_path / "a" / "06_train_val_functions.ipynb", mtime=NOW)
    save(shipped("06"), tmp_path / "a" / "06_train_val_functions_old.ipynb", mtime=NOW - DAY)
    (learner,) = collect([tmp_path], tmp_path / "unzipped")
    copies = _read_copies(learner, _exercises_by_notebook(), [])
    assert [c.shown for c in _candidates(copies, "06_train_val_functions.ipynb")] == [
        "06_train_val_functions.ipynb", "06_train_val_functions_old.ipynb"]


def test_a_stray_definition_does_not_make_a_copy_of_another_notebook(tmp_path) -> None:
    from workshop.grading.cells import read_cells
    from workshop.grading.grader import _exercises_by_notebook, identify

    nb = shipped("08")
    nb.cells.append(nbformat.v4.new_code_cell(CORRECT["dice_loss"]))  # a helper of notebook 06's name
    path = save(nb, tmp_path / "08_inference.ipynb")
    held = identify(path, read_cells(path), _exercises_by_notebook())
    assert held == {"08_inference.ipynb": True, "06_train_val_functions.ipynb": False}


def _fat_notebook(mb: float):
    nb = shipped("07")
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "A" * int(mb * 2**20)})]
    return json.dumps(nb)


def test_size_limit_is_an_option_and_outputs_do_not_count(tmp_path) -> None:
    from workshop.grading.submissions import collect

    folder = tmp_path / "class" / "kim"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "work.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(3):
            zf.writestr(f"copy{i}/07_training.ipynb", _fat_notebook(2))
    (learner,) = collect([tmp_path / "class"], tmp_path / "u1", max_unpacked_mb=3)  # 6 MB with outputs
    assert len(learner.notebooks) == 3 and learner.problems == []
    assert all(os.path.getsize(p) < 2**20 for p in learner.notebooks)  # stored without the outputs
    (learner,) = collect([tmp_path / "class"], tmp_path / "u2", max_unpacked_mb=1)  # one notebook is 2 MB
    assert learner.notebooks == [] and "raise it with --max-unpacked-mb" in learner.problems[0]


def test_zip_inside_a_zip_and_the_time_stored_in_it(tmp_path) -> None:
    import io

    from workshop.grading.submissions import collect

    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr(zipfile.ZipInfo("06_train_val_functions.ipynb", (2024, 5, 17, 12, 0, 0)), json.dumps(shipped("06")))
    (tmp_path / "class" / "lee").mkdir(parents=True)
    with zipfile.ZipFile(tmp_path / "class" / "lee" / "outer.zip", "w") as zf:
        zf.writestr("inner.zip", inner.getvalue())
    (learner,) = collect([tmp_path / "class"], tmp_path / "u")
    (path,) = learner.notebooks
    assert learner.label(path) == "outer.zip/inner.zip/06_train_val_functions.ipynb"
    assert time.localtime(path.stat().st_mtime)[:6] == (2024, 5, 17, 12, 0, 0)


def test_feedback_names_are_readable_and_unique() -> None:
    from workshop.grading.gradebook import feedback_names

    names = feedback_names(["Zoë Ngô", "王芳", "Ana Lee", "ana lee", "Ana/Lee", "CON", "..", "José"[:3] + "e\u0301"])
    assert names == {"Zoë Ngô": "Zoë_Ngô.md", "王芳": "王芳.md", "Ana Lee": "Ana_Lee.md", "ana lee": "ana_lee-2.md",
                     "Ana/Lee": "Ana_Lee-3.md", "CON": "CON_.md", "..": "learner.md", "Jose\u0301": "José.md"}


@pytest.mark.parametrize(("source", "defines"), [
    ("files = !ls\ndef f():\n    return 1\n", True),
    ("torch.sigmoid?\n??torch\ndef f():\n    return 1\n", True),
    ("%%time\ndef f():\n    return 1\n", True),
    ("%%capture out\n%matplotlib inline\ndef f():\n    return 1\n", True),
    ("%%bash\ndef f():\n    return 1\n", False),  # not Python: the kernel defines nothing
    (f"# a{U2028}b\ndef f():\n    return 1\n", True),
    ("def f():\r\n    return 1\r\n", True),
])
def test_cells_are_read_as_ipython_reads_them(source, defines) -> None:
    from workshop.grading.cells import Cell

    cell = Cell(0, source, [])
    assert cell.syntax_error is None
    assert ("f" in {getattr(s, "name", None) for s in cell.tree.body}) == defines


def test_without_ipython_magics_still_parse(monkeypatch) -> None:
    from workshop.grading import cells

    monkeypatch.setattr(cells, "_TRANSFORMER", [None])
    cell = cells.Cell(0, "files = !ls\ntorch.sigmoid?\n%matplotlib inline\ndef f():\n    return 1\n", [])
    assert cell.syntax_error is None and cell.tree.body[-1].name == "f"


def test_an_untagged_binding_counts_only_when_it_is_the_librarys_answer(tmp_path) -> None:
    from workshop.grading.cells import locate, read_notebook
    from workshop.grading.grader import _static

    ex = get_exercise("is_improvement")
    nb = shipped("07")
    add_below_check(nb, "is_improvement", "is_improvement = tasks.is_improvement.reference", keep_stub=False)
    as_colab(nb)
    notebook = read_notebook(save(nb, tmp_path / "a" / "07_training.ipynb"))
    (found,) = locate([ex], notebook.cells, colab=notebook.colab)
    assert found.status is None and not found.cell.tagged
    assert _static(found, ex, notebook.cells).status == "reference"

    nb = _nb07("import math\n\n\n" + CORRECT["is_improvement"])
    add_below_check(nb, "is_improvement", "is_improvement = is_improvement(0.5, None, 'iou')  # exploring")
    notebook = read_notebook(save(nb, tmp_path / "b" / "07_training.ipynb"))
    (found,) = locate([ex], notebook.cells)
    assert found.cell.tagged and _static(found, ex, notebook.cells) is None  # the answer, run in the box


def test_a_bad_pick_names_the_choices(tmp_path) -> None:
    from workshop.grading import grade

    with pytest.raises(ValueError, match="newest, best"):
        grade([tmp_path], out=None, pick="oldest")
