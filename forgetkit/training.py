"""One training loop for every lesson, with extension points instead of copies.

``train`` runs ``num_steps`` optimizer steps. Each step:

1. draws a batch from ``next_batch()`` (and, for replay, appends ``extra_batch()``),
2. computes ``loss_fn(model, X, y)`` plus ``extra_loss(model)`` (a penalty such as EWC) plus
   ``batch_penalty(model, X)`` (a penalty on the step's inputs, such as distillation to a base model),
3. backpropagates, then lets ``grad_edit(model)`` rewrite the gradients (A-GEM, PCGrad),
4. takes the optimizer step, calls ``on_step(step, model)`` and, every ``eval_every`` steps,
   records ``eval_fn(model)``.

``fit``/``evaluate`` wrap it for classifiers, ``fit_lm``/``evaluate_lm`` for language models.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .checks import (
    check_callable,
    check_choice,
    check_int,
    check_module,
    check_number,
    check_positive_int,
)
from .data import batches, check_xy
from .languages import lm_batch, lm_windows
from .models import eval_mode, model_device
from .seeding import make_generator

Batch = tuple[Tensor, Tensor]
LossFn = Callable[[nn.Module, Tensor, Tensor], Tensor]
OPTIMIZERS = ("sgd", "adam", "adamw")


@dataclass(repr=False)
class History:
    """What happened during training: the loss of every step and the periodic evaluations."""

    losses: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)

    def series(self, key: str) -> list[float]:
        """The recorded values of one evaluation key, in step order."""
        return [e[key] for e in self.evals]

    def __repr__(self) -> str:
        last = f", last loss {self.losses[-1]:.4g}" if self.losses else ""
        keys = sorted({key for e in self.evals for key in e})
        evals = f", {len(self.evals)} evaluations of {keys}" if self.evals else ""
        return f"History({len(self.losses)} steps{last}{evals})"


def progress_enabled(progress: bool | None) -> bool:
    """``progress`` if given, else on unless ``$FORGETKIT_PROGRESS`` is 0/false/no."""
    if progress is not None:
        return bool(progress)
    return os.environ.get("FORGETKIT_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")


def make_optimizer(params, name: str, lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """An optimizer by name: ``"sgd"`` (with optional momentum), ``"adam"`` or ``"adamw"``."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters: every parameter has requires_grad=False")
    check_choice("optimizer", name, OPTIMIZERS)
    lr = check_number("lr", lr, low=0.0, low_open=True)
    momentum = check_number("momentum", momentum, low=0.0)
    weight_decay = check_number("weight_decay", weight_decay, low=0.0)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


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
    batch_penalty: Callable[[nn.Module, Tensor], Tensor] | None = None,
    grad_edit: Callable[[nn.Module], None] | None = None,
    extra_batch: Callable[[], Batch] | None = None,
    on_step: Callable[[int, nn.Module], None] | None = None,
    eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
    eval_every: int = 0,
    progress: bool | None = None,
    desc: str = "training",
) -> History:
    """Train ``model`` in place for ``num_steps`` steps and return its ``History``.

    Hooks: ``extra_loss(model)`` is added to the loss, and so is ``batch_penalty(model, X)``, a
    penalty that needs the step's inputs X (the rows ``loss_fn`` sees, replayed ones included), such
    as ``fk.Distillation``; ``grad_edit(model)`` may rewrite the
    gradients before the step; ``extra_batch()`` returns (X, y) appended to every batch;
    ``on_step(step, model)`` runs after optimizer step ``step`` (1..num_steps), in training mode,
    for checkpoints, timers or logs; ``eval_fn(model)`` returns ``{name: value}`` and is recorded
    at step 0 and every ``eval_every`` steps, in eval mode without gradients.

    With plain SGD, a penalty that knows its own curvature (an ``extra_loss`` with a
    ``check_stability(lr, momentum)`` method, such as ``OnlineEWC``) is asked once, before the
    first step, whether this learning rate is stable; it warns when it is not.
    Raises FloatingPointError as soon as the loss stops being finite (a diverged run).
    """
    check_module(model)
    check_int("num_steps", num_steps, low=0)
    check_int("eval_every", eval_every, low=0)
    hooks = dict(next_batch=(next_batch, "() -> (X, y)"), loss_fn=(loss_fn, "(model, X, y) -> loss"),
                 extra_loss=(extra_loss, "(model) -> Tensor"),
                 batch_penalty=(batch_penalty, "(model, X) -> Tensor"), grad_edit=(grad_edit, "(model) -> None"),
                 extra_batch=(extra_batch, "() -> (X, y)"), on_step=(on_step, "(step, model) -> None"),
                 eval_fn=(eval_fn, "(model) -> dict"))
    for name, (hook, signature) in hooks.items():
        if hook is not None:
            check_callable(name, hook, signature)
    opt = optimizer if isinstance(optimizer, torch.optim.Optimizer) else make_optimizer(
        model.parameters(), optimizer, lr, momentum, weight_decay)
    if optimizer == "sgd" and hasattr(extra_loss, "check_stability"):
        extra_loss.check_stability(lr, momentum)
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
        if batch_penalty is not None:
            loss = loss + batch_penalty(model, X)
        if not torch.isfinite(loss):
            bar.close()
            raise FloatingPointError(f"loss became {loss.item()} at step {step}: the run diverged (lower lr?)")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_edit is not None:
            grad_edit(model)
        opt.step()
        history.losses.append(loss.item())
        if on_step is not None:
            on_step(step, model)
        if eval_every and step % eval_every == 0:
            record(step)
    bar.close()
    return history


