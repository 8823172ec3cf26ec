"""Where in a transformer does fine-tuning change things? Per-layer drift of weights, activations, attention.

Everything is reported per *layer group* of a ``TinyLM``, bottom to top::

    "embeddings"  token_embedding.*, position_embedding.*
    "block 0" ... "block n-1"   blocks.<i>.*
    "head"        ln_f.*, lm_head.*

- ``weight_drift(before, after)``: relative L2 change ||W_after - W_before|| / ||W_before|| per group;
- ``linear_cka(X, Y)``: similarity of two sets of activations of the same N inputs (Kornblith et al. 2019);
- ``representation_drift(before, after, idx)``: 1 - CKA of the residual stream after each group;
- ``restore_layers(model, reference, groups)``: copy chosen groups' weights back from a state dict;
- ``attention_entropy`` / ``attention_distance``: how spread out, and how far back, each head looks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor

from .checks import ModelOrState, check_callable, check_module, check_state_dict, check_tensor
from .models import TinyLM, eval_mode, model_device

# ---------------------------------------------------------------------------------------------
# Layer groups
# ---------------------------------------------------------------------------------------------


def group_of(name: str) -> str:
    """The layer group of a ``TinyLM`` parameter name, e.g. ``"blocks.1.attn.qkv.weight"`` -> ``"block 1"``."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name.startswith(("token_embedding.", "position_embedding.")):
        return "embeddings"
    if name.startswith("blocks."):
        index = name.split(".")[1]
        if index.isdigit():
            return f"block {index}"
    if name.startswith(("ln_f.", "lm_head.")):
        return "head"
    raise ValueError(f"{name!r} is not a TinyLM parameter: expected token_embedding.*, "
                     "position_embedding.*, blocks.<i>.*, ln_f.* or lm_head.*")


def layer_groups(model_or_state: ModelOrState) -> list[str]:
    """The group names of a ``TinyLM`` (or its state dict), bottom to top:
    ``["embeddings", "block 0", ..., "block n-1", "head"]``."""
    state = check_state_dict("model_or_state", model_or_state)
    names: list[str] = []
    for key in state:
        group = group_of(key)
        if group not in names:
            names.append(group)
    blocks = sorted((g for g in names if g.startswith("block ")), key=lambda g: int(g.split()[1]))
    return [g for g in ("embeddings",) if g in names] + blocks + [g for g in ("head",) if g in names]


# ---------------------------------------------------------------------------------------------
# Weight drift
# ---------------------------------------------------------------------------------------------


def weight_drift(before: ModelOrState, after: ModelOrState) -> dict[str, float]:
    """Relative L2 change of each layer group: ||W_after - W_before|| / ||W_before||.

    The norm of a group is the Euclidean norm of all its parameters stacked into one vector, so a
    value of 0.1 means the group moved by 10% of its own size. Returns ``{group: drift}``, bottom to top.
    """
    old, new = check_state_dict("before", before), check_state_dict("after", after)
    if old.keys() != new.keys():
        raise ValueError("before and after must have the same parameter names (the same architecture)")
    sq_change: dict[str, float] = {}
    sq_norm: dict[str, float] = {}
    for name, w_old in old.items():
        w_new = new[name]
        if w_old.shape != w_new.shape:
            raise ValueError(f"{name}: shape {tuple(w_old.shape)} before but {tuple(w_new.shape)} after")
        if not w_old.is_floating_point():
            continue
        group = group_of(name)
        w_old64, w_new64 = w_old.detach().double().cpu(), w_new.detach().double().cpu()
        sq_change[group] = sq_change.get(group, 0.0) + float(((w_new64 - w_old64) ** 2).sum())
        sq_norm[group] = sq_norm.get(group, 0.0) + float((w_old64**2).sum())
    return {g: math.sqrt(sq_change[g]) / max(math.sqrt(sq_norm[g]), 1e-12) for g in layer_groups(old)}


# ---------------------------------------------------------------------------------------------
# Linear CKA and representation drift
# ---------------------------------------------------------------------------------------------


def linear_cka(X: Tensor | np.ndarray, Y: Tensor | np.ndarray) -> float:
    """Linear centred kernel alignment between activations X (N, D1) and Y (N, D2) of the same N inputs.

    With column-centred X and Y, and K = X X^T, L = Y Y^T the linear kernels (N, N),
    HSIC(K, L) = tr(K H L H) / (N - 1)^2 (H the centring matrix), and

        CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)

    (Kornblith, Norouzi, Lee & Hinton 2019, "Similarity of Neural Network Representations
    Revisited", eq. 5). A number in [0, 1]: 1 for identical representations, unchanged by an
    orthogonal transform or an isotropic scaling of either one. Computed in float64.
    """
    X, Y = _activations(X, "X"), _activations(Y, "Y")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X and Y must hold the same N inputs (rows), got {X.shape[0]} and {Y.shape[0]}")
    X = X - X.mean(dim=0, keepdim=True)
    Y = Y - Y.mean(dim=0, keepdim=True)
    cross = (Y.T @ X).pow(2).sum()
    norm_x = (X.T @ X).pow(2).sum().sqrt()
    norm_y = (Y.T @ Y).pow(2).sum().sqrt()
    if norm_x == 0 or norm_y == 0:
        raise ValueError("CKA is undefined when X or Y is constant across the N inputs (zero variance)")
    return float(cross / (norm_x * norm_y))


