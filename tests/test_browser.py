"""Lesson 00 in a real browser: JupyterLab + Chromium, driven by Playwright.

nbval proves the notebooks run; it cannot see what a learner sees. This test starts JupyterLab
with the README's run command (`jupyter lab ...` and its arguments, plus 127.0.0.1, a random port
and token) in a temporary copy of the course (lessons/, solutions/, forgetkit/; the repository
stays clean), opens in Debian's Chromium the page that command opens, and checks that it is
lesson 00 with the course folder as the root (solutions/ in the file browser) and without
JupyterLab's "get notified about official Jupyter news?" prompt (the course's Lab settings,
installed by `pip install -e .`). It then runs every cell from the Run menu and checks the page:
an ipywidgets widget rendered (not "Error displaying widget" / "model not found", the symptom of
a missing jupyterlab_widgets), a matplotlib image in an output, no error output, and no tqdm
"IProgress not found" warning. A full-page screenshot goes to artifacts/browser-lesson.png.

The browser is the system Chromium (tools/install_browser.sh installs it); Playwright's own
browser download (`playwright install`) is never used. The server inherits the offline guard
from conftest.py, so this also shows that Lab and the lesson work without network access.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
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
README = ROOT / "README.md"
# What the temporary course copy holds (the folders a learner's file browser should show).
COURSE_FOLDERS = ("lessons", "solutions", "forgetkit")
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
# virtual scrolling). The news and update settings are deliberately not set here: they must come
# from the course's own settings, which `pip install -e .` puts into this environment.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
NOTIFICATION_PLUGIN = "@jupyterlab/apputils-extension:notification"
NEWS_PROMPT = "official Jupyter news"


def readme_lab_arguments() -> list[str]:
    """The arguments of `jupyter lab` in the README's "Run the course" command."""
    section = README.read_text(encoding="utf-8").split("**Run the course**", 1)[1]
    command = re.search(r"```bash\n(.+?)\n```", section, re.S).group(1)
    for part in command.split("&&"):
        words = shlex.split(part)
        if words[:2] == ["jupyter", "lab"]:
            return words[2:]
    raise AssertionError(f"the README's run command starts no `jupyter lab`: {command!r}")


def _notebook_argument(arguments: list[str]) -> str:
    notebooks = [word for word in arguments if word.endswith(".ipynb")]
    assert len(notebooks) == 1, f"the run command should open one notebook: {arguments}"
    return notebooks[0]


NOTEBOOK_ARGUMENT = _notebook_argument(readme_lab_arguments())  # e.g. lessons/00_welcome.ipynb
NOTEBOOK = ROOT / NOTEBOOK_ARGUMENT


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
    """A JupyterLab server in a subprocess, started in `course_dir` with the README's arguments."""

    def __init__(self, course_dir: Path, home: Path) -> None:
        self.course_dir = course_dir
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / "jupyterlab.log"
        self.runtime_dir = home / "runtime"
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.runtime_dir),
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
            *readme_lab_arguments(),
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--port-retries=0",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.allow_remote_access=False",
            "--LabApp.extension_manager=readonly",  # no PyPI lookups for the extension manager
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")  # containers and CI machines often run as root
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=course_dir,
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

    def opened_page(self) -> str:
        """The file:// page the server writes for a browser to open (what `jupyter lab` itself
        would open without --no-browser): it redirects to the notebook given on the command line."""
        pages = sorted(self.runtime_dir.glob("jpserver-file-to-run-*-open.html"))
        assert pages, f"JupyterLab wrote no page to open the notebook:\n{_tail(self.log)}"
        return pages[-1].as_uri()

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
    """JupyterLab in a temporary copy of the course (the repository stays clean)."""
    course_dir = tmp_path / "course"
    for folder in COURSE_FOLDERS:
        shutil.copytree(ROOT / folder, course_dir / folder,
                        ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    _copy_without_outputs(NOTEBOOK, course_dir / NOTEBOOK_ARGUMENT)
    server = Lab(course_dir, tmp_path)
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
        kernels = [s["kernel"] for s in sessions if s.get("path", "") == NOTEBOOK_ARGUMENT]
        ready = any(k.get("execution_state") == "idle" and k.get("connections", 0) for k in kernels)
        indicator = page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator")
        if ready and indicator.count() and indicator.first.get_attribute("data-status") == "idle":
            return
        page.wait_for_timeout(250)
    pytest.fail("the notebook's kernel did not start in time")


def _check_file_browser_shows_the_course(page, deadline: float) -> None:
    """The file browser's root is the course folder: solutions/ and forgetkit/ are reachable.

    Lab opens the file browser in the notebook's folder (lessons/), possibly after this test has
    clicked the home crumb, so click and look again until the root shows or time runs out."""
    listing = page.locator(".jp-FileBrowser .jp-DirListing-item .jp-DirListing-itemText")
    names: set[str] = set()
    while time.monotonic() < deadline:
        page.locator(".jp-FileBrowser .jp-BreadCrumbs-home").first.click()
        page.wait_for_timeout(500)
        names = {text.strip() for text in listing.all_inner_texts()}
        if set(COURSE_FOLDERS) <= names:
            return
    pytest.fail(f"the file browser's root shows {sorted(names)}, not {COURSE_FOLDERS}")


def _check_course_lab_settings(lab: Lab) -> None:
    """The course's overrides are in force: Lab neither asks about news nor checks for updates."""
    answer = json.loads(lab.api(f"/lab/api/settings/{NOTIFICATION_PLUGIN}"))
    # The server folds overrides into the schema's defaults; the user's own settings come on top.
    defaults = {key: spec.get("default") for key, spec in answer["schema"]["properties"].items()}
    settings = {**defaults, **(answer.get("settings") or {})}
    assert settings.get("fetchNews") == "false", f"{NOTIFICATION_PLUGIN}: {settings}"
    assert settings.get("checkForUpdates") is False, f"{NOTIFICATION_PLUGIN}: {settings}"


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
            # The page `jupyter lab` opens: it redirects to the notebook, served from the root.
            page.goto(lab.opened_page(), wait_until="domcontentloaded", timeout=ms_left())
            page.wait_for_url(re.compile(r"/lab/tree/"), timeout=ms_left())
            assert f"/lab/tree/{NOTEBOOK_ARGUMENT}" in page.url, f"landed on {page.url}"
            # The notebook is open and its kernel has started.
            page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=ms_left())
            tab = page.locator(
                "#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel"
            ).first
            assert tab.inner_text().strip() == NOTEBOOK.name, f"current tab: {tab.inner_text()!r}"
            _check_file_browser_shows_the_course(page, deadline)
            _check_course_lab_settings(lab)
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
            # Lab asks about news a moment after it starts; a minute later it still has not.
            toasts = " ".join(page.locator(".Toastify__toast").all_inner_texts())
            assert NEWS_PROMPT not in toasts, f"JupyterLab shows its news prompt: {toasts!r}"
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
