"""Grade a class: learners -> exercise cells -> one boxed grading process per learner -> gradebook.

Taught in: not taught (instructor tooling; ``workshop grade``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from workshop.errors import WorkshopError
from workshop.grading.cells import Cell, Located, Notebook, NotebookError, defined_exercises, locate, read_notebook
from workshop.grading.gradebook import Gradebook, Result, write_all
from workshop.grading.sandbox import clean_environment, landlock_abi, readable_roots
from workshop.grading.scan import scan
from workshop.grading.submissions import MAX_UNPACKED_MB, Learner, collect

STARTUP_ALLOWANCE_S = 120


def _exercises_by_notebook() -> dict[str, list]:
    from workshop.tasks import all_exercises

    out: dict[str, list] = {}
    for ex in all_exercises().values():
        out.setdefault(ex.notebook, []).append(ex)
    return dict(sorted(out.items()))


def _module_of(ex) -> str:
    """The ``workshop.tasks`` module whose ``EXERCISES`` holds ``ex`` (the grading process imports only it)."""
    for name, module in list(sys.modules.items()):
        if name.startswith("workshop.tasks.") and any(e is ex for e in getattr(module, "EXERCISES", [])):
            return name
    raise RuntimeError(f"exercise {ex.name} is in no workshop.tasks module")


def by_name(path: Path, books: dict[str, list]) -> str | None:
    """Which workshop notebook a file's name says it is: the exact name, else its number prefix."""
    name = path.name.split(" - ", 1)[-1]  # "Ada Lovelace - 06_train.ipynb", an LMS export
    if name in books:
        return name
    number = re.match(r"(\d\d)_", name)
    if number:
        for key in books:
            if key.startswith(number.group(1) + "_"):
                return key
    return None


def identify(path: Path, cells: list[Cell] | None, books: dict[str, list]) -> dict[str, bool]:
    """The workshop notebooks a file holds: key -> whether it is a *whole* copy of that notebook.

    A file holds a notebook when it defines one of that notebook's exercises, whatever its name says
    (notebook 06 saved as ``02_homework.ipynb`` is 06; 06 and 07 pasted into one file are both). It is a
    whole copy when its name or number agrees, or it defines at least half of the notebook's exercises;
    a stray helper of another notebook's name makes it a copy of that notebook only when no whole copy
    was handed in. A file that defines no exercise is the notebook its name says, if any.
    """
    named = by_name(path, books)
    found = defined_exercises(cells) if cells else set()
    held = {}
    for key, exercises in books.items():
        hits = sum(ex.name in found for ex in exercises)
        if hits:
            held[key] = key == named or 2 * hits >= len(exercises)
    if not held and named:
        held[named] = True
    return held


def _hint_text(ex, n: int | None) -> str:
    return ex.hints[n - 1] if n and 1 <= n <= len(ex.hints) else ""


def _static(located: Located, ex, cells: list[Cell]) -> Result | None:
    """A result decided without running anything (status from the cell search, or the scan), else None."""
    if located.status is not None:
        return Result(located.status, located.message, 1, _hint_text(ex, 1) if located.status == "renamed?" else "",
                      graded=located.graded)
    import ast

    trees = [located.cell.tree]
    for seg in located.segments:
        if seg.cell != located.cell.number:
            try:
                trees.append(ast.parse(seg.source))
            except SyntaxError:
                pass
    findings = [f for tree in trees for f in scan(tree, ex)]
    refs = [f for f in findings if f.kind == "reference"]
    if refs:
        return Result("reference", f"cell {located.cell.number} uses the library's answer, not yours: "
                      + "; ".join(map(str, refs[:3])) + ". Write it yourself (the hints help).", 1, _hint_text(ex, 1),
                      graded=located.graded)
    tampering = [f for f in findings if f.kind == "tamper"]
    if tampering:
        return Result("error", f"tampering: cell {located.cell.number} reaches into the checker or the interpreter: "
                      + "; ".join(map(str, tampering[:3])) + ". An exercise cell needs none of this.",
                      graded=located.graded)
    return None


