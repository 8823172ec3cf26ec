"""Session-wide test setup: the suite runs offline, and the course cache is a fresh folder.

It lives at the repository root so that it applies to the notebook suite too, also when only
``pytest lessons/`` runs.

- ``tests/offline`` is prepended to ``PYTHONPATH`` and ``FORGETKIT_BLOCK_NETWORK=1`` is set, so
  every Python process the tests start (notebook kernels under nbval, a Jupyter server in the
  browser test, ``subprocess`` calls) runs ``tests/offline/sitecustomize.py``, which blocks any
  connection that would leave this machine. The same guard is installed in this pytest process.
- ``FORGETKIT_CACHE`` points at a temporary folder for this session, unless it is already set
  (so a run can opt into a warm cache, and a cold-cache test can pick its own folder).

This is done when this file is imported, i.e. during collection, before any test (or notebook
kernel) starts. ``MPLBACKEND`` is left alone: notebooks need the inline backend.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

OFFLINE_DIR = Path(__file__).resolve().parent / "tests" / "offline"


def _prepend_pythonpath(folder: Path) -> None:
    entries = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    entries = [p for p in entries if Path(p).resolve() != folder]
    os.environ["PYTHONPATH"] = os.pathsep.join([str(folder), *entries])
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


_prepend_pythonpath(OFFLINE_DIR)
os.environ["FORGETKIT_BLOCK_NETWORK"] = "1"

import forgetkit_netguard  # noqa: E402  (importable only once OFFLINE_DIR is on sys.path)

forgetkit_netguard.install()

_SESSION_CACHE: str | None = None
if not os.environ.get("FORGETKIT_CACHE"):
    _SESSION_CACHE = tempfile.mkdtemp(prefix="forgetkit-cache-")
    os.environ["FORGETKIT_CACHE"] = _SESSION_CACHE


def pytest_unconfigure(config) -> None:
    if _SESSION_CACHE is not None:
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)
