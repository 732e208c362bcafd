"""Config: layers, profiles, and the errors a typo produces."""

from __future__ import annotations

import pytest

from workshop.config import PROFILES, load_config, resolve_profile, save_config
from workshop.errors import ConfigError


@pytest.mark.parametrize(
    ("profile", "image_size", "epochs"),
    [("smoke", 64, 1), ("cpu", 128, 5), ("gpu", 256, 25)],
)
def test_profiles_size_the_run(profile: str, image_size: int, epochs: int) -> None:
    cfg = load_config(profile=profile)
    assert cfg.profile == profile
    assert cfg.data.image_size == image_size
    assert cfg.train.epochs == epochs


@pytest.mark.parametrize(("profile", "decoder"), [("smoke", "light"), ("cpu", "light"), ("gpu", "standard")])
def test_the_cpu_recipe_uses_the_light_decoder(profile: str, decoder: str) -> None:
    assert load_config(profile=profile).model.decoder == decoder


def test_layers_apply_in_order(tmp_path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("profile: smoke\ntrain:\n  lr: 0.05\n  epochs: 3\ndata:\n  task: multiclass\n")
    cfg = load_config(path, overrides=["train.epochs=7"])
    assert cfg.profile == "smoke"  # from the file
    assert cfg.data.image_size == 64  # from the profile
    assert cfg.train.lr == 0.05  # from the file
    assert cfg.train.epochs == 7  # the override wins
    assert cfg.data.task == "multiclass"
    assert cfg.model.arch == "unet"  # a default


def test_save_then_load_round_trips(tmp_path) -> None:
    cfg = load_config(profile="smoke", overrides={"train": {"lr": 0.123}, "model": {"encoder_weights": None}})
    again = load_config(save_config(cfg, tmp_path / "c.yaml"))
    assert again == cfg


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (["train.lrr=0.1"], ["unknown config key 'train.lrr'", "did you mean 'train.lr'", "epochs, lr"]),
        ({"trian": {"lr": 1}}, ["unknown config key 'trian'", "did you mean 'train'", "data, augment, model, train"]),
        (["train.optimizer=adagrad"], ["train.optimizer='adagrad'", "adam, adamw, sgd"]),
        (["data.task=panoptic"], ["binary, multiclass"]),
        (["train.epochs=three"], ["train.epochs='three'", "expected int"]),
        (["data.batch_size=true"], ["expected int"]),
        (["model.decoder=tiny"], ["model.decoder='tiny'", "light, standard"]),
    ],
)
def test_bad_keys_and_values_name_the_choices(overrides, fragments) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(profile="smoke", overrides=overrides)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_unknown_profile_lists_profiles(monkeypatch) -> None:
    with pytest.raises(ConfigError, match="smoke, cpu, gpu"):
        resolve_profile("laptop")
    monkeypatch.setenv("WORKSHOP_PROFILE", "tiny")
    with pytest.raises(ConfigError, match="WORKSHOP_PROFILE 'tiny'"):
        resolve_profile(None)


def test_profile_detection_follows_the_hardware(monkeypatch) -> None:
    import torch

    monkeypatch.delenv("WORKSHOP_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_profile(None) == "gpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_profile(None) == "cpu"
    monkeypatch.setenv("WORKSHOP_PROFILE", "smoke")
    assert resolve_profile(None) == "smoke"
    assert set(PROFILES) == {"smoke", "cpu", "gpu"}


def test_missing_and_malformed_files(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(bad)


@pytest.mark.parametrize(("text", "value"), [("train.lr=1e-3", 0.001), ("train.lr=2.5E-4", 0.00025), ("train.max_minutes=1e-07", 1e-07)])
def test_scientific_notation_overrides_are_numbers(text: str, value: float) -> None:
    key = text.split("=")[0].split(".")[1]
    assert getattr(load_config(profile="smoke", overrides=[text]).train, key) == pytest.approx(value)
