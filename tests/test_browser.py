"""The widgets in a real browser: JupyterLab runs notebooks 02 and 08, Chromium shows and moves them.

JupyterLab is started on 127.0.0.1 with a token, on copies of the notebooks with the reference answers
(what an instructor's CI runs), under the smoke profile. Playwright drives Debian's Chromium
(``/usr/bin/chromium``, from ``apt-get install chromium fonts-liberation``) through
``executable_path``; no browser is ever downloaded (never ``playwright install``). The test runs
every cell from the Run menu, then checks that each widget shows its controls and picture (no
"Error displaying widget"), that moving a slider changes the picture, and that no cell ended in an
error. Screenshots are kept in ``runs/browser-test/`` (``WORKSHOP_SCREENSHOTS`` to change it).

Skipped when Chromium or Playwright is absent.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from workshop import notebook as nbtools

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("WORKSHOP_CHROMIUM", "/usr/bin/chromium"))
SHOTS = Path(os.environ.get("WORKSHOP_SCREENSHOTS", ROOT / "runs" / "browser-test"))
RUN_TIMEOUT_S = 300

if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium fonts-liberation)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, _data_dir: Path):
    """A JupyterLab server on 127.0.0.1 with a token, serving solved copies of notebooks 02 and 08."""
    folder = tmp_path_factory.mktemp("lab")
    for name in ("02_augmentation.ipynb", "08_inference.ipynb"):
        nbtools.write_notebook(nbtools.solve(nbtools.read_notebook(ROOT / "notebooks" / name)), folder / name)
    settings = folder / ".settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # every cell stays in the page (no virtual scrolling), so outputs far down can be inspected
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    token, port = secrets.token_hex(16), _free_port()
    env = dict(os.environ, WORKSHOP_PROFILE="smoke", WORKSHOP_OFFLINE="1", WORKSHOP_DATA_DIR=str(_data_dir),
               JUPYTERLAB_SETTINGS_DIR=str(folder / ".settings"), JUPYTERLAB_WORKSPACES_DIR=str(folder / ".ws"),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), MPLBACKEND="Agg")
    log = open(folder / "jupyter.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}", "--LabApp.expose_app_in_browser=True",
         *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"JupyterLab did not start:\n{(folder / 'jupyter.log').read_text()[-3000:]}")
            time.sleep(0.5)
    try:
        yield {"base": base, "token": token, "folder": folder}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def _run_notebook(browser, lab: dict, name: str):
    """Open ``name`` in JupyterLab, run every cell from the Run menu, save; returns the page."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{lab['base']}/lab/tree/{name}?token={lab['token']}&reset")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel", timeout=60_000)
    page.click(".jp-Notebook")
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    # done when the kernel is idle and no prompt says [*] (running) or [ ] (queued, not yet run)
    page.wait_for_function(
        """() => {
            const w = window.jupyterapp.shell.currentWidget;
            const status = w.sessionContext.session.kernel.status;
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent);
            return status === 'idle' && prompts.length > 0 && prompts.every(t => /\\[\\d+\\]/.test(t));
        }""",
        timeout=RUN_TIMEOUT_S * 1000, polling=1000,
    )
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_timeout(1500)
    return page


def _error_outputs(path: Path) -> list[str]:
    nb = nbtools.read_notebook(path)
    return [f"{o.get('ename')}: {o.get('evalue')}" for c in nb["cells"] if c["cell_type"] == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]


def _widget(page, index: int = 0):
    """The ``index``-th rendered widget box (a VBox holding sliders and a picture)."""
    boxes = page.locator(".jp-OutputArea-output .widget-vbox")
    boxes.nth(index).wait_for(timeout=60_000)
    box = boxes.nth(index)
    box.scroll_into_view_if_needed()
    return box


def _picture(box) -> bytes:
    img = box.locator(".widget-image").first
    img.wait_for(timeout=30_000)
    return img.screenshot()


def _move_slider(page, box, label: str, value: str) -> None:
    """Type a new value into the slider's readout, as a learner can, and wait for the redraw."""
    slider = box.locator(".widget-slider").filter(has=page.locator(f"label:text-is('{label}')"))
    readout = slider.locator(".widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(value)
    page.keyboard.press("Enter")


def _picture_after(page, box, before: bytes, timeout_s: float = 30) -> bytes:
    """The picture once it differs from ``before`` (a redraw takes about a second on 2 cores)."""
    deadline = time.monotonic() + timeout_s
    while True:
        page.wait_for_timeout(500)
        after = _picture(box)
        if after != before or time.monotonic() > deadline:
            page.wait_for_timeout(500)  # the caption is updated with the picture
            return after


def _save(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=False)
    return path


def _no_widget_errors(page) -> None:
    assert page.get_by_text("Error displaying widget").count() == 0
    assert page.get_by_text("Failed to load model class").count() == 0


def test_augmentation_explorer_in_jupyterlab(browser, lab) -> None:
    page = _run_notebook(browser, lab, "02_augmentation.ipynb")
    try:
        _no_widget_errors(page)
        box = _widget(page)
        assert box.locator(".widget-dropdown select").count() == 1  # the transform picker
        assert box.locator(".widget-slider").count() >= 1  # its parameters
        before = _picture(box)
        _save(page, "02_explorer_before.png")
        labels = [t.strip() for t in box.locator(".widget-slider label").all_text_contents()]
        label = next(t for t in labels if t != "seed")  # a parameter of the transform (the default: the angle)
        slider = box.locator(".widget-slider").filter(has=page.locator(f"label:text-is('{label}')"))
        readout = slider.locator(".widget-readout").text_content().strip()
        _move_slider(page, box, label, str(float(readout) / 2 + 7))
        after = _picture_after(page, box, before)
        _save(page, "02_explorer_after.png")
        assert after != before, f"moving {label!r} did not change the picture"
        _no_widget_errors(page)
        assert _error_outputs(lab["folder"] / "02_augmentation.ipynb") == []
    finally:
        page.close()


def test_inference_viewer_in_jupyterlab(browser, lab) -> None:
    page = _run_notebook(browser, lab, "08_inference.ipynb")
    try:
        _no_widget_errors(page)
        box = _widget(page)
        labels = [t.strip() for t in box.locator(".widget-slider label").all_text_contents()]
        assert {"image", "threshold", "opacity"} <= set(labels), labels
        caption = box.locator(".widget-html").first
        before, before_caption = _picture(box), caption.text_content()
        _save(page, "08_viewer_threshold_0.5.png")
        _move_slider(page, box, "threshold", "0.2")
        after = _picture_after(page, box, before)
        after_caption = caption.text_content()
        _save(page, "08_viewer_threshold_0.2.png")
        assert after != before, "moving the threshold did not change the picture"
        share = [c.split("predicted foreground ")[1].split("%")[0] for c in (before_caption, after_caption)]
        assert share[0] != share[1], f"the threshold edge did not move: {before_caption!r} -> {after_caption!r}"
        _no_widget_errors(page)
        assert _error_outputs(lab["folder"] / "08_inference.ipynb") == []
    finally:
        page.close()