def _run_learner(learner: str, items: list[dict], workdir: Path, timeout: int, memory_mb: int) -> dict:
    """One grading process (``workshop.grading.runner``) for all of a learner's exercises."""
    import workshop

    package_root = Path(workshop.__file__).resolve().parents[1]
    job = {"workdir": str(workdir), "timeout": timeout, "memory_mb": memory_mb, "readable": readable_roots(),
           "items": items}
    overall = STARTUP_ALLOWANCE_S + len(items) * (timeout + 10)
    launched = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "workshop.grading.runner"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=workdir,
                            env=clean_environment(workdir, package_root), start_new_session=True)
    try:
        out, err = proc.communicate(json.dumps(job).encode(), timeout=overall)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"failed": f"the grading process for {learner} took more than {overall} s and was stopped"}
    try:
        answer = json.loads(out.decode())
    except ValueError:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        return {"failed": f"the grading process for {learner} failed: {tail[0][:300]}"}
    answer["launched"] = launched
    return answer


PICKS = ("newest", "best")


def grade(submissions: list[str | Path], out: str | Path | None = "gradebook", jobs: int = 2, timeout: int = 60,
          memory_mb: int = 2048, pick: str = "newest", group_by_prefix: bool = False,
          max_unpacked_mb: int = MAX_UNPACKED_MB) -> Gradebook:
    """Grade every learner's notebooks and write the gradebook.

    Args:
        submissions: a folder (one sub-folder or zip per learner, or notebooks), or notebook files.
        out: folder for ``grades.csv``, ``grades.md`` and ``feedback/`` (None: write nothing).
        jobs: learners graded at the same time (one process each).
        timeout: seconds (wall clock and CPU) one exercise may take.
        memory_mb: memory one exercise may allocate above the interpreter's own.
        pick: which of several copies of one notebook counts: ``"newest"`` (by modification time) or
            ``"best"`` (every copy is graded; the one with the most passes counts, the newest on a tie).
        group_by_prefix: a flat folder of ``NAME - 06_....ipynb`` files: one learner per ``NAME``.
        max_unpacked_mb: what one zip may unpack to, measured without the notebooks' outputs.

    Returns:
        The ``Gradebook`` (also written to ``out``).

    Raises:
        WorkshopError: a submission path that does not exist, or none found.
        ValueError: an argument out of range, or ``pick`` not one of ``PICKS``.
    """
    if not hasattr(os, "fork"):
        raise WorkshopError("workshop grade needs Linux or macOS: it forks one boxed process per exercise")
    if jobs < 1 or timeout < 1 or memory_mb < 64 or max_unpacked_mb < 1:
        raise ValueError("jobs, timeout and max_unpacked_mb must be at least 1, memory_mb at least 64")
    if pick not in PICKS:
        raise ValueError(f"pick must be one of {', '.join(PICKS)}, not {pick!r}")
    books = _exercises_by_notebook()
    root = Path(tempfile.mkdtemp(prefix="workshop-grade-"))
    try:
        learners = collect(submissions, root / "unzipped", max_unpacked_mb=max_unpacked_mb,
                           group_by_prefix=group_by_prefix)
        return _grade(learners, books, root, out, jobs, timeout, memory_mb, pick)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class _Copy:
    """One notebook file of a learner, read (or not), and the workshop notebooks it holds."""

    path: Path
    shown: str
    mtime: float
    notebook: Notebook | None
    error: str | None
    held: dict[str, bool]


