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
from pathlib import Path

from workshop.errors import WorkshopError
from workshop.grading.cells import Cell, Located, NotebookError, locate, read_cells
from workshop.grading.gradebook import Gradebook, Result, write_all
from workshop.grading.sandbox import clean_environment, landlock_abi, readable_roots
from workshop.grading.scan import scan
from workshop.grading.submissions import Learner, collect

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


def identify(path: Path, cells: list[Cell] | None, books: dict[str, list]) -> str | None:
    """Which workshop notebook a file is: by its name, its number prefix, else by the exercises it defines."""
    if path.name in books:
        return path.name
    number = re.match(r"(\d\d)_", path.name)
    if number:
        for key in books:
            if key.startswith(number.group(1) + "_"):
                return key
    if cells:
        names = {c.meta_exercise for c in cells if c.meta_exercise}
        for c in cells:
            if c.tree is not None:
                names |= {getattr(s, "name", None) for s in c.tree.body}
        hits = {key: sum(ex.name in names for ex in exs) for key, exs in books.items()}
        best = max(hits, key=hits.get) if hits else None
        if best and hits[best] > 0:
            return best
    return None


def _hint_text(ex, n: int | None) -> str:
    return ex.hints[n - 1] if n and 1 <= n <= len(ex.hints) else ""


def _static(located: Located, ex, cells: list[Cell]) -> Result | None:
    """A result decided without running anything (status from the cell search, or the scan), else None."""
    if located.status is not None:
        return Result(located.status, located.message, 1, _hint_text(ex, 1) if located.status == "renamed?" else "")
    import ast

    trees = [located.cell.tree]
    for seg in located.segments:
        if seg.cell != located.cell.index:
            try:
                trees.append(ast.parse(seg.source))
            except SyntaxError:
                pass
    findings = [f for tree in trees for f in scan(tree, ex)]
    refs = [f for f in findings if f.kind == "reference"]
    if refs:
        return Result("reference", f"cell {located.cell.index} uses the library's answer, not yours: "
                      + "; ".join(map(str, refs[:3])) + ". Write it yourself (the hints help).", 1, _hint_text(ex, 1))
    tampering = [f for f in findings if f.kind == "tamper"]
    if tampering:
        return Result("error", f"tampering: cell {located.cell.index} reaches into the checker or the interpreter: "
                      + "; ".join(map(str, tampering[:3])) + ". An exercise cell needs none of this.")
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


def grade(submissions: list[str | Path], out: str | Path | None = "gradebook", jobs: int = 2, timeout: int = 60,
          memory_mb: int = 2048) -> Gradebook:
    """Grade every learner's notebooks and write the gradebook.

    Args:
        submissions: a folder (one sub-folder or zip per learner, or notebooks), or notebook files.
        out: folder for ``grades.csv``, ``grades.md`` and ``feedback/`` (None: write nothing).
        jobs: learners graded at the same time (one process each).
        timeout: seconds (wall clock and CPU) one exercise may take.
        memory_mb: memory one exercise may allocate above the interpreter's own.

    Returns:
        The ``Gradebook`` (also written to ``out``).

    Raises:
        WorkshopError: a submission path that does not exist, or none found.
    """
    if not hasattr(os, "fork"):
        raise WorkshopError("workshop grade needs Linux or macOS: it forks one boxed process per exercise")
    if jobs < 1 or timeout < 1 or memory_mb < 64:
        raise ValueError("jobs and timeout must be at least 1, memory_mb at least 64")
    books = _exercises_by_notebook()
    root = Path(tempfile.mkdtemp(prefix="workshop-grade-"))
    try:
        learners = collect(submissions, root / "unzipped")
        return _grade(learners, books, root, out, jobs, timeout, memory_mb)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _grade(learners: list[Learner], books: dict[str, list], root: Path, out, jobs: int, timeout: int,
           memory_mb: int) -> Gradebook:
    from workshop.tasks import get_exercise

    static: dict[tuple[str, str], Result] = {}
    items: dict[str, list[dict]] = {}
    seen_books: set[str] = set()
    handed_in: dict[str, set[str]] = {}
    notes: dict[str, list[str]] = {l.name: list(l.problems) for l in learners}
    for learner in learners:
        handed_in[learner.name] = set()
        if not learner.notebooks and not learner.problems:
            notes[learner.name].append("no notebook found in the submission")
        for path in learner.notebooks:
            try:
                cells = read_cells(path)
            except NotebookError as exc:
                key = identify(path, None, books)
                notes[learner.name].append(str(exc))
                if key and key not in handed_in[learner.name]:
                    seen_books.add(key)
                    handed_in[learner.name].add(key)
                    for ex in books[key]:
                        static[(learner.name, ex.name)] = Result("error", f"{exc}: open it in Jupyter and save it again",
                                                                 notebook=path.name)
                continue
            key = identify(path, cells, books)
            if key is None:
                notes[learner.name].append(f"{path.name}: not one of the workshop's notebooks with exercises; ignored")
                continue
            if key in handed_in[learner.name]:
                notes[learner.name].append(f"{path.name}: a second copy of {key}; only the first was graded")
                continue
            seen_books.add(key)
            handed_in[learner.name].add(key)
            for located in locate(books[key], cells):
                ex = get_exercise(located.exercise)
                decided = _static(located, ex, cells)
                if decided is not None:
                    decided.notebook = path.name
                    static[(learner.name, ex.name)] = decided
                    continue
                cell_sources = {str(c.index): c.source for c in cells}
                items.setdefault(learner.name, []).append({
                    "exercise": ex.name, "notebook": path.name, "module": _module_of(ex),
                    "segments": [vars(s) for s in located.segments],
                    "cells": {k: v for k, v in cell_sources.items() if int(k) in {s.cell for s in located.segments}},
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
        by_ex = {r.get("exercise"): r for r in answer.get("results", [])}
        if "launched" in answer:
            book.timings.append({"learner": name, "launched": answer["launched"], "started": answer["started"],
                                 "imports_started": answer["imports_started"], "imported": answer["imported"],
                                 "ready": answer["ready"],
                                 "finished": answer["finished"]})
        for item in items[name]:
            ex = get_exercise(item["exercise"])
            r = by_ex.get(item["exercise"])
            if r is None:
                static[(name, ex.name)] = Result("error", answer.get("failed", "no result came back"),
                                                 notebook=item["notebook"])
                continue
            hint = r.get("hint") if r.get("status") != "pass" else None
            if r.get("status") in ("error", "timeout") and hint is None:
                hint = 1
            static[(name, ex.name)] = Result(r["status"], r.get("message", ""), hint, _hint_text(ex, hint),
                                             r.get("failed_check"), item["notebook"], r.get("seconds", 0.0))
            for line in r.get("box", []):
                if line not in book.sandbox and line.startswith(("landlock", "network")):
                    book.sandbox.append(line)
    for learner in book.learners:
        for key in seen_books:
            for ex in books[key]:
                if (learner, ex.name) not in static:
                    static[(learner, ex.name)] = Result("missing", f"no notebook {key} was handed in", notebook=key)
    book.results = static
    if out is not None:
        write_all(book, Path(out))
    return book


def grade_self(notebook: str | Path, timeout: int = 60) -> tuple[Gradebook, str]:
    """Grade one's own notebook exactly as the instructor will; returns the gradebook and the feedback text."""
    from workshop.grading.gradebook import feedback_text

    book = grade([notebook], out=None, jobs=1, timeout=timeout)
    return book, feedback_text(book, book.learners[0])
