"""binder/ (mybinder.org, built by repo2docker) stays in step with what a learner installs.

repo2docker reads only binder/ when that folder exists: the root requirements.txt and
pyproject.toml are ignored there, so binder/ repeats the pins, and these tests fail when the two
drift apart.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
LAUNCH_NOTEBOOK = "lessons/00_welcome.ipynb"
BADGE_URLPATH = f"urlpath=lab/tree/{LAUNCH_NOTEBOOK}"


def _lines(path: Path) -> list[str]:
    """Requirement-file lines without comments, blank lines and backslash continuations."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = (re.split(r"(^|\s)#", line, maxsplit=1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


# What mybinder.org runs (repo2docker's image): Linux on x86-64.
BINDER_ENVIRONMENT = {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"}


def _requirements(path: Path, environment: dict[str, str] | None = None) -> dict[str, Requirement]:
    """Package name (canonical) -> requirement; options (-e, -r, --index-url, ...) skipped.

    With ``environment`` (marker variables such as ``sys_platform``), only the lines whose
    environment marker holds there are kept, so a package may have one line per platform.
    """
    found: dict[str, Requirement] = {}
    for line in _lines(path):
        if line.startswith("-"):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as error:  # a local path such as "." is not a requirement
            if line.startswith((".", "/", "file:")):
                continue
            raise AssertionError(f"{path.name}: cannot parse {line!r}: {error}") from error
        if environment is not None and req.marker is not None and not req.marker.evaluate(environment):
            continue
        name = canonicalize_name(req.name)
        assert name not in found, f"{path.name} lists {req.name} twice"
        found[name] = req
    return found


def _pinned_version(req: Requirement) -> Version | None:
    """The version of an exact pin (``==X``), else None."""
    specs = list(req.specifier)
    if len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version:
        return Version(specs[0].version)
    return None


@pytest.fixture(scope="module")
def root_reqs() -> dict[str, Requirement]:
    return _requirements(ROOT / "requirements.txt", BINDER_ENVIRONMENT)


@pytest.fixture(scope="module")
def binder_reqs() -> dict[str, Requirement]:
    return _requirements(BINDER / "requirements.txt", BINDER_ENVIRONMENT)


def test_binder_pins_every_root_package_to_the_same_version(root_reqs, binder_reqs):
    problems = []
    for name, req in root_reqs.items():
        if name not in binder_reqs:
            problems.append(f"{req.name} is in requirements.txt but not in binder/requirements.txt")
            continue
        root_version = _pinned_version(req)
        binder_version = _pinned_version(binder_reqs[name])
        if root_version is None:
            if str(req.specifier) != str(binder_reqs[name].specifier):
                problems.append(f"{req.name}: {req} at the root, {binder_reqs[name]} in binder/")
        elif binder_version != root_version:  # torch too: the same +cpu build as Linux at the root
            problems.append(f"{req.name}: {req} at the root, {binder_reqs[name]} in binder/")
    assert not problems, "binder/requirements.txt drifted from requirements.txt:\n" + "\n".join(
        problems
    )


def test_every_binder_package_is_pinned(binder_reqs):
    loose = [str(req) for req in binder_reqs.values() if _pinned_version(req) is None]
    assert not loose, f"pin these exactly (==) in binder/requirements.txt: {loose}"


def test_binder_torch_is_the_pinned_cpu_build(binder_reqs):
    torch = binder_reqs.get("torch")
    assert torch is not None, "binder/requirements.txt must pin torch"
    version = _pinned_version(torch)
    # An unpinned (or merely bounded) torch lets pip take the multi-GB CUDA build from PyPI.
    assert version is not None, f"torch must be pinned exactly in binder/, got {torch}"
    assert version.local == "cpu", f"binder/ must ask for the CPU wheel (torch=={version}+cpu)"
    options = [line for line in _lines(BINDER / "requirements.txt") if line.startswith("-")]
    index_options = [o for o in options if re.match(r"--(extra-)?index-url[ =]", o)]
    assert any(CPU_INDEX in o for o in index_options), (
        f"binder/requirements.txt needs '--extra-index-url {CPU_INDEX}' for the +cpu wheel"
    )


def test_runtime_python_satisfies_pyproject():
    runtime = (BINDER / "runtime.txt").read_text(encoding="utf-8").strip()
    match = re.fullmatch(r"python-(\d+\.\d+)", runtime)
    assert match, f"binder/runtime.txt should read like 'python-3.11', got {runtime!r}"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    found = re.search(r"^requires-python\s*=\s*[\"']([^\"']*)[\"']", pyproject, re.MULTILINE)
    assert found, "pyproject.toml should state requires-python"
    requires = SpecifierSet(found.group(1))
    assert requires.contains(match.group(1)), (
        f"binder/runtime.txt asks for Python {match.group(1)}, pyproject requires {requires}"
    )


def test_binder_installs_forgetkit():
    """With a binder/ folder repo2docker skips the root project: binder/ must install it."""
    local = [
        line
        for line in _lines(BINDER / "requirements.txt")
        if re.match(r"(-e|--editable)?[ =]*\.{1,2}(/|$)", line)
    ]
    post_build = BINDER / "postBuild"
    installs = post_build.exists() and re.search(
        r"pip install[^\n]*(-e|--editable)?\s+\.\s*$", post_build.read_text(), re.MULTILINE
    )
    assert local or installs, "binder/ must install forgetkit (postBuild: pip install -e .)"


def test_post_build_is_executable():
    post_build = BINDER / "postBuild"
    if not post_build.exists():
        pytest.skip("no binder/postBuild")
    assert post_build.read_text(encoding="utf-8").startswith("#!"), "postBuild needs a shebang"
    assert os.access(post_build, os.X_OK), "chmod +x binder/postBuild"
    # Binder builds from git, so the executable bit must be committed too.
    if shutil.which("git") and (ROOT / ".git").exists():
        staged = subprocess.run(
            ["git", "ls-files", "--stage", "binder/postBuild"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if staged:
            assert staged[0] == "100755", "git update-index --chmod=+x binder/postBuild"


def test_nothing_in_binder_overrides_requirements_txt():
    # repo2docker prefers these over requirements.txt (a Dockerfile replaces everything).
    for name in ("Dockerfile", "environment.yml", "Pipfile", "Pipfile.lock", "Project.toml"):
        assert not (BINDER / name).exists(), f"binder/{name} would override requirements.txt"


def test_badges_open_lesson_00_in_jupyterlab():
    assert (ROOT / LAUNCH_NOTEBOOK).exists(), f"the Binder badge opens {LAUNCH_NOTEBOOK}"
    assert BADGE_URLPATH in (BINDER / "README.md").read_text(encoding="utf-8")
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    for url in re.findall(r"https://mybinder\.org/v2/[^\s)\"'>]+", text):
        assert BADGE_URLPATH in url.replace("%2F", "/"), (
            f"README.md badge {url} should use {BADGE_URLPATH}"
        )
