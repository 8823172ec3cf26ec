"""Started by Python in every process that has tests/offline on PYTHONPATH (tests/conftest.py
puts it there, so notebook kernels and servers started by the tests get it too).

With FORGETKIT_BLOCK_NETWORK=1 it installs forgetkit_netguard: connections to anything but this
machine raise "network access blocked during tests: ...". Without the variable it does nothing.
A ``sitecustomize`` that this one hides (one later on sys.path) is still run.
"""

import importlib.machinery
import importlib.util
import os
import sys


def _run_hidden_sitecustomize() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


def _install_guard() -> None:
    import forgetkit_netguard

    if forgetkit_netguard.enabled_by_env():
        forgetkit_netguard.install()


_install_guard()
_run_hidden_sitecustomize()
