"""Every launch link comes from the one repository URL in pyproject.toml (tools/course_links.py).

Publishing the course under another GitHub account must be one edit of pyproject.toml plus
`python tools/make_lessons.py`: these tests check that the docs' links match pyproject now, and
that after such an edit (in a temporary copy) no link to the old repository is left.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = "run `python tools/make_lessons.py` (it rewrites the links from pyproject.toml)"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


course_links = _load("course_links")


def _course(tmp_path: Path, repository: str) -> Path:
    """A copy of pyproject.toml and the docs, with [project.urls] Repository = repository."""
    for name in ("pyproject.toml", *course_links.DOCS):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    pyproject = tmp_path / "pyproject.toml"
    text = re.sub(r'^Repository = ".*"$', f'Repository = "{repository}"',
                  pyproject.read_text(), count=1, flags=re.M)
    pyproject.write_text(text)
    return tmp_path


def test_the_repository_is_named_once():
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", course_links.slug())
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert pyproject.count(course_links.repository_url()) == 1


def test_docs_links_match_pyproject():
    stale = course_links.stale_docs()
    assert not stale, f"course links in {stale} name another repository: {REGENERATE}"


def test_readme_badge_and_hub_link_are_the_generated_ones():
    readme = (ROOT / "README.md").read_text()
    assert f"({course_links.binder_url()})" in readme, "README's Binder badge should open lesson 00"
    first = course_links.FIRST_LESSON
    assert f"({course_links.colab_url(first)})" in readme, "README's Colab badge should open lesson 00"
    binder_readme = (ROOT / "binder" / "README.md").read_text()
    assert course_links.binder_url() in binder_readme
    instructors = (ROOT / "INSTRUCTORS.md").read_text()
    assert course_links.nbgitpuller_url() in instructors


def test_publishing_is_one_edit(tmp_path):
    old = course_links.slug()
    course = _course(tmp_path, "https://github.com/ann-example/forgetting-course")
    changed = course_links.write_docs(course)
    assert set(changed) == set(course_links.DOCS), f"only {changed} had links to rewrite"
    assert course_links.stale_docs(course) == []
    for name in course_links.DOCS:
        text = (course / name).read_text()
        for form in (old, old.replace("/", "%2F")):
            assert form not in text, f"{name} still links {form} after the edit"
    instructors = (course / "INSTRUCTORS.md").read_text()
    pyproject = course / "pyproject.toml"
    assert course_links.nbgitpuller_url(pyproject=pyproject) in instructors
    assert "urlpath=lab%2Ftree%2Fforgetting-course%2Flessons" in instructors  # the clone's folder
    assert course_links.write_docs(course) == []  # idempotent


def test_links_are_built_from_the_slug(tmp_path):
    pyproject = _course(tmp_path, "https://github.com/ann-example/fc")  / "pyproject.toml"
    assert course_links.colab_url("lessons/01_x.ipynb", pyproject) == (
        "https://colab.research.google.com/github/ann-example/fc/blob/main/lessons/01_x.ipynb")
    assert course_links.binder_url("lessons/01_x.ipynb", pyproject) == (
        "https://mybinder.org/v2/gh/ann-example/fc/HEAD?urlpath=lab/tree/lessons/01_x.ipynb")
    assert course_links.pip_target(pyproject) == "forgetkit[hf] @ git+https://github.com/ann-example/fc@main"


@pytest.mark.parametrize("url", ["https://gitlab.com/a/b", "https://github.com/only-owner", ""])
def test_a_repository_that_is_not_on_github_is_refused(tmp_path, url):
    pyproject = _course(tmp_path, url) / "pyproject.toml"
    with pytest.raises(ValueError, match="https://github.com/OWNER/NAME"):
        course_links.slug(pyproject)
