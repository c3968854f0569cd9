"""Notebook 02 in a real JupyterLab, driven by a real browser: run all cells, move the gain slider, and check that
the explorer re-rendered.

Playwright (the PyPI package, in the ``test`` extra) drives Debian's ``chromium`` (``.ci/run`` installs it; no
``playwright install`` browser download). The server is a local ``jupyter lab`` on a free port with a token, serving
a temp copy of the notebook with small settings (one 2 s clip); nothing here touches the network. Per
docs/reference.md §7 the test waits on the cells' execution counts and the DOM, not on the kernel's reported status.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "02_latent_enhance.ipynb"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
# Injected after the parameters cell of the temp copy (as papermill would): a quick run, widgets on.
SMALL = "max_clips = 1\nduration_s = 2.0\nmax_players = 1\ninteractive = True\n"
TOKEN = "vaelib-lab-test"
RUN_TIMEOUT_S = 300  # all cells of 02 with one 2 s clip: ~30 s on 2 busy cores


def _missing() -> str | None:
    if CHROMIUM is None:
        return "Debian `chromium` is not installed (CI: apt-get install chromium; .ci/run does it)"
    for module, extra in (("playwright.sync_api", "test"), ("jupyterlab", "lab"), ("ipywidgets", "lab")):
        try:
            __import__(module)
        except ImportError:
            return f"Python package {module.split('.')[0]} is not installed (pip install -e '.[{extra}]')"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


def _small_copy(dest: Path) -> Path:
    nb = json.loads((ROOT / "notebooks" / NOTEBOOK).read_text(encoding="utf-8"))
    cells = nb["cells"]
    (at,) = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    cells.insert(at + 1, {"cell_type": "code", "execution_count": None, "id": "vaelib-lab-test-params",
                          "metadata": {"tags": ["injected-parameters"]}, "outputs": [], "source": SMALL})
    for c in cells:
        if c["cell_type"] == "code":
            c["outputs"], c["execution_count"] = [], None
    path = dest / NOTEBOOK
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _jupyter_lab(root: Path, home: Path):
    """A local JupyterLab serving ``root``; its config, data, runtime and settings dirs live in ``home``."""
    port = _free_port()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), IPYTHONDIR=str(home / "ipython"),
               MPLBACKEND="Agg", HF_HUB_OFFLINE="1")
    notification = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.token={TOKEN}",
           f"--ServerApp.root_dir={root}", "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.expose_app_in_browser=True"]
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited ({proc.returncode}): {(home / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer within 90 s: {(home / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(OSError):  # clean shutdown: the server stops its kernels
            req = urllib.request.Request(f"{url}/api/shutdown?token={TOKEN}", method="POST")
            urllib.request.urlopen(req, timeout=5).close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # this server's own process group (kernel included)
            proc.wait(timeout=10)
        log.close()


# JavaScript run in the page; window.jupyterapp exists because of --LabApp.expose_app_in_browser.
_PANEL = "const app = window.jupyterapp; const panel = app.shell.currentWidget;"
_READY = f"""async () => {{ {_PANEL}
    await panel.context.ready; await panel.sessionContext.ready;
    return !!(panel.sessionContext.session && panel.sessionContext.session.kernel); }}"""
# Not awaited: _wait_until_run polls the cells (with a timeout) instead of trusting the command's promise.
_RUN_ALL = f"""() => {{ {_PANEL} app.commands.execute('notebook:run-all-cells'); return true; }}"""
# null while running; else {{done: bool, error: str|null}} over all code cells of the model.
_PROGRESS = f"""() => {{ {_PANEL}
    const cells = panel.content.model.cells; let done = true; let error = null;
    for (let i = 0; i < cells.length; i++) {{
        const c = cells.get(i); if (c.type !== 'code') continue;
        if (c.executionCount === null) done = false;
        for (let j = 0; j < c.outputs.length; j++) {{
            const o = c.outputs.get(j).toJSON();
            if (o.output_type === 'error') error = `cell ${{i}}: ${{o.ename}}: ${{o.evalue}}`;
        }}
    }}
    return {{done, error, prompts: Array.from(document.querySelectorAll('.jp-InputPrompt'))
                              .map(e => e.textContent.trim())}}; }}"""
# The explorer's output (the ipywidgets Output inside the explorer VBox): figure PNG and metrics table text.
_EXPLORER = """() => {
    const box = document.querySelector('.widget-vbox .widget-output');
    if (!box) return null;
    const img = box.querySelector('img'); const table = box.querySelector('table');
    return {img: img ? img.getAttribute('src') : null, table: table ? table.textContent : null}; }"""


def _wait_until_run(page, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    state = None
    while time.monotonic() < deadline:
        state = page.evaluate(_PROGRESS)
        if state["error"]:
            pytest.fail(f"notebook 02 failed in JupyterLab: {state['error']}")
        if state["done"] and not any("*" in p for p in state["prompts"]):
            return state
        time.sleep(1.0)
    pytest.fail(f"notebook 02 did not finish within {timeout_s:.0f} s (prompts: {state and state['prompts']})")


def test_notebook_02_runs_in_jupyterlab_and_the_gain_slider_rerenders_the_explorer(tmp_path):
    from playwright.sync_api import sync_playwright

    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir()
    home.mkdir()
    _small_copy(root)
    with _jupyter_lab(root, home) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={TOKEN}")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
                                   "&& window.jupyterapp.shell.currentWidget.content "
                                   "&& window.jupyterapp.shell.currentWidget.content.model", timeout=120_000)
            assert page.evaluate(_READY), "the notebook's kernel did not start"
            page.evaluate(_RUN_ALL)
            _wait_until_run(page, RUN_TIMEOUT_S)

            # The explorer rendered: a gain slider and the output area with a figure and a metrics table.
            slider = page.locator(".widget-slider", has=page.locator("label", has_text="gain")).first
            slider.wait_for(state="attached", timeout=120_000)
            slider.scroll_into_view_if_needed()  # JupyterLab skips rendering off-screen cells
            page.wait_for_function(f"() => {{ const s = ({_EXPLORER})(); return s && s.img && s.table; }}",
                                   timeout=120_000)
            before = page.evaluate(_EXPLORER)
            handle = slider.locator(".noUi-handle").first
            assert float(handle.get_attribute("aria-valuenow")) == pytest.approx(1.5)

            # Keyboard on the slider handle: 4 steps of 0.05 (each key press commits one change).
            handle.focus()
            for _ in range(4):
                handle.press("ArrowRight")
            page.wait_for_function(
                f"(old) => {{ const s = ({_EXPLORER})(); return s && s.img && s.img !== old.img "
                "&& s.table !== old.table; }", arg=before, timeout=120_000)
            assert float(handle.get_attribute("aria-valuenow")) == pytest.approx(1.7)
            assert slider.locator(".widget-readout").text_content().strip() == "1.70"
            after = page.evaluate(_EXPLORER)
            assert after["img"].startswith("data:image/png;base64,")
            assert after["img"] != before["img"] and after["table"] != before["table"]
        except Exception:
            with contextlib.suppress(Exception):
                page.screenshot(path=str(tmp_path / "failure.png"))
            raise
        finally:
            browser.close()
