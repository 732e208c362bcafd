"""Grade a synthetic class through ``workshop grade`` and compare the gradebook with the known truth.

Every learner hands in every notebook that has exercises (copies of ``notebooks/``), and each of
their exercise cells gets, at random (seeded), one of:

* ``correct``: an answer written by hand (``tests/grading_answers.py``) where there is one, else the
  library's reference with a harmless change and its imports spelled out (a learner's own version);
* ``wrong``: a wrong answer taken from ``tests/test_tasks_*.py`` (a module-level function or class
  with the stub's parameters that the exercise's checks reject);
* ``stub``: the untouched stub;
* an attack: the reference assigned, the check cell replaced by a printed PASS line, the checks
  emptied from the exercise cell, ``os._exit`` in the function, or an endless loop.

Each learner also hands the notebooks in one of the shapes met in a real class (``SHAPES``, in turn, so
that a class of ``len(SHAPES)`` learners has each once): as the notebooks were shipped; saved by Colab
with every answer in a new untagged cell (the stub cells deleted); the stub left in place and the
answer in a cell below; ``!``, ``?`` and ``%`` lines in the exercise cells; a comment holding U+2028 in a
file saved with a BOM; a stub-only copy beside a newer ``_final`` copy of each notebook; each notebook
saved under another notebook's number; notebooks 06 and 07 combined in one file; everything in a
``submission.zip`` inside the learner's folder; and a zip whose notebooks carry 25 MB of outputs each.
Some learners have non-ASCII names. The truth of every exercise is the same in every shape.

The class is graded with ``python -m workshop.cli grade CLASS --out OUT --jobs 2`` (the command an
instructor types). Reported: wall time, peak memory (all grading processes together: their proportional
set size, sampled from /proc twice a second), the share of the grading processes' time spent starting Python and importing torch + the
exercises (and warming the checks up on the references), and how often the gradebook equals the truth.

    python benchmarks/grade_class.py                      # 30 learners: the measurement (a few minutes)
    python benchmarks/grade_class.py --learners 10 --results /tmp/quick.json   # quick: each shape once
"""

from __future__ import annotations

import argparse
import ast
import csv
import importlib
import inspect
import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from grading_answers import CORRECT  # noqa: E402
from workshop.grading.cells import free_names  # noqa: E402
from workshop.tasks import all_exercises  # noqa: E402

TRUTH = {"correct": {"pass"}, "wrong": {"fail", "error"}, "stub": {"fail"}, "assign_reference": {"reference"},
         "printed_pass": {"fail"}, "empty_checks": {"error"}, "os_exit": {"error"}, "endless_loop": {"timeout"}}
ATTACKS = ["assign_reference", "printed_pass", "empty_checks", "os_exit", "endless_loop"]
SHAPES = ["shipped", "colab", "answer_below", "magics", "unicode_bom", "copies", "renumbered", "combined",
          "zip_in_folder", "outputs_zip"]
NAMES = ["learner", "Zoë Ngô", "王芳", "José Núñez", "Ана Петрова", "learner"]
MAGICS = "files = !ls\ntorch.sigmoid?\n%matplotlib inline\n"


def _imports_for(names: set[str], namespace: dict, reference) -> list[str] | None:
    """Import lines that bind ``names`` as in ``namespace``; None when one is the reference or unknown."""
    home = namespace.get("__name__")
    lines = []
    for name in sorted(names):
        if name not in namespace:
            return None
        obj = namespace[name]
        if obj is reference:
            return None
        if inspect.ismodule(obj):
            lines.append(f"import {obj.__name__} as {name}")
            continue
        module = getattr(obj, "__module__", None)
        if module and getattr(sys.modules.get(module), name, None) is obj:
            lines.append(f"from {module} import {name}")
        elif home and getattr(sys.modules.get(home), name, None) is obj:
            lines.append(f"from {home} import {name}")  # a constant or an alias of the answer's own module
        else:
            return None
    return lines


def _renamed(source: str, new_name: str, tweak: bool) -> str:
    tree = ast.parse(textwrap.dedent(source))
    node = tree.body[0]
    node.name = new_name
    if tweak:  # a harmless statement: the learner's own version, not the reference verbatim
        body = node.body
        at = 1 if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) else 0
        body.insert(at, ast.parse("_mine = True").body[0])
    return ast.unparse(tree)


def correct_answer(ex) -> str:
    if ex.name in CORRECT:
        return {"is_improvement": "import math\n\n\n"}.get(ex.name, "") + CORRECT[ex.name]
    ref = ex.reference
    source = textwrap.dedent(inspect.getsource(ref))
    needed = free_names(ast.parse(source).body) - {ref.__name__}
    lines = _imports_for(needed, vars(sys.modules[ref.__module__]), ref)
    if lines is None:
        raise RuntimeError(f"cannot spell out the imports of {ref.__module__}.{ref.__name__}")
    return "\n".join(lines) + "\n\n\n" + _renamed(source, ex.name, tweak=True) + "\n"


