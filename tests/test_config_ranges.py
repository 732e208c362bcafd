"""Numbers a run cannot use are refused with their range; `train` names its run folder train-*."""

from __future__ import annotations

import pytest

from workshop import runs
from workshop.cli import main
from workshop.config import RANGES, load_config
from workshop.errors import ConfigError

BAD = [
    ("train.epochs=-1", "train.epochs=-1 is out of range; expected a value >= 1"),
    ("train.epochs=0", ">= 1"),
    ("train.lr=0", "> 0 and <= 10"),
    ("train.lr=-0.001", "> 0"),
    ("train.max_minutes=0", "train.max_minutes=0.0 is out of range; expected a value > 0"),
    ("train.threshold=1", "> 0 and < 1"),
    ("train.weight_decay=-1", ">= 0"),
    ("augment.hflip=1.5", "augment.hflip=1.5 is out of range; expected a value >= 0 and <= 1"),
    ("augment.noise=-0.1", ">= 0"),
    ("data.val_fraction=0", "> 0 and < 1"),
    ("data.batch_size=0", ">= 1"),
    ("data.num_images=1", ">= 2"),
    ("data.image_size=4", ">= 8 and <= 4096"),
    ("data.num_workers=-2", ">= 0"),
]


@pytest.mark.parametrize(("override", "message"), BAD, ids=[o for o, _ in BAD])
def test_out_of_range_values_are_refused(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match="out of range") as err:
        load_config(profile="smoke", overrides=[override])
    assert message in str(err.value)


@pytest.mark.parametrize("override", ["train.epochs=1", "train.lr=10", "augment.hflip=0", "augment.hflip=1",
                                      "train.max_minutes=0.5", "train.max_minutes=none", "data.num_workers=0"])
def test_values_at_the_edges_are_accepted(override: str) -> None:
    load_config(profile="smoke", overrides=[override])


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu"])
def test_every_profile_is_in_range(profile: str) -> None:
    load_config(profile=profile)


@pytest.mark.parametrize("section", ["data", "augment", "train"])  # model has only names
def test_every_numeric_key_has_a_range(section: str) -> None:
    """Every int or float key (``int | None`` too) of every section is range-checked; strings are choices."""
    import types
    import typing
    from dataclasses import fields

    cls = type(getattr(load_config(profile="smoke"), section))
    hints = typing.get_type_hints(cls)
    numeric = set()
    for f in fields(cls):
        hint = hints[f.name]
        args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        if any(a in (int, float) for a in args):
            numeric.add(f"{section}.{f.name}")
    assert numeric, f"{section} has no numeric keys: the test would check nothing"
    assert numeric <= set(RANGES), f"numeric keys without a range: {sorted(numeric - set(RANGES))}"


def test_cli_refuses_negative_epochs_with_exit_code_2(tmp_path, capsys) -> None:
    config = tmp_path / "x.yaml"
    config.write_text("data:\n  source: embedded\n")
    assert main(["train", "--config", str(config), "--set", "train.epochs=-1"]) == 2
    assert "train.epochs=-1 is out of range" in capsys.readouterr().err


class _Named(Exception):
    pass


def test_train_on_the_embedded_source_names_its_folder_train(tmp_path, monkeypatch) -> None:
    names: list[str] = []

    def record(base, name="run"):
        names.append(name)
        raise _Named

    monkeypatch.setattr(runs, "new_run_dir", record)
    config = tmp_path / "x.yaml"
    config.write_text(f"run_dir: {tmp_path}\ndata:\n  source: embedded\n")
    with pytest.raises(_Named):
        main(["train", "--config", str(config)])
    with pytest.raises(_Named):
        runs.quickstart(profile="smoke", log=lambda s: None)
    with pytest.raises(_Named):
        main(["quickstart", "--profile", "smoke"])
    assert names == ["train", "quickstart", "quickstart"]
