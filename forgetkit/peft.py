"""Parameter-efficient fine-tuning: freeze what you keep, train what you add."""

from __future__ import annotations

import torch.nn as nn


def count_trainable(model: nn.Module) -> int:
    """Number of scalar parameters with ``requires_grad=True``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_frozen(model: nn.Module) -> int:
    """Number of scalar parameters with ``requires_grad=False``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if not p.requires_grad)


def freeze(model: nn.Module) -> nn.Module:
    """Set ``requires_grad=False`` on every parameter of ``model``; returns it."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for p in model.parameters():
        p.requires_grad_(False)
    return model
