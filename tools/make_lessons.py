"""Generate the exercise notebooks in lessons/ from the complete notebooks in solutions/.

solutions/NN_name.ipynb is the only notebook edited by hand. For each of them this script writes
lessons/NN_name.ipynb where:

- in code cells, every region from a line ``### BEGIN SOLUTION`` to a line ``### END SOLUTION``
  becomes a stub at the marker's indentation::

      # YOUR CODE HERE
      raise NotImplementedError

- in markdown cells, every region from ``<!-- BEGIN SOLUTION -->`` to ``<!-- END SOLUTION -->``
  (each marker on a line of its own) is removed;
- outputs and execution counts are cleared, execution-timing metadata is dropped, and notebook
  metadata is reduced to the kernel and language names;
- two cells go first: launch badges (open this lesson on Colab or Binder) and a setup cell that,
  on Google Colab only, installs forgetkit from the course's repository. Both are made from
  LAUNCH_BADGES and COLAB_SETUP and the repository named in pyproject.toml
  (tools/course_links.py), so every lesson, a new one too, gets them.

Lessons without a solution twin are deleted. The output is byte-for-byte reproducible. The same
run also rewrites the course links in the docs from pyproject.toml (README.md, INSTRUCTORS.md,
binder/README.md), so publishing under another repository is one edit and this command.

Usage::

    python tools/make_lessons.py            # (re)generate lessons/
    python tools/make_lessons.py --check    # write nothing; exit 1 if lessons/ is stale
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/ is a folder of scripts
import course_links  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS_DIR = ROOT / "solutions"
LESSONS_DIR = ROOT / "lessons"

CODE_BEGIN = "### BEGIN SOLUTION"
CODE_END = "### END SOLUTION"
MARKDOWN_BEGIN = "<!-- BEGIN SOLUTION -->"
MARKDOWN_END = "<!-- END SOLUTION -->"
STUB_LINES = ("# YOUR CODE HERE", "raise NotImplementedError")

# The first two cells of every lesson ({colab}, {binder}, {pip_target}: from course_links).
LAUNCH_BADGES = (
    "[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab})\n"
    "[![Launch on Binder](https://mybinder.org/badge_logo.svg)]({binder})"
)
COLAB_SETUP = """\
# On Google Colab only: install the course's library, forgetkit, from the course's repository.
# Anywhere else (your computer, Binder, a JupyterHub) it is installed already: nothing happens.
import sys

if "google.colab" in sys.modules:
    import subprocess

    COURSE = "{pip_target}"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", COURSE], check=True)"""
LAUNCH_CELL_IDS = ("launch-badges", "colab-setup")

# Cell metadata written by JupyterLab ("execution"), nbclient ("execution") and the classic
# ExecuteTime extension ("ExecuteTime"): it changes on every run and means nothing to a learner.
TIMING_METADATA_KEYS = ("execution", "ExecuteTime")


