"""What `pip install -r requirements.txt` asks for on each platform a learner may have.

On Linux the package index's default torch is a CUDA build (several GB of nvidia-* and triton
wheels), so requirements.txt pins the CPU-only build there (`+cpu`, published only on PyTorch's
CPU index, which it names) and the plain release elsewhere (CPU-only on macOS and Windows).
These tests evaluate the file's environment markers for each platform.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
from packaging.requirements import Requirement
from test_binder import CPU_INDEX, _lines, _pinned_version, _requirements

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements.txt"

PLATFORMS = {
    "linux-x86_64": {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"},
    "linux-aarch64": {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "aarch64"},
    "macos-arm64": {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64"},
    "windows-amd64": {"sys_platform": "win32", "platform_system": "Windows", "platform_machine": "AMD64"},
}


def _torch_pin(platform: str):
    reqs = _requirements(REQUIREMENTS, PLATFORMS[platform])
    assert "torch" in reqs, f"requirements.txt installs no torch on {platform}"
    version = _pinned_version(reqs["torch"])
    assert version is not None, f"torch must be pinned exactly (==) on {platform}: {reqs['torch']}"
    return version


@pytest.mark.parametrize("platform", ["linux-x86_64", "linux-aarch64"])
def test_linux_gets_the_cpu_build(platform):
    version = _torch_pin(platform)
    assert version.local == "cpu", f"Linux must pin torch=={version.public}+cpu, got {version}"


@pytest.mark.parametrize("platform", ["macos-arm64", "windows-amd64"])
def test_macos_and_windows_get_the_plain_release(platform):
    version = _torch_pin(platform)
    assert version.local is None, f"{platform} has no +cpu wheel to ask for, got {version}"


def test_one_torch_release_everywhere():
    releases = {platform: _torch_pin(platform).public for platform in PLATFORMS}
    assert len(set(releases.values())) == 1, f"torch releases differ by platform: {releases}"


def test_the_cpu_index_is_named():
    options = [line for line in _lines(REQUIREMENTS) if line.startswith("-")]
    assert any(re.fullmatch(rf"--extra-index-url[ =]{re.escape(CPU_INDEX)}/?", o) for o in options), (
        f"requirements.txt needs '--extra-index-url {CPU_INDEX}': the +cpu wheel is only there"
    )


def test_ci_does_not_wait_for_an_unreachable_torch_index():
    """.ci/run probes the host that requirements.txt names and turns pip's retries off if it is
    unreachable; a renamed index must not leave the probe checking another host."""
    ci = (ROOT / ".ci" / "run").read_text()
    host = urlparse(CPU_INDEX).hostname
    assert f'"{host}"' in ci and "PIP_RETRIES=0" in ci


def test_pyproject_accepts_every_pinned_version():
    """`pip install -e .` after requirements.txt must not replace a pinned package."""
    pyproject = (ROOT / "pyproject.toml").read_text()  # tomllib is not in Python 3.10
    block = re.search(r"^dependencies = \[(.*?)^\]", pyproject, re.M | re.S).group(1)
    dependencies = re.findall(r'"([^"]+)"', block)
    assert dependencies, "pyproject.toml lists no dependencies"
    for platform, environment in PLATFORMS.items():
        pins = _requirements(REQUIREMENTS, environment)
        for dependency in dependencies:
            req = Requirement(dependency)
            pinned = pins.get(req.name.lower())
            assert pinned is not None, f"requirements.txt does not pin {req.name} ({platform})"
            version = _pinned_version(pinned)
            assert req.specifier.contains(version, prereleases=True), (
                f"pyproject's {dependency} rejects the pinned {version} on {platform}"
            )


def test_the_course_lab_settings_install_with_forgetkit():
    """`pip install -e .` (requirements.txt, binder/postBuild, a hub image) puts the course's
    JupyterLab settings where Lab reads per-package overrides; tests/test_browser.py sees them work."""
    import json

    pyproject = (ROOT / "pyproject.toml").read_text()
    mapping = re.search(r'^"(jupyter/overrides\.d/[\w.-]+\.json)" = "([^"]+)"$', pyproject, re.M)
    assert mapping, "pyproject.toml should install jupyter/overrides.d/*.json as shared data"
    source, target = mapping.groups()
    assert target == f"share/jupyter/lab/settings/overrides.d/{Path(source).name}"
    settings = json.loads((ROOT / source).read_text())
    notification = settings["@jupyterlab/apputils-extension:notification"]
    assert notification == {"fetchNews": "false", "checkForUpdates": False}
