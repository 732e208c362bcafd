"""Errors a learner can cause, each with a one-line message that says what to do.

Every exception here subclasses ``WorkshopError`` so the command line can print
the message without a traceback, and notebooks show one readable line.

Taught in: notebooks/01_configuration.ipynb (config errors) and
notebooks/03_dataset.ipynb (data errors).
"""

from __future__ import annotations


class WorkshopError(Exception):
    """Base class for errors caused by user input (files, config, hardware)."""


class ConfigError(WorkshopError, ValueError):
    """An unknown key or a bad value in a configuration."""


class DataError(WorkshopError, ValueError):
    """A data problem: missing folder, unpaired file, corrupt image, bad mask."""


class DeviceError(WorkshopError, RuntimeError):
    """A device was requested that this machine does not have."""


class TrainingError(WorkshopError, RuntimeError):
    """Training stopped because continuing would waste the run (e.g. NaN loss)."""
