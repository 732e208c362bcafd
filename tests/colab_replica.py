"""A replica of Google Colab's Python environment, for tests/test_colab_replica.py.

A virtual environment holding Colab's preinstalled versions (``tests/colab/constraints.txt``) is
built once and kept outside the checkout, in ``$WORKSHOP_COLAB_REPLICA`` (default
``~/.cache/workshop/colab-replica``), so fresh clones on one machine share it: torch alone is a
530 MB download. Each
test session first puts it back as it was built (``reset``): packages added by an earlier run are
uninstalled, and an environment whose preinstalled versions changed is rebuilt.

Run by hand: ``python tests/colab_replica.py`` builds (or resets) it and prints its folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLAB = ROOT / "tests" / "colab"
CONSTRAINTS = COLAB / "constraints.txt"
CACHE = Path(os.environ.get("WORKSHOP_COLAB_REPLICA") or Path.home() / ".cache" / "workshop" / "colab-replica")
VENV = CACHE / "venv"
STAMP = CACHE / "stamp.json"
BASE = CACHE / "preinstalled.json"
PROBE = "segmentation-models-pytorch"  # on the index only, never in a local folder: the set-up cell needs it


class IndexUnreachable(RuntimeError):
    """The package index cannot be reached (the only reason the replica test skips)."""


def replica_python() -> Path:
    return VENV / "bin" / "python"


def base_interpreter() -> str:
    """Colab's Python (3.13) where this machine has one that runs (on PATH or in pyenv), else this Python."""
    candidates = [shutil.which("python3.13") or ""]
    candidates += sorted(str(p) for p in (Path.home() / ".pyenv" / "versions").glob("3.13*/bin/python3.13"))
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys, venv; print(sys.version_info[:2] == (3, 13))"],
                               capture_output=True, text=True)
        if probe.stdout.strip() == "True":
            return candidate
    return getattr(sys, "_base_executable", None) or sys.executable


def pins() -> dict[str, str]:
    """{normalised name: version} of the constraints file."""
    out = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            out[normalise(name)] = version
    return out


def normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def installed(python: Path | None = None) -> dict[str, str]:
    """{normalised name: version} of every distribution the replica's Python sees."""
    code = ("import json; from importlib import metadata; "
            "print(json.dumps({d.metadata['Name']: d.version for d in metadata.distributions()}))")
    out = subprocess.run([str(python or replica_python()), "-c", code], capture_output=True, text=True, check=True)
    return {normalise(k): v for k, v in json.loads(out.stdout).items()}


def check_index() -> None:
    """Raise ``IndexUnreachable`` when pip cannot download from the package index."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--quiet", "-d", tmp, PROBE]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired as exc:
            raise IndexUnreachable(f"pip download {PROBE} timed out") from exc
    if proc.returncode != 0:
        raise IndexUnreachable(f"pip download {PROBE} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")


def _stamp() -> dict[str, str]:
    return {"constraints": hashlib.sha256(CONSTRAINTS.read_bytes()).hexdigest(), "python": base_interpreter()}


def build() -> None:
    """Make the replica from scratch: a venv with exactly the constraints file's versions (minutes)."""
    shutil.rmtree(CACHE, ignore_errors=True)
    CACHE.mkdir(parents=True)
    subprocess.run([base_interpreter(), "-m", "venv", str(VENV)], check=True)
    pip = [str(replica_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + ["pip==" + pins()["pip"]], check=True)
    subprocess.run(pip + ["-r", str(CONSTRAINTS), "-c", str(CONSTRAINTS)], check=True)
    have = installed()
    wrong = {k: (v, have.get(k)) for k, v in pins().items() if have.get(k) != v}
    if wrong:
        raise RuntimeError(f"the replica did not get Colab's versions: {wrong}")
    BASE.write_text(json.dumps(have, indent=1, sort_keys=True))
    STAMP.write_text(json.dumps(_stamp()))


def reset() -> Path:
    """Make the replica as it was built (build it when missing or out of date); return its Python."""
    fresh = STAMP.is_file() and json.loads(STAMP.read_text()) == _stamp() and replica_python().is_file()
    if fresh:
        base = json.loads(BASE.read_text())
        have = installed()
        if any(have.get(k) != v for k, v in base.items()):
            fresh = False  # an earlier run changed a preinstalled version: start again
        else:
            extra = sorted(set(have) - set(base))
            if extra:
                subprocess.run([str(replica_python()), "-m", "pip", "uninstall", "--yes", "--quiet", *extra], check=True)
    if not fresh:
        build()
    return replica_python()


if __name__ == "__main__":
    check_index()
    print(reset())
