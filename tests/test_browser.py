"""Lesson 00 in a real browser: JupyterLab + Chromium, driven by Playwright.

nbval proves the notebooks run; it cannot see what a learner sees. This test starts JupyterLab
(this Python environment, 127.0.0.1, a random port and token, a temporary copy of the notebook,
so the repository stays clean), opens the lesson in Debian's Chromium, runs every cell from the
Run menu and checks the page: an ipywidgets widget rendered (not "Error displaying widget" /
"model not found", the symptom of a missing jupyterlab_widgets), a matplotlib image in an output,
no error output, and no tqdm "IProgress not found" warning. A full-page screenshot goes to
artifacts/browser-lesson.png.

The browser is the system Chromium (tools/install_browser.sh installs it); Playwright's own
browser download (`playwright install`) is never used. The server inherits the offline guard
from conftest.py, so this also shows that Lab and the lesson work without network access.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The lesson a learner opens first (and the one the Binder badge opens). The environment variable
# lets a developer point the test at another notebook.
NOTEBOOK = Path(os.environ.get("FORGETKIT_BROWSER_NOTEBOOK", ROOT / "lessons" / "00_welcome.ipynb"))
SCREENSHOT = ROOT / "artifacts" / "browser-lesson.png"
TIMEOUT_S = 120  # for the whole test; it normally takes about 30 s
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INSTALL_HINT = "run tools/install_browser.sh (installs Debian's chromium with apt-get)"
# JupyterLab settings for the test's private config folder: all cells stay in the page (no
# virtual scrolling), and Lab neither fetches news nor checks for updates.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


class Lab:
    """A JupyterLab server in a subprocess, serving `root_dir` on 127.0.0.1."""

    def __init__(self, root_dir: Path, home: Path) -> None:
        self.root_dir = root_dir
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / "jupyterlab.log"
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "PYTHONUNBUFFERED": "1",
        }
        settings = home / "config" / "lab" / "user-settings"
        for name, values in LAB_SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--port-retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={root_dir}",
            "--ServerApp.allow_remote_access=False",
            "--LabApp.extension_manager=readonly",  # no PyPI lookups for the extension manager
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")  # containers and CI machines often run as root
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=root_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its kernels too, so that stop() can end them all
            )

    def api(self, path: str, method: str = "GET", timeout: float = 5) -> bytes:
        request = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"JupyterLab exited with {self.process.returncode}:\n{_tail(self.log)}")
            try:
                self.api("/api/status", timeout=2)
                return
            except OSError:
                time.sleep(0.25)
        pytest.fail(f"JupyterLab did not answer in time:\n{_tail(self.log)}")

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.api("/api/shutdown", method="POST")  # also shuts down its kernels
                self.process.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


@contextmanager
def running_lab(tmp_path: Path) -> Iterator[Lab]:
    """JupyterLab serving a temporary copy of NOTEBOOK (the repository stays clean)."""
    root_dir = tmp_path / "course"
    root_dir.mkdir()
    _copy_without_outputs(NOTEBOOK, root_dir / NOTEBOOK.name)
    server = Lab(root_dir, tmp_path)
    try:
        yield server
    finally:
        server.stop()


def _copy_without_outputs(source: Path, target: Path) -> None:
    """Copy a notebook with outputs and execution counts cleared: what the page shows after
    Run All is then only what this run produced."""
    notebook = json.loads(source.read_text(encoding="utf-8"))
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    target.write_text(json.dumps(notebook, indent=1), encoding="utf-8")


def _wait_for_kernel(page, lab: Lab, deadline: float) -> None:
    """Wait until the notebook's kernel is started, connected to the page and idle.

    Lab's execution indicator reads "idle" for a moment before any kernel exists, so ask the
    server too. If Lab asks which kernel to start, accept its choice, as a learner would.
    """
    while time.monotonic() < deadline:
        dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
        if dialog.count() and dialog.first.is_visible():
            dialog.locator(".jp-mod-accept").first.click()
        sessions = json.loads(lab.api("/api/sessions"))
        kernels = [s["kernel"] for s in sessions if s.get("path", "").endswith(NOTEBOOK.name)]
        ready = any(k.get("execution_state") == "idle" and k.get("connections", 0) for k in kernels)
        indicator = page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator")
        if ready and indicator.count() and indicator.first.get_attribute("data-status") == "idle":
            return
        page.wait_for_timeout(250)
    pytest.fail("the notebook's kernel did not start in time")


def _output_texts(page, selector: str) -> list[str]:
    return [text.strip() for text in page.locator(selector).all_inner_texts()]


def test_lesson_runs_in_jupyterlab_with_widgets_and_plots(tmp_path: Path) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.fail(f"Chromium is not installed: {INSTALL_HINT}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("the playwright package is missing: pip install -r requirements-dev.txt")
    assert NOTEBOOK.exists(), f"{NOTEBOOK} does not exist"

    with running_lab(tmp_path) as lab:
        _run_lesson_in_browser(chromium, lab)


def _run_lesson_in_browser(chromium: str, lab: Lab) -> None:
    from playwright.sync_api import sync_playwright

    deadline = time.monotonic() + TIMEOUT_S
    lab.wait_ready(deadline)

    def ms_left() -> float:
        return max(1000.0, (deadline - time.monotonic()) * 1000)

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        console_errors: list[str] = []
        console: list[str] = []
        page.on("pageerror", lambda error: console_errors.append(str(error)))
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        try:
            page.goto(
                f"{lab.url}/lab/tree/{NOTEBOOK.name}?token={lab.token}",
                wait_until="domcontentloaded",
                timeout=ms_left(),
            )
            # The notebook is open and its kernel has started.
            page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=ms_left())
            _wait_for_kernel(page, lab, deadline)

            # Run > Run All Cells, as a learner would.
            page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-item:visible", has_text="Run All Cells").first.click()

            # Done when every code cell shows an execution count and the kernel is idle again.
            page.wait_for_function(
                """() => {
                    const prompts = [...document.querySelectorAll(
                        '.jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt')];
                    const done = prompts.length > 0 &&
                        prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
                    const errors = document.querySelectorAll(
                        '.jp-NotebookPanel [data-mime-type="application/vnd.jupyter.error"]');
                    const el = document.querySelector(
                        '.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
                    const idle = el && el.getAttribute('data-status') === 'idle';
                    return idle && (done || errors.length > 0);
                }""",
                timeout=ms_left(),
                polling=250,
            )

            errors = _output_texts(
                page, '.jp-NotebookPanel [data-mime-type="application/vnd.jupyter.error"]'
            )
            assert not errors, "a cell failed:\n" + "\n\n".join(errors)[-4000:]

            # An ipywidgets widget rendered (jupyterlab_widgets is installed and matches).
            widget = page.locator(".jp-NotebookPanel .jp-OutputArea .jupyter-widgets")
            widget.first.wait_for(state="visible", timeout=10_000)
            outputs = "\n".join(_output_texts(page, ".jp-NotebookPanel .jp-OutputArea-output"))
            for bad in ("Error displaying widget", "model not found"):
                assert bad not in outputs, f"a widget failed to render: {bad!r}"
            # tqdm.auto falls back to text and warns when ipywidgets cannot be used.
            assert "IProgress not found" not in outputs

            # A matplotlib figure rendered as an image, and it loaded.
            image = page.locator(".jp-NotebookPanel .jp-OutputArea .jp-RenderedImage img")
            image.first.wait_for(state="visible", timeout=10_000)
            widths = image.evaluate_all("imgs => imgs.map(img => img.naturalWidth)")
            assert widths and min(widths) > 0, f"plot images did not load: {widths}"
            assert not console_errors, f"JavaScript errors in the page: {console_errors}"
        except BaseException:  # also pytest.fail(), to show what the page and server said
            print("browser console:\n" + "\n".join(console[-60:]))
            print("JupyterLab log:\n" + _tail(lab.log))
            raise
        finally:
            _screenshot_whole_notebook(page)
            browser.close()


def _screenshot_whole_notebook(page) -> None:
    """Lab scrolls inside the notebook panel, so grow the window until every cell fits."""
    try:
        extra = page.evaluate(
            """() => {
                const nb = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer')
                    || document.querySelector('.jp-NotebookPanel .jp-Notebook');
                const cells = document.querySelectorAll('.jp-NotebookPanel .jp-Cell');
                if (!nb || !cells.length) return 0;
                const last = cells[cells.length - 1].getBoundingClientRect().bottom;
                const content = last - nb.getBoundingClientRect().top + nb.scrollTop + 40;
                return Math.max(0, content - nb.clientHeight);
            }"""
        )
        viewport = page.viewport_size or {"width": 1400, "height": 1000}
        height = int(min(viewport["height"] + extra, 16000))
        page.set_viewport_size({"width": viewport["width"], "height": height})
        page.evaluate(
            """() => document.querySelectorAll('.jp-NotebookPanel .jp-WindowedPanel-outer')
                .forEach(el => { el.scrollTop = 0; })"""
        )
        page.wait_for_timeout(500)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
    except Exception as error:  # a screenshot must never hide the real failure
        print(f"could not save {SCREENSHOT}: {error}")
