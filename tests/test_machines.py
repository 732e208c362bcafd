"""The machines learners bring: a notebook's plotting backend, a Mac's MPS, spawned DataLoader workers.

* No library call changes matplotlib's backend (a notebook would lose its inline plots).
* Apple's MPS has no float64: the train, evaluation and prediction paths must create no float64
  tensor on the model's device. There is no Mac here, so the test runs those paths on the CPU under
  a ``TorchDispatchMode`` that records every float64 tensor made on the model's device, with the
  library told that this device, like MPS, has no float64.
* macOS and Windows start DataLoader workers with ``spawn``: everything a worker needs must be
  importable by name. The CLI quickstart and notebook 04 run here with ``spawn`` and 2 workers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from workshop import notebook as nbtools

ROOT = Path(__file__).resolve().parents[1]


def smoke_env(data_dir: Path, **more: str) -> dict[str, str]:
    return dict(os.environ, WORKSHOP_PROFILE="smoke", WORKSHOP_OFFLINE="1", WORKSHOP_DATA_DIR=str(data_dir),
                PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **more)


# ----------------------------------------------------------------------------- matplotlib backend


def test_no_library_module_calls_matplotlib_use() -> None:
    """``matplotlib.use`` switches the backend of the whole process: a notebook loses its inline plots."""
    offenders = [p.relative_to(ROOT).as_posix() for p in (ROOT / "workshop").rglob("*.py")
                 if "matplotlib.use(" in p.read_text(encoding="utf-8").replace("never matplotlib.use()", "")]
    assert offenders == []


def test_drawing_to_files_keeps_the_callers_backend(tmp_path: Path) -> None:
    """Import the drawing modules and write the evaluation and run figures under a chosen backend.

    The ``svg`` backend stands in for a notebook's inline backend: before the fix, importing
    ``workshop.viz`` without a screen, or writing ``confusion.png``, switched it to Agg.
    """
    code = f"""
import matplotlib, numpy as np
from pathlib import Path
import workshop.viz as viz, workshop.evaluate as ev, workshop.instance.predict, workshop.instance.runs
out = Path({str(tmp_path)!r})
ev._confusion_png(np.array([[5, 1], [2, 7]]), ["background", "building"], out / "confusion.png")
viz.save_figure(viz.plot_history([{{"epoch": 1, "train_loss": 1.0, "val_loss": 0.9, "val_iou": 0.5, "val_dice": 0.6}}]), out / "curves.png")
print(matplotlib.get_backend())
"""
    env = dict(os.environ, MPLBACKEND="svg", PYTHONPATH=str(ROOT))
    env.pop("DISPLAY", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "svg"
    assert (tmp_path / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


# ----------------------------------------------------------------------------- MPS: no float64 on the device


class Float64OnDevice(TorchDispatchMode):
    """Records every operator that returns a float64 tensor on ``device`` (with where it was called)."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device
        self.hits: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in (out,) if isinstance(out, torch.Tensor) else tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor) and value.dtype == torch.float64 and value.device == self.device:
                frames = [f for f in traceback.extract_stack()[:-1] if f"{os.sep}workshop{os.sep}" in f.filename]
                where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno} {frames[-1].line}" if frames else "?"
                self.hits.append(f"{func} at {where}")
                break
        return out


def test_recorder_sees_float64_made_on_the_device() -> None:
    """The recorder itself: a float64 division is seen, a float32 one is not."""
    counts = torch.tensor([3, 4])
    with Float64OnDevice(torch.device("cpu")) as rec:
        counts.float() / 2
    assert rec.hits == []
    with Float64OnDevice(torch.device("cpu")) as rec:
        counts.double() / 2
    assert rec.hits and "_to_copy" in rec.hits[0]


