"""lessons/ must be exactly what tools/make_lessons.py generates from solutions/.

Also unit tests of ``generate_lesson`` on small hand-made notebooks.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS_DIR = ROOT / "solutions"
LESSONS_DIR = ROOT / "lessons"
REGENERATE = "run `python tools/make_lessons.py` (never edit lessons/ by hand)"


def _load_make_lessons():
    """Import tools/make_lessons.py by path (tools/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("make_lessons", ROOT / "tools/make_lessons.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_lessons = _load_make_lessons()
generate_lesson = make_lessons.generate_lesson
course_links = make_lessons.course_links


def _names(folder: Path) -> set[str]:
    return {path.name for path in folder.glob("*.ipynb")} if folder.is_dir() else set()


def _lesson_paths() -> list[Path]:
    return sorted(LESSONS_DIR.glob("*.ipynb")) if LESSONS_DIR.is_dir() else []


# --- the repository's lessons/ -------------------------------------------------------------------


def test_every_solution_has_a_lesson_and_vice_versa() -> None:
    solutions, lessons = _names(SOLUTIONS_DIR), _names(LESSONS_DIR)
    assert not solutions - lessons, (
        f"lessons missing for {sorted(solutions - lessons)}: {REGENERATE}"
    )
    assert not lessons - solutions, (
        f"lessons without a solution {sorted(lessons - solutions)}: {REGENERATE}"
    )


def test_lessons_are_generated_from_solutions() -> None:
    expected = make_lessons.expected_lessons(SOLUTIONS_DIR)
    stale = [
        name
        for name, text in expected.items()
        if (LESSONS_DIR / name).is_file()
        and (LESSONS_DIR / name).read_bytes() != text.encode("utf-8")
    ]
    assert not stale, f"lessons out of date {stale}: {REGENERATE}"


@pytest.mark.parametrize("path", _lesson_paths(), ids=lambda path: path.name)
def test_lesson_has_no_solution_and_no_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        where = f"lessons/{path.name} cell {index}"
        if cell.cell_type == "code":
            assert make_lessons.CODE_BEGIN not in cell.source, f"{where}: solution marker"
            assert make_lessons.CODE_END not in cell.source, f"{where}: solution marker"
            assert cell.outputs == [], f"{where}: stored outputs"
            # nbval compares a "# NBVAL_CHECK_OUTPUT" cell only when it has an execution count.
            assert cell.execution_count is None, f"{where}: stored execution count"
        elif cell.cell_type == "markdown":
            assert make_lessons.MARKDOWN_BEGIN not in cell.source, f"{where}: solution marker"
            assert make_lessons.MARKDOWN_END not in cell.source, f"{where}: solution marker"


@pytest.mark.parametrize("path", _lesson_paths(), ids=lambda path: path.name)
def test_lesson_starts_with_launch_links_and_the_colab_setup(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    badges, setup = nb.cells[:2]
    lesson = f"lessons/{path.name}"
    assert badges.cell_type == "markdown" and setup.cell_type == "code"
    assert f"({course_links.colab_url(lesson)})" in badges.source, f"{lesson}: Colab badge"
    assert f"({course_links.binder_url(lesson)})" in badges.source, f"{lesson}: Binder badge"
    assert course_links.pip_target() in setup.source, f"{lesson}: Colab setup cell"


def _run_setup_cell(monkeypatch, on_colab: bool) -> list[list[str]]:
    """Execute a lesson's Colab setup cell here; return the commands it would have run."""
    import subprocess
    import sys
    import types

    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: calls.append(command))
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    source = nbformat.read(LESSONS_DIR / "00_welcome.ipynb", as_version=4).cells[1].source
    exec(compile(source, "colab-setup", "exec"), {})
    return calls


def test_colab_setup_installs_the_course_on_colab_only(monkeypatch) -> None:
    assert _run_setup_cell(monkeypatch, on_colab=False) == [], "it must do nothing off Colab"
    calls = _run_setup_cell(monkeypatch, on_colab=True)
    assert len(calls) == 1, f"one pip install on Colab, got {calls}"
    command = calls[0]
    assert command[1:4] == ["-m", "pip", "install"], command
    packages = [word for word in command[4:] if not word.startswith("-")]
    assert packages == [course_links.pip_target()], f"it must install the course only: {command}"


def test_launch_cells_are_added_once(tmp_path: Path) -> None:
    lesson = generate_lesson(_notebook(new_markdown_cell("# Title"), new_code_cell("x = 1")))
    once = make_lessons.add_launch_cells(lesson, "07_demo.ipynb")
    twice = make_lessons.add_launch_cells(once, "07_demo.ipynb")
    assert [cell.get("id") for cell in twice.cells[:2]] == list(make_lessons.LAUNCH_CELL_IDS)
    assert len(twice.cells) == 4 and twice.cells[2].source == "# Title"
    assert "lessons/07_demo.ipynb" in twice.cells[0].source


# --- generate_lesson on hand-made notebooks ------------------------------------------------------

SOLVED = '''\
import numpy as np


def add(a, b):
    """Add two numbers."""
    ### BEGIN SOLUTION
    total = a + b
    return total
    ### END SOLUTION


class Model:
    def forward(self, x):
        if x is None:
            ### BEGIN SOLUTION
            return 0
            ### END SOLUTION
        ### BEGIN SOLUTION
        return x * 2
        ### END SOLUTION
'''

STUBBED = '''\
import numpy as np


def add(a, b):
    """Add two numbers."""
    # YOUR CODE HERE
    raise NotImplementedError


class Model:
    def forward(self, x):
        if x is None:
            # YOUR CODE HERE
            raise NotImplementedError
        # YOUR CODE HERE
        raise NotImplementedError
'''


def _notebook(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = new_notebook(cells=list(cells))
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python", "version": "3.11.9", "mimetype": "text/x-python"},
        "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}},
    }
    return nb


def _executed(source: str) -> nbformat.NotebookNode:
    cell = new_code_cell(source, execution_count=3)
    cell.outputs = [new_output("stream", name="stdout", text="hi\n")]
    cell.metadata = {
        "tags": ["keep-me"],
        "execution": {"iopub.execute_input": "2024-01-01T00:00:00Z"},
        "ExecuteTime": {"end_time": "2024-01-01T00:00:01Z"},
    }
    return cell


def test_regions_become_stubs_at_the_marker_indentation() -> None:
    lesson = generate_lesson(_notebook(new_code_cell(SOLVED)))
    assert lesson.cells[0].source == STUBBED


def test_marker_on_the_last_line_without_newline() -> None:
    source = "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"
    lesson = generate_lesson(_notebook(new_code_cell(source)))
    assert lesson.cells[0].source == "def f():\n    # YOUR CODE HERE\n    raise NotImplementedError"


def test_markdown_solution_region_is_removed() -> None:
    text = "Question?\n<!-- BEGIN SOLUTION -->\nThe answer.\n<!-- END SOLUTION -->\nNext."
    lesson = generate_lesson(_notebook(new_markdown_cell(text)))
    assert lesson.cells[0].source == "Question?\nNext."


def test_outputs_counts_and_timing_cleared_other_metadata_kept() -> None:
    solution = _notebook(_executed("print('hi')"))
    solution.cells[0].id = "fixed-id"
    lesson = generate_lesson(solution)
    cell = lesson.cells[0]
    assert cell.outputs == [] and cell.execution_count is None
    assert cell.metadata == {"tags": ["keep-me"]}
    assert cell.id == "fixed-id"
    assert lesson.metadata == {
        "kernelspec": {"display_name": "Python 3", "name": "python3"},
        "language_info": {"name": "python"},
    }
    assert solution.cells[0].outputs, "generate_lesson must not modify its input"


@pytest.mark.parametrize(
    ("cell", "problem"),
    [
        (new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n"), "no matching"),
        (new_code_cell("def f():\n    return 1\n    ### END SOLUTION\n"), "no matching"),
        (new_code_cell("def f():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n"), "nested"),
        (new_code_cell("x = 1  ### BEGIN SOLUTION\n"), "alone on its line"),
        (new_markdown_cell("<!-- BEGIN SOLUTION -->\nanswer\n"), "no matching"),
    ],
)
def test_unmatched_marker_raises_with_notebook_and_cell(
    cell: nbformat.NotebookNode, problem: str
) -> None:
    nb = _notebook(new_markdown_cell("intro"), cell)
    with pytest.raises(ValueError, match=problem) as excinfo:
        generate_lesson(nb, name="solutions/07_rehearsal.ipynb")
    assert "solutions/07_rehearsal.ipynb: cell 1" in str(excinfo.value)


def test_generation_is_idempotent_and_deterministic() -> None:
    solution = _notebook(
        new_markdown_cell("Q\n<!-- BEGIN SOLUTION -->\nA\n<!-- END SOLUTION -->"),
        _executed(SOLVED),
    )
    lesson = generate_lesson(solution)
    text = make_lessons.notebook_text(lesson)
    assert make_lessons.notebook_text(generate_lesson(lesson)) == text
    assert make_lessons.notebook_text(generate_lesson(solution)) == text
    assert text.endswith("}\n")
    assert nbformat.reads(text, as_version=4).cells[1].source == STUBBED


def test_write_and_check_on_a_temporary_course(tmp_path: Path) -> None:
    solutions, lessons = tmp_path / "solutions", tmp_path / "lessons"
    solutions.mkdir()
    lessons.mkdir()
    nbformat.write(_notebook(_executed(SOLVED)), solutions / "00_demo.ipynb")
    (lessons / "99_orphan.ipynb").write_text("{}")
    stale = make_lessons.stale_lessons(solutions, lessons)
    assert stale == [
        "lessons/00_demo.ipynb (missing)",
        "lessons/99_orphan.ipynb (no solution twin)",
    ]
    written, removed = make_lessons.write_lessons(solutions, lessons)
    assert [p.name for p in written] == ["00_demo.ipynb"]
    assert [p.name for p in removed] == ["99_orphan.ipynb"]
    assert make_lessons.stale_lessons(solutions, lessons) == []
    assert make_lessons.write_lessons(solutions, lessons) == ([], [])
