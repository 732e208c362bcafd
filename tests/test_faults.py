"""Fault injection: each fault gives a clear message that names its cause, and nothing saved is lost.

Faults in files (corrupt, truncated, empty, wrong size, odd names) are caught by the loader and by
the data scan; faults during training (unwritable folder, a crash while a checkpoint is written,
NaN loss, Ctrl-C, the time budget) leave the last good checkpoint usable. Training runs use a tiny
model on 16x16 tensors, or the CLI with the model swapped for a tiny one.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from workshop import cli, runs
from workshop.data.check import check_path
from workshop.data.datasets import FolderDataset, PairDataset
from workshop.data.io import load_pair, read_image
from workshop.engine import fit, load_checkpoint, make_optimizer, make_scheduler, save_checkpoint
from workshop.errors import DataError, TrainingError, WorkshopError
from workshop.losses import create_loss

from tiny_training import Squares

# ----------------------------------------------------------------------------- files


def noise(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def bar(h: int = 48, w: int = 64) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    mask[:, w // 4 : w // 2] = 255
    return mask


def write_pair(root: Path, name: str, image: np.ndarray | None = None, mask: np.ndarray | None = None) -> tuple[Path, Path]:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    image_path, mask_path = root / "images" / f"{name}.png", root / "masks" / f"{name}.png"
    Image.fromarray(noise(hash(name) % 1000) if image is None else image).save(image_path)
    Image.fromarray(bar() if mask is None else mask).save(mask_path)
    return image_path, mask_path


def corrupt(kind: str, path: Path) -> Path:
    """Damage ``path`` in one of the ways files get damaged; returns the damaged file's path."""
    if kind == "random-png":
        path.write_bytes(np.random.default_rng(0).bytes(700))
    elif kind == "random-jpg":
        path.unlink()
        path = path.with_suffix(".jpg")
        path.write_bytes(np.random.default_rng(1).bytes(700))
    elif kind == "truncated-png":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "truncated-jpeg":
        array = np.asarray(Image.open(path).convert("RGB"))
        path.unlink()
        path = path.with_suffix(".jpg")
        Image.fromarray(array).save(path, quality=90)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])
    elif kind == "zero-byte":
        path.write_bytes(b"")
    return path


FILE_FAULTS = [
    ("random-png", "cannot be read (corrupt or truncated?)", "not a readable image (700 bytes"),
    ("random-jpg", "cannot be read (corrupt or truncated?)", "not a readable image (700 bytes"),
    ("truncated-png", "cannot be read (corrupt or truncated?)", "corrupt or truncated PNG data"),
    ("truncated-jpeg", "cannot be read (corrupt or truncated?)", "corrupt or truncated JPEG data"),
    ("zero-byte", "is an empty (zero-byte) file", "zero-byte (empty)"),
]


@pytest.mark.parametrize("role", ["image", "mask"])
@pytest.mark.parametrize(("kind", "loader_words", "scan_words"), FILE_FAULTS, ids=[f[0] for f in FILE_FAULTS])
def test_damaged_files_are_named_by_the_loader_and_the_scan(tmp_path, role, kind, loader_words, scan_words) -> None:
    write_pair(tmp_path, "a")
    image_path, mask_path = write_pair(tmp_path, "b")
    bad = corrupt(kind, image_path if role == "image" else mask_path)
    pairs = [(tmp_path / "images" / "a.png", tmp_path / "masks" / "a.png"),
             (bad, mask_path) if role == "image" else (image_path, bad)]
    dataset = PairDataset(pairs)
    assert dataset[0]["mask"].shape == (48, 64)  # the good pair still loads
    with pytest.raises(DataError) as info:
        dataset[1]
    message = str(info.value)
    assert f"{role} {loader_words}" in message and str(bad) in message
    report = check_path(tmp_path)
    assert not report.ok
    assert [(p.path, p.severity) for p in report.problems] == [(str(bad), "error")]
    assert scan_words in report.problems[0].message


@pytest.mark.parametrize(
    ("mask_size", "loader_words", "severity", "scan_words"),
    [
        ((24, 32), "mask resized with nearest-neighbour", "warning", "same aspect ratio, the mask is resized"),
        ((48, 48), "the aspect ratios differ; resizing the mask anyway (check the pairing)", "error",
         "aspect ratios differ (1.00 vs 1.33): probably the wrong mask"),
    ],
    ids=["same-aspect", "other-aspect"],
)
def test_masks_of_the_wrong_size(tmp_path, mask_size, loader_words, severity, scan_words) -> None:
    image_path, mask_path = write_pair(tmp_path, "a", mask=bar(*mask_size))
    with pytest.warns(UserWarning, match=loader_words.replace("(", r"\(").replace(")", r"\)")):
        image, mask = load_pair(image_path, mask_path)
    assert mask.shape == image.shape[:2] == (48, 64)
    assert set(np.unique(mask)) == {0, 1}
    (problem,) = check_path(tmp_path).problems
    assert problem.severity == severity and scan_words in problem.message and problem.path == str(mask_path)


