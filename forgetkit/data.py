"""Digits task streams, built from scikit-learn's bundled 8x8 handwritten digits (no download).

A *task* is a train/test pair of tensors. A *task stream* is a list of tasks seen one after another.
Two ways to make new tasks from one dataset, each a classic continual-learning scenario:

- permuted digits (domain-incremental): every task shuffles the 64 pixels with its own fixed
  permutation; the labels stay 0-9, so one shared head serves all tasks.
- split digits (class- or task-incremental): every task holds a different group of classes.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .checks import check_bool, check_int, check_number, check_positive_int
from .seeding import get_seed

NUM_PIXELS = 64
NUM_CLASSES = 10
SPLIT_SEED = 1234  # the train/test split is fixed for the whole course, whatever the lesson's seed


@dataclass(frozen=True)
class Task:
    """One task: ``X_*`` is (N, 64) float32 in [0, 1], ``y_*`` is (N,) int64."""

    name: str
    X_train: Tensor
    y_train: Tensor
    X_test: Tensor
    y_test: Tensor

    @property
    def classes(self) -> list[int]:
        """The labels that occur in this task's training set, sorted."""
        return sorted(int(c) for c in torch.unique(self.y_train))

    def __repr__(self) -> str:
        classes = self.classes
        shown = f"{classes[0]}-{classes[-1]}" if classes == list(range(classes[0], classes[-1] + 1)) else classes
        return (f"Task({self.name!r}, train {tuple(self.X_train.shape)}, test {tuple(self.X_test.shape)}, "
                f"classes {shown})")

    def to(self, device: torch.device | str) -> Task:
        """The same task with every tensor on ``device``."""
        return Task(
            self.name,
            self.X_train.to(device),
            self.y_train.to(device),
            self.X_test.to(device),
            self.y_test.to(device),
        )

    def subset(self, num_train: int, seed: int | None = None) -> Task:
        """The same task with only ``num_train`` randomly chosen training examples."""
        num_train = check_int("num_train", num_train, low=1, high=len(self.y_train))
        g = torch.Generator().manual_seed(get_seed(seed))
        idx = torch.randperm(len(self.y_train), generator=g)[:num_train].sort().values
        return Task(self.name, self.X_train[idx], self.y_train[idx], self.X_test, self.y_test)


