"""Known library errors, read for their cause: what a learner's slip looks like from inside a library.

A slip such as ``ToTensorV2()`` before ``A.Normalize`` does not fail in the learner's own line: it
fails deep inside albumentations, with "AttributeError: 'Tensor' object has no attribute 'astype'",
which blames nothing the learner wrote. The check runner (``workshop.tasks.core``) passes every
exception the learner's code raises to :func:`explain`, which matches it against ``KNOWN_ERRORS``,
a table of (exception type, message pattern, library) -> cause, and says the cause in words.

Each row was found by running the wrong code for real; tests/test_tasks_library_errors.py runs it
again and checks that the row still matches what the installed libraries raise.

Taught in: notebooks/02_augmentation.ipynb (how exercises work: a verdict names the cause)
"""

from __future__ import annotations

import os
import re
import traceback
from dataclasses import dataclass

_ORDER = ("transform ORDER: a step after ToTensorV2 was given a torch tensor. Normalize, Resize and the flips work "
          "on NumPy arrays (H, W, C) and ToTensorV2 turns them into tensors: ToTensorV2 must come last")
_NOT_FLOAT = "the tensor was never turned into floats (a missing .float())"


@dataclass(frozen=True)
class KnownError:
    """One row of the table: an exception type and a pattern of its message, raised inside ``library``.

    Args:
        types: exception class names that fit (``"AttributeError"``; ``"error"`` is OpenCV's).
        pattern: a regular expression searched in the message; its named groups fill ``cause``.
        cause: the cause in words, with ``{group}`` fields filled from the named groups of ``pattern``.
        library: the package whose code must be in the traceback (None: any).
    """

    types: tuple[str, ...]
    pattern: str
    cause: str
    library: str | None = None

    def match(self, exc: BaseException, libraries: list[str]) -> str | None:
        """The cause when ``exc`` is this error (raised inside ``library``), else None."""
        if type(exc).__name__ not in self.types or (self.library is not None and self.library not in libraries):
            return None
        found = re.search(self.pattern, str(exc))
        if found is None:
            return None
        return self.cause.format(**{k: v or "" for k, v in found.groupdict().items()})


KNOWN_ERRORS: list[KnownError] = [
    # --- albumentations: ToTensorV2 anywhere but last
    KnownError(("AttributeError",), r"'Tensor' object has no attribute '\w+'", _ORDER, "albumentations"),
    KnownError(("error",), r"src is not a numpy array", _ORDER, "albumentations"),
    KnownError(("TypeError",), r"transpose\(\) takes \d+ positional arguments? but \d+ were given",
               "ToTensorV2 was given a tensor: it ran twice, or after another step that makes tensors; it converts "
               "NumPy arrays once, as the last step", "albumentations"),
    # --- a mask (target) with the wrong dtype
    KnownError(("RuntimeError",), r"expected scalar type Long but found (?P<found>Byte|Char|Short|Int|Bool)",
               "the target of a class-id loss (CrossEntropy, NLL) must hold int64 (Long) class ids; this mask is "
               "{found}, e.g. a uint8 mask straight from a PNG"),
    KnownError(("RuntimeError",), r"expected target dtype to be Long or Byte, but got (?P<found>\w+)",
               "the target of a class-id loss (CrossEntropy) must hold int64 class ids; this one is {found}"),
    KnownError(("RuntimeError",), r"result type Float can't be cast to the desired output type (?P<found>\w+)",
               "a binary loss (BCE) compares float probabilities with a float target; this target is {found} "
               "(integers): it was never turned into floats (a missing .float())"),
    # --- an integer (or float64) input where float32 is computed
    KnownError(("RuntimeError",), r"Input type \([^)]*\) and weight type \([^)]*cuda[^)]*\)|Input type \([^)]*cuda[^)]*\) and",
               "the model's weights and its input are on two devices (one on the GPU, one on the CPU): the batch "
               "and the model are not on the same device"),
    KnownError(("RuntimeError",), r"Input type \((?P<found>[^)]*)\) and (?:bias|weight) type \((?P<want>[^)]*)\) "
               r"should be the same",
               "the model's weights are {want} but its input is {found}: an image of 0..255 integers (or float64) "
               "was never turned into float32 (a missing .float())"),
    KnownError(("RuntimeError",), r"mat1 and mat2 must have the same dtype, but got (?P<found>\w+) and (?P<want>\w+)",
               "a layer with {want} weights was given {found} values: the input was never turned into floats "
               "(a missing .float())"),
    KnownError(("NotImplementedError", "RuntimeError"), r"\"(?P<op>\w+)\" not implemented for '(?P<found>Long|Byte|Int|Short|Char|Bool)'",
               "torch's {op} computes in floating point but got {found} (integer) values: " + _NOT_FLOAT),
    KnownError(("NotImplementedError", "RuntimeError"), r"could not infer output dtype.*Got: (?P<found>\w+)",
               "a mean of {found} (integer) values: " + _NOT_FLOAT),
    # --- gradients and devices
    KnownError(("RuntimeError",), r"element 0 of tensors does not require grad",
               "backward() was called on a value with no gradient: it was detached from the model's output "
               "(a .item(), a threshold, .detach() or a no_grad block on the way)"),
    KnownError(("RuntimeError",), r"Can't call numpy\(\) on Tensor that requires grad",
               "the tensor still records gradients (the model ran with autograd on), and NumPy cannot hold them"),
    KnownError(("RuntimeError",), r"Expected all tensors to be on the same device",
               "tensors on two devices met in one operation: the batch and the model are not on the same device"),
    # --- NumPy and torch mixed up
    KnownError(("AttributeError",), r"'numpy\.ndarray' object has no attribute '(?P<name>\w+)'",
               "a NumPy array was used as a torch tensor (.{name} is torch's): it was never made a tensor"),
]


def libraries_in(exc: BaseException) -> list[str]:
    """The installed packages whose code the traceback of ``exc`` runs through, outermost first."""
    found: list[str] = []
    for frame in traceback.extract_tb(exc.__traceback__):
        name = _package(frame.filename)
        if name is not None and name not in found:
            found.append(name)
    return found


def explain(exc: BaseException) -> str | None:
    """The cause of a known library error in words, or None when ``exc`` is none of ``KNOWN_ERRORS``.

    Example:
        >>> import torch
        >>> try:
        ...     torch.nn.functional.cross_entropy(torch.zeros(1, 2, 3), torch.zeros(1, 3, dtype=torch.uint8))
        ... except RuntimeError as error:
        ...     print(explain(error)[:48])
        the target of a class-id loss (CrossEntropy, NLL
    """
    libraries = libraries_in(exc)
    for known in KNOWN_ERRORS:
        cause = known.match(exc, libraries)
        if cause is not None:
            return cause
    return None


def raised_by(exc: BaseException) -> str:
    """Which library raised ``exc``: the package of the innermost frame of its traceback (``"albumentations"``),
    else ``"your code"``."""
    frames = traceback.extract_tb(exc.__traceback__)
    return _package(frames[-1].filename) if frames and _package(frames[-1].filename) else "your code"


def _package(filename: str) -> str | None:
    """The installed package a file belongs to (``.../site-packages/torch/nn/functional.py`` -> ``torch``)."""
    parts = filename.split(os.sep)
    for marker in ("site-packages", "dist-packages"):
        if marker in parts and parts.index(marker) + 1 < len(parts):
            return parts[parts.index(marker) + 1].removesuffix(".py")
    return None
