"""One training loop for every lesson, with extension points instead of copies.

``train`` runs ``num_steps`` optimizer steps. Each step:

1. draws a batch from ``next_batch()`` (and, for replay, appends ``extra_batch()``),
2. computes ``loss_fn(model, X, y)`` plus ``extra_loss(model)`` (a penalty such as EWC),
3. backpropagates, then lets ``grad_edit(model)`` rewrite the gradients (A-GEM, PCGrad),
4. takes the optimizer step and, every ``eval_every`` steps, records ``eval_fn(model)``.

``fit``/``evaluate`` wrap it for classifiers, ``fit_lm``/``evaluate_lm`` for language models.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .checks import check_positive_int
from .data import batches, check_xy
from .languages import lm_batch, lm_windows
from .seeding import make_generator

Batch = tuple[Tensor, Tensor]
LossFn = Callable[[nn.Module, Tensor, Tensor], Tensor]
OPTIMIZERS = ("sgd", "adam", "adamw")


@dataclass
class History:
    """What happened during training: the loss of every step and the periodic evaluations."""

    losses: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)

    def series(self, key: str) -> list[float]:
        """The recorded values of one evaluation key, in step order."""
        return [e[key] for e in self.evals]


def progress_enabled(progress: bool | None) -> bool:
    """``progress`` if given, else on unless ``$FORGETKIT_PROGRESS`` is 0/false/no."""
    if progress is not None:
        return bool(progress)
    return os.environ.get("FORGETKIT_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``with eval_mode(model):`` runs the block in eval mode (dropout off, batch-norm on running
    statistics) and puts back the mode the model had, also when the block raises."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a parameter-free model)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def make_optimizer(params, name: str, lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """An optimizer by name: ``"sgd"`` (with optional momentum), ``"adam"`` or ``"adamw"``."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters: every parameter has requires_grad=False")
    _check_hyper("lr", lr, low=0.0, strict=True)
    _check_hyper("momentum", momentum, low=0.0)
    _check_hyper("weight_decay", weight_decay, low=0.0)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}: expected one of {OPTIMIZERS}")


def _check_hyper(name: str, value: float, low: float, strict: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if math.isnan(value) or math.isinf(value) or value < low or (strict and value == low):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low}, got {value!r}")


