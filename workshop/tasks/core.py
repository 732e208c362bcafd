"""The exercise machinery: one ``Exercise`` object per exercise, with stub, checks, hints, reference.

In a notebook an exercise takes three cells::

    # 1. the stub (the learner fills it in); identical to ``exercise.stub``
    def dice_loss(logits, target, smooth=1.0):
        raise NotImplementedError("your code here")

    # 2. check it and carry on with a working implementation
    dice_loss = tasks.dice_loss.check(dice_loss)

    # 3. (any time) tasks.dice_loss.hint(1), tasks.dice_loss.hint(2), tasks.dice_loss.solution()

``check`` prints one short verdict: what was expected, what was found and why (the symptom and its
cause, never the fix), and the hint to start from, always ``hint(1)``. The hints are a ladder:
``hint(1)`` gives the idea, ``hint(2)`` the API, ``hint(3)`` the last step before ``solution()``;
the fix lives there, so a learner reads only as far as they need. An exception raised inside a
library (albumentations, torch) is read for its known cause by ``workshop.tasks.library_errors``
("transform ORDER: ...", "a missing .float()", "a uint8 mask") instead of blaming the library's
line. ``check`` returns the learner's function when every check passes, otherwise the reference, and says so
out loud, so a stuck learner can still finish the notebook. The check cell rebinds the learner's
name to a plain function, so every call a verdict prints goes through ``tasks``
(``tasks.dice_loss.hint(2)``): pasted as printed, it works. The verdict lines are deterministic:
the shipped notebooks store none of them (a fresh notebook must not look solved), and
``workshop.notebook.solve`` writes the reference's verdict into the instructor's solved copy,
which nbval then compares.

Taught in: every notebook with exercises (02 to 10); the machinery itself is explained in
notebooks/02_augmentation.ipynb.
"""

from __future__ import annotations

import inspect
import os
import textwrap
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from workshop.tasks.library_errors import explain, raised_by

PASS_MARK = "PASS"
FAIL_MARK = "FAIL"


class CheckFailure(AssertionError):
    """Raised by a check; carries what was expected and what was found, with its cause.

    ``found`` says the symptom and names the cause ("... -> the target broadcasts against the
    logits"), not the code that fixes it: the fix is in the hints. ``hint`` is the rung of the
    ladder where that fix is taught (for readers of the checks and for the tests); the verdict
    always sends the learner to ``hint(1)`` first.
    """

    def __init__(self, expected: str, found: str, hint: int | None = None) -> None:
        super().__init__(f"expected {expected}; found {found}")
        self.expected = expected
        self.found = found
        self.hint = hint


@dataclass
class Check:
    """One behaviour to test: ``run(candidate)`` raises ``CheckFailure`` when it is not met."""

    name: str
    run: Callable[[Any], None]


@dataclass
class Verdict:
    """The outcome of ``Exercise.check``: truthy when every check passed."""

    exercise: str
    passed: bool
    failed_check: str | None = None
    message: str = ""

    def __bool__(self) -> bool:
        return self.passed


@dataclass
class Exercise:
    """An exercise, defined once: the stub, the checks, the hints and the reference answer.

    Args:
        name: the name of the function or class the learner writes (``dice_loss``).
        notebook: the notebook that teaches it.
        stub: the exact source of the notebook's stub cell.
        reference: the working implementation (the library's own code).
        checks: behaviours tested in order; the first failure is reported.
        hints: the ladder, three rungs: the idea, the API, the last step before ``solution()``.
    """

    name: str
    notebook: str
    stub: str
    reference: Callable[..., Any]
    checks: list[Check]
    hints: list[str]
    last: Verdict | None = field(default=None, repr=False)

    def run_checks(self, candidate: Any) -> Verdict:
        """Run the checks silently and return the verdict."""
        read = f" Read {self.call('hint(1)')}."
        for check in self.checks:
            try:
                check.run(candidate)
            except CheckFailure as failure:
                return Verdict(self.name, False, check.name,
                               f"{check.name}: expected {failure.expected}; found {failure.found}.{read}")
            except Exception as exc:  # the learner's code crashed: the known cause, or where, briefly
                cause = explain(exc)
                if cause is None and isinstance(exc, NotImplementedError):
                    return Verdict(self.name, False, check.name,
                                   f"not implemented yet (the stub still raises NotImplementedError).{read}")
                return Verdict(self.name, False, check.name, f"{check.name}: {_crash(exc, cause)}.{read}")
        return Verdict(self.name, True, None, f"all {len(self.checks)} checks pass")

    def call(self, method: str) -> str:
        """The call a learner types to reach this exercise, e.g. ``tasks.dice_loss.hint(2)``."""
        return f"tasks.{self.name}.{method}"

    def pass_line(self) -> str:
        """The verdict line ``check`` prints when every check passes."""
        return f"{PASS_MARK} {self.name}: all {len(self.checks)} checks pass. Using your {self.name}."

    def check(self, candidate: Any) -> Any:
        """Check ``candidate``, print the verdict, and return what the notebook should use next.

        Returns:
            ``candidate`` when every check passes, else the reference implementation.
        """
        verdict = self.run_checks(candidate)
        self.last = verdict
        if verdict.passed:
            print(self.pass_line())
            return candidate
        print(f"{FAIL_MARK} {self.name}: {verdict.message}")
        print(f"The notebook goes on with the reference {self.name} (see {self.call('solution()')}).")
        return self.reference

    def hint(self, n: int = 1) -> None:
        """Print hint ``n``: 1 the idea, 2 the API, 3 the last step before ``solution()``."""
        if not 1 <= n <= len(self.hints):
            raise ValueError(f"{self.name} has hints 1..{len(self.hints)}, not {n}")
        print(f"Hint {n}/{len(self.hints)} for {self.name}: {self.hints[n - 1]}")

    def solution(self) -> None:
        """Print the reference implementation's source (once: it returns nothing for Jupyter to echo)."""
        print(self.solution_source())

    def solution_source(self) -> str:
        """The reference implementation's source, as a string."""
        return textwrap.dedent(inspect.getsource(self.reference))


def _crash(exc: BaseException, cause: str | None) -> str:
    """What a crash says in a verdict: the known cause first, then who raised what, and the learner's line."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    message = message if len(message) <= 160 else message[:157] + "..."
    raised = f"{raised_by(exc)} raised {type(exc).__name__}: {message}{_last_frame(exc)}"
    if cause is None:
        return raised
    return f"{cause} ({raised})"


def _last_frame(exc: BaseException) -> str:
    """`` (line N: code)`` of the deepest frame in the learner's own code, if any."""
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__)
        if "site-packages" not in f.filename and f"{os.sep}workshop{os.sep}" not in f.filename
    ]
    if not frames or not frames[-1].line:
        return ""
    return f" (line {frames[-1].lineno}: {frames[-1].line})"


def expect(condition: bool, expected: str, found: str | Callable[[], str], hint: int | None = None) -> None:
    """Raise ``CheckFailure`` unless ``condition``; ``found`` may be a callable computed only on failure."""
    if not condition:
        raise CheckFailure(expected, found() if callable(found) else found, hint)
