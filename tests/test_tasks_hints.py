"""Hints that teach before they tell (issue 24).

A FAIL line names the symptom and the cause and points to ``hint(1)``; the fix moves into the
ladder: ``hint(1)`` the idea, ``hint(2)`` the API, ``hint(3)`` the last step before ``solution()``.
tests/conftest.py holds every FAIL verdict of the exercise tests to that rule (tests/verdicts.py);
here: the rule itself, the ladder, and the three FAIL lines the issue quoted.
"""

from __future__ import annotations

import pytest
import torch

from verdicts import teaching_problems
from workshop.tasks import Check, CheckFailure, Exercise, all_exercises, get_exercise
from wrong_answers import WRONG_ANSWERS, define


@pytest.mark.parametrize("name", list(all_exercises()))
def test_every_exercise_has_the_three_rung_ladder(name: str, capsys) -> None:
    ex = get_exercise(name)
    assert len(ex.hints) == 3
    assert len(set(ex.hints)) == 3 and all(len(h) > 60 for h in ex.hints)
    ex.hint(3)
    assert capsys.readouterr().out.startswith(f"Hint 3/3 for {name}: ")


@pytest.mark.parametrize("name", list(all_exercises()))
def test_the_untouched_stub_points_to_hint_1(name: str) -> None:
    ex = get_exercise(name)
    namespace: dict = {}
    exec("import numpy as np\nimport torch\nfrom torch.utils.data import Dataset", namespace)
    exec(compile(ex.stub, "<stub>", "exec"), namespace)
    verdict = ex.run_checks(namespace[name])
    assert verdict.message.startswith("not implemented yet") and teaching_problems(ex, verdict.message) == []


@pytest.mark.parametrize(("name", "label", "source", "words"), WRONG_ANSWERS,
                         ids=[f"{n}: {label}" for n, label, _, _ in WRONG_ANSWERS])
def test_every_wrong_answer_points_to_hint_1_without_the_fix(name, label, source, words) -> None:
    ex = get_exercise(name)
    verdict = ex.run_checks(define(source, name))
    assert not verdict.passed
    assert teaching_problems(ex, verdict.message) == [], verdict.message


def dice_broadcast(logits, target, smooth=1.0):
    p = torch.sigmoid(logits)
    return 1 - (2 * (p * target.float()).sum() + smooth) / (p.sum() + target.float().sum() + smooth)


class MaskUint8:
    """A SegmentationDataset whose mask keeps the PNG's dtype (uint8), turned into 0/1."""

    def __init__(self, image_paths, mask_paths, transform=None):
        self.image_paths, self.mask_paths, self.transform = image_paths, mask_paths, transform

    def __len__(self):
        return len(self.image_paths)

    def __getitem__(self, index):
        import numpy as np
        from PIL import Image

        image = np.array(Image.open(self.image_paths[index]).convert("RGB"))
        mask = (np.array(Image.open(self.mask_paths[index])) > 127).astype(np.uint8)
        return {"image": image, "mask": mask} if self.transform is None else self.transform(image=image, mask=mask)


def no_nan_test(value, best, monitor):
    if best is None:
        return True
    return value < best if monitor == "loss" else value > best


@pytest.mark.parametrize(("name", "candidate", "cause", "fix"), [
    ("dice_loss", dice_broadcast, "the target (N, H, W) broadcasts against the logits", "target.unsqueeze(1)"),
    ("SegmentationDataset", MaskUint8, "the mask kept the file's dtype", ".astype(np.int64)"),
    ("is_improvement", no_nan_test, "a broken value was taken as an improvement", "if not math.isfinite"),
], ids=["dice broadcast", "uint8 mask", "NaN improves"])
def test_the_three_fail_lines_the_issue_quoted_name_the_cause_not_the_fix(name, candidate, cause, fix, capsys) -> None:
    ex = get_exercise(name)
    ex.check(candidate)
    printed = capsys.readouterr().out
    assert printed.startswith(f"FAIL {name}: ") and cause in printed
    assert f"Read tasks.{name}.hint(1)." in printed and fix not in printed
    assert fix in " ".join(ex.hints[1:]), "the fix moved into the hints"


def test_the_rule_catches_a_fail_line_that_hands_over_the_fix() -> None:
    ex = Exercise("telling", "nb.ipynb", "", dice_broadcast, [],
                  ["the idea", "the API: `t = target.unsqueeze(1).float()`", "p * target.unsqueeze(1).float()"])
    problems = teaching_problems(ex, "sums: expected a loss of 0.25; found 0.33 -> reshape the target with "
                                     "target.unsqueeze(1). Read tasks.telling.hint(3).")
    assert problems == ["does not end by pointing to tasks.telling.hint(1)", "points past hint(1)",
                        "hands over the fix 'target.unsqueeze(1)'"]
    assert teaching_problems(ex, "sums: expected 0.25; found 0.33 -> the target broadcasts against the logits. "
                                 "Read tasks.telling.hint(1).") == []


def test_the_exercise_tests_run_under_the_rule() -> None:
    """conftest.py wraps Exercise.run_checks in every test_tasks_* module: a FAIL line that tells fails its test."""
    def telling(candidate) -> None:
        raise CheckFailure("a loss of 0.25", "0.33 -> reshape the target with target.unsqueeze(1)", hint=2)

    ex = Exercise("telling", "nb.ipynb", "", dice_broadcast, [Check("sums", telling)],
                  ["the idea", "the API: `t = target.unsqueeze(1).float()`", "the last step"])
    with pytest.raises(AssertionError, match="hands over the fix 'target.unsqueeze\\(1\\)'"):
        ex.run_checks(dice_broadcast)
