"""Every code line of the notebooks fits in a JupyterLab cell without scrolling sideways.

Measured in the real-browser setup of tests/test_browser.py (Chromium, a 1400 x 1000 window,
JupyterLab 4.6 with its file browser open at its default width): a code cell shows 123 characters
of its 13 px monospace font (7.83 px each, 966 px of editor); with the file browser closed, 155.
A line is allowed CODE_WIDTH = 100 characters, which leaves room for a wider file browser or a
smaller screen, and matches ruff's line length for the library. Markdown wraps by itself and is
not checked; lessons/ is generated from solutions/, so solutions/ is the source to fix.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE_WIDTH = 100
NOTEBOOKS = sorted((ROOT / "solutions").glob("*.ipynb"))


def long_lines(path: Path, width: int = CODE_WIDTH) -> list[str]:
    """``cell N line M (L chars): text`` for every code line of the notebook over ``width``."""
    found = []
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type != "code":
            continue
        for number, line in enumerate(cell.source.split("\n"), start=1):
            if len(line) > width:
                found.append(f"cell {index} line {number} ({len(line)} chars): {line.strip()[:60]}...")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_code_lines_fit_the_cell(path: Path) -> None:
    found = long_lines(path)
    assert not found, (
        f"solutions/{path.name}: {len(found)} code line(s) longer than {CODE_WIDTH} characters "
        "overflow a JupyterLab cell at 1400 px; wrap them:\n" + "\n".join(found)
    )


def test_long_lines_are_found(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("x" * 300),
        nbformat.v4.new_code_cell("short = 1\n" + "y = " + "1 + " * 30 + "1"),
    ])
    path = tmp_path / "demo.ipynb"
    nbformat.write(nb, path)
    assert long_lines(path) == [f"cell 1 line 2 (125 chars): {('y = ' + '1 + ' * 30)[:60]}..."]
