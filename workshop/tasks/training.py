"""Exercise of notebooks/07_training.ipynb: when is a validation score the new best?

``fit`` saves ``checkpoints/best.pt`` whenever :func:`workshop.engine.is_improvement` says so;
the learner writes that rule.

Taught in: notebooks/07_training.ipynb
"""

from __future__ import annotations

import math

from workshop.engine import is_improvement
from workshop.tasks.core import CheckFailure, Check, Exercise, expect

IS_IMPROVEMENT_STUB = '''def is_improvement(value, best, monitor):
    """Should this epoch's validation `value` replace `best` (and be saved as best.pt)?

    - monitor "iou" or "dice": higher is better; monitor "loss": lower is better.
    - `best` is None before the first epoch: any real number improves on nothing.
    - NaN (or infinity) never improves: a broken epoch must not become the best.
    - A value equal to `best` is no improvement (the earlier checkpoint is kept).

    Returns: True or False.
    """
    # your code here (about 6 lines)
    raise NotImplementedError("your code here")'''


def _cases(candidate, cases: list[tuple[float, float | None, str, bool]], what: str, why: str, hint: int) -> None:
    """Run ``candidate`` on each (value, best, monitor, expected) case; fail on the first wrong answer."""
    for value, best, monitor, expected in cases:
        found = candidate(value, best, monitor)
        call = f"is_improvement({value}, {best}, {monitor!r})"
        if found is not True and found is not False and type(found).__name__ != "bool_":
            raise CheckFailure(f"{call} to return True or False", f"{found!r}", 3)
        expect(bool(found) == expected, f"{call} -> {expected} ({what})", f"{bool(found)}{why}", hint=hint)


def _check_higher(candidate) -> None:
    _cases(candidate, [(0.61, 0.58, "iou", True), (0.55, 0.58, "iou", False), (0.7, 0.6, "dice", True),
                       (0.5, 0.6, "dice", False)], "higher is better for IoU and Dice", "", hint=1)


def _check_lower(candidate) -> None:
    _cases(candidate, [(0.30, 0.35, "loss", True), (0.40, 0.35, "loss", False)], "lower is better for the loss",
           " -> for a loss lower is better, but the comparison went the way of IoU", hint=1)


def _check_first(candidate) -> None:
    _cases(candidate, [(0.2, None, "iou", True), (3.0, None, "loss", True), (0.0, None, "dice", True)],
           "the first value always improves on nothing",
           " -> before the first epoch there is no best (None) to compare with", hint=2)


def _check_zero_best(candidate) -> None:
    _cases(candidate, [(0.5, 0.0, "loss", False), (0.2, 0.0, "loss", False)], "a best of 0.0 is a real value",
           " -> a best of 0.0 was taken for 'no best yet': 0.0 is falsy, like None", hint=2)


def _check_ties(candidate) -> None:
    _cases(candidate, [(0.5, 0.5, "iou", False), (0.25, 0.25, "loss", False)],
           "a tie is no improvement: keep the earlier checkpoint",
           " -> a value equal to the best counted as better (the comparison is not strict)", hint=2)


def _check_nan(candidate) -> None:
    nan, inf = math.nan, math.inf
    _cases(candidate, [(nan, None, "iou", False), (nan, None, "loss", False), (nan, 0.4, "loss", False),
                       (inf, None, "loss", False)],
           "NaN and infinity never improve, not even as the first value",
           " -> a broken value was taken as an improvement: nothing rejects it before the comparisons, "
           "and the first epoch accepts anything", hint=3)


IS_IMPROVEMENT = Exercise(
    name="is_improvement",
    notebook="07_training.ipynb",
    stub=IS_IMPROVEMENT_STUB,
    reference=is_improvement,
    checks=[
        Check("higher is better for iou and dice", _check_higher),
        Check("lower is better for loss", _check_lower),
        Check("first value", _check_first),
        Check("best of 0.0", _check_zero_best),
        Check("ties", _check_ties),
        Check("NaN and infinity", _check_nan),
    ],
    hints=[
        "Three questions, in this order. Is the value a real, finite number at all (a broken epoch never "
        "improves)? Is there a best yet (None before the first epoch)? Is the value strictly better: higher "
        "for 'iou' and 'dice', lower for 'loss'? A tie keeps the earlier checkpoint.",
        "math.isfinite(x) is False for NaN and for infinity. `best is None` tells 'no best yet' apart from a "
        "best of 0.0 (`not best` does not). > and < are strict: an equal value is no improvement.",
        "if not math.isfinite(value): return False; if best is None: return True; "
        "return value < best if monitor == 'loss' else value > best",
    ],
)

EXERCISES = [IS_IMPROVEMENT]