def test_non_utf8_file_names_load_and_are_named(tmp_path, capsys) -> None:
    write_pair(tmp_path, "a")
    base = os.fsencode(tmp_path)
    good = os.path.join(base, b"images", b"img_\xff.png")
    Image.fromarray(noise(3)).save(os.fsdecode(good))
    Image.fromarray(bar()).save(os.fsdecode(os.path.join(base, b"masks", b"img_\xff.png")))
    dataset = FolderDataset(tmp_path / "images", tmp_path / "masks")
    assert [os.fsencode(p.name) for p, _ in dataset.pairs] == [b"a.png", b"img_\xff.png"]
    assert dataset[1]["image"].shape == (48, 64, 3)  # loads fine
    # Broken, with an undecodable name: the loader, the scan and the CLI all name it.
    bad = os.path.join(base, b"images", b"bad_\xe9t\xe9.png")
    with open(bad, "wb") as fh:
        fh.write(b"\x89PNG broken")
    Image.fromarray(bar()).save(os.fsdecode(os.path.join(base, b"masks", b"bad_\xe9t\xe9.png")))
    with pytest.raises(DataError) as info:
        read_image(os.fsdecode(bad))
    assert os.fsencode(str(info.value)).count(b"bad_\xe9t\xe9.png") == 1
    assert cli.main(["data", "check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "images/bad_\\xe9t\\xe9.png\n  error: not a readable image" in out
    # An error message that carries such a name still prints as one line.
    assert cli.main(["train", "--config", os.fsdecode(os.path.join(base, b"conf_\xff.yaml"))]) == 2
    assert capsys.readouterr().err == f"error: config file not found: {tmp_path}/conf_\\xff.yaml\n"


# ----------------------------------------------------------------------------- training with a tiny model


def tiny_model(out_channels: int = 1) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, out_channels, 1))


def train(run_dir: Path, epochs: int = 3, loss=None, resume=None, **kwargs):
    model = tiny_model()
    loader = DataLoader(Squares(24, 0), batch_size=8, shuffle=True, generator=torch.Generator())
    val = DataLoader(Squares(8, 1), batch_size=8)
    opt = make_optimizer(model, "adam", 0.05)
    sched = make_scheduler(opt, "cosine", 0.05, epochs, len(loader))
    loss = loss or create_loss("dice_bce", "binary")
    return fit(model, loader, val, loss, opt, epochs, "cpu", sched, run_dir=run_dir, seed=1, resume=resume, **kwargs)


def checkpoint_bytes(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "checkpoints").glob("*.pt"))}


def failing_after(calls: int, error: BaseException | None = None, nan: bool = False):
    """A dice_bce loss that raises ``error`` (or returns NaN) from call number ``calls`` on."""
    real = create_loss("dice_bce", "binary")
    count = {"n": 0}

    def loss(logits, target):
        count["n"] += 1
        if count["n"] >= calls:
            if error is not None and count["n"] == calls:
                raise error
            if nan:
                return real(logits, target) * float("nan")
        return real(logits, target)

    return loss


@pytest.mark.parametrize("target", ["mkstemp", "replace"])
def test_read_only_run_folder_is_named_and_old_checkpoints_stay(tmp_path, monkeypatch, target) -> None:
    train(tmp_path, epochs=1)
    before = checkpoint_bytes(tmp_path)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile if target == "mkstemp" else os, "mkstemp" if target == "mkstemp" else "replace", denied)
    with pytest.raises(WorkshopError, match=r"cannot write checkpoint .*checkpoints/best\.pt: Permission denied"):
        train(tmp_path, epochs=2, resume=tmp_path)
    monkeypatch.undo()
    assert checkpoint_bytes(tmp_path) == before
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best.pt", "last.pt"]  # no temporaries
    assert load_checkpoint(tmp_path / "checkpoints" / "best.pt")["epoch"] == 1


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write into read-only folders")
def test_read_only_run_folder_with_chmod(tmp_path) -> None:
    train(tmp_path, epochs=1)
    before = checkpoint_bytes(tmp_path)
    ckpt = tmp_path / "checkpoints"
    ckpt.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(WorkshopError, match="cannot write checkpoint .*Permission denied"):
            train(tmp_path, epochs=2, resume=tmp_path)
    finally:
        ckpt.chmod(stat.S_IRWXU)
    assert checkpoint_bytes(tmp_path) == before


