"""``workshop grade``: the subcommand's arguments and what it prints.

Taught in: not taught (instructor tooling; docs/instructors.md).
"""

from __future__ import annotations

import argparse

from workshop.errors import WorkshopError


def add_grade_parser(sub) -> argparse.ArgumentParser:
    """Add ``grade`` to the ``workshop`` command's sub-parsers."""
    g = sub.add_parser("grade", help="grade learners' notebooks (boxed), write grades.csv, grades.md and feedback",
                       description="Grade learners' notebooks: each exercise's answer (the last definition of its "
                                   "name in the notebook, as the kernel ran it) runs in a box and the library's "
                                   "checks decide; stored outputs and check cells are ignored.")
    g.add_argument("submissions", nargs="*", metavar="SUBMISSIONS",
                   help="a folder with one sub-folder or .zip per learner (or notebooks), or notebook files")
    g.add_argument("--out", default="gradebook", help="gradebook folder (default: gradebook)")
    g.add_argument("--jobs", type=int, default=2, help="learners graded at once (default: 2)")
    g.add_argument("--timeout", type=int, default=60, help="seconds one exercise may take (default: 60)")
    g.add_argument("--memory-mb", type=int, default=2048, help="memory one exercise may allocate (default: 2048)")
    g.add_argument("--pick", choices=("newest", "best"), default="newest",
                   help="several copies of one notebook: grade the newest by modification time (default), or "
                        "grade every copy and keep the best")
    g.add_argument("--group-by-prefix", action="store_true",
                   help="a flat folder of 'NAME - 06_....ipynb' files (an LMS export): one learner per NAME")
    g.add_argument("--max-unpacked-mb", type=int, default=200,
                   help="what one zip may unpack to, measured without the notebooks' outputs (default: 200)")
    g.add_argument("--self", dest="self_notebook", metavar="NOTEBOOK",
                   help="grade your own notebook exactly as the instructor will and print the feedback")
    return g


def cmd_grade(args: argparse.Namespace) -> int:
    """Run ``workshop grade``; 0 whenever grading itself worked, whatever the grades."""
    from workshop.grading.grader import grade, grade_self

    if args.self_notebook:
        book, text = grade_self(args.self_notebook, timeout=args.timeout)
        print(text, end="")
        return 0
    if not args.submissions:
        raise WorkshopError("grade needs SUBMISSIONS (a folder or notebooks), or --self NOTEBOOK")
    book = grade(args.submissions, out=args.out, jobs=args.jobs, timeout=args.timeout, memory_mb=args.memory_mb,
                 pick=args.pick, group_by_prefix=args.group_by_prefix, max_unpacked_mb=args.max_unpacked_mb)
    width = max([len(l) for l in book.learners] + [7])
    print(f"{'learner':{width}}  passed  " + " ".join(book.exercises))
    for learner in book.learners:
        short = " ".join(f"{book.status(learner, ex):{len(ex)}}" for ex in book.exercises)
        print(f"{learner:{width}}  {book.total(learner):>2}/{len(book.exercises):<3}  {short}")
    print(f"gradebook: {book.out / 'grades.csv'}, {book.out / 'grades.md'}, {book.out / 'feedback'}/")
    for line in book.sandbox:
        print(f"sandbox: {line}")
    return 0
