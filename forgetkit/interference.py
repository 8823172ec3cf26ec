"""Gradient interference: when a step that helps one task hurts another.

All gradients here are *flat*: one (P,) vector over the model's trainable parameters, in the
order of ``model.parameters()`` (P = ``fk.count_trainable(model)``). A step ``theta -= lr * g_B`` on task B changes task A's loss by

    dL_A ~= -lr * g_A . g_B        (first-order Taylor expansion of L_A around theta)

so a negative dot product (cosine < 0) between the two tasks' gradients means interference:
learning B raises A's loss. Two fixes edit the gradient before the step:

- A-GEM (Chaudhry et al., 2019): project g onto the half-space g . g_ref >= 0, where g_ref is the
  gradient on a small episodic memory of old data.
- PCGrad (Yu et al., 2020): for every pair of conflicting task gradients, remove from each the
  component along the other.

``agem_grad_edit`` and ``pcgrad_grad_edit`` build ``grad_edit`` hooks for ``forgetkit.train``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from .checks import check_callable, check_choice, check_number, check_positive_int, check_tensor
from .data import check_xy
from .models import model_device
from .peft import trainable_parameters
from .seeding import make_generator
from .training import LossFn, classification_loss


def _trainable(model: nn.Module) -> list[nn.Parameter]:
    """The parameters a flat gradient covers, in order (ValueError when none trains)."""
    return list(trainable_parameters(model, required=True).values())


def _check_vector(name: str, g: object, length: int | None = None) -> Tensor:
    check_tensor(name, g)
    if g.ndim != 1 or g.numel() == 0:
        raise ValueError(f"{name} must be a non-empty flat (P,) vector, got shape {tuple(g.shape)}")
    if not g.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {g.dtype}")
    if length is not None and g.numel() != length:
        raise ValueError(f"{name} has {g.numel()} entries, expected {length} (one per trainable parameter)")
    return g


def _check_pair(g_a: Tensor, g_b: Tensor, names: tuple[str, str]) -> None:
    _check_vector(names[0], g_a)
    _check_vector(names[1], g_b, g_a.numel())


def flat_grad(model: nn.Module, loss: Tensor) -> Tensor:
    """d loss / d theta as one (P,) vector over the trainable parameters (``.grad`` is left alone).

    A parameter the loss does not depend on contributes zeros.
    """
    params = _trainable(model)
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        raise ValueError(f"loss must be a scalar tensor, got {type(loss).__name__}"
                         + (f" of shape {tuple(loss.shape)}" if isinstance(loss, Tensor) else ""))
    if not loss.requires_grad:
        raise ValueError("loss does not depend on the model's trainable parameters (no grad_fn): "
                         "compute it from model(X) outside torch.no_grad()")
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])


def task_gradient(model: nn.Module, X: Tensor, y: Tensor, loss_fn: LossFn = classification_loss) -> Tensor:
    """The (P,) gradient of ``loss_fn(model, X, y)`` (mean loss over the N examples of X, y).

    Data move to the model's device; works inside ``torch.no_grad()`` (e.g. in an ``eval_fn``).
    """
    check_xy(X, y)
    device = model_device(model)
    with torch.enable_grad():
        return flat_grad(model, loss_fn(model, X.to(device), y.to(device)))


def get_flat_grad(model: nn.Module) -> Tensor:
    """The model's current ``.grad`` as one (P,) vector (zeros where ``.grad`` is None)."""
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in _trainable(model)])


def set_flat_grad(model: nn.Module, g: Tensor) -> None:
    """Write the (P,) vector ``g`` into the ``.grad`` of the trainable parameters, in order."""
    params = _trainable(model)
    _check_vector("g", g, sum(p.numel() for p in params))
    offset = 0
    for p in params:
        part = g[offset: offset + p.numel()].view_as(p).to(device=p.device, dtype=p.dtype)
        p.grad = part.clone()
        offset += p.numel()


def gradient_cosine(g_a: Tensor, g_b: Tensor) -> float:
    """cos(g_a, g_b) = g_a . g_b / (|g_a| |g_b|), in [-1, 1]. Both vectors must be non-zero."""
    _check_pair(g_a, g_b, ("g_a", "g_b"))
    norm_a, norm_b = g_a.double().norm(), g_b.double().norm()
    if norm_a == 0 or norm_b == 0:
        raise ValueError("the cosine of a zero gradient is undefined: both gradients must be non-zero")
    return float((g_a.double() @ g_b.double()) / (norm_a * norm_b))


def predicted_loss_change(g_a: Tensor, g_b: Tensor, lr: float) -> float:
    """First-order change of L_A after one SGD step on B: dL_A ~= -lr * g_A . g_B (Taylor)."""
    _check_pair(g_a, g_b, ("g_a", "g_b"))
    lr = check_number("lr", lr, low=0.0, low_open=True)
    return float(-lr * (g_a.double() @ g_b.double()))


