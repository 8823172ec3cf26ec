"""The course website: `bash tools/build_site.sh` builds it offline, and every page is complete.

The build runs in a network namespace without network (`unshare -n`, loopback only) where the
machine allows it, so neither mystmd's Node.js side nor the theme can fetch anything; elsewhere the
course's Python network guard still covers the theme. Then, for every solution notebook: its page
exists, shows the notebook's title and every stored plot (as image files that exist), and has
Binder and Colab buttons for the exercise version; the landing page links every lesson and the
glossary; and no internal link or anchor of any page is broken.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
from test_course_links import course_links  # tests/ is on sys.path (pytest's rootdir import)

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
BUILD_TIMEOUT_S = 300



class Links(HTMLParser):
    """Collects a page's links, image sources, element ids, <h1> text and output images."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []
        self.ids: set[str] = set()
        self.h1: list[str] = []
        self.output_images: list[str] = []
        self._in_h1 = False
        self._in_output_image = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and "href" in attrs:
            self.hrefs.append(attrs["href"])
        if tag == "img" and "src" in attrs:
            self.srcs.append(attrs["src"])
            if self._in_output_image:
                self.output_images.append(attrs["src"])
        if tag == "div" and "output image" in attrs.get("class", ""):
            self._in_output_image += 1
        if tag == "h1":
            self._in_h1 = True
            self.h1.append("")

    def handle_endtag(self, tag):
        if tag == "h1":
            self._in_h1 = False
        if tag == "div" and self._in_output_image:
            self._in_output_image -= 1

    def handle_data(self, data):
        if self._in_h1:
            self.h1[-1] += data


def _parse(path: Path) -> Links:
    parser = Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _offline_prefix() -> list[str]:
    """`unshare -n` with loopback up, if this machine lets us make a network namespace."""
    if not (shutil.which("unshare") and shutil.which("ip")):
        return []
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True)
    return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"'] if probe.returncode == 0 else []


@pytest.fixture(scope="module")
def site() -> Path:
    command = [*_offline_prefix(), "bash", str(ROOT / "tools" / "build_site.sh")]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                            timeout=BUILD_TIMEOUT_S, env={**os.environ, "NO_COLOR": "1"})
    seconds = time.perf_counter() - start
    assert result.returncode == 0, f"the site build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    offline = "without network" if command[0] == "unshare" else "with the Python network guard only"
    print(f"site built {offline} in {seconds:.1f} s")
    html_dir = ROOT / "_build" / "html"
    assert (html_dir / "index.html").exists()
    return html_dir


def _pages(site: Path) -> dict[Path, Links]:
    return {path: _parse(path) for path in site.rglob("*.html")}


def _title(notebook: nbformat.NotebookNode) -> str:
    for cell in notebook.cells:
        match = re.search(r"^# (.+)$", cell.source, re.M) if cell.cell_type == "markdown" else None
        if match:
            return match.group(1).strip()
    raise AssertionError("a lesson starts with a '# title'")


def _page_of(pages: dict[Path, Links], title: str) -> tuple[Path, Links]:
    found = [(path, links) for path, links in pages.items() if [h.strip() for h in links.h1] == [title]]
    assert len(found) == 1, f"one page should be titled {title!r}, found {[str(p) for p, _ in found]}"
    return found[0]


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda path: path.name)
def test_every_lesson_has_a_complete_page(site, solution):
    notebook = nbformat.read(solution, as_version=4)
    path, links = _page_of(_pages(site), _title(notebook))
    plots = sum(
        1 for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.outputs if "image/png" in output.get("data", {})
    )
    assert len(links.output_images) == plots, (
        f"{solution.name} stores {plots} plots, its page shows {len(links.output_images)}"
    )
    for src in links.output_images:
        image = (path.parent / src).resolve()
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{src} is not a PNG file"
    lesson = f"lessons/{solution.name}"
    assert course_links.binder_url(lesson) in links.hrefs, f"{path}: no Binder button for {lesson}"
    assert course_links.colab_url(lesson) in links.hrefs, f"{path}: no Colab button for {lesson}"


def test_landing_page_links_every_lesson_and_the_glossary(site):
    pages = _pages(site)
    index = pages[site / "index.html"]
    targets = {(site / unquote(urlsplit(href).path) / "index.html").resolve()
               for href in index.hrefs if not urlsplit(href).scheme}
    for solution in SOLUTIONS:
        path, _ = _page_of(pages, _title(nbformat.read(solution, as_version=4)))
        assert path.resolve() in targets, f"the landing page does not link {solution.name}'s page"
    glossary = [href for href in index.hrefs if href.endswith("#glossary")]
    assert glossary, "the landing page should link the glossary"


def test_no_broken_internal_links(site):
    pages = _pages(site)
    broken = []
    for path, links in pages.items():
        for link in [*links.hrefs, *links.srcs]:
            parts = urlsplit(link)
            if parts.scheme or link.startswith("//"):
                continue  # Binder, Colab, ...: outside the site
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{path.relative_to(site)}: {link} (no such file)")
            elif parts.fragment and target.suffix == ".html" and parts.fragment not in pages[target].ids:
                broken.append(f"{path.relative_to(site)}: {link} (no such anchor)")
    assert not broken, "broken links:\n" + "\n".join(broken)