def _read_copies(learner: Learner, books: dict[str, list], notes: list[str]) -> list[_Copy]:
    copies = []
    for path in learner.notebooks:
        shown = learner.label(path)
        try:
            mtime = path.stat().st_mtime
        except OSError:
            mtime = 0.0
        try:
            notebook = read_notebook(path)
        except NotebookError as exc:
            key = by_name(path, books)
            notes.append(str(exc).replace(path.name, shown, 1))
            copies.append(_Copy(path, shown, mtime, None, str(exc).replace(path.name, shown, 1),
                                {key: True} if key else {}))
            continue
        held = identify(path, notebook.cells, books)
        if not held:
            notes.append(f"{shown}: not one of the workshop's notebooks with exercises; ignored")
        named = by_name(path, books)
        if held and set(held) != {named}:
            which = " and ".join(sorted(held))
            notes.append(f"{shown}: holds the exercises of {which}" + ("" if named is None else
                         f" (its name says {named})") + "; graded as " + ("those notebooks" if len(held) > 1 else "that notebook"))
        copies.append(_Copy(path, shown, mtime, notebook, None, held))
    return copies


def _candidates(copies: list[_Copy], key: str) -> list[_Copy]:
    """The copies that may count for notebook ``key``: whole copies if any, newest first."""
    holding = [c for c in copies if key in c.held]
    whole = [c for c in holding if c.held[key]] or holding
    readable = [c for c in whole if c.notebook is not None] or whole
    return sorted(readable, key=lambda c: (c.mtime, c.shown), reverse=True)