def train(
    model: nn.Module,
    next_batch: Callable[[], Batch],
    loss_fn: LossFn,
    *,
    num_steps: int,
    lr: float,
    optimizer: str | torch.optim.Optimizer = "sgd",
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    extra_loss: Callable[[nn.Module], Tensor] | None = None,
    grad_edit: Callable[[nn.Module], None] | None = None,
    extra_batch: Callable[[], Batch] | None = None,
    eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
    eval_every: int = 0,
    progress: bool | None = None,
    desc: str = "training",
) -> History:
    """Train ``model`` in place for ``num_steps`` steps and return its ``History``.

    Raises FloatingPointError as soon as the loss stops being finite (a diverged run).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 0:
        raise ValueError(f"num_steps must be a non-negative int, got {num_steps!r}")
    if not isinstance(eval_every, int) or eval_every < 0:
        raise ValueError(f"eval_every must be a non-negative int, got {eval_every!r}")
    opt = optimizer if isinstance(optimizer, torch.optim.Optimizer) else make_optimizer(
        model.parameters(), optimizer, lr, momentum, weight_decay)
    history = History()

    def record(step: int) -> None:
        if eval_fn is not None:
            with eval_mode(model), torch.no_grad():
                history.evals.append({k: float(v) for k, v in eval_fn(model).items()})
            history.eval_steps.append(step)

    if eval_every:
        record(0)
    model.train()
    bar = tqdm(range(1, num_steps + 1), desc=desc, disable=not progress_enabled(progress), leave=False)
    for step in bar:
        X, y = next_batch()
        if extra_batch is not None:
            X_extra, y_extra = extra_batch()
            X, y = torch.cat([X, X_extra.to(X.device)]), torch.cat([y, y_extra.to(y.device)])
        loss = loss_fn(model, X, y)
        if extra_loss is not None:
            loss = loss + extra_loss(model)
        if not torch.isfinite(loss):
            bar.close()
            raise FloatingPointError(f"loss became {loss.item()} at step {step}: the run diverged (lower lr?)")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_edit is not None:
            grad_edit(model)
        opt.step()
        history.losses.append(loss.item())
        if eval_every and step % eval_every == 0:
            record(step)
    bar.close()
    return history


# ------------------------------------------------------------------------------------------
# Classifiers
# ------------------------------------------------------------------------------------------


def classification_loss(model: nn.Module, X: Tensor, y: Tensor) -> Tensor:
    """Mean cross-entropy of ``model(X)`` (N, C) against labels y (N,)."""
    return F.cross_entropy(model(X), y)


def fit(model: nn.Module, X: Tensor, y: Tensor, *, num_steps: int = 300, lr: float = 0.1,
        batch_size: int = 64, seed: int | None = None, loss_fn: LossFn = classification_loss,
        **kwargs) -> History:
    """Train a classifier on (X (N, D), y (N,)) with shuffled mini-batches.

    Data are moved to the model's device. ``kwargs`` go to ``train`` (optimizer, extra_loss, ...).
    """
    check_xy(X, y)
    device = model_device(model)
    stream = batches(X.to(device), y.to(device), batch_size, make_generator(seed))
    kwargs.setdefault("desc", "fit")
    return train(model, lambda: next(stream), loss_fn, num_steps=num_steps, lr=lr, **kwargs)


@torch.no_grad()
def evaluate(model: nn.Module, X: Tensor, y: Tensor, batch_size: int = 2048) -> dict[str, float]:
    """``{"loss": mean cross-entropy, "accuracy": fraction correct}`` on (X, y), in eval mode."""
    check_xy(X, y)
    check_positive_int("batch_size", batch_size)
    device = model_device(model)
    total_loss, correct = 0.0, 0
    with eval_mode(model):
        for start in range(0, len(y), batch_size):
            xb, yb = X[start : start + batch_size].to(device), y[start : start + batch_size].to(device)
            logits = model(xb)
            total_loss += F.cross_entropy(logits, yb, reduction="sum").item()
            correct += (logits.argmax(dim=1) == yb).sum().item()
    return {"loss": total_loss / len(y), "accuracy": correct / len(y)}


def accuracy(model: nn.Module, X: Tensor, y: Tensor) -> float:
    """Fraction of (X, y) that ``model`` classifies correctly."""
    return evaluate(model, X, y)["accuracy"]


# ------------------------------------------------------------------------------------------
# Language models
# ------------------------------------------------------------------------------------------


def lm_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Mean next-character cross-entropy of a ``TinyLM`` on x, y (B, T)."""
    return model(x, y)[1]


def fit_lm(model: nn.Module, tokens: Tensor, *, num_steps: int = 300, lr: float = 3e-3,
           batch_size: int = 32, seed: int | None = None, optimizer: str = "adamw", **kwargs) -> History:
    """Train a ``TinyLM`` on random windows of ``tokens`` (1-D int64 character ids)."""
    device = model_device(model)
    tokens = tokens.to(device)
    generator = make_generator(seed)
    block_size = model.block_size
    lm_batch(tokens, 1, block_size, torch.Generator())  # validates tokens before training starts
    kwargs.setdefault("desc", "fit_lm")
    return train(model, lambda: lm_batch(tokens, batch_size, block_size, generator), lm_loss,
                 num_steps=num_steps, lr=lr, optimizer=optimizer, **kwargs)


@torch.no_grad()
def evaluate_lm(model: nn.Module, tokens: Tensor, max_windows: int = 256) -> float:
    """Mean next-character loss (nats per character) over fixed, non-overlapping windows of ``tokens``."""
    x, y = lm_windows(tokens, model.block_size, max_windows)
    device = model_device(model)
    with eval_mode(model):
        _, loss = model(x.to(device), y.to(device))
    return float(loss)