def _activations(A: Tensor | np.ndarray, what: str) -> Tensor:
    if isinstance(A, np.ndarray):
        A = torch.from_numpy(A)
    if not isinstance(A, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor or numpy array of shape (N, D), got {type(A).__name__}")
    if A.ndim != 2:
        raise ValueError(f"{what} must have shape (N, D), got {tuple(A.shape)}")
    if A.shape[0] < 2 or A.shape[1] < 1:
        raise ValueError(f"{what} needs at least 2 rows (inputs) and 1 column (feature), got {tuple(A.shape)}")
    if not (A.is_floating_point() or A.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"{what} must hold real numbers, got dtype {A.dtype}")
    A = A.detach().double().cpu()
    if not torch.isfinite(A).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return A


@torch.no_grad()
def _run_in_eval_mode(model: TinyLM, idx: Tensor, method: str) -> list[Tensor]:
    """``model.<method>(idx)`` (hidden_states or attention_maps) in eval mode, on the model's device."""
    if not isinstance(model, TinyLM):
        raise TypeError(f"model must be a forgetkit TinyLM, got {type(model).__name__}")
    check_tensor("idx", idx)
    with eval_mode(model):
        return getattr(model, method)(idx.to(model_device(model)))


@torch.no_grad()
def residual_states(model: TinyLM, idx: Tensor) -> dict[str, Tensor]:
    """The residual stream of ``model`` on windows idx (B, T), flattened to (B*T, C) per position in the stack:
    ``{"embeddings": ..., "block 0": ..., ...}`` (the state *after* that group)."""
    states = _run_in_eval_mode(model, idx, "hidden_states")
    names = ["embeddings"] + [f"block {i}" for i in range(len(states) - 1)]
    return {name: s.flatten(0, 1) for name, s in zip(names, states)}


def representation_drift(before: TinyLM, after: TinyLM, idx: Tensor, cka=linear_cka) -> dict[str, float]:
    """1 - CKA between the residual streams of two models on the same windows idx (B, T).

    Returns ``{"embeddings": ..., "block 0": ..., ...}``: 0 means the layer represents the inputs
    exactly as before (up to rotation and scale), 1 means nothing in common. ``cka`` lets a lesson
    pass its own CKA function.
    """
    check_callable("cka", cka, "cka(X, Y) -> float")
    states_before, states_after = residual_states(before, idx), residual_states(after, idx)
    if states_before.keys() != states_after.keys():
        raise ValueError("before and after must have the same number of blocks")
    return {name: 1.0 - float(cka(states_before[name], states_after[name])) for name in states_before}


# ---------------------------------------------------------------------------------------------
# Restoring layers
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def restore_layers(model: TinyLM, reference: ModelOrState, groups: Iterable[str]) -> TinyLM:
    """Copy the weights of ``groups`` (e.g. ``["embeddings", "block 0"]``) from ``reference`` into ``model``.

    Changes ``model`` in place (on its own device) and returns it; other groups are left as they are.
    """
    check_module(model)
    ref = check_state_dict("reference", reference)
    if isinstance(groups, str):
        raise TypeError("groups must be a list of group names, e.g. ['embeddings', 'block 0'], not a single str")
    groups = list(groups)
    known = layer_groups(model)
    unknown = [g for g in groups if g not in known]
    if unknown:
        raise ValueError(f"unknown layer group(s) {unknown}: expected some of {known}")
    if ref.keys() != model.state_dict().keys():
        raise ValueError("reference must have the same parameter names as model (the same architecture)")
    for name, tensor in model.state_dict().items():
        if group_of(name) in groups:
            if ref[name].shape != tensor.shape:
                raise ValueError(f"{name}: reference shape {tuple(ref[name].shape)} != model shape {tuple(tensor.shape)}")
            tensor.copy_(ref[name].to(tensor.device))
    return model


# ---------------------------------------------------------------------------------------------
# Attention statistics
# ---------------------------------------------------------------------------------------------


def _attention(model: TinyLM, idx: Tensor) -> Tensor:
    """All attention maps stacked: (n_layer, B, H, T, T)."""
    return torch.stack(_run_in_eval_mode(model, idx, "attention_maps")).double().cpu()


def attention_entropy(model: TinyLM, idx: Tensor) -> Tensor:
    """Mean entropy (nats) of each head's attention distribution, averaged over windows and query positions.

    idx (B, T) -> (n_layer, n_head). Low: the head looks at one position; high: it spreads its
    attention (a query at position t can reach at most log(t + 1)).
    """
    A = _attention(model, idx)
    entropy = -(A * torch.log(A.clamp_min(1e-12))).sum(dim=-1)  # (L, B, H, T)
    return entropy.mean(dim=(1, 3)).float()


def attention_distance(model: TinyLM, idx: Tensor) -> Tensor:
    """Mean distance (characters) from each query to the positions it attends to: sum_j a_tj (t - j).

    idx (B, T) -> (n_layer, n_head), averaged over windows and query positions.
    """
    A = _attention(model, idx)
    T = A.shape[-1]
    positions = torch.arange(T, dtype=A.dtype)
    distance = (positions[:, None] - positions[None, :]).clamp_min(0)  # (T, T), t - j for j <= t
    return (A * distance).sum(dim=-1).mean(dim=(1, 3)).float()


def attention_shift(before: TinyLM, after: TinyLM, idx: Tensor) -> Tensor:
    """How much attention moved: total-variation distance 1/2 sum_j |a_tj - b_tj| between the two
    models' attention rows, averaged over windows and query positions. idx (B, T) -> (n_layer, n_head).

    0: the head attends exactly as before; 1: it now attends to entirely different positions.
    (Query position 0 can only attend to itself, so it always contributes 0.)
    """
    A, B = _attention(before, idx), _attention(after, idx)
    if A.shape != B.shape:
        raise ValueError(f"before and after must have the same layers and heads, got {tuple(A.shape)} and {tuple(B.shape)}")
    return (0.5 * (A - B).abs().sum(dim=-1)).mean(dim=(1, 3)).float()
