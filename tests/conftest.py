"""Shared test set-up: offline, headless, data in a temporary folder, the smoke profile."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("WORKSHOP_OFFLINE", "1")
os.environ.setdefault("WORKSHOP_PROFILE", "smoke")

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture(scope="session", autouse=True)
def _data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session generates its embedded data in its own folder (unless one is given)."""
    if "WORKSHOP_DATA_DIR" not in os.environ:
        os.environ["WORKSHOP_DATA_DIR"] = str(tmp_path_factory.mktemp("workshop-data"))
    return Path(os.environ["WORKSHOP_DATA_DIR"])


def shared_dataset(name: str) -> Path:
    """Path of a real data set in ../shared/datasets, or skip the test when it is absent."""
    path = SHARED_DATASETS / name
    if not path.is_dir():
        pytest.skip(f"real data set {name!r} not present at {path}")
    return path


@pytest.fixture(autouse=True)
def _fail_lines_teach(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In the exercise tests, every FAIL verdict names its cause, points to hint(1), and hands over no fix.

    Every wrong answer of tests/test_tasks_*.py goes through ``Exercise.run_checks``: a verdict that
    breaks the rule (see tests/verdicts.py) fails the test that produced it.
    """
    if not request.module.__name__.split(".")[-1].startswith("test_tasks_"):
        return
    from verdicts import teaching_problems

    from workshop.tasks.core import Exercise

    original = Exercise.run_checks

    def run_checks(self: Exercise, candidate):
        verdict = original(self, candidate)
        if not verdict.passed and self.hints:
            problems = teaching_problems(self, verdict.message)
            assert not problems, f"FAIL line of {self.name}: {'; '.join(problems)}:\n{verdict.message}"
        return verdict

    monkeypatch.setattr(Exercise, "run_checks", run_checks)