def _source_text(cell: NotebookNode) -> str:
    """Return a cell's source as one string (raw JSON may store it as a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _lines(source: str) -> list[str]:
    """Split on "\n" only, keeping line ends (str.splitlines also splits on form feeds etc.)."""
    parts = source.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _replace_regions(
    source: str, begin: str, end: str, stub_lines: tuple[str, ...], where: str
) -> str:
    """Replace every ``begin``..``end`` region of ``source`` by ``stub_lines``.

    Markers must stand alone on their line (surrounding whitespace allowed). The stub is written
    at the indentation of the begin marker; an empty ``stub_lines`` deletes the region. ``where``
    names the notebook and cell in error messages.

    Raises:
        ValueError: on a begin without an end, an end without a begin, a nested begin, or a
            marker that shares its line with other text.
    """
    out: list[str] = []
    open_line: int | None = None  # 1-based line number of the current begin marker
    indent = ""
    for number, line in enumerate(_lines(source), start=1):
        body = line.rstrip("\n")
        stripped = body.strip()
        if stripped == begin:
            if open_line is not None:
                raise ValueError(
                    f"{where}: nested {begin!r} at line {number} "
                    f"(the one at line {open_line} has no {end!r})"
                )
            open_line = number
            indent = body[: len(body) - len(body.lstrip())]
        elif stripped == end:
            if open_line is None:
                raise ValueError(f"{where}: {end!r} at line {number} has no matching {begin!r}")
            newline = line[len(body) :]  # keep the last line's newline (or its absence)
            stub = [indent + text + "\n" for text in stub_lines]
            if stub:
                stub[-1] = stub[-1][:-1] + newline
            out.extend(stub)
            open_line = None
        elif begin in line or end in line:
            raise ValueError(
                f"{where}: solution marker at line {number} must be alone on its line: {body!r}"
            )
        elif open_line is None:
            out.append(line)
    if open_line is not None:
        raise ValueError(f"{where}: {begin!r} at line {open_line} has no matching {end!r}")
    return "".join(out)


def _normalised_notebook_metadata(metadata: NotebookNode) -> NotebookNode:
    """Keep only the kernel and language names (kernelspec's schema also requires display_name)."""
    kept = NotebookNode()
    kernelspec = metadata.get("kernelspec")
    if kernelspec and "name" in kernelspec:
        kept["kernelspec"] = NotebookNode(
            name=kernelspec["name"],
            display_name=kernelspec.get("display_name", kernelspec["name"]),
        )
    language_info = metadata.get("language_info")
    if language_info and "name" in language_info:
        kept["language_info"] = NotebookNode(name=language_info["name"])
    return kept


def strip_timing_metadata(cell: NotebookNode) -> None:
    """Remove execution-timing entries from a cell's metadata, in place."""
    for key in TIMING_METADATA_KEYS:
        cell.get("metadata", {}).pop(key, None)


def generate_lesson(solution_nb: NotebookNode, name: str = "<notebook>") -> NotebookNode:
    """Return the lesson notebook for a solution notebook (the input is not modified).

    Args:
        solution_nb: a v4 notebook, as returned by ``nbformat.read(..., as_version=4)``.
        name: the notebook's name, used in error messages.

    Raises:
        ValueError: on an unmatched or misplaced solution marker; the message names the notebook
            and the cell index.
    """
    lesson = copy.deepcopy(solution_nb)
    for index, cell in enumerate(lesson.cells):
        where = f"{name}: cell {index}"
        if cell.cell_type == "code":
            cell.source = _replace_regions(
                _source_text(cell), CODE_BEGIN, CODE_END, STUB_LINES, where
            )
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown":
            cell.source = _replace_regions(
                _source_text(cell), MARKDOWN_BEGIN, MARKDOWN_END, (), where
            )
        strip_timing_metadata(cell)
    lesson.metadata = _normalised_notebook_metadata(lesson.get("metadata", {}))
    return lesson


def add_launch_cells(lesson: NotebookNode, file_name: str, pyproject: Path = course_links.PYPROJECT
                     ) -> NotebookNode:
    """Put the launch badges and the Colab setup cell in front of ``lessons/<file_name>``, in place.

    Cells from an earlier run (same ids) are replaced, so this is idempotent.
    """
    path = f"lessons/{file_name}"
    links = dict(colab=course_links.colab_url(path, pyproject),
                 binder=course_links.binder_url(path, pyproject),
                 pip_target=course_links.pip_target(pyproject))
    badges = new_markdown_cell(LAUNCH_BADGES.format(**links))
    setup = new_code_cell(COLAB_SETUP.format(**links))
    for cell, cell_id in zip((badges, setup), LAUNCH_CELL_IDS):
        cell.id = cell_id
    kept = [cell for cell in lesson.cells if cell.get("id") not in LAUNCH_CELL_IDS]
    lesson.cells = [badges, setup, *kept]
    return lesson


def notebook_text(nb: NotebookNode) -> str:
    """Serialise a notebook deterministically: nbformat v4 JSON, sorted keys, trailing newline."""
    text = nbformat.writes(nb, version=4)
    return text if text.endswith("\n") else text + "\n"


def expected_lessons(solutions_dir: Path = SOLUTIONS_DIR) -> dict[str, str]:
    """Map each lesson file name to the text make_lessons would write for it."""
    expected = {}
    for path in sorted(solutions_dir.glob("*.ipynb")):
        solution = nbformat.read(path, as_version=4)
        lesson = generate_lesson(solution, name=f"solutions/{path.name}")
        expected[path.name] = notebook_text(add_launch_cells(lesson, path.name))
    return expected


def stale_lessons(
    solutions_dir: Path = SOLUTIONS_DIR, lessons_dir: Path = LESSONS_DIR
) -> list[str]:
    """Return the lesson files (``lessons/NN_name.ipynb``) that differ, are missing or are extra."""
    expected = expected_lessons(solutions_dir)
    present = {path.name for path in lessons_dir.glob("*.ipynb")} if lessons_dir.is_dir() else set()
    stale = []
    for file_name in sorted(set(expected) | present):
        path = lessons_dir / file_name
        if file_name not in expected:
            stale.append(f"lessons/{file_name} (no solution twin)")
        elif file_name not in present:
            stale.append(f"lessons/{file_name} (missing)")
        elif path.read_bytes() != expected[file_name].encode("utf-8"):
            stale.append(f"lessons/{file_name} (differs)")
    return stale


def write_lessons(
    solutions_dir: Path = SOLUTIONS_DIR, lessons_dir: Path = LESSONS_DIR
) -> tuple[list[Path], list[Path]]:
    """Write every lesson and delete lessons without a solution twin.

    Returns:
        (written, removed): the lesson files rewritten because they changed, and those deleted.
    """
    expected = expected_lessons(solutions_dir)
    lessons_dir.mkdir(parents=True, exist_ok=True)
    written, removed = [], []
    for file_name, text in expected.items():
        path = lessons_dir / file_name
        data = text.encode("utf-8")
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
            written.append(path)
    for path in sorted(lessons_dir.glob("*.ipynb")):
        if path.name not in expected:
            path.unlink()
            removed.append(path)
    return written, removed


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any lesson is out of date"
    )
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = stale_lessons() + [f"{name} (links)" for name in course_links.stale_docs()]
            for line in stale:
                print(line)
            if stale:
                print("lessons/ or the docs' links are out of date: run `python tools/make_lessons.py`")
                return 1
            print("lessons/ and the docs' links are up to date")
            return 0
        written, removed = write_lessons()
        relinked = course_links.write_docs()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote lessons/{path.name}")
    for path in removed:
        print(f"removed lessons/{path.name} (no solution twin)")
    for name in relinked:
        print(f"relinked {name} (repository from pyproject.toml)")
    print(f"lessons/: {len(written)} written, {len(removed)} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
