"""Build the course website into _build/html, offline: MyST (mystmd) over the solved notebooks.

What goes in:
- every ``solutions/NN_name.ipynb`` with its stored outputs (nothing is executed), as the page of
  lesson NN; Binder and Colab buttons on it open ``lessons/NN_name.ipynb`` (the exercise version),
  with links made from pyproject.toml's repository (tools/course_links.py);
- a landing page made from README.md: its title and introduction, the course map (linking each
  lesson's page) and a link to the glossary (the "Glossary" section of a lesson).

How: the files are laid out in _build/site-src with a generated myst.yml, and
``myst build --html`` runs there with the course's own theme (site/theme: a renderer written in
Python that mystmd calls to write the pages), so nothing is downloaded at build time; the result
moves to _build/html. tests/test_site.py builds the site without network and checks it.

Usage (from anywhere)::

    bash tools/build_site.sh      # or: python tools/build_site.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/ is a folder of scripts
import course_links  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS_DIR = ROOT / "solutions"
THEME = ROOT / "site" / "theme" / "template.yml"
BUILD_DIR = ROOT / "_build"
STAGE = BUILD_DIR / "site-src"
HTML_DIR = BUILD_DIR / "html"
LESSONS = "lessons"  # the folder of the staged notebooks: README's links to lessons/ resolve


def readme_section(readme: str, heading: str) -> str:
    """The text under ``## heading`` up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    if not match:
        raise ValueError(f"README.md has no '## {heading}' section")
    return match.group(1).strip()


def glossary_link(solutions_dir: Path = SOLUTIONS_DIR) -> str:
    """``lessons/NN_name.ipynb#glossary``: the lesson with a "## Glossary" section."""
    for path in sorted(solutions_dir.glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        if re.search(r"^## Glossary\s*$", text, re.M):
            return f"{LESSONS}/{path.name}#glossary"
    raise ValueError("no solution notebook has a '## Glossary' section")


def landing_page(readme: str, solutions_dir: Path = SOLUTIONS_DIR) -> str:
    """The site's index.md, from README.md."""
    title = re.search(r"^# (.+)$", readme, re.M).group(1).strip()
    intro = readme.split("\n## ", 1)[0].split("\n", 1)[1]
    paragraphs = [p.strip() for p in intro.split("\n\n") if p.strip()]
    # keep the prose: no badges (the buttons below replace them), no notes in italics
    paragraphs = [p for p in paragraphs if not p.startswith(("[![", "*("))]
    run_command = re.search(r"\*\*Run the course\*\*.*?```bash\n(.+?)\n```", readme, re.S).group(1)
    first = f"{LESSONS}/{sorted(solutions_dir.glob('*.ipynb'))[0].name}"
    return "\n\n".join([
        f"---\ntitle: \"{title}\"\n---",
        *paragraphs,
        "## Start",
        f"Run the lessons in your browser: [Launch on Binder]({course_links.binder_url(first)}) "
        f"(JupyterLab, nothing to install) or [open lesson 00 in Colab]"
        f"({course_links.colab_url(first)}). On your own computer:",
        f"```bash\n{run_command}\n```",
        "The pages of this site show every lesson solved, with its outputs; each has buttons that "
        "open its exercise version on Binder or Colab.",
        "## Course map",
        readme_section(readme, "Course map"),
        f"The key terms of the course, each linked to the lesson that shows it, are in the "
        f"[glossary]({glossary_link(solutions_dir)}).",
    ]) + "\n"


def myst_config(title: str, lesson_names: list[str]) -> str:
    """myst.yml for the staged folder (JSON is valid YAML)."""
    config = {
        "version": 1,
        "project": {
            "title": title,
            "toc": [{"file": "index.md"}, *({"file": f"{LESSONS}/{name}"} for name in lesson_names)],
        },
        "site": {"template": os.path.relpath(THEME, STAGE), "title": title},
    }
    return json.dumps(config, indent=2) + "\n"


def stage(readme_path: Path = ROOT / "README.md") -> Path:
    """Lay out the site's sources in STAGE; return the launch-links file for the theme."""
    shutil.rmtree(STAGE, ignore_errors=True)
    (STAGE / LESSONS).mkdir(parents=True)
    readme = readme_path.read_text(encoding="utf-8")
    names = [path.name for path in sorted(SOLUTIONS_DIR.glob("*.ipynb"))]
    for name in names:
        shutil.copy(SOLUTIONS_DIR / name, STAGE / LESSONS / name)
    (STAGE / "index.md").write_text(landing_page(readme), encoding="utf-8")
    title = re.search(r"^# (.+)$", readme, re.M).group(1).split(":")[0].strip()
    (STAGE / "myst.yml").write_text(myst_config(title, names), encoding="utf-8")
    links = {f"{LESSONS}/{name}": {"binder": course_links.binder_url(f"lessons/{name}"),
                                   "colab": course_links.colab_url(f"lessons/{name}")}
             for name in names}
    links_file = STAGE / "launch-links.json"
    links_file.write_text(json.dumps(links, indent=2) + "\n", encoding="utf-8")
    return links_file


def myst_command() -> list[str]:
    """The `myst` CLI of this environment (the mystmd package from requirements-dev.txt)."""
    beside = Path(sys.executable).parent / "myst"
    found = str(beside) if beside.exists() else shutil.which("myst")
    if not found:
        raise SystemExit("build_site: `myst` not found: pip install -r requirements-dev.txt")
    return [found]


def build() -> Path:
    start = time.perf_counter()
    links_file = stage()
    env = {**os.environ, "COURSE_LAUNCH_LINKS": str(links_file), "BASE_URL": ""}
    env.pop("BASE_URL")  # relative links everywhere; a base URL would make them absolute
    subprocess.run([*myst_command(), "build", "--html"], cwd=STAGE, env=env, check=True)
    built = STAGE / "_build" / "html"
    if not (built / "index.html").exists():
        raise SystemExit(f"build_site: myst wrote no {built / 'index.html'}")
    shutil.rmtree(HTML_DIR, ignore_errors=True)
    shutil.move(str(built), HTML_DIR)
    print(f"build_site: {HTML_DIR} in {time.perf_counter() - start:.1f} s")
    return HTML_DIR


if __name__ == "__main__":
    build()
