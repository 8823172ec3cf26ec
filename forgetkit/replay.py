"""Rehearsal (experience replay): keep a small sample of old data and mix it into new batches.

A ``ReservoirBuffer`` holds at most ``capacity`` examples from a stream of unknown length. With
Vitter's Algorithm R (Vitter, 1985) every example seen so far has the same chance,
capacity / seen, of being in the buffer, whatever the order of the stream:

    item number n (1-based): if n <= capacity, store it;
                             else draw j uniformly from 1..n and, if j <= capacity, put it in slot j.

``replay_mixer`` turns a buffer into the ``extra_batch`` hook of ``fk.train``/``fk.fit``: every
step gets replayed examples appended to the new batch (Chaudhry et al., 2019, "On tiny episodic
memories in continual learning").
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from .checks import check_bool, check_int, check_number, check_positive_int
from .data import check_xy
from .seeding import get_seed, make_generator


def reservoir_slot(num_seen: int, capacity: int, rng: random.Random) -> int | None:
    """One step of Algorithm R: where item number ``num_seen`` (1-based) goes, or None to drop it.

    Returns ``num_seen - 1`` (append) while the reservoir is not full; afterwards a slot in
    0..capacity-1 with probability capacity / num_seen, each slot equally likely, else None.
    """
    if num_seen <= capacity:
        return num_seen - 1
    j = rng.randrange(num_seen)  # uniform on 0..num_seen-1
    return j if j < capacity else None


def reservoir_sample(stream: Iterable[Any], capacity: int, rng: random.Random) -> list[Any]:
    """A uniform random sample of ``min(capacity, len(stream))`` items of ``stream``, in one pass (Algorithm R).

    Every item ends up in the sample with probability capacity / n (n = stream length), and the
    list never holds more than ``capacity`` items. ``rng`` is a ``random.Random``.
    """
    check_positive_int("capacity", capacity)
    if not isinstance(rng, random.Random):
        raise TypeError(f"rng must be a random.Random, got {type(rng).__name__}")
    sample: list[Any] = []
    for num_seen, item in enumerate(stream, start=1):
        slot = reservoir_slot(num_seen, capacity, rng)
        if slot is None:
            continue
        if slot == len(sample):
            sample.append(item)
        else:
            sample[slot] = item
    return sample


class ReservoirBuffer:
    """A replay buffer of at most ``capacity`` examples, each a uniform sample of what it was offered.

    ``add(X, y, task)`` offers a batch X (N, ...) with labels y (N,); ``sample(n)`` draws n stored
    examples. With ``per_task_balance=True`` every task seen so far gets an equal share of the
    capacity (the first ``capacity % num_tasks`` tasks one slot more) and runs its own reservoir,
    so a long task cannot crowd out a short one; when a new task arrives, the older tasks'
    reservoirs shrink by dropping random examples (a random subset of a uniform sample is still
    uniform). Seeded by ``seed`` (default: ``$FORGETKIT_SEED``).
    """

    def __init__(self, capacity: int, seed: int | None = None, per_task_balance: bool = False):
        self.capacity = check_positive_int("capacity", capacity)
        self.per_task_balance = check_bool("per_task_balance", per_task_balance)
        self.seed = get_seed(seed)
        self._rng = random.Random(self.seed)
        self._generator = make_generator(self.seed)
        # one reservoir per task with per_task_balance, else a single one under key 0
        self._items: dict[int, list[tuple[Tensor, Tensor, int]]] = {}  # key -> stored (x, y, task)
        self._seen: dict[int, int] = {}  # key -> examples offered so far
        self._example_shape: tuple[int, ...] | None = None
        self._stacked: tuple[Tensor, Tensor, Tensor] | None = None  # tensors(), until the next add

    def __len__(self) -> int:
        return sum(len(items) for items in self._items.values())

    def __repr__(self) -> str:
        tasks = sorted({t for items in self._items.values() for _, _, t in items})
        balance = ", per_task_balance=True" if self.per_task_balance else ""
        return (f"ReservoirBuffer(capacity={self.capacity}, holding {len(self)} of {self.num_seen} offered, "
                f"tasks {tasks}{balance})")

    @property
    def num_seen(self) -> int:
        """How many examples were offered to the buffer in total."""
        return sum(self._seen.values())

    def quota(self, task: int) -> int:
        """The most examples ``task`` may hold: all of the capacity, or its equal share."""
        if not self.per_task_balance:
            return self.capacity
        if task not in self._seen:
            raise ValueError(f"task {task!r} has not been added; the buffer holds tasks {sorted(self._seen)}")
        tasks = sorted(self._seen)
        share, extra = divmod(self.capacity, len(tasks))
        return share + (1 if tasks.index(task) < extra else 0)

    def add(self, X: Tensor, y: Tensor, task: int = 0) -> ReservoirBuffer:
        """Offer every row of X (N, ...) with its label y (N,) from ``task``; returns self."""
        check_xy(X, y)
        task = check_int("task", task)
        shape = tuple(X.shape[1:])
        if self._example_shape is not None and shape != self._example_shape:
            raise ValueError(f"examples of shape {shape} do not match the buffer's {self._example_shape}")
        self._example_shape = shape
        self._stacked = None
        key = task if self.per_task_balance else 0
        if key not in self._seen:
            self._seen[key], self._items[key] = 0, []
            self._shrink_to_quotas()
        items, capacity = self._items[key], self.quota(key)
        for x_row, y_row in zip(X.detach(), y.detach()):
            self._seen[key] += 1
            slot = reservoir_slot(self._seen[key], capacity, self._rng)
            if slot is None:
                continue
            if slot >= len(items):  # the reservoir is not full yet: append
                items.append((x_row.clone(), y_row.clone(), task))
            else:
                items[slot] = (x_row.clone(), y_row.clone(), task)
        return self

    def _shrink_to_quotas(self) -> None:
        for task, items in self._items.items():
            excess = len(items) - self.quota(task)
            for _ in range(max(excess, 0)):
                items.pop(self._rng.randrange(len(items)))

    def tensors(self) -> tuple[Tensor, Tensor, Tensor]:
        """Everything stored: X (M, ...), y (M,), task (M,) int64. Raises ValueError when empty."""
        if len(self) == 0:
            raise ValueError("the buffer is empty: add examples first")
        if self._stacked is None:
            stored = [item for items in self._items.values() for item in items]
            self._stacked = (torch.stack([x for x, _, _ in stored]), torch.stack([y for _, y, _ in stored]),
                             torch.tensor([t for _, _, t in stored], dtype=torch.int64))
        return self._stacked

    def sample(self, n: int, replace: bool | None = None) -> tuple[Tensor, Tensor]:
        """n stored examples drawn uniformly: X (n, ...), y (n,).

        Without replacement when n <= len(self) (the default), else with replacement.
        """
        n = check_int("n", n, low=0)
        if replace is not None:
            check_bool("replace", replace)
        X, y, _ = self.tensors()
        if replace is None:
            replace = n > len(y)
        if not replace and n > len(y):
            raise ValueError(f"cannot draw {n} examples without replacement from a buffer of {len(y)}")
        if replace:
            idx = torch.randint(len(y), (n,), generator=self._generator)
        else:
            idx = torch.randperm(len(y), generator=self._generator)[:n]
        return X[idx.to(X.device)], y[idx.to(y.device)]


def replay_count(batch_size: int, ratio: float) -> int:
    """How many replayed examples to append to a new batch of ``batch_size`` so that they make up
    ``ratio`` of the mixed batch: round(batch_size * ratio / (1 - ratio))."""
    check_positive_int("batch_size", batch_size)
    ratio = check_number("ratio", ratio, low=0.0, high=1.0, high_open=True)
    return round(batch_size * ratio / (1.0 - ratio))


def replay_mixer(buffer: ReservoirBuffer, batch_size: int, ratio: float,
                 device: torch.device | str | None = None) -> Callable[[], tuple[Tensor, Tensor]]:
    """An ``extra_batch`` hook for ``fk.train``/``fk.fit``: each call returns replayed (X, y).

    ``batch_size`` is the size of the new-task batch; the hook returns ``replay_count(batch_size,
    ratio)`` buffer examples, so that replay makes up ``ratio`` of every mixed batch (e.g. 0.25:
    one old example for every three new ones). Examples are moved to ``device`` if given.
    """
    if not isinstance(buffer, ReservoirBuffer):
        raise TypeError(f"buffer must be a ReservoirBuffer, got {type(buffer).__name__}")
    n = replay_count(batch_size, ratio)
    if len(buffer) == 0:
        raise ValueError("the buffer is empty: add old-task examples before replaying them")
    target = torch.device(device) if device is not None else None

    def extra_batch() -> tuple[Tensor, Tensor]:
        X, y = buffer.sample(n)
        return (X.to(target), y.to(target)) if target is not None else (X, y)

    return extra_batch
