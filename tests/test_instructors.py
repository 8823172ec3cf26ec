"""INSTRUCTORS.md's hub recipe matches the code: the cache pre-build command builds exactly the
base models the lessons load, and the GPU line is the README's."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
INSTRUCTORS = (ROOT / "INSTRUCTORS.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
DEFAULT_SEED = 0
# forgetkit.capstone builds every scenario on pretrained_lm("general", ...); the lessons that use
# it load that model without naming it.
CAPSTONE_LANGUAGE = "general"


def lesson_languages() -> set[str]:
    """The languages whose pre-trained base model the solution notebooks load."""
    found = set()
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            found |= set(re.findall(r'pretrained_lm\(\s*"(\w+)"', cell.source))
            if re.search(r"\bcapstone\.(run_comparison|make_scenario|finetune)\(", cell.source):
                found.add(CAPSTONE_LANGUAGE)
    return found


def prebuild_calls(monkeypatch) -> list[tuple[str, int]]:
    """Run the pre-build command's Python with a stand-in forgetkit; return its (language, seed)."""
    code = re.search(r'FORGETKIT_CACHE=\S+ python -c "\n(.*?)\n"\n', INSTRUCTORS, re.S)
    assert code, "INSTRUCTORS.md should show `FORGETKIT_CACHE=... python -c \"...\"` to pre-build"
    calls = []
    stand_in = types.ModuleType("forgetkit")
    stand_in.pretrained_lm = lambda language, seed=None, **kwargs: calls.append((language, seed))
    monkeypatch.setitem(sys.modules, "forgetkit", stand_in)
    exec(compile(code.group(1), "INSTRUCTORS.md", "exec"), {})
    return calls


def test_prebuild_builds_exactly_what_the_lessons_load(monkeypatch):
    languages = lesson_languages()
    assert languages == {"french", "general"}, f"the lessons load {languages}: update the docs"
    calls = prebuild_calls(monkeypatch)
    assert sorted(calls) == sorted((language, DEFAULT_SEED) for language in languages), (
        f"INSTRUCTORS.md pre-builds {calls}; the lessons load {sorted(languages)} at seed 0"
    )


def test_hub_section_states_the_cache_file_mode():
    # tests/test_pretrained.py checks that the files are written 0644 (readable by every user).
    assert "0600" not in INSTRUCTORS and "(mode 0644)" in INSTRUCTORS


def test_gpu_install_line_is_the_readmes():
    gpu = re.compile(r"^pip install torch==\S+ --index-url https://download\.pytorch\.org/whl/\S+$", re.M)
    readme_lines, instructors_lines = gpu.findall(README), gpu.findall(INSTRUCTORS)
    assert readme_lines and readme_lines == instructors_lines, (readme_lines, instructors_lines)
    torch_pin = re.search(r"^torch==([\d.]+)\+cpu;", (ROOT / "requirements.txt").read_text(), re.M)
    assert f"torch=={torch_pin.group(1)}+cu" in readme_lines[0], "the GPU build of the pinned release"