def wrong_answers() -> dict[str, list[str]]:
    """Wrong answers from tests/test_tasks_*.py, by exercise: functions/classes with the stub's parameters."""
    from workshop.grading.cells import stub_params

    found: dict[str, list[str]] = {}
    exercises = list(all_exercises().values())
    for path in sorted((ROOT / "tests").glob("test_tasks_*.py")):
        module = importlib.import_module(path.stem)
        for name, obj in vars(module).items():
            if getattr(obj, "__module__", None) != module.__name__ or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            try:
                source = textwrap.dedent(inspect.getsource(obj))
                tree = ast.parse(source)
            except (OSError, TypeError, SyntaxError):
                continue
            from workshop.grading.cells import _params

            params = _params(tree.body[0])
            for ex in exercises:
                if not params or params != stub_params(ex.stub, ex.name):
                    continue
                if ex.run_checks(obj).passed:
                    continue
                lines = _imports_for(free_names(tree.body) - {name}, vars(module), ex.reference)
                if lines is None:
                    continue
                found.setdefault(ex.name, []).append("\n".join(lines) + "\n\n\n" + _renamed(source, ex.name, tweak=False) + "\n")
    return found


def attack_answer(kind: str, ex) -> str:
    if kind == "assign_reference":
        return f"{ex.name} = tasks.{ex.name}.reference"
    if kind == "empty_checks":
        return ex.stub + f"\n\ntasks.{ex.name}.checks = []\n"
    head = ex.stub.split('"""')[0].rstrip()  # imports + the def line of the stub
    if kind == "os_exit":
        return "import os\n" + head + "\n    os._exit(0)\n" if head.lstrip().startswith("def") else None
    if kind == "endless_loop":
        return head + "\n    while True:\n        pass\n" if head.lstrip().startswith("def") else None
    return ex.stub  # printed_pass: the stub, with its check cell replaced


def _exercise_index(nb, name: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if "exercise" in c.get("metadata", {}).get("tags", [])
                and c["metadata"].get("exercise") == name)


def _shape_cells(nb, shape: str, answers: dict[str, tuple[str, str]]) -> None:
    """Put each exercise's answer (kind, source) into ``nb`` the way a learner of this shape does."""
    for name, (kind, source) in answers.items():
        at = _exercise_index(nb, name)
        if shape == "magics":
            source = MAGICS + source + "\n!pip list\n"
        elif shape == "unicode_bom":
            source = "# copied from the web:\u2028 keep the shapes\n" + source
        if shape in ("colab", "answer_below") and kind != "stub":
            nb.cells.insert(at + 2, nbformat.v4.new_code_cell(source))  # below the check cell, untagged
            nb.cells[at + 2].metadata = {}
            if shape == "colab":
                del nb.cells[at]
        else:
            nb.cells[at].source = source
    if shape == "colab":
        nb.metadata["colab"] = {"provenance": []}
        for i, cell in enumerate(nb.cells):
            cell.metadata["id"] = f"c{i:04d}"


