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
