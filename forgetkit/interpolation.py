"""Weight-space geometry: straight lines and planes between trained networks.

A trained network is one point theta in weight space (all its parameters flattened). Two points
define a line, three define a plane. Evaluating the loss of several tasks on that line or plane
shows where each task's low-loss "valley" lies, and how far fine-tuning moved the model out of
the old one (Goodfellow et al., 2015; Li et al., 2018; Garipov et al., 2018).

    theta(alpha) = (1 - alpha) * theta_a + alpha * theta_b
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

StateDict = Mapping[str, Tensor]


def _check_state_dict(name: str, sd: object) -> None:
    if not isinstance(sd, Mapping):
        raise TypeError(f"{name} must be a state dict (a mapping of names to tensors), got {type(sd).__name__}")
    for key, value in sd.items():
        if not isinstance(value, Tensor):
            raise TypeError(f"{name}[{key!r}] must be a tensor, got {type(value).__name__}")


def _check_matching(sd_a: StateDict, sd_b: StateDict, name_b: str = "sd_b") -> None:
    if set(sd_a) != set(sd_b):
        missing, extra = sorted(set(sd_a) - set(sd_b)), sorted(set(sd_b) - set(sd_a))
        raise ValueError(f"state dicts have different keys: missing from {name_b} {missing}, extra in {name_b} {extra}")
    for key in sd_a:
        if sd_a[key].shape != sd_b[key].shape:
            raise ValueError(f"{key!r} has shape {tuple(sd_a[key].shape)} in sd_a but {tuple(sd_b[key].shape)} in {name_b}")


def _check_alpha(alpha: object) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) and not (
            isinstance(alpha, Tensor) and alpha.numel() == 1):
        raise TypeError(f"alpha must be a real number, got {type(alpha).__name__}")
    alpha = float(alpha)
    if not math.isfinite(alpha):
        raise ValueError(f"alpha must be finite, got {alpha}")
    return alpha


def interpolate_state_dicts(sd_a: StateDict, sd_b: StateDict, alpha: float) -> dict[str, Tensor]:
    """The point ``(1 - alpha) * sd_a + alpha * sd_b`` of the line through two state dicts.

    alpha = 0 gives (a copy of) ``sd_a``, alpha = 1 gives ``sd_b``; values outside [0, 1]
    extrapolate along the same line. Floating-point tensors are interpolated (on sd_a's device
    and dtype); other tensors (integer buffers such as BatchNorm's ``num_batches_tracked``) are
    copied from ``sd_a``. Both dicts must have the same keys and shapes; neither is modified.
    """
    _check_state_dict("sd_a", sd_a)
    _check_state_dict("sd_b", sd_b)
    _check_matching(sd_a, sd_b)
    alpha = _check_alpha(alpha)
    out: dict[str, Tensor] = {}
    for key, a in sd_a.items():
        if a.is_floating_point():
            b = sd_b[key].to(device=a.device, dtype=a.dtype)
            out[key] = torch.lerp(a.detach(), b.detach(), alpha)
        else:
            out[key] = a.detach().clone()
    return out
