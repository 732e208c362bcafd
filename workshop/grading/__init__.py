"""Grade a whole class from their notebooks, with each learner's code kept in a box.

``workshop grade SUBMISSIONS... [--out DIR] [--jobs N] [--timeout S]`` (or :func:`grade`) reads every
learner's notebooks as data, finds each exercise's answer (the last top-level definition of its name,
as the learner's kernel ran it, in the cell tagged ``exercise`` or any other), runs the definitions in a
boxed process, applies the library's own checks (``workshop.tasks``) there, and writes ``grades.csv``,
``grades.md`` and one feedback file per learner. ``workshop grade --self NOTEBOOK`` shows a learner
the same verdicts. The stored outputs and the check cells of a notebook are never used.

Modules: ``submissions`` (folders, zips, LMS exports -> learners and their files), ``cells`` (cells
read as IPython reads them, the answer to each exercise, the program to run, missing / duplicate /
renamed?), ``scan`` (reference copying and tampering, read from the code), ``runner`` (the grading
process; one forked box per exercise), ``sandbox`` (the box's limits), ``gradebook`` (the writers),
``grader`` (the whole run: which notebook a file is, which copy counts).

Threat model (what holds, and what does not)
--------------------------------------------
The learner's code is untrusted; the instructor's machine, the ``workshop`` package and the grader
are trusted. Layers, each tested against an attack in ``tests/test_grading*.py``:

1. *Nothing the notebook says is believed.* Outputs and check cells are ignored, so saved FAIL
   outputs, check cells replaced by a printed ``PASS`` line, or any text printed by the code count for
   nothing. Only the definitions of the cells that hold the answers (and the imports and helpers they
   need) are executed; their other top-level statements, such as ``tasks.dice_loss.checks = []``,
   never run.
2. *The scan* (``scan``) grades ``reference`` a cell that uses or copies the library's answer (also
   with renamed variables), and ``error`` a cell that reaches into the checker or the interpreter
   (monkeypatching, ``exec``, ``gc``/``inspect``/``ctypes``, dunder and frame attributes).
3. *The box* (``sandbox``, one forked process per exercise): CPU and wall-clock timeouts, an
   address-space limit, a fresh temporary folder, the instructor's environment removed, an empty
   network namespace where the OS allows, and on Linux 5.13+ Landlock: the box can read only the
   Python installation and the ``workshop`` package, write only its temporary folder, open no TCP
   connection and signal no process outside it. The submissions and the gradebook can be neither read
   nor written from a box; the gradebook is written only after every box has ended. ``sys.exit``,
   ``os._exit``, crashes and endless loops end one box, and one exercise is graded ``error`` or
   ``timeout``; the rest of the class is graded as usual.
4. *The checker's integrity* is fingerprinted in the box before the learner's code is defined and
   compared after the checks: a replaced check list, a monkeypatched ``workshop.tasks.core``,
   ``torch`` or ``math`` function makes the exercise ``error``, whatever the checks returned. (The
   harness first runs each exercise's checks on its reference, so libraries that patch themselves on
   first use do so before the fingerprint; one that does so only on a path the reference never takes
   would show as a false alarm, naming what changed, in the learner's feedback.)
5. *The result channel* is a pipe the harness reads; a verdict counts only if exactly one record
   arrives with the token handed to that box at its fork and the right exercise name.

What does not hold: the checks and the learner's code share one Python process (they must: the
checks call the learner's function on tensors and models). Code written to subvert the grader at run
time *and* to get past the scan (for instance by finding the token in the harness's memory and
forging a record, or by restoring a patched checker before the fingerprint is compared) can forge its
own verdict. It cannot change another exercise's or another learner's grade, nor the gradebook, nor
the instructor's files (where Landlock is available). Without Landlock (macOS, old kernels) the
filesystem is not isolated: run the grader as a separate user or in a container there. A learner who
hard-codes the checks' expected values is not detected; the checks' inputs are fixed and public.

Taught in: not taught (instructor tooling; see docs/instructors.md).
"""

from __future__ import annotations

__all__ = ["grade", "grade_self"]


def grade(*args, **kwargs):
    """See :func:`workshop.grading.grader.grade`."""
    from workshop.grading.grader import grade as _grade

    return _grade(*args, **kwargs)


def grade_self(*args, **kwargs):
    """See :func:`workshop.grading.grader.grade_self`."""
    from workshop.grading.grader import grade_self as _grade_self

    return _grade_self(*args, **kwargs)