def batch_generator(seed: int | None) -> torch.Generator:
    """The generator that orders a run's batches: seeded with ``seed``, or, when ``seed`` is None,
    with one draw from PyTorch's global generator, so that two runs in a row see different batch
    orders while ``fk.seed_everything()`` still makes the whole sequence reproducible."""
    if seed is None:
        seed = int(torch.randint(2**32, (), dtype=torch.int64))
    return make_generator(seed)


# ------------------------------------------------------------------------------------------
# Classifiers
# ------------------------------------------------------------------------------------------


def classification_loss(model: nn.Module, X: Tensor, y: Tensor) -> Tensor:
    """Mean cross-entropy of ``model(X)`` (N, C) against labels y (N,)."""
    return F.cross_entropy(model(X), y)


def _is_language_model(model: nn.Module) -> bool:
    return isinstance(getattr(model, "block_size", None), int)


def check_classifier_data(model: nn.Module, X: Tensor, y: Tensor, labels: bool = True) -> None:
    """Raise a clear error unless ``model`` is a classifier (not a language model), X (N, ...) holds
    floating-point features of the model's dtype and, when ``labels``, y (N,) holds int64 classes."""
    check_module(model)
    check_xy(X, y)
    if _is_language_model(model):
        raise TypeError(f"{type(model).__name__} is a language model: train it with fk.fit_lm(model, tokens) "
                        "and score it with fk.evaluate_lm(model, tokens)")
    weight = next(model.parameters(), None)
    if weight is not None and X.dtype != weight.dtype:
        raise TypeError(f"X holds {X.dtype} but the model's weights are {weight.dtype}: convert the data "
                        f"with X.to({weight.dtype}) (e.g. X.float())")
    if labels and y.dtype != torch.int64:
        raise TypeError(f"y must hold class indices as int64 (torch.long), got {y.dtype}: convert it with y.long()")


def fit(model: nn.Module, X: Tensor, y: Tensor, *, num_steps: int = 300, lr: float = 0.1,
        batch_size: int = 64, seed: int | None = None, loss_fn: LossFn = classification_loss,
        **kwargs) -> History:
    """Train a classifier on (X (N, D), y (N,)) with shuffled mini-batches.

    ``seed`` fixes the batch order; None draws it from PyTorch's global generator (different
    every call, reproducible after ``fk.seed_everything()``). Data are moved to the model's
    device. ``kwargs`` go to ``train`` (optimizer, extra_loss, on_step, eval_fn ...).
    """
    check_classifier_data(model, X, y, labels=loss_fn is classification_loss)
    check_positive_int("batch_size", batch_size)
    device = model_device(model)
    stream = batches(X.to(device), y.to(device), batch_size, batch_generator(seed))
    kwargs.setdefault("desc", "fit")
    return train(model, lambda: next(stream), loss_fn, num_steps=num_steps, lr=lr, **kwargs)


@torch.no_grad()
def evaluate(model: nn.Module, X: Tensor, y: Tensor, batch_size: int = 2048) -> dict[str, float]:
    """``{"loss": mean cross-entropy, "accuracy": fraction correct}`` on (X, y), in eval mode."""
    check_classifier_data(model, X, y)
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


def check_language_model(model: nn.Module) -> nn.Module:
    """``model`` if it is a language model such as ``TinyLM`` (it has an int ``block_size``)."""
    check_module(model)
    if not _is_language_model(model):
        raise TypeError(f"expected a language model such as fk.TinyLM (with a block_size), got "
                        f"{type(model).__name__}: for a classifier use fk.fit(model, X, y) and "
                        "fk.evaluate(model, X, y)")
    return model


def lm_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Mean next-character cross-entropy of a ``TinyLM`` on x, y (B, T)."""
    return model(x, y)[1]


def fit_lm(model: nn.Module, tokens: Tensor, *, num_steps: int = 300, lr: float = 3e-3,
           batch_size: int = 32, seed: int | None = None, optimizer: str = "adamw", **kwargs) -> History:
    """Train a ``TinyLM`` on random windows of ``tokens`` (1-D int64 character ids).

    ``seed`` fixes which windows are drawn; None draws it as in ``fit``.
    """
    check_language_model(model)
    device = model_device(model)
    tokens = tokens.to(device) if isinstance(tokens, Tensor) else tokens
    block_size = model.block_size
    lm_batch(tokens, 1, block_size, torch.Generator())  # validates tokens before training starts
    check_positive_int("batch_size", batch_size)
    generator = batch_generator(seed)
    kwargs.setdefault("desc", "fit_lm")
    return train(model, lambda: lm_batch(tokens, batch_size, block_size, generator), lm_loss,
                 num_steps=num_steps, lr=lr, optimizer=optimizer, **kwargs)


@torch.no_grad()
def evaluate_lm(model: nn.Module, tokens: Tensor, max_windows: int = 256) -> float:
    """Mean next-character loss (nats per character) over fixed, non-overlapping windows of ``tokens``."""
    x, y = lm_windows(tokens, check_language_model(model).block_size, max_windows)
    device = model_device(model)
    with eval_mode(model):
        _, loss = model(x.to(device), y.to(device))
    return float(loss)
