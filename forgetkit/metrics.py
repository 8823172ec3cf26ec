"""Continual-learning metrics, pinned down once for the whole course.

Public libraries disagree on some of these definitions; ours are written here with their source
and tested on hand-made matrices. Tasks are numbered 0..T-1 and

    R[i, j] = accuracy on task j after training on task i        (R is T x T).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import numpy as np
import torch.nn as nn
from tqdm.auto import tqdm

from .data import Task
from .training import accuracy, progress_enabled


def _as_matrix(R: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    R = np.asarray(R, dtype=float)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] == 0:
        raise ValueError(f"R must be a non-empty square T x T matrix, got shape {R.shape}")
    if np.isnan(R).any():
        raise ValueError("R contains NaN: fill every entry R[i, j] before computing metrics")
    return R


def average_accuracy(R) -> float:
    """ACC = mean_j R[T-1, j]: accuracy over all tasks after the last one (Lopez-Paz & Ranzato, 2017)."""
    R = _as_matrix(R)
    return float(R[-1].mean())


def backward_transfer(R) -> float:
    """BWT = mean_{j<T-1} (R[T-1, j] - R[j, j]) (Lopez-Paz & Ranzato, 2017, eq. 2).

    Negative BWT is forgetting: old tasks lost accuracy after later training. Needs T >= 2.
    """
    R = _as_matrix(R)
    T = len(R)
    if T < 2:
        raise ValueError("backward transfer needs at least 2 tasks")
    return float(np.mean([R[T - 1, j] - R[j, j] for j in range(T - 1)]))


def forward_transfer(R, baseline: Sequence[float] | np.ndarray) -> float:
    """FWT = mean_{j>0} (R[j-1, j] - b_j) (Lopez-Paz & Ranzato, 2017, eq. 3).

    ``baseline[j]`` = b_j is the accuracy of the untrained (randomly initialised) model on task j.
    """
    R = _as_matrix(R)
    T = len(R)
    b = np.asarray(baseline, dtype=float)
    if b.shape != (T,):
        raise ValueError(f"baseline must hold one accuracy per task, shape ({T},), got {b.shape}")
    if T < 2:
        raise ValueError("forward transfer needs at least 2 tasks")
    return float(np.mean([R[j - 1, j] - b[j] for j in range(1, T)]))


def forgetting(R, k: int | None = None) -> float:
    """Average forgetting after task k (Chaudhry et al., 2018, "Riemannian Walk", eq. 5):

        f_j^k = max_{l<k} R[l, j] - R[k, j]   for each old task j < k,  averaged over j < k.

    The max runs over *every* earlier step (not just "right after learning j", as in some
    libraries), and every old task j < k counts, the latest one included. Default k = T-1.
    """
    R = _as_matrix(R)
    T = len(R)
    k = T - 1 if k is None else k
    if not isinstance(k, int) or not 1 <= k < T:
        raise ValueError(f"k must be an int in [1, {T - 1}], got {k!r}")
    return float(np.mean([R[:k, j].max() - R[k, j] for j in range(k)]))


def summarize(R, baseline: Sequence[float] | None = None) -> dict[str, float]:
    """ACC, BWT, forgetting (and FWT when ``baseline`` is given) of one accuracy matrix."""
    out = {"ACC": average_accuracy(R)}
    if len(np.asarray(R)) >= 2:
        out["BWT"] = backward_transfer(R)
        out["forgetting"] = forgetting(R)
        if baseline is not None:
            out["FWT"] = forward_transfer(R, baseline)
    return out


def value_at_learning(learned: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray,
                      target: float) -> float:
    """The value of ``values`` where one training run first reached ``target`` learning.

    ``learned`` and ``values`` (K,) are measured at the same K checkpoints of one run, in training
    order (e.g. new-task accuracy and old-task accuracy, or learning and forgetting). Takes the first
    checkpoint k with ``learned[k] >= target`` and interpolates linearly between checkpoints k-1 and
    k; NaN when the run never gets there. Reading every method at the same ``target`` compares them
    at *matched learning*, along their learning-forgetting curves (Biderman et al., 2024), instead
    of at one setting each. Start the lists with the model before training (learning 0) so that a
    target below the first checkpoint is interpolated too.
    """
    learned, values = np.asarray(learned, dtype=float), np.asarray(values, dtype=float)
    if learned.ndim != 1 or learned.shape != values.shape or learned.size == 0:
        raise ValueError("learned and values must be non-empty 1-D sequences of the same length (one per "
                         f"checkpoint), got shapes {learned.shape} and {values.shape}")
    if isinstance(target, bool) or not isinstance(target, numbers.Real) or math.isnan(target):
        raise TypeError(f"target must be a real number, got {target!r}")
    if np.isnan(learned).any() or np.isnan(values).any():
        raise ValueError("learned and values must not contain NaN")
    reached = np.flatnonzero(learned >= target)
    if reached.size == 0:
        return math.nan
    k = int(reached[0])
    if k == 0:
        return float(values[0])
    t = (target - learned[k - 1]) / (learned[k] - learned[k - 1])
    return float(values[k - 1] + t * (values[k] - values[k - 1]))


def accuracy_matrix(
    model: nn.Module,
    tasks: Sequence[Task],
    train_on_task: Callable[[nn.Module, int, Task], object],
    progress: bool | None = None,
) -> np.ndarray:
    """Train on ``tasks`` in order and fill R (T x T): R[i, j] = accuracy on task j after task i.

    ``train_on_task(model, i, task)`` trains ``model`` in place on task i (any method: plain
    fine-tuning, a penalty, replay ...).
    """
    if len(tasks) == 0:
        raise ValueError("tasks is empty: expected at least one task")
    T = len(tasks)
    R = np.zeros((T, T))
    for i in tqdm(range(T), desc="tasks", disable=not progress_enabled(progress), leave=False):
        train_on_task(model, i, tasks[i])
        for j, task in enumerate(tasks):
            R[i, j] = accuracy(model, task.X_test, task.y_test)
    return R


def perplexity(model: nn.Module, tokens) -> float:
    """exp(mean next-character cross-entropy) of a ``TinyLM`` over fixed windows of ``tokens``.

    A perplexity of k means the model is as unsure as a fair choice among k characters
    (1 = perfect; the alphabet size = no knowledge; larger = confidently wrong).
    """
    from .training import evaluate_lm

    return float(np.exp(evaluate_lm(model, tokens)))