def test_interrupt_while_best_checkpoint_is_written_keeps_the_old_one(tmp_path, monkeypatch) -> None:
    train(tmp_path, epochs=1)
    good = (tmp_path / "checkpoints" / "best.pt").read_bytes()
    real_save = torch.save
    calls = {"n": 0}

    def save_then_interrupt(obj, fh, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:  # the first write of epoch 2 is best.pt: half of it, then Ctrl-C
            fh.write(b"half a checkpoint")
            raise KeyboardInterrupt
        return real_save(obj, fh, *args, **kwargs)

    import workshop.engine

    rule = "is_improvement" if hasattr(workshop.engine, "is_improvement") else "_is_better"
    monkeypatch.setattr(workshop.engine, rule, lambda value, best, monitor: True)  # epoch 2 saves best.pt first
    monkeypatch.setattr(torch, "save", save_then_interrupt)
    result = train(tmp_path, epochs=3, resume=tmp_path)
    monkeypatch.undo()
    assert result.stopped_reason == "interrupted"
    assert (tmp_path / "checkpoints" / "best.pt").read_bytes() == good
    assert load_checkpoint(tmp_path / "checkpoints" / "interrupted.pt")["interrupted"] is True
    resumed = train(tmp_path, epochs=3, resume=tmp_path)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]


def _crash_while_saving(path: str) -> None:
    """In a child process: start writing a checkpoint, then die without any clean-up."""

    def dying_save(obj, fh, *args, **kwargs):
        fh.write(b"\x80\x02 half a pickle")
        fh.flush()
        os._exit(3)

    torch.save = dying_save
    save_checkpoint({"epoch": 99}, path)


def test_process_killed_mid_checkpoint_keeps_the_previous_file(tmp_path) -> None:
    path = save_checkpoint({"epoch": 1, "w": torch.arange(4)}, tmp_path / "best.pt")
    good = path.read_bytes()
    child = multiprocessing.get_context("fork").Process(target=_crash_while_saving, args=(str(path),))
    child.start()
    child.join(30)
    assert child.exitcode == 3
    assert path.read_bytes() == good
    assert load_checkpoint(path)["epoch"] == 1


def test_nan_loss_mid_run_keeps_the_last_good_checkpoint(tmp_path) -> None:
    saved: dict[int, dict[str, bytes]] = {}
    steps_per_epoch = 3  # 24 samples / batch 8; validation adds one loss call per epoch
    with pytest.raises(TrainingError) as info:
        train(tmp_path, epochs=3, loss=failing_after(steps_per_epoch + 1 + 2, nan=True),
              on_epoch_end=lambda h: saved.setdefault(len(h), checkpoint_bytes(tmp_path)))
    message = str(info.value)
    assert message.startswith("loss became nan at epoch 2, step 1. Likely causes: a learning rate too high")
    assert "mask values that are not class ids (this batch has {0, 1})" in message
    assert "images that were not normalised. The last good checkpoint is kept." in message
    assert checkpoint_bytes(tmp_path) == saved[1]
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] == 1


def test_interrupt_mid_epoch_saves_and_resume_works(tmp_path, capsys) -> None:
    result = train(tmp_path, epochs=3, loss=failing_after(3 + 1 + 2, error=KeyboardInterrupt()))
    assert result.stopped_reason == "interrupted" and [h["epoch"] for h in result.history] == [1]
    out = capsys.readouterr().out
    assert out.startswith("Interrupted during epoch 2. Saved ") and f"--resume {tmp_path}" in out
    assert load_checkpoint(tmp_path / "checkpoints" / "interrupted.pt")["epoch"] == 1
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] == 1
    resumed = train(tmp_path, epochs=3, resume=tmp_path)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3] and resumed.stopped_reason == "finished"


def test_time_budget_stops_after_the_current_step_and_saves(tmp_path) -> None:
    from workshop.budget import Budget

    result = train(tmp_path, epochs=50, hooks=[Budget(max_minutes=1e-7)])
    assert result.stopped_reason == "time budget of 1e-07 min reached"
    assert len(result.history) == 1 and result.history[0]["partial"] is True
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] == 1


