"""The README tells the truth: its test command is what CI runs, and every lesson it maps exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _command_after(heading: str) -> str:
    """The first fenced bash command after the bold ``heading`` in the README."""
    section = README.split(heading, 1)[1]
    return re.search(r"```bash\n(.+?)\n```", section, re.S).group(1).strip()


def test_ci_runs_the_readme_test_command_verbatim():
    command = _command_after("**Run the tests**")
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci_lines, f".ci/run must run the README's test command exactly: {command!r}"


def test_readme_course_command_opens_lesson_00():
    command = _command_after("**Run the course**")
    assert "requirements.txt" in command and "lessons/00_welcome.ipynb" in command


def test_every_lesson_in_the_course_map_exists_in_both_folders():
    linked = re.findall(r"\]\(lessons/(\d\d_\w+\.ipynb)\)", README)
    assert len(linked) == 12, f"the course map should link lessons 00-11, found {linked}"
    for name in linked:
        assert (ROOT / "lessons" / name).exists(), f"README links lessons/{name}, which does not exist"
        assert (ROOT / "solutions" / name).exists(), f"solutions/{name} is missing"

