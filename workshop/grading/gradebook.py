"""The gradebook: ``grades.csv``, ``grades.md`` and one ``feedback/<learner>.md`` per learner.

Feedback files are named after the learner, readably for any name (``Zoë Ngô`` -> ``Zoë_Ngô.md``,
``王芳`` -> ``王芳.md``): letters and digits of every script are kept, everything else becomes ``_``, and
two names that would give the same file (also when they differ only in case) get ``-2``, ``-3``.

Taught in: not taught (instructor tooling).
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

STATUSES = ("pass", "fail", "error", "timeout", "reference", "missing", "renamed?", "duplicate")


@dataclass
class Result:
    """The grade of one exercise for one learner."""

    status: str
    message: str = ""
    hint: int | None = None
    hint_text: str = ""
    failed_check: str | None = None
    notebook: str = ""
    seconds: float = 0.0
    graded: str = ""  # the cell graded ("untagged cell 14, `def dice_loss…`")


@dataclass
class Gradebook:
    """Every learner's result for every exercise, plus what the sandbox could apply."""

    exercises: list[str]
    learners: list[str]
    results: dict[tuple[str, str], Result] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    sandbox: list[str] = field(default_factory=list)
    timings: list[dict] = field(default_factory=list)
    out: Path | None = None

    def status(self, learner: str, exercise: str) -> str:
        return self.results[(learner, exercise)].status

    def row(self, learner: str) -> dict[str, str]:
        return {ex: self.status(learner, ex) for ex in self.exercises}

    def total(self, learner: str) -> int:
        return sum(self.status(learner, ex) == "pass" for ex in self.exercises)


_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def _safe(name: str) -> str:
    """A readable file name for a learner: any script's letters and digits, ``.``, ``-``; others become ``_``."""
    text = re.sub(r"[^\w.-]+", "_", unicodedata.normalize("NFC", name)).strip("._")[:80] or "learner"
    return text + "_" if text.lower() in _RESERVED else text  # names Windows keeps for devices


def feedback_names(learners: list[str]) -> dict[str, str]:
    """Learner -> feedback file name (``.md``), unique even where the file system ignores case."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for learner in learners:
        base = _safe(learner)
        name, n = base, 1
        while name.casefold() in used:
            n += 1
            name = f"{base}-{n}"
        used.add(name.casefold())
        names[learner] = name + ".md"
    return names


def write_csv(book: Gradebook, path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["learner", *book.exercises, "total", "out_of"])
        for learner in book.learners:
            writer.writerow([learner, *(book.status(learner, ex) for ex in book.exercises), book.total(learner),
                             len(book.exercises)])
    return path


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def summary_lines(book: Gradebook) -> list[str]:
    """Per exercise, hardest first: how many passed, the other statuses, the check most often failed."""
    lines = ["| exercise | pass | not passed | most often failed check |", "| --- | ---: | --- | --- |"]
    stats = []
    for ex in book.exercises:
        statuses = Counter(book.status(l, ex) for l in book.learners)
        checks = Counter(book.results[(l, ex)].failed_check for l in book.learners
                         if book.results[(l, ex)].status == "fail" and book.results[(l, ex)].failed_check)
        stats.append((statuses["pass"], ex, statuses, checks))
    for passed, ex, statuses, checks in sorted(stats, key=lambda s: (s[0], s[1])):
        others = ", ".join(f"{n} {s}" for s, n in statuses.most_common() if s != "pass") or "-"
        check = f"{checks.most_common(1)[0][0]} ({checks.most_common(1)[0][1]})" if checks else "-"
        lines.append(f"| {ex} | {passed}/{len(book.learners)} | {others} | {_cell(check)} |")
    return lines


def write_markdown(book: Gradebook, path: Path) -> Path:
    lines = ["# Gradebook", "", f"{len(book.learners)} learner(s), {len(book.exercises)} exercise(s). Statuses: "
             "pass, fail (a check not met, or the untouched stub), error (the code raised, stopped the process or "
             "tampered with the checker), timeout, reference (the library's answer used or copied), missing, "
             "renamed?, duplicate. Outputs and check cells stored in the notebooks were not used.", "",
             "## Exercises, hardest first", "", *summary_lines(book), "", "## Learners", "",
             "| learner | " + " | ".join(book.exercises) + " | total |",
             "| --- | " + " | ".join("---" for _ in book.exercises) + " | ---: |"]
    for learner in book.learners:
        cells = " | ".join("**pass**" if s == "pass" else s for s in book.row(learner).values())
        lines.append(f"| {_cell(learner)} | {cells} | {book.total(learner)}/{len(book.exercises)} |")
    if any(book.notes.values()):
        lines += ["", "## Notes", ""]
        for learner in book.learners:
            lines += [f"- {_cell(learner)}: {_cell(n)}" for n in book.notes.get(learner, [])]
    lines += ["", "## Sandbox", "", *[f"- {s}" for s in book.sandbox], ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def feedback_text(book: Gradebook, learner: str) -> str:
    """The feedback of one learner: a verdict per exercise and the hint to read."""
    lines = [f"# Feedback for {learner}", "", f"{book.total(learner)} of {len(book.exercises)} exercises pass.", ""]
    for note in book.notes.get(learner, []):
        lines.append(f"- note: {note}")
    for ex in book.exercises:
        r = book.results[(learner, ex)]
        lines += ["", f"## {ex}: {r.status}" + (f" ({r.notebook})" if r.notebook else ""), ""]
        if r.graded:
            lines += [f"Graded: {r.graded}.", ""]
        if r.message:
            lines.append(r.message)
        if r.status != "pass" and r.hint_text:
            lines += ["", f"Hint {r.hint} to read (`tasks.{ex}.hint({r.hint})`): {r.hint_text}"]
    return "\n".join(lines) + "\n"


def write_all(book: Gradebook, out: Path) -> Path:
    """Write the three outputs into ``out`` (created); returns ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    write_csv(book, out / "grades.csv")
    if book.timings:  # per learner: process launch, interpreter start, imports done, grading done (epoch s)
        import json

        (out / "timings.json").write_text(json.dumps(book.timings, indent=1), encoding="utf-8")
    write_markdown(book, out / "grades.md")
    feedback = out / "feedback"
    feedback.mkdir(exist_ok=True)
    for learner, name in feedback_names(book.learners).items():
        (feedback / name).write_text(feedback_text(book, learner), encoding="utf-8")
    book.out = out
    return out
