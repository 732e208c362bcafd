"""The workshop's exercises, each defined once (stub, checks, hints, reference answer).

Usage in a notebook::

    from workshop import tasks
    dice_loss = tasks.dice_loss.check(dice_loss)   # verdict, then the function to go on with
    tasks.dice_loss.hint(1)
    tasks.dice_loss.solution()

Every module of this package except ``core`` defines ``EXERCISES``, a list of ``Exercise``;
they are collected here by name.

Taught in: notebooks/02_augmentation.ipynb (how exercises work), then every notebook.
"""

from __future__ import annotations

import importlib
import pkgutil

from workshop.tasks.core import Check, CheckFailure, Exercise, Verdict, expect

__all__ = ["TEACHING_ONLY", "Check", "CheckFailure", "Exercise", "Verdict", "expect", "all_exercises", "get_exercise"]

TEACHING_ONLY: dict[str, str] = {}
"""Exercises whose reference the pipeline does not run, with the reason (at most two).

Every other reference is the code that ``workshop train``, ``evaluate`` and ``predict`` run, so
``tasks.X.solution()`` shows the code that works; tests/test_reference_spy.py checks both.
"""

_REGISTRY: dict[str, Exercise] | None = None


def all_exercises() -> dict[str, Exercise]:
    """Every exercise, by name, in module order."""
    global _REGISTRY
    if _REGISTRY is None:
        found: dict[str, Exercise] = {}
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
            if info.name == "core":
                continue
            module = importlib.import_module(f"{__name__}.{info.name}")
            for ex in getattr(module, "EXERCISES", []):
                if ex.name in found:
                    raise RuntimeError(f"two exercises are named {ex.name!r}")
                found[ex.name] = ex
        _REGISTRY = found
    return _REGISTRY


def get_exercise(name: str) -> Exercise:
    """The exercise called ``name``; an unknown name lists the valid ones."""
    exercises = all_exercises()
    if name not in exercises:
        raise ValueError(f"no exercise named {name!r}; exercises: {', '.join(exercises)}")
    return exercises[name]


def __getattr__(name: str) -> Exercise:
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return get_exercise(name)
    except ValueError as exc:
        raise AttributeError(str(exc)) from None