# ----------------------------------------------------------------------------- faults through `workshop train`


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    """Smoke profile, a tiny model instead of the U-Net and no figures (the CLI path is what is tested)."""
    monkeypatch.setenv("WORKSHOP_PROFILE", "smoke")
    monkeypatch.setattr(runs, "build_model", lambda cfg, num_classes: tiny_model())
    monkeypatch.setattr(runs, "write_run_figures", lambda *args, **kwargs: None)
    config = tmp_path / "smoke.yaml"
    config.write_text("train:\n  epochs: 2\n  scheduler: none\n")
    return tmp_path, config


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_unwritable_run_folder_is_one_line(cli_env, capsys) -> None:
    tmp_path, config = cli_env
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the run folder should go")
    code, _, err = run_cli(capsys, "train", "--config", str(config), "--run-dir", str(blocker / "run"))
    assert code == 2
    assert err == f"error: cannot write the run folder {blocker / 'run'}: Not a directory (choose another folder with --run-dir)\n"


def test_cli_permission_denied_on_checkpoint_is_one_line(cli_env, capsys, monkeypatch) -> None:
    tmp_path, config = cli_env

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    code, _, err = run_cli(capsys, "train", "--config", str(config), "--run-dir", str(tmp_path / "run"))
    assert code == 2
    assert err == f"error: cannot write checkpoint {tmp_path / 'run' / 'checkpoints' / 'best.pt'}: Permission denied\n"


def test_cli_nan_loss_is_one_line_and_keeps_epoch_one(cli_env, capsys, monkeypatch) -> None:
    import workshop.losses

    tmp_path, config = cli_env
    # the recipe caps the batch to 2 for the 13 training images: 6 steps + 2 validation batches per epoch
    monkeypatch.setattr(workshop.losses, "create_loss", lambda *a, **k: failing_after(6 + 2 + 1, nan=True))
    code, _, err = run_cli(capsys, "train", "--config", str(config), "--run-dir", str(tmp_path / "run"))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: loss became nan at epoch 2, step 0. Likely causes:")
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["epoch"] == 1


def test_cli_interrupt_then_resume_with_a_budget(cli_env, capsys, monkeypatch) -> None:
    import workshop.losses

    tmp_path, config = cli_env
    real = workshop.losses.create_loss
    monkeypatch.setattr(workshop.losses, "create_loss", lambda *a, **k: failing_after(6 + 2 + 1, error=KeyboardInterrupt()))
    run = tmp_path / "run"
    code, out, _ = run_cli(capsys, "train", "--config", str(config), "--run-dir", str(run))
    assert code == 0 and "finished (interrupted): best epoch 1" in out and f"--resume {run}" in out
    assert load_checkpoint(run / "checkpoints" / "interrupted.pt")["epoch"] == 1
    monkeypatch.setattr(workshop.losses, "create_loss", real)
    code, out, _ = run_cli(capsys, "train", "--resume", str(run), "--max-minutes", "5")
    assert code == 0 and "finished (finished)" in out
    assert [h["epoch"] for h in load_checkpoint(run / "checkpoints" / "last.pt")["history"]] == [1, 2]


def test_cli_time_budget(cli_env, capsys) -> None:
    tmp_path, config = cli_env
    code, out, _ = run_cli(capsys, "train", "--config", str(config), "--run-dir", str(tmp_path / "run"), "--max-minutes", "1e-7")
    assert code == 0 and "finished (time budget of 1e-07 min reached)" in out
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["history"][0]["partial"] is True


def test_cli_broken_data_is_refused_before_training(cli_env, capsys) -> None:
    tmp_path, _ = cli_env
    data = tmp_path / "mydata"
    for name in ("a", "b", "c", "d"):
        write_pair(data, name)
    (data / "masks" / "b.png").write_bytes(b"")
    Image.fromarray(bar() // 2).save(data / "masks" / "c.png")
    config = tmp_path / "folder.yaml"
    config.write_text(f"data:\n  source: folder\n  root: {data}\n  masks_dir: masks\n")
    code, _, err = run_cli(capsys, "train", "--config", str(config), "--run-dir", str(tmp_path / "run"))
    assert code == 2
    lines = err.splitlines()
    assert lines[0] == (f"error: data check found 2 error(s) in 2 file(s) under {data}; training not started "
                        "(full report: workshop data check)")
    assert lines[1:] == [
        "masks/b.png", "  error: zero-byte (empty) mask file: the copy or download did not finish",
        "masks/c.png", "  error: binary mask has values {0, 127}; expected 0/1 or 0/255 (a JPEG mask or smoothed "
        "edges? save masks as PNG with exact values)",
    ]
    assert not (tmp_path / "run").exists()
