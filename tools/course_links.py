"""Every launch link of the course, made from one place: the repository URL in pyproject.toml.

``[project.urls] Repository = "https://github.com/OWNER/NAME"`` names the GitHub repository
that hosts the course. From it come the Binder badge, the Colab badges and the Colab setup cell
of every lesson (tools/make_lessons.py), the website's launch buttons (tools/build_site.py), the
nbgitpuller link and the raw-file links in the docs. Publishing the course under another
account is one edit of that line, then ``python tools/make_lessons.py``, which rewrites the
lessons and the links in the docs (DOCS); tests/test_course_links.py fails while any is stale.

Usage::

    python tools/course_links.py            # print the links
    python tools/course_links.py --write    # rewrite the links in the docs
    python tools/course_links.py --check    # exit 1 if a doc's link names another repository
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
BRANCH = "main"  # the branch learners' links open
FIRST_LESSON = "lessons/00_welcome.ipynb"
HUB_PLACEHOLDER = "https://HUB.EXAMPLE.ORG"
# The hand-written pages whose course links are rewritten (and checked) from the slug.
DOCS = ("README.md", "INSTRUCTORS.md", "binder/README.md")


def repository_url(pyproject: Path = PYPROJECT) -> str:
    """The ``Repository`` entry of pyproject.toml's ``[project.urls]``, without a trailing slash."""
    text = pyproject.read_text(encoding="utf-8")
    section = re.search(r"^\[project\.urls\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
    found = section and re.search(r'^Repository\s*=\s*"([^"]+)"', section.group(1), re.M)
    if not found:
        raise ValueError(f"{pyproject}: [project.urls] needs Repository = \"https://github.com/OWNER/NAME\"")
    url = found.group(1).rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"{pyproject}: Repository should be https://github.com/OWNER/NAME, got {url!r}")
    return url


def slug(pyproject: Path = PYPROJECT) -> str:
    """``OWNER/NAME`` of the course's GitHub repository."""
    return repository_url(pyproject).removeprefix("https://github.com/")


def binder_url(path: str = FIRST_LESSON, pyproject: Path = PYPROJECT) -> str:
    """mybinder.org: build the default branch's image and open ``path`` in JupyterLab."""
    return f"https://mybinder.org/v2/gh/{slug(pyproject)}/HEAD?urlpath=lab/tree/{path}"


def colab_url(path: str, pyproject: Path = PYPROJECT) -> str:
    """Google Colab: open the notebook at ``path`` on the course's branch."""
    return f"https://colab.research.google.com/github/{slug(pyproject)}/blob/{BRANCH}/{path}"


def raw_url(path: str, pyproject: Path = PYPROJECT) -> str:
    """The file at ``path`` on the course's branch, as served to File > Open from URL."""
    return f"https://raw.githubusercontent.com/{slug(pyproject)}/{BRANCH}/{path}"


def pip_target(pyproject: Path = PYPROJECT) -> str:
    """What ``pip install`` takes to install forgetkit from the repository (used on Colab), with the
    ``hf`` extra (transformers, peft, accelerate) that lesson 11 needs."""
    return f"forgetkit[hf] @ git+{repository_url(pyproject)}@{BRANCH}"


def nbgitpuller_url(hub: str = HUB_PLACEHOLDER, path: str = FIRST_LESSON,
                    pyproject: Path = PYPROJECT) -> str:
    """A JupyterHub link that clones (or updates) the course and opens ``path`` in Lab.

    nbgitpuller clones into a folder named like the repository, hence that folder in urlpath.
    """
    name = slug(pyproject).split("/")[1]
    repo = quote(repository_url(pyproject), safe="")
    urlpath = quote(f"lab/tree/{name}/{path}", safe="")
    return f"{hub}/hub/user-redirect/git-pull?repo={repo}&branch={BRANCH}&urlpath={urlpath}"


# Each family of course link in the docs: a pattern whose groups 1 and 3 are kept, and a function
# of the slug that gives group 2. The slug's characters: letters, digits, '.', '-', '_'.
_PART = r"[\w.-]+"
_FAMILIES = (
    (rf"(https://mybinder\.org/v2/gh/)({_PART}/{_PART})(/)", lambda s: s),
    (rf"(https://colab\.research\.google\.com/github/)({_PART}/{_PART})(/)", lambda s: s),
    (rf"(https://raw\.githubusercontent\.com/)({_PART}/{_PART})(/)", lambda s: s),
    (rf"(git\+https://github\.com/)({_PART}/{_PART})(@)", lambda s: s),
    (rf"(git-pull\?repo=https%3A%2F%2Fgithub\.com%2F)({_PART}%2F{_PART})(&)",
     lambda s: s.replace("/", "%2F")),
    (rf"(git-pull\?repo=[^&\s]+&branch=[\w.-]+&urlpath=lab%2Ftree%2F)({_PART})(%2F)",
     lambda s: s.split("/")[1]),
    (r"(git-pull\?repo=[^&\s]+&branch=)([\w.-]+)(&)", lambda s: BRANCH),
    (rf"(https://(?:colab\.research\.google\.com/github|raw\.githubusercontent\.com)/{_PART}/{_PART}"
     rf"/(?:blob/)?)([\w.-]+)(/)", lambda s: BRANCH),
)


def relink(text: str, repo_slug: str) -> str:
    """``text`` with every course link pointing at ``repo_slug`` (and BRANCH)."""
    for pattern, make in _FAMILIES:
        text = re.sub(pattern, lambda m, make=make: m.group(1) + make(repo_slug) + m.group(3), text)
    return text


def stale_docs(root: Path = ROOT) -> list[str]:
    """The docs (relative paths) whose course links do not match pyproject's repository."""
    repo_slug = slug(root / "pyproject.toml")
    return [name for name in DOCS if (root / name).exists()
            and relink((root / name).read_text(encoding="utf-8"), repo_slug)
            != (root / name).read_text(encoding="utf-8")]


def write_docs(root: Path = ROOT) -> list[str]:
    """Rewrite the course links in the docs; return the docs that changed."""
    changed = stale_docs(root)
    repo_slug = slug(root / "pyproject.toml")
    for name in changed:
        path = root / name
        path.write_text(relink(path.read_text(encoding="utf-8"), repo_slug), encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="rewrite the links in the docs")
    group.add_argument("--check", action="store_true", help="exit 1 if a doc's links are stale")
    args = parser.parse_args(argv)
    if args.write:
        for name in write_docs():
            print(f"relinked {name}")
        return 0
    if args.check:
        stale = stale_docs()
        for name in stale:
            print(f"{name}: links name another repository than pyproject.toml's")
        return 1 if stale else 0
    print(f"repository  {repository_url()}")
    print(f"binder      {binder_url()}")
    print(f"colab       {colab_url(FIRST_LESSON)}")
    print(f"nbgitpuller {nbgitpuller_url()}")
    print(f"pip         {pip_target()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
