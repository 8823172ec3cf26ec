"""Device choice: a GPU when there is one, the CPU otherwise."""

from __future__ import annotations

import torch


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """Return ``device`` if given, else CUDA, else Apple's MPS, else the CPU.

    Raises ValueError for a device this machine does not have (e.g. ``"cuda"`` without a GPU).
    """
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
    device = pick_device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type