def agem_project(g: Tensor, g_ref: Tensor) -> Tensor:
    """A-GEM's projection (Chaudhry et al., 2019, eq. 11): g (P,) if g . g_ref >= 0, else

        g - (g . g_ref / g_ref . g_ref) * g_ref,

    the closest vector to g that does not increase the reference (memory) loss to first order.
    """
    _check_pair(g, g_ref, ("g", "g_ref"))
    dot = g @ g_ref
    if dot >= 0:
        return g.clone()
    ref_sq = g_ref @ g_ref
    return g - (dot / ref_sq) * g_ref


def pcgrad(grads: Sequence[Tensor] | Tensor, seed: int | None = None, reduction: str = "sum") -> Tensor:
    """PCGrad (Yu et al., 2020, Algorithm 1) on T task gradients, each (P,) (or a (T, P) tensor).

    For every task i, start from g_i and, for every other task j in a random order, if the
    running g_i conflicts with the *original* g_j (dot product < 0), remove its component along
    g_j: g_i -= (g_i . g_j / |g_j|^2) g_j. Returns the sum of the projected gradients (P,), their
    mean (``reduction="mean"``), or all of them (T, P) (``"none"``). The order comes from ``seed``.
    """
    if isinstance(grads, Tensor):
        if grads.ndim != 2:
            raise ValueError(f"grads must be a (T, P) tensor or a list of (P,) vectors, got shape {tuple(grads.shape)}")
        grads = list(grads)
    if not isinstance(grads, Sequence) or len(grads) == 0:
        raise ValueError("grads must hold at least one (P,) gradient")
    check_choice("reduction", reduction, ("sum", "mean", "none"))
    for t, g in enumerate(grads):
        _check_vector(f"grads[{t}]", g, grads[0].numel() if isinstance(grads[0], Tensor) else None)
    generator = make_generator(seed)
    projected = []
    for i, g_i in enumerate(grads):
        g_pc = g_i.clone()
        for j in torch.randperm(len(grads), generator=generator).tolist():
            if j == i:
                continue
            dot = g_pc @ grads[j]
            if dot < 0:
                g_pc = g_pc - (dot / (grads[j] @ grads[j])) * grads[j]
        projected.append(g_pc)
    stacked = torch.stack(projected)
    if reduction == "none":
        return stacked
    return stacked.sum(0) if reduction == "sum" else stacked.mean(0)


# ------------------------------------------------------------------------------------------
# grad_edit hooks for forgetkit.train
# ------------------------------------------------------------------------------------------


def memory_grad_edit(memory_X: Tensor, memory_y: Tensor, combine: Callable[[Tensor, Tensor], Tensor],
                     loss_fn: LossFn = classification_loss, batch_size: int = 64,
                     seed: int | None = None) -> Callable[[nn.Module], None]:
    """A ``grad_edit`` hook: g <- combine(g, g_ref), g_ref = the gradient on a memory sample.

    Each call reads the model's current gradient g (from the new task's batch), draws
    ``batch_size`` examples of the episodic memory (without replacement, all of them if fewer),
    computes their gradient g_ref and writes ``combine(g, g_ref)`` back into ``.grad``.
    """
    check_xy(memory_X, memory_y)
    check_positive_int("batch_size", batch_size)
    check_callable("combine", combine, "(g, g_ref) -> g_new")
    generator = make_generator(seed)
    n = len(memory_y)

    def grad_edit(model: nn.Module) -> None:
        idx = torch.randperm(n, generator=generator)[: min(batch_size, n)]
        g_ref = task_gradient(model, memory_X[idx], memory_y[idx], loss_fn)
        set_flat_grad(model, combine(get_flat_grad(model), g_ref))

    return grad_edit


def agem_grad_edit(memory_X: Tensor, memory_y: Tensor, loss_fn: LossFn = classification_loss,
                   batch_size: int = 64, seed: int | None = None) -> Callable[[nn.Module], None]:
    """A-GEM as a ``grad_edit`` hook: project the new task's gradient with ``agem_project``
    against the gradient of a memory sample of old data (Chaudhry et al., 2019)."""
    return memory_grad_edit(memory_X, memory_y, agem_project, loss_fn, batch_size, seed)


def pcgrad_grad_edit(memory_X: Tensor, memory_y: Tensor, loss_fn: LossFn = classification_loss,
                     batch_size: int = 64, seed: int | None = None) -> Callable[[nn.Module], None]:
    """PCGrad on two "tasks" as a ``grad_edit`` hook: the new batch's gradient and a memory
    sample's gradient, each stripped of its conflict with the other, then summed (Yu et al., 2020)."""
    return memory_grad_edit(memory_X, memory_y, lambda g, g_ref: pcgrad([g, g_ref]), loss_fn, batch_size, seed)
