"""Every exercise's reference is code the pipeline runs (issue 23, "the book and the machinery").

A learner who reads ``tasks.X.solution()`` must read the code that trains, evaluates and predicts.
This test runs the command line in this process, as a user types it (``WORKSHOP_PROFILE=smoke``,
the embedded data set generated afresh): ``workshop train``, ``workshop evaluate`` and
``workshop predict`` for a binary U-Net, a multiclass torchvision DeepLabV3 and a Mask R-CNN,
while a call tracer watches the code object of every ``Exercise.reference``. A reference that
never ran fails the test by name.

The tracer is keyed on code objects, not names: ``from workshop.augment import train_transform``
makes a second name for the same function, and a wrapper with ``functools.wraps`` hides it; both
still run the same ``__code__``. A class reference counts as run when any method defined in the
class body runs (its ``__init__``, ``__getitem__``...).

Two lists name the allowed exceptions:
- ``TEACHING_ONLY`` (``workshop.tasks``): at most two references that the pipeline has no honest
  use for, each with its reason. Such a reference must *not* run (else the entry is stale).
- ``PENDING_OTHER_WORK`` (below): twins being replaced on other branches. Each entry is a strict
  expected failure: the test fails when a pending reference does run, so the entry is removed as
  the work lands.
"""

from __future__ import annotations

import inspect
import sys
import threading
import types
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
from PIL import Image

from workshop.tasks import TEACHING_ONLY, all_exercises

from tests.test_instance_cli import TINY

# Twins another branch is replacing (issue 23): remove a name when its reference runs.
PENDING_OTHER_WORK: dict[str, str] = {}


# ----------------------------------------------------------------------------- the tracer


def code_objects(reference: Any) -> set[types.CodeType]:
    """The code objects whose running means ``reference`` ran.

    A function: its own code (under any decorator that keeps ``__wrapped__``). A class: the code
    of every function defined in its body (methods, static and class methods, property getters).
    """
    if inspect.isclass(reference):
        found: set[types.CodeType] = set()
        for member in vars(reference).values():
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            elif isinstance(member, property):
                member = member.fget
            if inspect.isfunction(member):
                found |= code_objects(member)
        return found
    function = inspect.unwrap(reference)
    if not inspect.isfunction(function):
        raise TypeError(f"cannot trace {reference!r}: not a Python function or class")
    return {function.__code__}


class CallSpy:
    """Record which of some code objects run, in every thread started while it is on.

    Uses ``sys.settrace``: the tracer sees every Python call (not C calls), answers with one
    dictionary lookup and turns line tracing off for the frame. A smoke ``workshop train`` under it
    takes about twice the CPU time (measured: 2.1-2.7 s -> 4.2-4.4 s for train + evaluate + predict
    of the binary U-Net, one thread).

    Args:
        targets: name -> code objects; a name is recorded when any of its code objects runs.
    """

    def __init__(self, targets: dict[str, set[types.CodeType]]) -> None:
        self._names = {code: name for name, codes in targets.items() for code in codes}
        self.called: set[str] = set()

    def _trace(self, frame: types.FrameType, event: str, arg: Any) -> None:
        name = self._names.get(frame.f_code)
        if name is not None:
            self.called.add(name)
        return None  # no line events for this frame

    def __enter__(self) -> "CallSpy":
        self._before = (sys.gettrace(), threading.gettrace())
        threading.settrace(self._trace)  # threads started from now on (thread pools that decode images)
        sys.settrace(self._trace)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.settrace(self._before[0])
        threading.settrace(self._before[1])


def _fixture_function(x: int) -> int:
    return x + 1


def test_the_spy_sees_calls_through_aliases_and_wrappers_and_nothing_else() -> None:
    import functools

    alias = _fixture_function  # what `from module import f` makes

    @functools.wraps(_fixture_function)
    def wrapped(x: int) -> int:
        return _fixture_function(x)

    class Taught:
        def __init__(self) -> None:
            self.x = 1

    targets = {"f": code_objects(_fixture_function), "wrapped": code_objects(wrapped), "Taught": code_objects(Taught),
               "never": code_objects(test_the_spy_sees_calls_through_aliases_and_wrappers_and_nothing_else)}
    assert targets["wrapped"] == targets["f"], "a functools.wraps wrapper is traced by the function it wraps"
    with CallSpy({"f": targets["f"], "Taught": targets["Taught"], "never": targets["never"]}) as spy:
        assert alias(1) == 2
    assert spy.called == {"f"}
    with CallSpy(targets) as spy:
        thread = threading.Thread(target=Taught)  # in another thread
        thread.start()
        thread.join()
    assert spy.called == {"Taught"}
    assert sys.gettrace() != spy._trace and threading.gettrace() != spy._trace, "the tracer is removed afterwards"


