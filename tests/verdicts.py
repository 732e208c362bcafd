"""What a FAIL line may say: the symptom and the cause, a pointer to ``hint(1)``, never the fix.

The fix lives in the hints, so the code of ``hint(2)`` and ``hint(3)`` (the calls they show and
their backticked code) must not appear in a FAIL line. ``tests/conftest.py`` applies
:func:`teaching_problems` to every failed verdict the tests produce.
"""

from __future__ import annotations

import re

from workshop.tasks import Exercise

# the three fixes the issue found handed over in FAIL lines
ISSUE_FIXES = ("target.unsqueeze(1)", ".astype(np.int64)", "if not math.isfinite")


def fix_fragments(ex: Exercise) -> set[str]:
    """The code of an exercise's API and last-step hints: calls such as ``target.unsqueeze(1)`` and `backticked` code."""
    text = " ".join(ex.hints[1:])
    calls = re.findall(r"[\w\]\['\".]*\w\([^()\n]*\)", text)
    ticked = re.findall(r"`([^`]+)`", text)
    return {f.strip() for f in calls + ticked if len(f.strip()) >= 5} | set(ISSUE_FIXES)


def teaching_problems(ex: Exercise, message: str) -> list[str]:
    """What is wrong with a FAIL verdict's message ([] when it names a cause and points to hint(1) only)."""
    problems = []
    message_without_code = re.sub(r"\(line \d+: .*(?=\. Read tasks\.)", "", message)  # the learner's own line, quoted
    if not message.endswith(f"Read tasks.{ex.name}.hint(1)."):
        problems.append(f"does not end by pointing to tasks.{ex.name}.hint(1)")
    if re.search(r"hint\([2-9]\)", message):
        problems.append("points past hint(1)")
    problems += [f"hands over the fix {fragment!r}" for fragment in sorted(fix_fragments(ex)) if fragment in message_without_code]
    return problems