def _save(nb, path: Path, bom: bool = False, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\ufeff" if bom else "").encode() + json.dumps(nb, indent=1, ensure_ascii=False).encode())
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _hand_in(folder: Path, shape: str, books: dict[str, tuple], now: float) -> None:
    """Write one learner's notebooks (book -> (shipped notebook, answered notebook)) in the given shape."""
    answered = {book: done for book, (_, done) in books.items()}
    if shape == "combined":
        a, b = "06_train_val_functions.ipynb", "07_training.ipynb"
        answered[a].cells += answered.pop(b).cells
        answered["06_and_07.ipynb"] = answered.pop(a)
    if shape == "renumbered":  # each notebook under the next notebook's number
        numbers = sorted(answered)
        answered = {f"{numbers[(i + 1) % len(numbers)][:2]}_homework.ipynb": answered[book]
                    for i, book in enumerate(numbers)}
    target = folder / "unzipped" if shape in ("zip_in_folder", "outputs_zip") else folder
    for name, nb in answered.items():
        if shape == "copies":
            _save(books[name][0], target / name, mtime=now - 86400)
            name = name.replace(".ipynb", "_final.ipynb")
        if shape == "outputs_zip":
            code = next(c for c in nb.cells if c.cell_type == "code")
            code.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "A" * (25 * 2**20)})]
        _save(nb, target / name, bom=shape == "unicode_bom", mtime=now)
    if target != folder:
        with zipfile.ZipFile(folder / "submission.zip", "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(target.iterdir()):
                zf.write(path, f"submission/{path.name}")
                path.unlink()
        target.rmdir()


def make_class(folder: Path, learners: int, seed: int) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    """Write the class; returns the truth ((learner, exercise) -> kind) and each learner's shape."""
    rng = random.Random(seed)
    wrong = wrong_answers()
    by_book: dict[str, list] = {}
    for ex in all_exercises().values():
        by_book.setdefault(ex.notebook, []).append(ex)
    truth, shapes = {}, {}
    now = time.time()
    for i in range(learners):
        learner = f"{NAMES[i % len(NAMES)]} {i:02d}" if NAMES[i % len(NAMES)] != "learner" else f"learner{i:02d}"
        shape = SHAPES[i % len(SHAPES)]
        shapes[learner] = shape
        books = {}
        for book, exercises in sorted(by_book.items()):
            shipped = nbformat.read(str(ROOT / "notebooks" / book), as_version=4)
            nb = nbformat.read(str(ROOT / "notebooks" / book), as_version=4)
            answers = {}
            for ex in exercises:
                kind = rng.choices(["correct", "wrong", "stub", "attack"], [0.45, 0.25, 0.15, 0.15])[0]
                if kind == "wrong" and not wrong.get(ex.name):
                    kind = "stub"
                if kind == "attack":
                    kind = rng.choice(ATTACKS[:4] if rng.random() < 0.8 else ATTACKS)
                    if attack_answer(kind, ex) is None:
                        kind = "assign_reference"
                source = {"correct": lambda: correct_answer(ex), "wrong": lambda: rng.choice(wrong[ex.name]),
                          "stub": lambda: ex.stub}.get(kind, lambda: attack_answer(kind, ex))()
                if kind == "printed_pass":
                    for cell in nb.cells:
                        tags = cell.get("metadata", {}).get("tags", [])
                        if "nbval-check-output" in tags and f"tasks.{ex.name}.check(" in cell.source:
                            cell.source = f'print("PASS {ex.name}: all {len(ex.checks)} checks pass. Using your {ex.name}.")'
                answers[ex.name] = (kind, source)
                truth[(learner, ex.name)] = kind
            _shape_cells(nb, shape, answers)
            books[book] = (shipped, nb)
        _hand_in(folder / learner, shape, books, now)
    return truth, shapes


def _tree_rss(root_pid: int) -> int:
    """Memory of a process and all its descendants (PSS where readable, else RSS), in bytes (Linux /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            parents[int(entry)] = int(fields[1])
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    keep, total = {root_pid}, 0
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in keep and pid not in keep:
                keep.add(pid)
                changed = True
    return sum(_pss(pid, rss.get(pid, 0)) for pid in keep)


def _pss(pid: int, fallback: int) -> int:
    """Proportional set size (forked boxes share the harness's pages; RSS would count them twice)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return fallback


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--learners", type=int, default=30)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=20, help="seconds per exercise (the endless loops cost this)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "grade_class.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="grade-class-"))
    truth, shapes = make_class(work / "class", args.learners, args.seed)
    out = work / "gradebook"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "workshop.cli", "grade", str(work / "class"), "--out", str(out),
               "--jobs", str(args.jobs), "--timeout", str(args.timeout)]
    started = time.time()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.5)
    wall = time.time() - started
    log = proc.stdout.read()
    if proc.returncode != 0:
        print(log)
        raise SystemExit(f"workshop grade exited with {proc.returncode}")
    with open(out / "grades.csv", newline="") as f:
        rows = {row["learner"]: row for row in csv.DictReader(f)}
    agree, wrongs = 0, []
    for (learner, exercise), kind in sorted(truth.items()):
        got = rows[learner][exercise]
        if got in TRUTH[kind]:
            agree += 1
        else:
            wrongs.append(f"{learner} ({shapes[learner]}) {exercise}: {kind} graded {got}")
    timings = json.loads((out / "timings.json").read_text())
    start_up = sum(t["started"] - t["launched"] for t in timings)
    imports = sum(t["imported"] - t["imports_started"] for t in timings)
    warm_up = sum(t["ready"] - t["imported"] for t in timings)
    grading = sum(t["finished"] - t["ready"] for t in timings)
    total = start_up + imports + warm_up + grading
    kinds: dict[str, int] = {}
    for kind in truth.values():
        kinds[kind] = kinds.get(kind, 0) + 1
    by_shape: dict[str, int] = {}
    for shape in shapes.values():
        by_shape[shape] = by_shape.get(shape, 0) + 1
    report = {"learners": args.learners, "exercises_per_learner": len(truth) // max(args.learners, 1),
              "shapes": by_shape,
              "jobs": args.jobs, "timeout_s": args.timeout, "answers": kinds, "wall_s": round(wall, 1),
              "peak_rss_mb": round(peak / 2**20), "process_start_s": round(start_up, 1),
              "import_torch_and_exercises_s": round(imports, 1), "warm_up_on_references_s": round(warm_up, 1),
              "grading_s": round(grading, 1),
              "start_and_import_share": round((start_up + imports) / total, 3) if total else None,
              "agreement": round(agree / len(truth), 4), "disagreements": wrongs[:50], "command": " ".join(command)}
    print(json.dumps(report, indent=1))
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
