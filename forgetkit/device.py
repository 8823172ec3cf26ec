"""Device choice: a GPU when there is one, the CPU otherwise."""

from __future__ import annotations

import os

import torch

from .checks import check_positive_int

THREADS_ENV_VAR = "FORGETKIT_THREADS"


def pick_device(device: str | torch.device | None = None, num_threads: int | None = None) -> torch.device:
    """Return ``device`` if given, else CUDA, else Apple's MPS, else the CPU.

    On the CPU it also sets PyTorch's thread count: ``num_threads``, else ``$FORGETKIT_THREADS``,
    else 1. The course's models are so small that extra threads spend more time synchronising
    than computing, and on a shared or busy machine (a JupyterHub, a test run in parallel) they
    can make training many times slower (``benchmarks/bench_library.py`` measures both).
    Raises ValueError for a device this machine does not have (e.g. ``"cuda"`` without a GPU).
    """
    chosen = _choose(device)
    if chosen.type == "cpu":
        torch.set_num_threads(cpu_threads(num_threads))
    return chosen


def cpu_threads(num_threads: int | None = None) -> int:
    """The CPU thread count to use: ``num_threads``, else ``$FORGETKIT_THREADS``, else 1."""
    if num_threads is None:
        raw = os.environ.get(THREADS_ENV_VAR, "1").strip() or "1"
        try:
            num_threads = int(raw)
        except ValueError:
            raise ValueError(f"{THREADS_ENV_VAR} must be a positive integer, got {raw!r}") from None
    return check_positive_int("num_threads", num_threads)


def _choose(device: str | torch.device | None) -> torch.device:
    if device is not None:
        if not isinstance(device, (str, torch.device)):
            raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
        try:
            device = torch.device(device)
        except RuntimeError as err:
            raise ValueError(f"unknown device {device!r}: expected 'cpu', 'cuda' or 'mps'") from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' asked for, but no CUDA GPU is available")
        if device.type == "mps" and not _mps_available():
            raise ValueError("device 'mps' asked for, but Apple's MPS backend is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def describe_device(device: torch.device | None = None) -> str:
    """A one-line human description, e.g. ``'cpu (2 threads)'`` or ``'cuda (NVIDIA H200)'``."""
    device = _choose(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"cpu ({threads} thread{'s' if threads > 1 else ''})"
    return device.type