@pytest.mark.slow
def test_train_evaluate_predict_make_no_float64_on_a_device_without_it(tmp_path: Path, _data_dir: Path, monkeypatch) -> None:
    """``workshop quickstart``, ``evaluate`` and ``predict`` (smoke), as on a Mac's MPS: no float64 on the device.

    Before the fix ``SegmentationMetrics.compute`` divided in float64 on the confusion matrix's
    device, which raises on MPS at the end of the first epoch.
    """
    from workshop import cli, metrics

    monkeypatch.setenv("WORKSHOP_PROFILE", "smoke")
    monkeypatch.setenv("WORKSHOP_OFFLINE", "1")
    monkeypatch.setenv("WORKSHOP_DATA_DIR", str(_data_dir))
    monkeypatch.setattr(metrics, "has_float64", lambda device: False)  # this CPU plays a device without float64
    run = tmp_path / "run"
    images = tmp_path / "images"
    images.mkdir()
    with Float64OnDevice(torch.device("cpu")) as rec:
        assert cli.main(["quickstart", "--run-dir", str(run)]) == 0
        assert cli.main(["evaluate", str(run), "--out", str(tmp_path / "eval")]) == 0
        sample = sorted((_data_dir).rglob("images/*.png"))[0]
        (images / sample.name).write_bytes(sample.read_bytes())
        assert cli.main(["predict", str(run), str(images), "--out", str(tmp_path / "pred")]) == 0
    assert rec.hits == [], "\n".join(sorted(set(rec.hits)))
    scores = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= scores["history"][-1]["val_iou"] <= 1.0


def test_metrics_on_a_device_without_float64_are_float32_and_right(monkeypatch) -> None:
    """IoU and Dice from a hand-counted confusion matrix, in float32 where float64 is missing."""
    from workshop import metrics

    cm = torch.tensor([[50, 10], [5, 35]])
    monkeypatch.setattr(metrics, "has_float64", lambda device: False)
    iou = metrics.iou_from_confusion(cm)
    assert iou.dtype == torch.float32
    assert torch.allclose(iou, torch.tensor([50 / 65, 35 / 50]))
    assert torch.isnan(metrics.iou_from_confusion(torch.zeros(2, 2, dtype=torch.long))).all()
    monkeypatch.undo()
    assert metrics.iou_from_confusion(cm).dtype == torch.float64  # CPU and CUDA keep float64
    assert metrics.has_float64(torch.device("cpu")) and not metrics.has_float64(torch.device("mps"))


# ----------------------------------------------------------------------------- spawned DataLoader workers

SPAWN_RUNNER = """
import multiprocessing, sys
from workshop.cli import main

if __name__ == "__main__":
    multiprocessing.set_start_method("spawn", force=True)  # what macOS and Windows use
    sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_cli_quickstart_with_spawned_workers(tmp_path: Path, _data_dir: Path) -> None:
    runner = tmp_path / "spawn_workshop.py"
    runner.write_text(SPAWN_RUNNER)
    cmd = [sys.executable, str(runner), "quickstart", "--run-dir", str(tmp_path / "run"), "--set", "data.num_workers=2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=smoke_env(_data_dir), cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "num_workers: 2" in config
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()


@pytest.mark.notebooks
def test_notebook_04_with_spawned_workers(tmp_path: Path, _data_dir: Path) -> None:
    """Notebook 04, whose section 4 loads the training set with 2 workers, every worker started with ``spawn``."""
    import nbclient
    import nbformat

    nb = nbtools.solve(nbtools.read_notebook(ROOT / "notebooks" / "04_dataloaders.ipynb"))
    force = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
             "source": "import multiprocessing\nmultiprocessing.set_start_method('spawn', force=True)\n"
                       "print('start method:', multiprocessing.get_start_method())"}
    nb["cells"].insert(1, force)
    node = nbformat.reads(json.dumps(nb), as_version=4)
    saved = dict(os.environ)
    os.environ.update(smoke_env(_data_dir, MPLBACKEND="Agg"))
    try:
        nbclient.NotebookClient(node, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    text = "".join(o.get("text", "") for c in node["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []))
    assert "start method: spawn" in text
    assert "num_workers=2:" in text  # section 4 timed a pass with 2 spawned workers
