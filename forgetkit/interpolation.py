"""Weight-space geometry: straight lines and planes between trained networks.

A trained network is one point theta in weight space (all its parameters flattened). Two points
define a line, three define a plane. Evaluating the loss of several tasks on that line or plane
shows where each task's low-loss "valley" lies, and how far fine-tuning moved the model out of
the old one (Goodfellow et al., 2015; Li et al., 2018; Garipov et al., 2018).

    theta(alpha) = (1 - alpha) * theta_a + alpha * theta_b

The same line between a base model and its fine-tuned version is a cure as well as a diagnosis:
WiSE-FT (Wortsman et al., 2022) deploys a point in between (``wise_ft``, ``wise_ft_sweep``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from .checks import ModelOrState, StateDict, check_int, check_module, check_number, check_state_dict
from .models import eval_mode


def _check_matching(sd_a: StateDict, sd_b: StateDict, name_b: str = "sd_b") -> None:
    if set(sd_a) != set(sd_b):
        missing, extra = sorted(set(sd_a) - set(sd_b)), sorted(set(sd_b) - set(sd_a))
        raise ValueError(f"state dicts have different keys: missing from {name_b} {missing}, extra in {name_b} {extra}")
    for key in sd_a:
        if sd_a[key].shape != sd_b[key].shape:
            raise ValueError(f"{key!r} has shape {tuple(sd_a[key].shape)} in sd_a but {tuple(sd_b[key].shape)} in {name_b}")


def _check_alpha(alpha: object, low: float | None = None, high: float | None = None) -> float:
    """The interpolation weight as a float (a one-element tensor is accepted too)."""
    if isinstance(alpha, Tensor) and alpha.numel() == 1 and not alpha.dtype == torch.bool:
        alpha = alpha.item()
    return check_number("alpha", alpha, low=low, high=high)


def interpolate_state_dicts(sd_a: ModelOrState, sd_b: ModelOrState, alpha: float) -> dict[str, Tensor]:
    """The point ``(1 - alpha) * sd_a + alpha * sd_b`` of the line through two state dicts (or models).

    alpha = 0 gives (a copy of) ``sd_a``, alpha = 1 gives ``sd_b``; values outside [0, 1]
    extrapolate along the same line. Floating-point tensors are interpolated (on sd_a's device
    and dtype); other tensors (integer buffers such as BatchNorm's ``num_batches_tracked``) are
    copied from ``sd_a``. Both must have the same keys and shapes; neither is modified.
    """
    sd_a, sd_b = check_state_dict("sd_a", sd_a), check_state_dict("sd_b", sd_b)
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


# ------------------------------------------------------------------------------------------
# Evaluating a model at many points of weight space
# ------------------------------------------------------------------------------------------

EvalFns = Mapping[str, Callable[[nn.Module], float]]


def _check_eval_fns(eval_fns: object) -> None:
    if not isinstance(eval_fns, Mapping) or len(eval_fns) == 0:
        raise TypeError("eval_fns must be a non-empty dict {name: fn(model) -> float}, "
                        f"got {type(eval_fns).__name__}" + (" (empty)" if isinstance(eval_fns, Mapping) else ""))
    for name, fn in eval_fns.items():
        if not isinstance(name, str) or not callable(fn):
            raise TypeError(f"eval_fns must map names (str) to functions fn(model) -> float, got {name!r}: {fn!r}")


def _evaluate_states(model: nn.Module, states: Iterable[StateDict], eval_fns: EvalFns) -> dict[str, np.ndarray]:
    """Load each state dict into ``model`` in turn and call every eval function (eval mode, no grad).

    The model's own weights and train/eval mode are restored afterwards, also after an error.
    """
    check_module(model)
    _check_eval_fns(eval_fns)
    original = {k: v.detach().clone() for k, v in model.state_dict().items()}
    results: dict[str, list[float]] = {name: [] for name in eval_fns}
    try:
        with eval_mode(model), torch.no_grad():
            for state in states:
                model.load_state_dict(state)
                for name, fn in eval_fns.items():
                    value = fn(model)
                    if isinstance(value, Tensor):
                        value = value.item()
                    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                        raise TypeError(f"eval_fns[{name!r}] must return a number, got {type(value).__name__}")
                    results[name].append(float(value))
    finally:
        model.load_state_dict(original)
    return {name: np.asarray(values, dtype=float) for name, values in results.items()}


def _check_model_state(model: nn.Module, name: str, sd: ModelOrState) -> dict[str, Tensor]:
    """``sd`` as a state dict that fits ``model`` (the same keys and shapes)."""
    sd = check_state_dict(name, sd)
    _check_matching(check_module(model).state_dict(), sd, name)
    return sd


def evaluate_along_line(model: nn.Module, sd_a: ModelOrState, sd_b: ModelOrState, alphas: Sequence[float] | np.ndarray,
                        eval_fns: EvalFns) -> dict[str, np.ndarray]:
    """Evaluate ``model`` at ``interpolate_state_dicts(sd_a, sd_b, alpha)`` for every alpha.

    ``sd_a``, ``sd_b``: state dicts or models (a model's weights are copied at the call).
    ``eval_fns`` maps a name to ``fn(model) -> float`` (e.g. a task's test loss). Returns
    ``{name: array (len(alphas),)}``. The functions run in eval mode without gradients; the
    model's weights and mode are restored afterwards. Goodfellow et al. (2015) introduced this
    one-dimensional view of the loss surface.
    """
    sd_a, sd_b = _check_model_state(model, "sd_a", sd_a), _check_model_state(model, "sd_b", sd_b)
    try:
        alphas = np.asarray(alphas.detach().cpu() if isinstance(alphas, Tensor) else alphas, dtype=float)
    except (TypeError, ValueError) as err:
        raise TypeError(f"alphas must be a 1-D sequence of numbers, got {type(alphas).__name__}") from err
    if alphas.ndim != 1 or len(alphas) == 0 or not np.isfinite(alphas).all():
        raise ValueError(f"alphas must be a non-empty 1-D sequence of finite numbers, got {alphas!r}")
    return _evaluate_states(model, (interpolate_state_dicts(sd_a, sd_b, float(a)) for a in alphas), eval_fns)


@dataclass(repr=False)
class LossPlane:
    """Values of several functions on a grid in the plane through three weight vectors.

    ``values[name][i, j]`` is measured at ``theta_origin + xs[j] * u + ys[i] * v`` (u, v orthonormal,
    so xs and ys are Euclidean distances in weight space); ``points`` (3, 2) holds the plane
    coordinates of the origin, ``sd_1`` and ``sd_2``: (0, 0), (|theta_1 - theta_0|, 0), (x2, y2 > 0).
    """

    xs: np.ndarray
    ys: np.ndarray
    values: dict[str, np.ndarray]
    points: np.ndarray

    def __repr__(self) -> str:
        return (f"LossPlane({len(self.ys)} x {len(self.xs)} grid, x in [{self.xs[0]:.3g}, {self.xs[-1]:.3g}], "
                f"y in [{self.ys[0]:.3g}, {self.ys[-1]:.3g}], values of {list(self.values)})")


def _float_keys(sd: StateDict) -> list[str]:
    return [k for k, v in sd.items() if v.is_floating_point()]


def _flatten(sd: StateDict, keys: Sequence[str]) -> Tensor:
    return torch.cat([sd[k].detach().reshape(-1).double().cpu() for k in keys])


def evaluate_on_plane(model: nn.Module, sd_origin: ModelOrState, sd_1: ModelOrState, sd_2: ModelOrState,
                      eval_fns: EvalFns, resolution: int = 21, margin: float = 0.25) -> LossPlane:
    """Evaluate ``model`` on a ``resolution`` x ``resolution`` grid in the plane through three state dicts.

    Directions (Garipov et al., 2018, sec. 3.1; plots as in Li et al., 2018): u = theta_1 - theta_0
    normalised; v = the part of theta_2 - theta_0 orthogonal to u, normalised (Gram-Schmidt). The
    grid is a square centred on the three points' bounding box, its side (1 + 2 * ``margin``) times
    the box's larger side. Floating-point tensors span the plane; other tensors are taken from
    ``sd_origin``. ``eval_fns`` as in ``evaluate_along_line``; weights and mode are restored afterwards.
    """
    sd_origin, sd_1, sd_2 = (_check_model_state(model, name, sd) for name, sd in
                             (("sd_origin", sd_origin), ("sd_1", sd_1), ("sd_2", sd_2)))
    resolution = check_int("resolution", resolution, low=2)
    margin = check_number("margin", margin, low=0.0)
    keys = _float_keys(sd_origin)
    theta_0, theta_1, theta_2 = (_flatten(sd, keys) for sd in (sd_origin, sd_1, sd_2))
    d1, d2 = theta_1 - theta_0, theta_2 - theta_0
    if d1.norm() == 0:
        raise ValueError("sd_1 equals sd_origin: the three points must span a plane")
    u = d1 / d1.norm()
    v = d2 - (d2 @ u) * u
    if v.norm() <= 1e-6 * d2.norm() or v.norm() == 0:
        raise ValueError("sd_2 lies on the line through sd_origin and sd_1: the three points must span a plane")
    v = v / v.norm()
    points = np.array([[0.0, 0.0], [float(d1.norm()), 0.0], [float(d2 @ u), float(d2 @ v)]])
    low, high = points.min(axis=0), points.max(axis=0)
    center, half = (low + high) / 2, (0.5 + margin) * float((high - low).max())
    xs = np.linspace(center[0] - half, center[0] + half, resolution)
    ys = np.linspace(center[1] - half, center[1] + half, resolution)
    template = {k: t.detach() for k, t in sd_origin.items()}
    sizes = [template[k].numel() for k in keys]

    def states() -> Iterable[dict[str, Tensor]]:
        for y in ys:
            for x in xs:
                theta = theta_0 + x * u + y * v
                state = dict(template)
                for k, part in zip(keys, torch.split(theta, sizes)):
                    state[k] = part.view_as(template[k]).to(template[k].dtype)
                yield state

    flat = _evaluate_states(model, states(), eval_fns)
    values = {name: arr.reshape(resolution, resolution) for name, arr in flat.items()}
    return LossPlane(xs, ys, values, points)


# ------------------------------------------------------------------------------------------
# WiSE-FT: weight-space ensembles of a base and a fine-tuned model (Wortsman et al., 2022)
# ------------------------------------------------------------------------------------------


def wise_ft(base: ModelOrState, finetuned: ModelOrState, alpha: float) -> dict[str, Tensor]:
    """WiSE-FT (Wortsman et al., 2022, eq. 1): theta = (1 - alpha) * theta_base + alpha * theta_finetuned.

    ``base`` and ``finetuned`` are models or state dicts of the same architecture; alpha in [0, 1]
    (0 = the base model, 1 = the fine-tuned one). Returns a new state dict; load it with
    ``model.load_state_dict``.
    """
    return interpolate_state_dicts(base, finetuned, _check_alpha(alpha, low=0.0, high=1.0))


def wise_ft_sweep(model: nn.Module, sd_base: ModelOrState, sd_finetuned: ModelOrState, alphas: Sequence[float],
                  eval_fns: EvalFns) -> dict[str, np.ndarray | float]:
    """Evaluate ``wise_ft(sd_base, sd_finetuned, alpha)`` for every alpha and keep the best mixture.

    ``sd_base``, ``sd_finetuned``: state dicts or models, as for ``wise_ft``. Returns ``{name: array (len(alphas),)}`` for every eval function, ``"mean"``: their mean at each
    alpha, and ``"best_alpha"``: the alpha with the highest mean (the first one on a tie). The model
    is left holding the best alpha's weights.
    """
    if isinstance(eval_fns, Mapping) and ({"mean", "best_alpha"} & set(eval_fns)):
        raise ValueError("eval_fns must not use the names 'mean' or 'best_alpha' (they name the results)")
    try:
        grid = np.asarray(alphas, dtype=float)
    except (TypeError, ValueError) as err:
        raise TypeError(f"alphas must be a 1-D sequence of numbers, got {type(alphas).__name__}") from err
    if grid.ndim != 1 or len(grid) == 0 or not (np.all(grid >= 0.0) and np.all(grid <= 1.0)):
        raise ValueError(f"alphas must be a non-empty 1-D sequence in [0, 1] (0 = base, 1 = fine-tuned), got {alphas!r}")
    sd_base, sd_finetuned = _check_model_state(model, "sd_base", sd_base), _check_model_state(model, "sd_finetuned", sd_finetuned)
    values = evaluate_along_line(model, sd_base, sd_finetuned, grid, eval_fns)
    mean = np.mean([values[name] for name in eval_fns], axis=0)
    best_alpha = float(grid[int(np.argmax(mean))])
    model.load_state_dict(wise_ft(sd_base, sd_finetuned, best_alpha))
    return {**values, "mean": mean, "best_alpha": best_alpha}