# ----------------------------------------------------------------------------- the command lines

# data.num_workers: 0 (the smoke default, said out loud): a DataLoader worker process is out of the tracer's sight
BINARY = "data: {num_workers: 0}\nmodel: {encoder_weights: null}\ntrain: {device: cpu}\n"
# multiclass from a folder of one binary mask per class (as Open Images ships them): merge_binary_masks runs
MULTICLASS = ("data: {{source: folder, root: '{root}', class_masks: true, task: multiclass, num_workers: 0}}\n"
              "model: {{arch: tv_deeplabv3_mobilenet_v3_large, encoder_weights: null}}\n"
              "train: {{device: cpu, loss: dice_ce}}\n")
INSTANCE = TINY  # the tiny Mask R-CNN run of tests/test_instance_cli.py


def _images(folder: Path, n: int = 2, size: int = 48) -> Path:
    folder.mkdir(parents=True)
    for k in range(n):
        pixels = np.random.default_rng(k).integers(0, 256, (size, size + 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"photo_{k}.png")
    return folder


def _class_mask_folder(root: Path, n: int = 12, size: int = 48) -> Path:
    """``images/k.png`` and ``masks/{road,car}/k.png``: a road band and a car square, both binary."""
    _images(root / "images", n, size)
    for k in range(n):
        road, car = np.zeros((size, size + 8), np.uint8), np.zeros((size, size + 8), np.uint8)
        road[k % 5 * 4: k % 5 * 4 + 12] = 255
        car[10 + k: 26 + k, 8 + k: 24 + k] = 255
        for cls, mask in (("road", road), ("car", car)):
            (root / "masks" / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask).save(root / "masks" / cls / f"photo_{k}.png")
    return root


def _commands(tmp: Path) -> Iterator[list[str]]:
    photos = _images(tmp / "photos")
    multiclass = MULTICLASS.format(root=_class_mask_folder(tmp / "classes").as_posix())
    for name, config in (("binary", BINARY), ("multiclass", multiclass), ("instance", INSTANCE)):
        path = tmp / f"{name}.yaml"
        path.write_text(config)
        run = tmp / f"run-{name}"
        yield ["train", "--config", str(path), "--run-dir", str(run)]
        yield ["evaluate", str(run)]
        yield ["predict", str(run), str(photos), "--out", str(tmp / f"predictions-{name}")]


@pytest.fixture(scope="module")
def called(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The names of the references that ran during the nine commands."""
    from workshop.cli import main

    tmp = tmp_path_factory.mktemp("spy")
    targets = {name: code_objects(ex.reference) for name, ex in all_exercises().items()}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKSHOP_PROFILE", "smoke")
        mp.setenv("WORKSHOP_DATA_DIR", str(tmp / "data"))  # generated inside the spy, as on a first run
        with CallSpy(targets) as spy:
            for argv in _commands(tmp):
                assert main(argv) == 0, f"workshop {' '.join(argv)} failed"
    return spy.called


def test_the_exception_lists_are_short_and_name_real_exercises() -> None:
    names = set(all_exercises())
    assert len(TEACHING_ONLY) <= 2, f"at most two teaching-only references, not {sorted(TEACHING_ONLY)}"
    assert set(TEACHING_ONLY) <= names and set(PENDING_OTHER_WORK) <= names
    assert not set(TEACHING_ONLY) & set(PENDING_OTHER_WORK)
    assert all(isinstance(why, str) and len(why.split()) >= 4 for why in [*TEACHING_ONLY.values(), *PENDING_OTHER_WORK.values()]), \
        "every exception says why"


@pytest.mark.parametrize("name", sorted(all_exercises()))
def test_the_reference_runs_in_the_pipeline(name: str, called: set[str]) -> None:
    reference = all_exercises()[name].reference
    where = f"{reference.__module__}.{reference.__qualname__}"
    if name in TEACHING_ONLY:
        assert name not in called, (f"{name} ({where}) ran in the pipeline: remove it from "
                                    "workshop.tasks.TEACHING_ONLY")
        return
    if name in PENDING_OTHER_WORK:
        assert name not in called, f"{name} ({where}) runs now: remove it from PENDING_OTHER_WORK in {__file__}"
        pytest.xfail(f"{name}: {PENDING_OTHER_WORK[name]}")
    assert name in called, (f"the reference of exercise {name!r} ({where}) never ran during `workshop train`, "
                            "`workshop evaluate` and `workshop predict`: the notebooks teach code the pipeline does not run")