def _read_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 digits as (pixels (1797, 64) in 0..16, labels (1797,)), read from scikit-learn's files.

    Reading the bundled ``digits.csv.gz`` directly skips importing scikit-learn (about 1.5 s of CPU
    in every lesson); ``load_digits`` is the fallback should that file ever move.
    """
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
        if path.exists():
            table = np.loadtxt(path, delimiter=",")
            return table[:, :-1], table[:, -1]
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data, data.target


@lru_cache(maxsize=4)
def _digits_split(test_fraction: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    pixels, labels = _read_digits()
    X = torch.tensor(pixels, dtype=torch.float32) / 16.0  # pixel intensities 0..16 -> [0, 1]
    y = torch.tensor(labels, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(SPLIT_SEED))
    num_test = int(round(test_fraction * len(y)))
    test, train = order[:num_test], order[num_test:]
    return X[train], y[train], X[test], y[test]


def load_digits_split(test_fraction: float = 0.3) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(X_train, y_train, X_test, y_test)`` from the 1797 bundled digits, a fixed split.

    Shapes: X is (N, 64) float32 in [0, 1]; y is (N,) int64 in 0..9.
    """
    test_fraction = check_number("test_fraction", test_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
    return tuple(t.clone() for t in _digits_split(test_fraction))  # type: ignore[return-value]


def digits_task(name: str = "digits") -> Task:
    """The plain digits task (no permutation, all ten classes)."""
    return Task(name, *load_digits_split())


def permute_pixels(task: Task, permutation: Tensor, name: str | None = None) -> Task:
    """``task`` with its 64 pixels reordered by ``permutation`` (a (64,) permutation of 0..63)."""
    if not isinstance(permutation, Tensor) or permutation.is_floating_point() or permutation.is_complex() \
            or permutation.dtype == torch.bool:
        got = permutation.dtype if isinstance(permutation, Tensor) else type(permutation).__name__
        raise TypeError(f"permutation must be an integer torch tensor holding 0..63, got {got}")
    if permutation.shape != (NUM_PIXELS,) or not torch.equal(
        permutation.sort().values, torch.arange(NUM_PIXELS)
    ):
        raise ValueError("permutation must be a (64,) tensor holding each of 0..63 once")
    return Task(
        name or f"{task.name}-permuted",
        task.X_train[:, permutation],
        task.y_train,
        task.X_test[:, permutation],
        task.y_test,
    )


def permuted_digits(num_tasks: int, seed: int | None = None, first_identity: bool = True) -> list[Task]:
    """A domain-incremental stream: task t is the digits with pixel permutation number t.

    With ``first_identity`` task 0 is the unpermuted digits, the "pre-training" task.
    """
    check_positive_int("num_tasks", num_tasks)
    check_bool("first_identity", first_identity)
    base = digits_task("task 0")
    g = torch.Generator().manual_seed(get_seed(seed))
    tasks = []
    for t in range(num_tasks):
        permutation = torch.randperm(NUM_PIXELS, generator=g)
        if t == 0 and first_identity:
            permutation = torch.arange(NUM_PIXELS)
        tasks.append(permute_pixels(base, permutation, name=f"task {t}"))
    return tasks


def split_digits(
    class_groups: Sequence[Sequence[int]] = ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9)),
    relabel: bool = False,
) -> list[Task]:
    """A stream whose task t holds only the digits in ``class_groups[t]``.

    ``relabel=False`` keeps the labels 0-9 (class-incremental: one head for all classes).
    ``relabel=True`` maps each group's classes to 0..k-1 (task-incremental: a head per task).
    """
    check_bool("relabel", relabel)
    if len(class_groups) == 0:
        raise ValueError("class_groups must hold at least one group of classes")
    seen: set[int] = set()
    for group in class_groups:
        if isinstance(group, (int, np.integer, str)):
            raise TypeError(f"class_groups must hold groups of classes, e.g. ((0, 1), (2, 3)); got group {group!r}")
        if len(group) == 0:
            raise ValueError("every class group must hold at least one class")
        for c in group:
            c = check_int("every class", c, low=0, high=NUM_CLASSES - 1)
            if c in seen:
                raise ValueError(f"class {c} appears in more than one group")
            seen.add(c)
    X_train, y_train, X_test, y_test = load_digits_split()
    tasks = []
    for group in class_groups:
        classes = torch.tensor([int(c) for c in group])
        train, test = torch.isin(y_train, classes), torch.isin(y_test, classes)
        ytr, yte = y_train[train], y_test[test]
        if relabel:
            lookup = torch.full((NUM_CLASSES,), -1, dtype=torch.int64)
            lookup[classes] = torch.arange(len(classes))
            ytr, yte = lookup[ytr], lookup[yte]
        name = "digits " + ",".join(str(int(c)) for c in group)
        tasks.append(Task(name, X_train[train], ytr, X_test[test], yte))
    return tasks


def batches(
    X: Tensor, y: Tensor, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless shuffled mini-batches ``(X[idx], y[idx])``, reshuffled every epoch."""
    check_xy(X, y)
    check_positive_int("batch_size", batch_size)
    n = len(y)
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size].to(X.device)
            yield X[idx], y[idx]


def check_xy(X: Tensor, y: Tensor) -> None:
    """Raise a clear error unless X is (N, ...) and y is (N,) with N > 0."""
    if not isinstance(X, Tensor) or not isinstance(y, Tensor):
        raise TypeError(f"X and y must be torch tensors, got {type(X).__name__}, {type(y).__name__}")
    if X.ndim < 1 or len(X) == 0:
        raise ValueError("X is empty: expected at least one example")
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"y must have shape ({len(X)},) to match X {tuple(X.shape)}, got {tuple(y.shape)}")