def _grade(learners: list[Learner], books: dict[str, list], root: Path, out, jobs: int, timeout: int,
           memory_mb: int, pick: str = "newest") -> Gradebook:
    from workshop.tasks import get_exercise

    # (learner, notebook key, copy number, exercise) -> result; copy 0 is the newest
    graded: dict[tuple[str, str, int, str], Result] = {}
    items: dict[str, list[dict]] = {}
    seen_books: set[str] = set()
    chosen: dict[tuple[str, str], list[_Copy]] = {}
    notes: dict[str, list[str]] = {l.name: list(l.problems) for l in learners}
    for learner in learners:
        if not learner.notebooks and not learner.problems:
            notes[learner.name].append("no notebook found in the submission")
        copies = _read_copies(learner, books, notes[learner.name])
        for key in sorted({k for c in copies for k in c.held}):
            candidates = _candidates(copies, key)
            found = sorted(c.shown for c in copies if key in c.held)
            seen_books.add(key)
            if len(found) > 1 and pick == "newest":
                others = [s for s in found if s != candidates[0].shown]
                notes[learner.name].append(f"{key}: {len(found)} files hold it; graded {candidates[0].shown} (the "
                                           f"newest), not {', '.join(others)} (`--pick best` grades every copy and "
                                           "keeps the best)")
            graded_copies = candidates[:1] if pick == "newest" else candidates
            chosen[(learner.name, key)] = graded_copies
            for n, copy in enumerate(graded_copies):
                if copy.notebook is None:
                    for ex in books[key]:
                        graded[(learner.name, key, n, ex.name)] = Result(
                            "error", f"{copy.error}: open it in Jupyter and save it again", notebook=copy.shown)
                    continue
                cells = copy.notebook.cells
                for located in locate(books[key], cells, colab=copy.notebook.colab):
                    ex = get_exercise(located.exercise)
                    decided = _static(located, ex, cells)
                    if decided is not None:
                        decided.notebook = copy.shown
                        graded[(learner.name, key, n, ex.name)] = decided
                        continue
                    wanted = {s.cell for s in located.segments}
                    items.setdefault(learner.name, []).append({
                        "exercise": ex.name, "notebook": copy.shown, "module": _module_of(ex),
                        "box": str(len(items.get(learner.name, []))), "key": [key, n], "graded": located.graded,
                        "segments": [vars(s) for s in located.segments],
                        "cells": {str(c.number): c.code for c in cells if c.number in wanted},
                    })
    exercises = [ex.name for key in sorted(seen_books) for ex in books[key]]
    book = Gradebook(exercises, [l.name for l in learners], notes=notes)
    abi = landlock_abi()
    book.sandbox = [f"one process per learner, one forked box per exercise; {timeout} s per exercise (wall clock and "
                    f"CPU), {memory_mb} MB memory, a fresh temporary folder, the instructor's environment removed"]
    if not abi:
        book.sandbox.append("filesystem: NOT isolated (no Landlock on this system): run grading as a separate user "
                            "or in a container if learners may attack the grader")
    roots = [Path(r).resolve() for r in readable_roots()]
    for what, path in [("the gradebook folder", out), *[("a submission", p) for l in learners for p in l.notebooks]]:
        if path is not None and any(Path(path).resolve().is_relative_to(r) for r in roots if r.is_dir()):
            book.sandbox.append(f"warning: {what} ({path}) lies inside a folder the boxes may read; keep submissions "
                                "and the gradebook outside the Python installation")
            break

    def run(name: str) -> tuple[str, dict]:
        workdir = root / f"learner-{len(name)}-{abs(hash(name)) % 10**8}"
        workdir.mkdir(parents=True, exist_ok=True)
        return name, _run_learner(name, items[name], workdir, timeout, memory_mb)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        answers = dict(pool.map(run, list(items)))
    for name, answer in answers.items():
        results = answer.get("results", [])
        if "launched" in answer:
            book.timings.append({"learner": name, "launched": answer["launched"], "started": answer["started"],
                                 "imports_started": answer["imports_started"], "imported": answer["imported"],
                                 "ready": answer["ready"],
                                 "finished": answer["finished"]})
        for i, item in enumerate(items[name]):
            ex = get_exercise(item["exercise"])
            where = (name, item["key"][0], item["key"][1], ex.name)
            r = results[i] if i < len(results) and results[i].get("exercise") == item["exercise"] else None
            if r is None:
                graded[where] = Result("error", answer.get("failed", "no result came back"), notebook=item["notebook"],
                                       graded=item["graded"])
                continue
            hint = r.get("hint") if r.get("status") != "pass" else None
            if r.get("status") in ("error", "timeout") and hint is None:
                hint = 1
            graded[where] = Result(r["status"], r.get("message", ""), hint, _hint_text(ex, hint),
                                   r.get("failed_check"), item["notebook"], r.get("seconds", 0.0), item["graded"])
            for line in r.get("box", []):
                if line not in book.sandbox and line.startswith(("landlock", "network")):
                    book.sandbox.append(line)
    results: dict[tuple[str, str], Result] = {}
    for (learner, key), copies in chosen.items():
        passes = [sum(graded[(learner, key, n, ex.name)].status == "pass" for ex in books[key])
                  for n in range(len(copies))]
        best = max(range(len(copies)), key=lambda n: (passes[n], -n))  # most passes; the newest on a tie
        if len(copies) > 1:
            others = ", ".join(f"{c.shown} ({passes[n]})" for n, c in enumerate(copies) if n != best)
            notes[learner].append(f"{key}: graded every copy; kept {copies[best].shown} ({passes[best]} of "
                                  f"{len(books[key])} pass), not {others}")
        for ex in books[key]:
            results[(learner, ex.name)] = graded[(learner, key, best, ex.name)]
    for learner in book.learners:
        for key in seen_books:
            for ex in books[key]:
                if (learner, ex.name) not in results:
                    results[(learner, ex.name)] = Result("missing", f"no notebook {key} was handed in", notebook=key)
    book.results = results
    if out is not None:
        write_all(book, Path(out))
    return book


def grade_self(notebook: str | Path, timeout: int = 60) -> tuple[Gradebook, str]:
    """Grade one's own notebook exactly as the instructor will; returns the gradebook and the feedback text.

    In Google Colab the notebook is not a file on the machine: mount Google Drive and pass its path
    (``/content/drive/MyDrive/Colab Notebooks/06_....ipynb``), or download it (File > Download .ipynb)
    and upload it into the Files panel (``/content/06_....ipynb``); see docs/instructors.md.
    """
    from workshop.grading.gradebook import feedback_text

    book = grade([notebook], out=None, jobs=1, timeout=timeout)
    return book, feedback_text(book, book.learners[0])
